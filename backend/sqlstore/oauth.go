package sqlstore

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"chatauth/backend/domain"
	"chatauth/backend/notify"
)

const clientCols = "id, org_id, name, company, client_type, secret_hash, redirect_uris, scopes, allowed_origins, created_at, updated_at, identity_required, dpop, post_logout_redirect_uris, backchannel_logout_uri, id_token_alg"

// clientSelect adds what only reads need.
const clientSelect = clientCols + ", cc_epoch"

func scanClient(row interface{ Scan(...any) error }) (Client, error) {
	var c Client
	var uris, origins, logoutURIs string
	var created, updated, identityRequired int64
	if err := row.Scan(&c.ID, &c.OrgID, &c.Name, &c.Company, &c.Type, &c.SecretHash, &uris, &c.Scopes, &origins, &created, &updated, &identityRequired, &c.DPoP,
		&logoutURIs, &c.BackchannelLogoutURI, &c.IDTokenAlg, &c.CCEpoch); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, ErrNotFound
		}
		return c, err
	}
	if err := json.Unmarshal([]byte(uris), &c.RedirectURIs); err != nil {
		return c, fmt.Errorf("client %s: redirect_uris: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(origins), &c.AllowedOrigins); err != nil {
		return c, fmt.Errorf("client %s: allowed_origins: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(logoutURIs), &c.PostLogoutRedirectURIs); err != nil {
		return c, fmt.Errorf("client %s: post_logout_redirect_uris: %w", c.ID, err)
	}
	c.CreatedAt, c.UpdatedAt = fromMS(created), fromMS(updated)
	c.IdentityRequired = identityRequired == 1
	return c, nil
}

func dpopPolicy(p string) string {
	if p == "" {
		return domain.DPoPOptional
	}
	return p
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// CreateClient stores a new client.
func (s *DB) CreateClient(ctx context.Context, c *Client) error {
	now := s.now()
	c.CreatedAt, c.UpdatedAt = fromMS(now), fromMS(now)
	_, err := s.exec(ctx, "INSERT INTO oauth_clients ("+clientCols+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.ID, c.OrgID, c.Name, c.Company, c.Type, c.SecretHash, jsonList(c.RedirectURIs), c.Scopes, jsonList(c.AllowedOrigins), now, now, boolInt(c.IdentityRequired), dpopPolicy(c.DPoP),
		jsonList(c.PostLogoutRedirectURIs), c.BackchannelLogoutURI, c.IDTokenAlg)
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	return nil
}

// Client fetches a client by id (for the OAuth endpoints, which are not
// tenant-scoped: the client_id names the tenant). It is memoized for up
// to a second (see memoTTL); unknown ids are not.
func (s *DB) Client(ctx context.Context, id string) (Client, error) {
	if !storable(id) {
		return Client{}, ErrNotFound
	}
	now := time.Now()
	c, ok, gen := s.clients.get(id, now)
	if ok {
		return cloneClient(c), nil
	}
	c, err := scanClient(s.queryRow(ctx, "SELECT "+clientSelect+" FROM oauth_clients WHERE id = ?", id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("client: %w", err)
	}
	if err == nil {
		s.clients.put(id, cloneClient(c), gen, now)
	}
	return c, err
}

// clone copies the slices, so a caller that edits its Client cannot
// change the memoized one.
func cloneClient(c Client) Client {
	c.SecretHash = append([]byte(nil), c.SecretHash...)
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	c.PostLogoutRedirectURIs = append([]string(nil), c.PostLogoutRedirectURIs...)
	return c
}

// ClientInTree fetches a client visible from organization root.
func (s *DB) ClientInTree(ctx context.Context, root int64, id string) (Client, error) {
	if !storable(id) {
		return Client{}, ErrNotFound
	}
	c, err := scanClient(s.queryRow(ctx, "SELECT "+clientSelect+" FROM oauth_clients WHERE id = ? AND "+inTree, id, root))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return c, fmt.Errorf("client: %w", err)
	}
	return c, err
}

// ListClients lists the clients of root's tree.
func (s *DB) ListClients(ctx context.Context, root int64) ([]Client, error) {
	rows, err := s.query(ctx, "SELECT "+clientSelect+" FROM oauth_clients WHERE "+inTree+" ORDER BY created_at, id", root)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	defer rows.Close()
	var out []Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, fmt.Errorf("list clients: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// UpdateClient writes every mutable field of c.
func (s *DB) UpdateClient(ctx context.Context, c *Client) error {
	defer s.clients.clear()
	// The secret is not written here (SetClientSecret is): an edit racing
	// a secret reset must not write the old secret back.
	c.UpdatedAt = fromMS(s.now())
	res, err := s.exec(ctx, "UPDATE oauth_clients SET name = ?, company = ?, client_type = ?, redirect_uris = ?, scopes = ?, allowed_origins = ?, identity_required = ?, dpop = ?, post_logout_redirect_uris = ?, backchannel_logout_uri = ?, id_token_alg = ?, updated_at = ? WHERE id = ?",
		c.Name, c.Company, c.Type, jsonList(c.RedirectURIs), c.Scopes, jsonList(c.AllowedOrigins), boolInt(c.IdentityRequired), dpopPolicy(c.DPoP),
		jsonList(c.PostLogoutRedirectURIs), c.BackchannelLogoutURI, c.IDTokenAlg, s.ms(c.UpdatedAt), c.ID)
	if err != nil {
		return fmt.Errorf("update client: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	// Other processes forget their memo of it now, not within a second.
	return s.announce(ctx, notify.TopicClient, c.ID)
}

// EndClientTokens ends every token the client holds or minted: its
// families of every kind (OAuth grants, implicit grants, its visitors)
// and its client-credentials tokens, whose session is revoked and whose
// epoch moves on, so tokens minted from now on are not caught. With
// remove, the client, its codes and consents are deleted in the same
// transaction. It returns the revoked session ids.
func (s *DB) EndClientTokens(ctx context.Context, id, reason string, remove bool) ([]string, error) {
	defer s.clients.clear()
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		var epoch, org int64
		err := t.queryRow(ctx, "SELECT cc_epoch, org_id FROM oauth_clients WHERE id = ?", id).Scan(&epoch, &org)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("end client tokens: %w", err)
		}
		now := s.now()
		if ids, err = revokeFamilies(ctx, t, FamilyFilter{ClientID: id}, reason, now); err != nil {
			return err
		}
		cc := ClientCredentialsSession(id, epoch)
		if _, err := t.exec(ctx, "INSERT INTO refresh_families (id, kind, subject, org_id, client_id, scope, created_at, revoked_at, revoke_reason) VALUES (?, 'client_credentials', ?, ?, ?, '', ?, ?, ?) ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at",
			cc, "client:"+id, org, id, now, now, reason); err != nil {
			return fmt.Errorf("end client tokens: %w", err)
		}
		ids = append(ids, cc)
		// Visitors its client-credentials tokens vouched for (their parent
		// is the token's own session, under the epoch's).
		children, err := scanIDs(t.query(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'the credential that vouched for it was revoked' WHERE revoked_at IS NULL AND (parent = ? OR parent LIKE ?) RETURNING id", now, cc, cc+".%"))
		if err != nil {
			return err
		}
		if err := announceRevoked(ctx, t, append([]string{cc}, children...)); err != nil {
			return err
		}
		ids = append(ids, children...)
		// Unredeemed codes were issued under what the client was; a public
		// client could otherwise redeem a code issued without PKCE.
		if _, err := t.exec(ctx, "DELETE FROM oauth_codes WHERE client_id = ? AND used_at IS NULL", id); err != nil {
			return fmt.Errorf("end client tokens: %w", err)
		}
		if remove {
			_, err = t.exec(ctx, "DELETE FROM oauth_clients WHERE id = ?", id)
		} else {
			_, err = t.exec(ctx, "UPDATE oauth_clients SET cc_epoch = cc_epoch + 1 WHERE id = ?", id)
		}
		if err != nil {
			return fmt.Errorf("end client tokens: %w", err)
		}
		return t.announce(ctx, notify.TopicClient, id)
	})
	return ids, err
}

// ClientCredentialsSession is the session id client-credentials tokens
// of a client carry while its epoch is epoch.
func ClientCredentialsSession(clientID string, epoch int64) string {
	return "cc_" + clientID + "." + strconv.FormatInt(epoch, 10)
}

// CreateCode stores a code.
func (s *DB) CreateCode(ctx context.Context, c Code) error {
	_, err := s.exec(ctx, "INSERT INTO oauth_codes (hash, client_id, user_id, org_id, redirect_uri, scope, code_challenge, created_at, expires_at, oidc_scope, nonce, auth_time, browser_sid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		c.Hash, c.ClientID, c.UserID, c.OrgID, c.RedirectURI, c.Scope, c.CodeChallenge, s.ms(c.CreatedAt), s.ms(c.ExpiresAt), c.OIDCScope, c.Nonce, zeroMS(s, c.AuthTime), c.BrowserSID)
	if err != nil {
		return fmt.Errorf("create code: %w", err)
	}
	return nil
}

// RedeemCode marks a code used, once, and binds it to the family its
// tokens will belong to. A second redemption is ErrCodeUsed and revokes
// that family (RFC 6749 §4.1.2: a code used twice may have been stolen).
//
// check runs on an unused code before it is marked used, in the same
// transaction: a request that is not the code's own (another client, a
// wrong redirect_uri or verifier) is refused without burning it.
func (s *DB) RedeemCode(ctx context.Context, hash []byte, familyID string, check func(Code) error) (Code, error) {
	var c Code
	var reused bool
	err := s.tx(ctx, func(t *Tx) error {
		reused = false // a retried transaction starts over
		var created, expires, authTime int64
		var used sql.NullInt64
		err := t.queryRow(ctx, "SELECT hash, client_id, user_id, org_id, redirect_uri, scope, code_challenge, created_at, expires_at, used_at, family_id, oidc_scope, nonce, auth_time, browser_sid FROM oauth_codes WHERE hash = ?", hash).
			Scan(&c.Hash, &c.ClientID, &c.UserID, &c.OrgID, &c.RedirectURI, &c.Scope, &c.CodeChallenge, &created, &expires, &used, &c.FamilyID, &c.OIDCScope, &c.Nonce, &authTime, &c.BrowserSID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("redeem code: %w", err)
		}
		if subtle.ConstantTimeCompare(c.Hash, hash) != 1 {
			return ErrNotFound
		}
		c.CreatedAt, c.ExpiresAt, c.UsedAt = fromMS(created), fromMS(expires), fromNullMS(used)
		if authTime != 0 {
			c.AuthTime = fromMS(authTime)
		}
		if used.Valid {
			reused = true
			if c.FamilyID != "" {
				var err error
				c.Ended, err = revokeFamily(ctx, t, c.FamilyID, "authorization code reused", s.now())
				return err
			}
			return nil
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		res, err := t.exec(ctx, "UPDATE oauth_codes SET used_at = ?, family_id = ? WHERE hash = ? AND used_at IS NULL", s.now(), familyID, hash)
		if err != nil {
			return fmt.Errorf("redeem code: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			reused = true
		}
		return nil
	})
	if err == nil && reused {
		return c, ErrCodeUsed
	}
	return c, err
}

// HasConsent reports whether the user approved exactly this scope for the
// client before.
func (s *DB) HasConsent(ctx context.Context, userID int64, clientID, scope string) (bool, error) {
	var n int
	if err := s.queryRow(ctx, "SELECT COUNT(*) FROM oauth_consents WHERE user_id = ? AND client_id = ? AND scope = ?", userID, clientID, scope).Scan(&n); err != nil {
		return false, fmt.Errorf("consent: %w", err)
	}
	return n > 0, nil
}

// RememberConsent records an approval.
func (s *DB) RememberConsent(ctx context.Context, userID int64, clientID, scope string) error {
	_, err := s.exec(ctx, "INSERT INTO oauth_consents (user_id, client_id, scope, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", userID, clientID, scope, s.now())
	if err != nil {
		return fmt.Errorf("remember consent: %w", err)
	}
	return nil
}

// RevokeSession records a revocation of a session that has no refresh
// family (a client-credentials token), so every process's verifier learns
// of it through RevokedSince.
func (s *DB) RevokeSession(ctx context.Context, sid, kind, subject string, orgID int64, reason string) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		now := s.now()
		if _, err := t.exec(ctx, "INSERT INTO refresh_families (id, kind, subject, org_id, scope, created_at, revoked_at, revoke_reason) VALUES (?, ?, ?, ?, '', ?, ?, ?) ON CONFLICT (id) DO UPDATE SET revoked_at = excluded.revoked_at",
			sid, kind, subject, orgID, now, now, reason); err != nil {
			return fmt.Errorf("revoke session: %w", err)
		}
		children, err := revokeChildren(ctx, t, []string{sid}, now)
		if err != nil {
			return err
		}
		ids = append([]string{sid}, children...)
		return announceRevoked(ctx, t, ids)
	})
	return ids, err
}

// Family fetches a refresh family by id.
func (s *DB) Family(ctx context.Context, id string) (Family, error) {
	if !storable(id) {
		return Family{}, ErrNotFound
	}
	return scanFamily(s.queryRow(ctx, "SELECT "+familyOnlyCols+" FROM refresh_families f WHERE f.id = ?", id))
}

// OriginAllowed reports whether any client lists origin in its
// allowed_origins (for CORS preflights, which name no client).
func (s *DB) OriginAllowed(ctx context.Context, origin string) (bool, error) {
	if !storable(origin) {
		return false, nil
	}
	b, _ := json.Marshal(origin)
	rows, err := s.query(ctx, "SELECT allowed_origins FROM oauth_clients WHERE allowed_origins LIKE ?", "%"+string(b)+"%")
	if err != nil {
		return false, fmt.Errorf("origin allowed: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw string
		var list []string
		if err := rows.Scan(&raw); err != nil {
			return false, err
		}
		if json.Unmarshal([]byte(raw), &list) == nil {
			for _, o := range list {
				if o == origin {
					return true, nil
				}
			}
		}
	}
	return false, rows.Err()
}

// DropCodes deletes the unredeemed authorization codes of a user (of one
// client when clientID is set): after a password or role change or a
// sign-out everywhere, a code issued before must not start a new grant.
func (s *DB) DropCodes(ctx context.Context, userID int64, clientID string) error {
	q, args := "DELETE FROM oauth_codes WHERE user_id = ? AND used_at IS NULL", []any{userID}
	if clientID != "" {
		q, args = q+" AND client_id = ?", append(args, clientID)
	}
	if _, err := s.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("drop codes: %w", err)
	}
	return nil
}

// ForgetClient drops a memoized client (all of them with id ""), when
// another process announced a change to it.
func (s *DB) ForgetClient(id string) { s.clients.clear() }

// SetClientSecret replaces a client's secret hash (nil for a public
// client); the old secret stops working with this statement.
func (s *DB) SetClientSecret(ctx context.Context, id string, hash []byte) error {
	defer s.clients.clear()
	res, err := s.exec(ctx, "UPDATE oauth_clients SET secret_hash = ?, updated_at = ? WHERE id = ?", hash, s.now(), id)
	if err != nil {
		return fmt.Errorf("set client secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return s.announce(ctx, notify.TopicClient, id)
}

// zeroMS stores a zero time as 0 (the column's "not recorded").
func zeroMS(s *DB, t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return s.ms(t)
}

// OIDCGrant is an OAuth grant made with the openid scope: the refresh
// family's OpenID Connect side (docs/oidc.md).
type OIDCGrant struct {
	FamilyID   string
	ClientID   string
	UserID     int64
	BrowserSID string // the authorize page's browser session it was made in
	Scope      string // openid, profile, email
	AuthTime   time.Time
}

// CreateOIDCGrant records the OpenID Connect side of a new grant.
func (s *DB) CreateOIDCGrant(ctx context.Context, g OIDCGrant) error {
	_, err := s.exec(ctx, "INSERT INTO oidc_grants (family_id, client_id, user_id, browser_sid, oidc_scope, auth_time, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		g.FamilyID, g.ClientID, g.UserID, g.BrowserSID, g.Scope, zeroMS(s, g.AuthTime), s.now())
	if err != nil {
		return fmt.Errorf("create oidc grant: %w", err)
	}
	return nil
}

// OIDCGrant fetches the OpenID Connect side of the grant familyID;
// ErrNotFound when the grant was made without openid.
func (s *DB) OIDCGrant(ctx context.Context, familyID string) (OIDCGrant, error) {
	if !storable(familyID) {
		return OIDCGrant{}, ErrNotFound
	}
	var g OIDCGrant
	var at int64
	err := s.queryRow(ctx, "SELECT family_id, client_id, user_id, browser_sid, oidc_scope, auth_time FROM oidc_grants WHERE family_id = ?", familyID).
		Scan(&g.FamilyID, &g.ClientID, &g.UserID, &g.BrowserSID, &g.Scope, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return g, ErrNotFound
	}
	if err != nil {
		return g, fmt.Errorf("oidc grant: %w", err)
	}
	if at != 0 {
		g.AuthTime = fromMS(at)
	}
	return g, nil
}

// oidcGrantsOfSessions has one text for every call: a shorter list
// repeats its last id (as the purge's chunked deletes do).
var oidcGrantsOfSessions = "SELECT family_id, client_id, user_id, browser_sid, oidc_scope, auth_time FROM oidc_grants WHERE browser_sid IN (" +
	placeholders(purgeChunk) + ") ORDER BY created_at, family_id"

// OIDCGrantsOfSessions lists the grants made in any of the browser
// sessions sids (ids of other kinds of session simply match nothing).
func (s *DB) OIDCGrantsOfSessions(ctx context.Context, sids []string) ([]OIDCGrant, error) {
	var keys []string
	for _, sid := range sids {
		if sid != "" && storable(sid) {
			keys = append(keys, sid)
		}
	}
	var out []OIDCGrant
	for len(keys) > 0 {
		k := min(len(keys), purgeChunk)
		args := make([]any, purgeChunk)
		for i := range args {
			args[i] = keys[min(i, k-1)]
		}
		keys = keys[k:]
		rows, err := s.query(ctx, oidcGrantsOfSessions, args...)
		if err != nil {
			return nil, fmt.Errorf("oidc grants of sessions: %w", err)
		}
		for rows.Next() {
			var g OIDCGrant
			var at int64
			if err := rows.Scan(&g.FamilyID, &g.ClientID, &g.UserID, &g.BrowserSID, &g.Scope, &at); err != nil {
				rows.Close()
				return nil, fmt.Errorf("oidc grants of sessions: %w", err)
			}
			if at != 0 {
				g.AuthTime = fromMS(at)
			}
			out = append(out, g)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("oidc grants of sessions: %w", err)
		}
	}
	return out, nil
}
