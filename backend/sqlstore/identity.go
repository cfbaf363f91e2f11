package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"chatauth/backend/domain"
)

// IdentityKey is domain.IdentityKey.
type IdentityKey = domain.IdentityKey

const identityParentPrefix = "identity:"

// IdentityParent is the parent of the visitor sessions an identity key's
// tokens started: deleting the key revokes them (docs/identity.md).
func IdentityParent(clientID, kid string) string {
	return identityParentPrefix + clientID + ":" + kid
}

// IsIdentityParent reports whether a family was started by an identity
// token, that is, belongs to an identified visitor.
func IsIdentityParent(parent string) bool { return strings.HasPrefix(parent, identityParentPrefix) }

const identityKeyCols = "kid, client_id, org_id, kind, alg, secret, jwk, jwks_uri, created_at"

func scanIdentityKey(row interface{ Scan(...any) error }) (IdentityKey, error) {
	var k IdentityKey
	var created int64
	if err := row.Scan(&k.KID, &k.ClientID, &k.OrgID, &k.Kind, &k.Alg, &k.Secret, &k.JWK, &k.JWKSURI, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return k, ErrNotFound
		}
		return k, err
	}
	k.CreatedAt = fromMS(created)
	return k, nil
}

// CreateIdentityKey adds k to its client unless the client has max keys
// already (ErrLimit) or one with the same kid (ErrConflict).
func (s *DB) CreateIdentityKey(ctx context.Context, k *IdentityKey, max int) error {
	return s.tx(ctx, func(t *Tx) error {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM identity_keys WHERE client_id = ?", k.ClientID).Scan(&n); err != nil {
			return fmt.Errorf("create identity key: %w", err)
		}
		if n >= max {
			return ErrLimit
		}
		now := s.now()
		k.CreatedAt = fromMS(now)
		_, err := t.exec(ctx, "INSERT INTO identity_keys ("+identityKeyCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			k.KID, k.ClientID, k.OrgID, k.Kind, k.Alg, k.Secret, k.JWK, k.JWKSURI, now)
		if isUnique(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("create identity key: %w", err)
		}
		return nil
	})
}

// IdentityKeys lists a client's identity keys, oldest first.
func (s *DB) IdentityKeys(ctx context.Context, clientID string) ([]IdentityKey, error) {
	if !storable(clientID) {
		return nil, nil
	}
	return s.identityKeysWhere(ctx, "client_id = ? ORDER BY created_at, kid", clientID)
}

func (s *DB) identityKeysWhere(ctx context.Context, where string, arg any) ([]IdentityKey, error) {
	rows, err := s.query(ctx, "SELECT "+identityKeyCols+" FROM identity_keys WHERE "+where, arg)
	if err != nil {
		return nil, fmt.Errorf("identity keys: %w", err)
	}
	defer rows.Close()
	var out []IdentityKey
	for rows.Next() {
		k, err := scanIdentityKey(rows)
		if err != nil {
			return nil, fmt.Errorf("identity keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteIdentityKey removes a key and revokes the visitor sessions its
// tokens started, in one transaction; it returns the revoked ids.
func (s *DB) DeleteIdentityKey(ctx context.Context, clientID, kid string) ([]string, error) {
	if !storable(kid) || !storable(clientID) {
		return nil, ErrNotFound
	}
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		res, err := t.exec(ctx, "DELETE FROM identity_keys WHERE client_id = ? AND kid = ?", clientID, kid)
		if err != nil {
			return fmt.Errorf("delete identity key: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		ids, err = revokeFamilies(ctx, t, FamilyFilter{Parent: IdentityParent(clientID, kid)}, "identity key deleted", s.now())
		if err != nil {
			return err
		}
		// The sessions of each key of a key set (identity.SetKey).
		more, err := revokeFamilies(ctx, t, FamilyFilter{ParentPrefix: IdentityParent(clientID, kid) + "/"}, "identity key deleted", s.now())
		ids = append(ids, more...)
		return err
	})
	return ids, err
}

// UseJTI records that an identity token's jti was used; a second use
// before exp is ErrConflict. The row goes with the purge after exp.
func (s *DB) UseJTI(ctx context.Context, clientID, jti string, exp time.Time) error {
	if !storable(jti) {
		return ErrConflict
	}
	_, err := s.exec(ctx, "INSERT INTO identity_jtis (client_id, jti, expires_at) VALUES (?, ?, ?)", clientID, jti, s.ms(exp))
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("use jti: %w", err)
	}
	return nil
}

// Identify finds the visitor the site knows as c.ExternalID at widget
// client c.ClientID of c.OrgID, creating it on first sight (created), and
// writes what the site said of it (name, email, email_verified; the
// site's word wins over what the visitor typed). c is filled in with the
// stored visitor.
func (s *DB) Identify(ctx context.Context, c *Customer) (created bool, err error) {
	if c.ExternalID == "" {
		return false, errors.New("identify: no external id")
	}
	want := *c
	for attempt := 0; attempt < 2; attempt++ {
		found, err := s.IdentifiedCustomer(ctx, *c)
		if errors.Is(err, ErrNotFound) {
			err = s.CreateCustomer(ctx, c)
			if errors.Is(err, ErrConflict) {
				continue // a racing first sign-in of the same user won
			}
			return err == nil, err
		}
		if err != nil {
			return false, err
		}
		*c = found
		if want.Name != "" || want.Email != "" {
			if want.Name != "" {
				c.Name = want.Name
			}
			if want.Email != "" {
				c.Email, c.EmailVerified = want.Email, want.EmailVerified
			}
			if c.Name != found.Name || c.Email != found.Email || c.EmailVerified != found.EmailVerified {
				return false, s.UpdateCustomer(ctx, c)
			}
		}
		return false, nil
	}
	return false, errors.New("identify: the visitor was created and removed at once")
}

// IdentifiedCustomer finds the visitor c.ExternalID of client c.ClientID.
func (s *DB) IdentifiedCustomer(ctx context.Context, c Customer) (Customer, error) {
	if !storable(c.ExternalID) {
		return Customer{}, ErrNotFound
	}
	return s.customerWhere(ctx, "org_id = ? AND client_id = ? AND external_id = ?", c.OrgID, c.ClientID, c.ExternalID)
}

// IdentityKeyLive reports whether a client still has identity key kid.
func (s *DB) IdentityKeyLive(ctx context.Context, clientID, kid string) (bool, error) {
	var n int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM identity_keys WHERE client_id = ? AND kid = ?", clientID, kid).Scan(&n); err != nil {
		return false, fmt.Errorf("identity key: %w", err)
	}
	return n > 0, nil
}

// AdoptConversations moves the open conversations of visitor from to
// visitor to, in organization org: an anonymous visitor who signs in on
// the site keeps the conversation they had started. It returns their ids.
func (s *DB) AdoptConversations(ctx context.Context, org int64, from, to string) ([]int64, error) {
	var ids []int64
	err := s.tx(ctx, func(t *Tx) error {
		ids = nil
		rows, err := t.query(ctx, "UPDATE conversations SET customer_id = ?, updated_at = ? WHERE org_id = ? AND customer_id = ? AND status = 'open' RETURNING id", to, s.now(), org, from)
		if err != nil {
			return fmt.Errorf("adopt conversations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return fmt.Errorf("adopt conversations: %w", err)
			}
			ids = append(ids, id)
		}
		return rows.Err()
	})
	return ids, err
}

// Customers fetches visitors by entity_id in organization org; unknown
// ids are left out.
func (s *DB) Customers(ctx context.Context, org int64, ids []string) (map[string]Customer, error) {
	out := map[string]Customer{}
	var args []any
	for _, id := range ids {
		if id != "" && storable(id) {
			args = append(args, id)
		}
	}
	if len(args) == 0 {
		return out, nil
	}
	rows, err := s.query(ctx, "SELECT "+customerCols+" FROM customers WHERE org_id = ? AND entity_id IN (?"+strings.Repeat(", ?", len(args)-1)+")", append([]any{org}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("customers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		c, err := scanCustomer(rows)
		if err != nil {
			return nil, fmt.Errorf("customers: %w", err)
		}
		out[c.EntityID] = c
	}
	return out, rows.Err()
}

// UseDPoPJTI records a DPoP proof's jti under its key; a second use
// before exp is ErrConflict (RFC 9449, section 11.1). Every process
// shares the table, so a proof replayed at another process is caught.
func (s *DB) UseDPoPJTI(ctx context.Context, jkt, jti string, exp time.Time) error {
	if !storable(jti) || !storable(jkt) {
		return ErrConflict
	}
	_, err := s.exec(ctx, "INSERT INTO dpop_jtis (jkt, jti, expires_at) VALUES (?, ?, ?)", jkt, jti, s.ms(exp))
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("use dpop jti: %w", err)
	}
	return nil
}

// How long the kids of a key set are remembered (migration 0012): a
// sign-in rewrites a kid's seen_at only when it is older than
// setKIDRefresh, and a kid the set no longer holds is forgotten once
// unseen for setKIDKeep. Keep exceeds refresh, so a kid is never
// forgotten between a sign-in that found it recorded and the start of
// that sign-in's session.
const (
	setKIDRefresh = 10 * time.Minute
	setKIDKeep    = time.Hour
)

// SetKID is a kid of the key set registered as identity key Record of
// client ClientID that signed visitors in, last at SeenAt (at most
// setKIDRefresh earlier).
type SetKID struct {
	ClientID, Record, KID string
	SeenAt                time.Time
}

// SawSetKID records that kid of the key set registered as identity key
// record of client signs a visitor in, before the session starts; it is
// ErrNotFound when the record was deleted meanwhile. A kid recorded
// lately costs one read.
func (s *DB) SawSetKID(ctx context.Context, clientID, record, kid string) error {
	if !storable(kid) || !storable(record) || !storable(clientID) {
		return ErrNotFound
	}
	now := s.now()
	var seen int64
	err := s.queryRow(ctx, "SELECT seen_at FROM identity_set_kids WHERE client_id = ? AND record = ? AND kid = ?", clientID, record, kid).Scan(&seen)
	if err == nil && now-seen < setKIDRefresh.Milliseconds() {
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("saw set kid: %w", err)
	}
	_, err = s.exec(ctx, "INSERT INTO identity_set_kids (client_id, record, kid, seen_at) VALUES (?, ?, ?, ?) "+
		"ON CONFLICT (client_id, record, kid) DO UPDATE SET seen_at = excluded.seen_at", clientID, record, kid, now)
	if err != nil && isForeignKey(err) {
		return ErrNotFound // the record is gone
	}
	if err != nil {
		return fmt.Errorf("saw set kid: %w", err)
	}
	return nil
}

// SetKIDsGone lists the recorded kids of the key sets registered at uri
// that kids, the set as just fetched, no longer holds: the site removed
// them, and the sessions they signed in must end. One indexed lookup of
// the records at uri (identity_keys_jwks_uri), then their kids by the
// primary key.
func (s *DB) SetKIDsGone(ctx context.Context, uri string, kids []string) ([]SetKID, error) {
	if !storable(uri) {
		return nil, nil
	}
	rows, err := s.query(ctx, "SELECT l.client_id, l.record, l.kid, l.seen_at FROM identity_keys k "+
		"JOIN identity_set_kids l ON l.client_id = k.client_id AND l.record = k.kid "+
		"WHERE k.jwks_uri = ? AND k.jwks_uri <> '' AND k.kind = ?", uri, domain.IdentityJWKSURI)
	if err != nil {
		return nil, fmt.Errorf("set kids gone: %w", err)
	}
	defer rows.Close()
	held := make(map[string]bool, len(kids))
	for _, k := range kids {
		held[k] = true
	}
	var gone []SetKID
	for rows.Next() {
		var g SetKID
		var seen int64
		if err := rows.Scan(&g.ClientID, &g.Record, &g.KID, &seen); err != nil {
			return nil, fmt.Errorf("set kids gone: %w", err)
		}
		if !held[g.KID] {
			g.SeenAt = fromMS(seen)
			gone = append(gone, g)
		}
	}
	return gone, rows.Err()
}

// ForgetSetKIDs drops the kids of gone (SetKIDsGone) that no sign-in used
// for setKIDKeep, once their sessions have ended; the others stay, so
// that a process still holding the set from before the removal, whose
// sign-ins record the kid again, has those sessions ended by the next
// fetch too.
func (s *DB) ForgetSetKIDs(ctx context.Context, gone []SetKID) error {
	before := s.now() - setKIDKeep.Milliseconds()
	for _, g := range gone {
		if g.SeenAt.UnixMilli() >= before {
			continue
		}
		if _, err := s.exec(ctx, "DELETE FROM identity_set_kids WHERE client_id = ? AND record = ? AND kid = ? AND seen_at < ?", g.ClientID, g.Record, g.KID, before); err != nil {
			return fmt.Errorf("forget set kids: %w", err)
		}
	}
	return nil
}
