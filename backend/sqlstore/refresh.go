package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Family is one line of descent of refresh tokens: everything issued from
// one sign-in. Reuse of a retired member revokes the whole family.
type Family struct {
	ID        string
	Kind      string // "agent", "customer", "oauth"
	Subject   string // user id, customer entity_id, client id
	OrgID     int64
	ClientID  string
	Scope     string
	CreatedAt time.Time
	RevokedAt time.Time
	Reason    string
}

// RefreshToken is a stored refresh token; only its SHA-256 hash is kept.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	RotatedAt time.Time
	GraceUsed bool
}

// CreateFamily stores a new family with its first token.
func (s *DB) CreateFamily(ctx context.Context, f *Family, first RefreshToken) error {
	f.CreatedAt = fromMS(s.now())
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(ctx, "INSERT INTO refresh_families (id, kind, subject, org_id, client_id, scope, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			f.ID, f.Kind, f.Subject, f.OrgID, f.ClientID, f.Scope, s.ms(f.CreatedAt)); err != nil {
			return fmt.Errorf("create family: %w", err)
		}
		return insertToken(ctx, t, f.ID, first)
	})
}

func insertToken(ctx context.Context, t *Tx, familyID string, rt RefreshToken) error {
	if _, err := t.exec(ctx, "INSERT INTO refresh_tokens (hash, family_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
		rt.Hash, familyID, t.s.ms(rt.CreatedAt), t.s.ms(rt.ExpiresAt)); err != nil {
		return fmt.Errorf("insert refresh token: %w", err)
	}
	return nil
}

const familyCols = "f.id, f.kind, f.subject, f.org_id, f.client_id, f.scope, f.created_at, f.revoked_at, f.revoke_reason"

func scanFamilyAndToken(row *sql.Row) (Family, RefreshToken, error) {
	var f Family
	var rt RefreshToken
	var fCreated, created, expires int64
	var revoked, rotated sql.NullInt64
	var grace int
	err := row.Scan(&f.ID, &f.Kind, &f.Subject, &f.OrgID, &f.ClientID, &f.Scope, &fCreated, &revoked, &f.Reason,
		&rt.Hash, &created, &expires, &rotated, &grace)
	if errors.Is(err, sql.ErrNoRows) {
		return f, rt, ErrNotFound
	}
	if err != nil {
		return f, rt, err
	}
	f.CreatedAt, f.RevokedAt = fromMS(fCreated), fromNullMS(revoked)
	rt.FamilyID, rt.CreatedAt, rt.ExpiresAt, rt.RotatedAt, rt.GraceUsed = f.ID, fromMS(created), fromMS(expires), fromNullMS(rotated), grace != 0
	return f, rt, nil
}

const tokenQuery = "SELECT " + familyCols + ", t.hash, t.created_at, t.expires_at, t.rotated_at, t.grace_used FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash = ?"

// LookupRefresh returns a token and its family without changing anything
// (for the token debugger and introspection).
func (s *DB) LookupRefresh(ctx context.Context, hash []byte) (Family, RefreshToken, error) {
	f, rt, err := scanFamilyAndToken(s.queryRow(ctx, tokenQuery, hash))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return f, rt, fmt.Errorf("lookup refresh token: %w", err)
	}
	if err == nil && subtle.ConstantTimeCompare(rt.Hash, hash) != 1 {
		return f, rt, ErrNotFound
	}
	return f, rt, err
}

// Rotate retires the token with hash and stores next in its family, in
// one transaction. It answers:
//   - ErrNotFound, ErrExpired, ErrRevoked for a token that cannot be used;
//   - ErrReused for a retired token presented again outside the grace
//     window, or a second time inside it: the family is revoked, with
//     every token in it, before Rotate returns;
//   - nil with the family otherwise. A retired token inside the grace
//     window is honoured once, so two tabs racing one refresh both win.
//
// The conditional UPDATEs decide races: on PostgreSQL the second of two
// concurrent rotations blocks on the row lock, re-reads it, and falls
// through to the grace branch; on SQLite the write lock taken at BEGIN
// serializes them.
func (s *DB) Rotate(ctx context.Context, hash []byte, grace time.Duration, next RefreshToken) (Family, error) {
	var fam Family
	var reused bool
	err := s.tx(ctx, func(t *Tx) error {
		f, rt, err := scanFamilyAndToken(t.queryRow(ctx, tokenQuery, hash))
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				return err
			}
			return fmt.Errorf("rotate: %w", err)
		}
		if subtle.ConstantTimeCompare(rt.Hash, hash) != 1 {
			return ErrNotFound
		}
		fam = f
		now := s.now()
		switch {
		case !f.RevokedAt.IsZero():
			return ErrRevoked
		case now >= s.ms(rt.ExpiresAt):
			return ErrExpired
		}
		res, err := t.exec(ctx, "UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ? AND rotated_at IS NULL", now, hash)
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			res, err = t.exec(ctx, "UPDATE refresh_tokens SET grace_used = 1 WHERE hash = ? AND grace_used = 0 AND rotated_at >= ?", hash, now-grace.Milliseconds())
			if err != nil {
				return fmt.Errorf("rotate: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				reused = true
				return revokeFamily(ctx, t, f.ID, "refresh token reused", now)
			}
		}
		next.FamilyID = f.ID
		return insertToken(ctx, t, f.ID, next)
	})
	if err == nil && reused {
		fam.RevokedAt, fam.Reason = fromMS(s.now()), "refresh token reused"
		return fam, ErrReused
	}
	return fam, err
}

func revokeFamily(ctx context.Context, t *Tx, id, reason string, now int64) error {
	if _, err := t.exec(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL", now, reason, id); err != nil {
		return fmt.Errorf("revoke family: %w", err)
	}
	return nil
}

// RevokeFamily ends a family: its refresh tokens stop working, and access
// tokens carrying its id as "sid" are refused once the revocation reaches
// the verifier.
func (s *DB) RevokeFamily(ctx context.Context, id, reason string) error {
	return s.tx(ctx, func(t *Tx) error { return revokeFamily(ctx, t, id, reason, s.now()) })
}

// RevokeSubjectFamilies ends every live family of (kind, subject) except
// the one named keep, and returns the ids it ended.
func (s *DB) RevokeSubjectFamilies(ctx context.Context, kind, subject, keep, reason string) ([]string, error) {
	rows, err := s.query(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE kind = ? AND subject = ? AND id <> ? AND revoked_at IS NULL RETURNING id",
		s.now(), reason, kind, subject, keep)
	if err != nil {
		return nil, fmt.Errorf("revoke families: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("revoke families: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// RevokedSince lists families revoked at or after since (Unix ms), and the
// latest revocation time seen, for verifiers that keep a revocation set
// in memory and poll for changes made by other processes.
func (s *DB) RevokedSince(ctx context.Context, since int64) ([]string, int64, error) {
	rows, err := s.query(ctx, "SELECT id, revoked_at FROM refresh_families WHERE revoked_at >= ? ORDER BY revoked_at", since)
	if err != nil {
		return nil, since, fmt.Errorf("revoked since: %w", err)
	}
	defer rows.Close()
	var ids []string
	latest := since
	for rows.Next() {
		var id string
		var at int64
		if err := rows.Scan(&id, &at); err != nil {
			return nil, since, fmt.Errorf("revoked since: %w", err)
		}
		ids = append(ids, id)
		latest = max(latest, at)
	}
	return ids, latest, rows.Err()
}
