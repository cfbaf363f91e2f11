package identity

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/shared"
)

// Limits of an identity token (docs/identity.md).
const (
	// MaxLifetime is the longest exp − iat accepted: an identity token is
	// a proof handed over once, not a session.
	MaxLifetime = 10 * time.Minute
	// Skew is the clock difference tolerated between the site and us.
	Skew = 60 * time.Second
	// MaxSubject is the longest site user id.
	MaxSubject = 255
)

// Store is what verification needs of the database.
type Store interface {
	IdentityKeys(ctx context.Context, clientID string) ([]domain.IdentityKey, error)
	UseJTI(ctx context.Context, clientID, jti string, exp time.Time) error
}

// Verifier checks identity tokens against a client's keys.
type Verifier struct {
	Store  Store
	Sealer Sealer
	JWKS   *JWKS
	Now    func() time.Time
}

// Identity is what a verified identity token says.
type Identity struct {
	Subject       string
	Name          string
	Email         string
	EmailVerified bool
	// KID is the key that verified it (SetKey for a key of a jwks_uri
	// set); the session it starts ends with that key
	// (sqlstore.IdentityParent).
	KID string
}

// claims is the identity token's payload.
type claims struct {
	jwt.RegisteredClaims
	Name          string `json:"name"`
	Email         string `json:"email"`
	EmailVerified *bool  `json:"email_verified"`
}

// BadSignature marks a refusal that is a guess at a key: it is counted
// by the guess throttle (an expired or mis-addressed token is not).
type BadSignature struct{ Err *apierr.Error }

func (b *BadSignature) Error() string { return b.Err.Error() }
func (b *BadSignature) Unwrap() error { return b.Err }

func refuse(msg string) *apierr.Error {
	return apierr.New(shared.ErrInvalidIdentity, "identity_token: "+msg)
}

// candidate is one key a token may be checked with.
type candidate struct {
	kid, alg string
	key      any
	record   string // the identity key record it belongs to
	set      string // for a key of a key set: the record of the set
}

// Verify checks raw, an identity token for client: signature first (with
// the one algorithm of the key its kid names), then exp, iat, aud, sub
// and the claims, then that its jti was not used before.
func (v *Verifier) Verify(ctx context.Context, client domain.Client, raw string) (Identity, error) {
	var id Identity
	if raw == "" || len(raw) > 16<<10 {
		return id, refuse("required, a JWT of at most 16 KB signed by your site's backend (docs/identity.md)")
	}
	var c claims
	unverified, _, err := jwt.NewParser().ParseUnverified(raw, &c)
	if err != nil {
		return id, refuse("not a JWT (three base64url parts: header.payload.signature) or its JSON is malformed")
	}
	alg, _ := unverified.Header["alg"].(string)
	kid, _ := unverified.Header["kid"].(string)
	if alg == "" || strings.EqualFold(alg, "none") {
		return id, refuse("alg " + quote(alg) + " is never accepted; sign with HS256, ES256, EdDSA or RS256")
	}
	keys, err := v.Store.IdentityKeys(ctx, client.ID)
	if err != nil {
		return id, apierr.Internal(err)
	}
	if len(keys) == 0 {
		return id, refuse("client_id " + quote(client.ID) + " has no identity keys; an admin adds one (POST /api/v1/oauth/clients/{id}/identity_keys)")
	}
	cand, err := v.pick(ctx, keys, kid)
	if err != nil {
		return id, err
	}
	named := "the client's key"
	if kid != "" {
		named = "key " + quote(kid)
	}
	if cand.alg != alg {
		return id, refuse("signed with " + quote(alg) + " but " + named + " is " + cand.alg)
	}
	c = claims{}
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{cand.alg}), jwt.WithoutClaimsValidation()).
		ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return cand.key, nil })
	if err != nil {
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) {
			return id, &BadSignature{refuse("signature does not verify with " + named + "; sign with that key's secret or private key")}
		}
		return id, refuse("not a valid JWT (" + err.Error() + ")")
	}
	if err := v.checkClaims(client, &c); err != nil {
		return id, err
	}
	// Before the session starts, so that whichever process next fetches
	// the set finds the kid and, once the site removed it, ends the
	// session (JWKS.Fetched).
	if cand.set != "" && v.JWKS.Ledger != nil {
		if err := v.JWKS.Ledger.SawSetKID(ctx, client.ID, cand.set, cand.kid); errors.Is(err, domain.ErrNotFound) {
			return id, refuse("the key that signed it was just deleted; sign with the client's other key")
		} else if err != nil {
			return id, apierr.Internal(err)
		}
	}
	if err := v.Store.UseJTI(ctx, client.ID, c.ID, c.ExpiresAt.Time); errors.Is(err, domain.ErrConflict) {
		return id, refuse("jti " + quote(c.ID) + " already used; sign a fresh identity token for each sign-in, with a new jti")
	} else if err != nil {
		return id, apierr.Internal(err)
	}
	id = Identity{Subject: c.Subject, Name: strings.TrimSpace(c.Name), Email: c.Email, KID: cand.record}
	if c.EmailVerified != nil {
		id.EmailVerified = *c.EmailVerified && c.Email != ""
	}
	return id, nil
}

// SetKey names key kid of the key set registered as record: sessions it
// starts end when the set no longer has it, or the record is deleted.
func SetKey(record, kid string) string { return record + "/" + kid }

// Record is the identity key record of a key named by SetKey (or itself).
func Record(key string) string {
	record, _, _ := strings.Cut(key, "/")
	return record
}

// pick finds the key kid names among the client's own keys first, then
// in its key sets (so a slow site's set does not slow the other keys);
// without a kid the client must have exactly one key. The refusals name
// only what the token said: which keys a client has is its admins'
// business (GET …/identity_keys), not a stranger's.
func (v *Verifier) pick(ctx context.Context, keys []domain.IdentityKey, kid string) (candidate, error) {
	var local []candidate
	var sets []domain.IdentityKey
	for _, k := range keys {
		switch k.Kind {
		case domain.IdentityJWKSURI:
			sets = append(sets, k)
		case domain.IdentitySecret:
			secret, err := v.Sealer.Open(k.Secret, sealAD(k.ClientID, k.KID))
			if err != nil {
				return candidate{}, apierr.Internal(fmt.Errorf("identity key %s: %w", k.KID, err))
			}
			local = append(local, candidate{kid: k.KID, alg: k.Alg, key: secret, record: k.KID})
		case domain.IdentityJWK:
			var jk jose.JSONWebKey
			if err := jk.UnmarshalJSON([]byte(k.JWK)); err != nil {
				return candidate{}, apierr.Internal(fmt.Errorf("identity key %s: %w", k.KID, err))
			}
			local = append(local, candidate{kid: k.KID, alg: k.Alg, key: jk.Key, record: k.KID})
		}
	}
	for _, c := range local {
		if kid != "" && c.kid == kid {
			return c, nil
		}
	}
	all := local
	unreachable := false
	for _, k := range sets {
		set, err := v.JWKS.keys(ctx, k.JWKSURI, kid, false)
		if err != nil {
			unreachable = true
			continue
		}
		for _, jk := range set {
			if alg, err := keyAlg(jk); err == nil {
				all = append(all, candidate{kid: jk.KeyID, alg: alg, key: jk.Key, record: SetKey(k.KID, jk.KeyID), set: k.KID})
			}
		}
	}
	if kid == "" {
		if len(all) == 1 && !unreachable {
			return all[0], nil
		}
		return candidate{}, refuse("has no kid header and client_id has more than one identity key; put the signing key's kid in the JWT header")
	}
	for _, c := range all {
		if c.kid == kid {
			return c, nil
		}
	}
	if unreachable {
		return candidate{}, refuse("unknown kid " + quote(kid) + ", and the site's key set could not be fetched just now; try again shortly")
	}
	return candidate{}, refuse("unknown kid " + quote(kid) + " for this client_id")
}

func ago(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < 2*time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	}
	return strconv.Itoa(int(d/time.Hour)) + " h"
}

func (v *Verifier) checkClaims(client domain.Client, c *claims) error {
	now := v.Now()
	switch {
	case c.ExpiresAt == nil:
		return refuse("exp: required (at most 10 minutes after iat)")
	case c.IssuedAt == nil:
		return refuse("iat: required (when your backend signed it)")
	}
	exp, iat := c.ExpiresAt.Time, c.IssuedAt.Time
	switch {
	case exp.Sub(iat) > MaxLifetime:
		return refuse("exp is " + ago(exp.Sub(iat)) + " after iat; at most 10 min")
	case !exp.After(iat):
		return refuse("exp is not after iat")
	case iat.After(now.Add(Skew)):
		return refuse("iat is in the future (" + ago(iat.Sub(now)) + " ahead of this server's clock); check your server's clock")
	case !now.Before(exp.Add(Skew)):
		return apierr.New(shared.ErrIdentityExpired, "identity_token expired "+ago(now.Sub(exp))+" ago; ask the site's backend for a fresh one")
	}
	aud := false
	for _, a := range c.Audience {
		aud = aud || a == client.ID
	}
	if !aud {
		return refuse("aud is not this client_id (aud " + quote(strings.Join(c.Audience, " ")) + ", client_id " + quote(client.ID) + ")")
	}
	switch {
	case c.Subject == "":
		return refuse("sub: required (your site's id of the user)")
	case len(c.Subject) > MaxSubject:
		return refuse("sub: longer than 255 bytes")
	case !utf8.ValidString(c.Subject) || strings.ContainsRune(c.Subject, 0):
		return refuse("sub: not UTF-8 text")
	case c.ID == "":
		return refuse("jti: required (a unique id for each identity token, such as a UUID)")
	case len(c.ID) > 255 || !utf8.ValidString(c.ID) || strings.ContainsRune(c.ID, 0):
		return refuse("jti: at most 255 bytes of UTF-8 text")
	case utf8.RuneCountInString(c.Name) > 200:
		return refuse("name: at most 200 characters")
	case !printable(c.Name):
		return refuse("name: not printable UTF-8 text")
	}
	if c.Email != "" {
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email || len(c.Email) > 254 {
			return refuse("email: not an email address")
		}
	}
	return nil
}

// printable: UTF-8 without control characters (NUL among them, which
// PostgreSQL would refuse to store).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
