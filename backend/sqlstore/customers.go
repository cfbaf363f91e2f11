package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// CreateCustomer stores a new visitor.
func (s *DB) CreateCustomer(ctx context.Context, c *Customer) error {
	now := s.now()
	c.CreatedAt, c.UpdatedAt = fromMS(now), fromMS(now)
	var ext any
	if c.ExternalID != "" {
		ext = c.ExternalID
	}
	_, err := s.exec(ctx, "INSERT INTO customers (entity_id, org_id, client_id, name, email, external_id, email_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.EntityID, c.OrgID, c.ClientID, c.Name, c.Email, ext, boolInt(c.EmailVerified), now, now)
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create customer: %w", err)
	}
	return nil
}

const customerCols = "entity_id, org_id, client_id, name, email, external_id, email_verified, created_at, updated_at"

func scanCustomer(row interface{ Scan(...any) error }) (Customer, error) {
	var c Customer
	var ext sql.NullString
	var verified, created, updated int64
	err := row.Scan(&c.EntityID, &c.OrgID, &c.ClientID, &c.Name, &c.Email, &ext, &verified, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, err
	}
	c.ExternalID, c.EmailVerified = ext.String, verified == 1
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	return c, nil
}

func (s *DB) customerWhere(ctx context.Context, where string, args ...any) (Customer, error) {
	c, err := scanCustomer(s.queryRow(ctx, "SELECT "+customerCols+" FROM customers WHERE "+where, args...))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("customer: %w", err)
	}
	return c, err
}

// Customer fetches a visitor.
func (s *DB) Customer(ctx context.Context, entityID string) (Customer, error) {
	if !storable(entityID) {
		return Customer{}, ErrNotFound
	}
	return s.customerWhere(ctx, "entity_id = ?", entityID)
}

// UpdateCustomer writes name, email and email_verified.
func (s *DB) UpdateCustomer(ctx context.Context, c *Customer) error {
	c.UpdatedAt = fromMS(s.now())
	if _, err := s.exec(ctx, "UPDATE customers SET name = ?, email = ?, email_verified = ?, updated_at = ? WHERE entity_id = ?", c.Name, c.Email, boolInt(c.EmailVerified), s.ms(c.UpdatedAt), c.EntityID); err != nil {
		return fmt.Errorf("update customer: %w", err)
	}
	return nil
}

// AddRefreshToken adds a token to a live family and retires the family's
// other live tokens, so a family keeps one live refresh token (the cookie
// path of customer silent refresh, which proves possession by the cookie
// rather than by the previous token). Retired tokens are dead: presenting
// one again is reuse. check runs on the
// family first, in the same transaction; its error is returned as is. A
// revoked family is ErrRevoked, one past its hard end ErrExpired; rt's
// expiry is capped at that end.
func (s *DB) AddRefreshToken(ctx context.Context, familyID string, rt RefreshToken, check func(Family) error) (Family, error) {
	return s.AddBoundRefreshToken(ctx, familyID, rt, "", check)
}

// AddBoundRefreshToken is AddRefreshToken for a request that proves DPoP
// key jkt: an unbound family is bound to it in the same transaction (the
// check refuses a family bound to another key).
func (s *DB) AddBoundRefreshToken(ctx context.Context, familyID string, rt RefreshToken, jkt string, check func(Family) error) (Family, error) {
	var fam Family
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		fam, err = scanFamily(t.queryRow(ctx, "SELECT "+familyOnlyCols+" FROM refresh_families f WHERE f.id = ?", familyID))
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(fam); err != nil {
				return err
			}
		}
		switch {
		case !fam.RevokedAt.IsZero():
			return ErrRevoked
		case !fam.ExpiresAt.IsZero() && !rt.CreatedAt.Before(fam.ExpiresAt):
			return ErrExpired
		case !fam.ExpiresAt.IsZero() && rt.ExpiresAt.After(fam.ExpiresAt):
			rt.ExpiresAt = fam.ExpiresAt
		}
		if fam.JKT != "" && fam.JKT != jkt {
			return ErrOtherKey
		}
		if fam.JKT == "" && jkt != "" {
			if err := bindFamily(ctx, t, &fam, jkt); err != nil {
				return err
			}
		}
		// The others are retired dead (no grace): the cookie proved the
		// browser, and a token it replaced must not start a branch.
		if _, err := t.exec(ctx, "UPDATE refresh_tokens SET rotated_at = ?, grace_used = 1 WHERE family_id = ? AND rotated_at IS NULL", s.now(), familyID); err != nil {
			return fmt.Errorf("add refresh token: %w", err)
		}
		// The tokens just retired stay (presenting one is reuse); those
		// retired before go: a cookie-path token has no derived successor
		// to be recognised by, and a family must not grow with visits.
		if err := dropSpent(ctx, t, familyID, nil, s.now()); err != nil {
			return err
		}
		return insertToken(ctx, t, familyID, rt)
	})
	return fam, err
}

// MaxMessageID is the newest message of a conversation, or 0.
func (s *DB) MaxMessageID(ctx context.Context, conversationID int64) (int64, error) {
	var id sql.NullInt64
	if err := s.queryRow(ctx, "SELECT MAX(id) FROM messages WHERE conversation_id = ?", conversationID).Scan(&id); err != nil {
		return 0, fmt.Errorf("max message id: %w", err)
	}
	return id.Int64, nil
}
