package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"chatauth/backend/notify"
)

// CreateFamily stores a new family with its first token.
func (s *DB) CreateFamily(ctx context.Context, f *Family, first RefreshToken) error {
	f.CreatedAt = fromMS(s.now())
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(ctx, "INSERT INTO refresh_families (id, kind, subject, org_id, client_id, scope, created_at, expires_at, parent, jkt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			f.ID, f.Kind, f.Subject, f.OrgID, f.ClientID, f.Scope, s.ms(f.CreatedAt), nullMS(f.ExpiresAt), f.Parent, f.JKT); err != nil {
			return fmt.Errorf("create family: %w", err)
		}
		if first.Hash == nil {
			// A session without refresh tokens (an implicit grant): the row
			// is what revocation events find.
			return nil
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

const familyCols = "f.id, f.kind, f.subject, f.org_id, f.client_id, f.scope, f.created_at, f.expires_at, f.parent, f.jkt, f.revoked_at, f.revoke_reason"

// familyOnlyCols is a family without a token.
const familyOnlyCols = familyCols

func scanFamily(row *sql.Row) (Family, error) {
	var f Family
	var created int64
	var expires, revoked sql.NullInt64
	err := row.Scan(&f.ID, &f.Kind, &f.Subject, &f.OrgID, &f.ClientID, &f.Scope, &created, &expires, &f.Parent, &f.JKT, &revoked, &f.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return f, ErrNotFound
	}
	if err != nil {
		return f, fmt.Errorf("family: %w", err)
	}
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = fromMS(created), fromNullMS(expires), fromNullMS(revoked)
	return f, nil
}

func scanFamilyAndToken(row *sql.Row) (Family, RefreshToken, error) {
	var f Family
	var rt RefreshToken
	var fCreated, created, expires int64
	var fExpires, revoked, rotated sql.NullInt64
	var dead int
	err := row.Scan(&f.ID, &f.Kind, &f.Subject, &f.OrgID, &f.ClientID, &f.Scope, &fCreated, &fExpires, &f.Parent, &f.JKT, &revoked, &f.Reason,
		&rt.Hash, &created, &expires, &rotated, &dead)
	if errors.Is(err, sql.ErrNoRows) {
		return f, rt, ErrNotFound
	}
	if err != nil {
		return f, rt, err
	}
	f.CreatedAt, f.ExpiresAt, f.RevokedAt = fromMS(fCreated), fromNullMS(fExpires), fromNullMS(revoked)
	rt.FamilyID, rt.CreatedAt, rt.ExpiresAt, rt.RotatedAt, rt.Dead = f.ID, fromMS(created), fromMS(expires), fromNullMS(rotated), dead != 0
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

// Rotate spends the token with hash and stores next, its successor, in
// its family, in one transaction (docs/security.md, I3). The successor's
// secret is derived from the spent one by the caller, so its hash is the
// same whenever the same token is presented. Rotate answers:
//   - ErrNotFound, ErrExpired, ErrRevoked for a token that cannot be used;
//   - nil, replay false: a first use (a family has one live token: the
//     cookie path retires the others, and a replay adds none);
//   - nil, replay true: the token was spent within grace of now and its
//     successor is still unspent: the caller answers that same successor
//     again (two tabs racing one refresh), never an independent branch;
//   - ErrReused for any other presentation of a spent token: the family is
//     revoked, with every token in it, before Rotate returns.
//
// The conditional UPDATE decides races: on PostgreSQL the second of two
// concurrent rotations blocks on the row lock, re-reads it, and takes the
// replay branch; on SQLite the write lock taken at BEGIN serializes them.
func (s *DB) Rotate(ctx context.Context, hash []byte, grace time.Duration, next RefreshToken) (fam Family, replay bool, err error) {
	return s.RotateIf(ctx, hash, grace, next, nil)
}

// RotateIf is Rotate with a check of the family, run in the same
// transaction before anything is spent: its error is returned as is, and
// nothing changes. (One read fewer than looking the family up first.)
// next's expiry is capped at the family's hard end.
func (s *DB) RotateIf(ctx context.Context, hash []byte, grace time.Duration, next RefreshToken, check func(Family) error) (fam Family, replay bool, err error) {
	return s.RotateBound(ctx, hash, grace, next, "", check)
}

// RotateBound is RotateIf for a request that proves DPoP key jkt ("" for
// none), in the same transaction (docs/dpop.md): a live token of a family
// bound to another key is ErrOtherKey and is not spent; a first use with
// a key binds an unbound family to it, unless a racing request bound it
// to another key first (ErrOtherKey, nothing spent); a replay within
// grace is answered only to the family's key. A spent token outside grace
// is reuse whatever key comes with it: the binding must not shelter a
// thief who bound a stolen session first from the victim's next refresh.
func (s *DB) RotateBound(ctx context.Context, hash []byte, grace time.Duration, next RefreshToken, jkt string, check func(Family) error) (fam Family, replay bool, err error) {
	var reused bool
	var ended []string
	err = s.tx(ctx, func(t *Tx) error {
		reused, replay, ended = false, false, nil // a retried transaction starts over
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
		if check != nil {
			if err := check(f); err != nil {
				return err
			}
		}
		if !f.ExpiresAt.IsZero() && next.ExpiresAt.After(f.ExpiresAt) {
			next.ExpiresAt = f.ExpiresAt
		}
		now := s.now()
		switch {
		case !f.RevokedAt.IsZero():
			return ErrRevoked
		case now >= s.ms(rt.ExpiresAt), !f.ExpiresAt.IsZero() && now >= s.ms(f.ExpiresAt):
			return ErrExpired
		case rt.RotatedAt.IsZero() && f.JKT != "" && f.JKT != jkt:
			return ErrOtherKey
		}
		res, err := t.exec(ctx, "UPDATE refresh_tokens SET rotated_at = ? WHERE hash = ? AND rotated_at IS NULL", now, hash)
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if f.JKT == "" && jkt != "" {
				if err := bindFamily(ctx, t, &f, jkt); err != nil {
					return err
				}
				fam = f
			}
			// A family has one live token (the cookie path retires the
			// others when it adds one, and a replay adds none), so there
			// is no sibling to retire. Tokens spent before this one was
			// issued can go, unless it was issued within the grace window:
			// then so were they, and a burst of refreshes is left to the
			// next rotation or the purge rather than paid for each time.
			if s.ms(rt.CreatedAt) < now-grace.Milliseconds() {
				if err := dropSpent(ctx, t, f.ID, hash, now-grace.Milliseconds()); err != nil {
					return err
				}
			}
			return insertToken(ctx, t, f.ID, next)
		}
		// Spent already (or by a racing transaction that just committed):
		// re-read it, then decide between the replay and reuse.
		f, rt, err = scanFamilyAndToken(t.queryRow(ctx, tokenQuery, hash))
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		fam = f
		if !rt.Dead && now-s.ms(rt.RotatedAt) <= grace.Milliseconds() {
			if f.JKT != "" && f.JKT != jkt {
				return ErrOtherKey // the racing tab of another key
			}
			_, succ, err := scanFamilyAndToken(t.queryRow(ctx, tokenQuery, next.Hash))
			switch {
			case errors.Is(err, ErrNotFound):
				// Retired without a successor of its own: not a replay.
			case err != nil:
				return fmt.Errorf("rotate: %w", err)
			case succ.FamilyID == f.ID && succ.RotatedAt.IsZero():
				replay = true
				return nil
			}
		}
		reused = true
		ended, err = revokeFamily(ctx, t, f.ID, "refresh token reused", now)
		return err
	})
	if err == nil && reused {
		fam.RevokedAt, fam.Reason, fam.Ended = fromMS(s.now()), "refresh token reused", ended
		return fam, false, ErrReused
	}
	return fam, replay, err
}

// dropSpent deletes the spent tokens of a family that nothing needs: all
// but keep (the one just spent, which reuse detection still recognises
// until the next rotation) and those spent within grace (their replay
// answers the successor). So a family holds its live token, the last one
// spent and the few spent within grace, however often it is refreshed.
func dropSpent(ctx context.Context, t *Tx, familyID string, keep []byte, graceStart int64) error {
	q, args := "DELETE FROM refresh_tokens WHERE family_id = ? AND rotated_at < ?", []any{familyID, graceStart}
	if keep != nil {
		q, args = q+" AND hash <> ?", append(args, keep)
	}
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("drop spent tokens: %w", err)
	}
	return nil
}

// revokeFamily ends family id and the families it vouched for, and
// returns every id it ended.
func revokeFamily(ctx context.Context, t *Tx, id, reason string, now int64) ([]string, error) {
	res, err := t.exec(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL", now, reason, id)
	if err != nil {
		return nil, fmt.Errorf("revoke family: %w", err)
	}
	ids := []string{id}
	if n, _ := res.RowsAffected(); n == 0 {
		return ids, nil
	}
	children, err := revokeChildren(ctx, t, []string{id}, now)
	if err != nil {
		return nil, err
	}
	ids = append(ids, children...)
	return ids, announceRevoked(ctx, t, ids)
}

// announceRevoked tells every process of revoked sessions, in the
// revoking transaction (PostgreSQL delivers NOTIFY on commit, and not
// at all on rollback), so a revocation cannot commit unannounced.
func announceRevoked(ctx context.Context, t *Tx, ids []string) error {
	for _, id := range ids {
		if err := t.announce(ctx, notify.TopicRevocation, id); err != nil {
			return err
		}
	}
	return nil
}

// revokeChildren ends the families whose parent is one of parents.
func revokeChildren(ctx context.Context, t *Tx, parents []string, now int64) ([]string, error) {
	if len(parents) == 0 {
		return nil, nil
	}
	args := []any{now}
	for _, p := range parents {
		args = append(args, p)
	}
	return scanIDs(t.query(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'the credential that vouched for it was revoked' WHERE revoked_at IS NULL AND parent IN (?"+strings.Repeat(", ?", len(parents)-1)+") RETURNING id", args...))
}

func scanIDs(rows *sql.Rows, err error) ([]string, error) {
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

// RevokeFamily ends a family (and the families it vouched for): its
// refresh tokens stop working, and access tokens carrying its id as
// "sid" are refused once the revocation reaches the verifier. It returns
// every id it ended.
func (s *DB) RevokeFamily(ctx context.Context, id, reason string) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		ids, err = revokeFamily(ctx, t, id, reason, s.now())
		return err
	})
	return ids, err
}

// FamilyFilter selects live families to revoke: those of one of Kinds
// (all kinds when empty) whose subject is Subject (when set), whose
// client is ClientID (when set) and whose parent is Parent (when set),
// except the one named Except. The families they vouched for go too.
type FamilyFilter struct {
	Kinds    []string
	Subject  string
	ClientID string
	Parent   string
	Except   string
	// Anonymous keeps only families no identity token started
	// (IdentityParent): the anonymous visitors of a client.
	Anonymous bool
	// ParentPrefix selects families whose parent starts with it.
	ParentPrefix string
}

// RevokeFamilies ends every live family the filter selects and returns
// their ids, so the caller can add them to the revocation set at once.
func (s *DB) RevokeFamilies(ctx context.Context, f FamilyFilter, reason string) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		ids, err = revokeFamilies(ctx, t, f, reason, s.now())
		return err
	})
	return ids, err
}

func revokeFamilies(ctx context.Context, t *Tx, f FamilyFilter, reason string, now int64) ([]string, error) {
	if f.Subject == "" && f.ClientID == "" && f.Parent == "" && f.ParentPrefix == "" {
		return nil, errors.New("revoke families: name a subject, a client or a parent")
	}
	q := "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? WHERE revoked_at IS NULL AND id <> ?"
	args := []any{now, reason, f.Except}
	if f.Subject != "" {
		q, args = q+" AND subject = ?", append(args, f.Subject)
	}
	if f.ClientID != "" {
		q, args = q+" AND client_id = ?", append(args, f.ClientID)
	}
	if f.Parent != "" {
		q, args = q+" AND parent = ?", append(args, f.Parent)
	}
	if f.ParentPrefix != "" {
		// substr, not LIKE: ids hold "_", which LIKE reads as a wildcard.
		q, args = q+" AND substr(parent, 1, ?) = ?", append(args, len(f.ParentPrefix), f.ParentPrefix)
	}
	if f.Anonymous {
		q, args = q+" AND parent NOT LIKE ?", append(args, identityParentPrefix+"%")
	}
	if len(f.Kinds) > 0 {
		q += " AND kind IN (?" + strings.Repeat(", ?", len(f.Kinds)-1) + ")"
		for _, k := range f.Kinds {
			args = append(args, k)
		}
	}
	ids, err := scanIDs(t.query(ctx, q+" RETURNING id", args...))
	if err != nil {
		return nil, err
	}
	children, err := revokeChildren(ctx, t, ids, now)
	if err != nil {
		return nil, err
	}
	ids = append(ids, children...)
	return ids, announceRevoked(ctx, t, ids)
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

// chainQuery finds the first of up to chainLen hashes stored.
var chainQuery = "SELECT " + familyCols + ", t.hash, t.created_at, t.expires_at, t.rotated_at, t.grace_used FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.hash IN (?" + strings.Repeat(", ?", ChainLen-1) + ") LIMIT 1"

// ChainLen is how many successors of an unknown refresh token are looked
// for (docs/security.md, I3).
const ChainLen = 64

// FamilyOfDescendant finds the family holding one of hashes, the hashes
// of an unknown token's successors (exactly ChainLen of them): a token
// that is gone, but whose descendant is still stored, was spent and
// purged, and presenting it is reuse.
func (s *DB) FamilyOfDescendant(ctx context.Context, hashes [][]byte) (Family, error) {
	if len(hashes) != ChainLen {
		return Family{}, errors.New("family of descendant: need ChainLen hashes")
	}
	args := make([]any, len(hashes))
	for i, h := range hashes {
		args[i] = h
	}
	f, _, err := scanFamilyAndToken(s.queryRow(ctx, chainQuery, args...))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return f, fmt.Errorf("family of descendant: %w", err)
	}
	return f, err
}

// bindFamily binds an unbound family to DPoP key jkt within t; a family
// that a racing request bound to another key meanwhile is ErrOtherKey.
func bindFamily(ctx context.Context, t *Tx, f *Family, jkt string) error {
	res, err := t.exec(ctx, "UPDATE refresh_families SET jkt = ? WHERE id = ? AND jkt = ''", jkt, f.ID)
	if err != nil {
		return fmt.Errorf("bind family: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var now string
		if err := t.queryRow(ctx, "SELECT jkt FROM refresh_families WHERE id = ?", f.ID).Scan(&now); err != nil {
			return fmt.Errorf("bind family: %w", err)
		}
		if now != jkt {
			return ErrOtherKey
		}
	}
	f.JKT = jkt
	return nil
}
