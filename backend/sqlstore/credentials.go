package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

const credCols = "id, kind, org_id, user_id, name, scope, hash, expires_at, last_used_at, created_at"

func scanCred(row interface{ Scan(...any) error }) (Credential, error) {
	var c Credential
	var org, user, exp, used sql.NullInt64
	var created int64
	if err := row.Scan(&c.ID, &c.Kind, &org, &user, &c.Name, &c.Scope, &c.Hash, &exp, &used, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, ErrNotFound
		}
		return c, err
	}
	c.OrgID, c.UserID, c.ExpiresAt, c.LastUsedAt, c.CreatedAt = org.Int64, user.Int64, fromNullMS(exp), fromNullMS(used), fromMS(created)
	return c, nil
}

func nullID(v int64) sql.NullInt64 { return sql.NullInt64{Int64: v, Valid: v != 0} }

// CreateCredential stores c and sets its ID.
func (s *DB) CreateCredential(ctx context.Context, c *Credential) error {
	c.CreatedAt = fromMS(s.now())
	err := s.queryRow(ctx, "INSERT INTO credentials (kind, org_id, user_id, name, scope, hash, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		c.Kind, nullID(c.OrgID), nullID(c.UserID), c.Name, c.Scope, c.Hash, nullMS(c.ExpiresAt), s.ms(c.CreatedAt)).Scan(&c.ID)
	if err != nil {
		return fmt.Errorf("create credential: %w", err)
	}
	return nil
}

// CredentialByHash finds a credential by its secret's hash, checking the
// stored hash in constant time.
func (s *DB) CredentialByHash(ctx context.Context, hash []byte) (Credential, error) {
	c, err := scanCred(s.queryRow(ctx, "SELECT "+credCols+" FROM credentials WHERE hash = ?", hash))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("credential: %w", err)
	}
	if err == nil && subtle.ConstantTimeCompare(c.Hash, hash) != 1 {
		return c, ErrNotFound
	}
	return c, err
}

// CredentialByID fetches one credential.
func (s *DB) CredentialByID(ctx context.Context, kind string, id int64) (Credential, error) {
	c, err := scanCred(s.queryRow(ctx, "SELECT "+credCols+" FROM credentials WHERE kind = ? AND id = ?", kind, id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("credential: %w", err)
	}
	return c, err
}

// ListCredentials lists credentials of a kind, of one user (userID != 0)
// or of one organization.
func (s *DB) ListCredentials(ctx context.Context, kind string, orgID, userID int64) ([]Credential, error) {
	q, args := "SELECT "+credCols+" FROM credentials WHERE kind = ? AND org_id = ?", []any{kind, orgID}
	if userID != 0 {
		q, args = q+" AND user_id = ?", append(args, userID)
	}
	rows, err := s.query(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	var out []Credential
	for rows.Next() {
		c, err := scanCred(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ResetCredential replaces the secret; the old one stops matching with
// this statement.
func (s *DB) ResetCredential(ctx context.Context, id int64, hash []byte) error {
	res, err := s.exec(ctx, "UPDATE credentials SET hash = ?, last_used_at = NULL WHERE id = ?", hash, id)
	if err != nil {
		return fmt.Errorf("reset credential: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteCredential revokes a credential.
func (s *DB) DeleteCredential(ctx context.Context, id int64) error {
	res, err := s.exec(ctx, "DELETE FROM credentials WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete credential: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchCredential records a use at t and reports whether it was the first.
func (s *DB) TouchCredential(ctx context.Context, id int64, t time.Time) (bool, error) {
	res, err := s.exec(ctx, "UPDATE credentials SET last_used_at = ? WHERE id = ? AND last_used_at IS NULL", s.ms(t), id)
	if err != nil {
		return false, fmt.Errorf("touch credential: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	_, err = s.exec(ctx, "UPDATE credentials SET last_used_at = ? WHERE id = ?", s.ms(t), id)
	return false, err
}

// Audit appends an event.
func (s *DB) Audit(ctx context.Context, e AuditEvent) error {
	_, err := s.exec(ctx, "INSERT INTO audit_events (org_id, actor, event, subject, detail, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		nullID(e.OrgID), e.Actor, e.Event, e.Subject, e.Detail, s.now())
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// AuditEvents lists the newest events of an organization tree, newest
// first, before id `before` (0: from the newest).
func (s *DB) AuditEvents(ctx context.Context, root, before int64, limit int) ([]AuditEvent, error) {
	q := "SELECT id, org_id, actor, event, subject, detail, created_at FROM audit_events WHERE " + inTree
	args := []any{root}
	if before > 0 {
		q, args = q+" AND id < ?", append(args, before)
	}
	rows, err := s.query(ctx, q+" ORDER BY id DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	defer rows.Close()
	out := []AuditEvent{}
	for rows.Next() {
		var e AuditEvent
		var org sql.NullInt64
		var created int64
		if err := rows.Scan(&e.ID, &org, &e.Actor, &e.Event, &e.Subject, &e.Detail, &created); err != nil {
			return nil, fmt.Errorf("audit events: %w", err)
		}
		e.OrgID, e.CreatedAt = org.Int64, fromMS(created)
		out = append(out, e)
	}
	return out, rows.Err()
}
