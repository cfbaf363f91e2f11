// Package refresh is chatauth's one implementation of refresh-token
// families (docs/security.md, I3): a family is everything issued from one
// sign-in, OAuth grant or visitor session. Families starts one, rotates
// its token with reuse detection and the grace rule, and revokes it.
// Agent sign-in, the OAuth token endpoint and customer sessions all use
// it; each maps the errors below to its own wire format.
package refresh

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Family kinds. A family's kind says which endpoint refreshes it.
const (
	KindAgent    = "agent"    // password (first-party) sign-in
	KindOAuth    = "oauth"    // OAuth authorization-code grant
	KindCustomer = "customer" // website visitor
	// KindImplicit is a session without refresh tokens: an implicit grant.
	// Its row is what revocation events find.
	KindImplicit = "implicit"
)

// Errors of Rotate. Wrong-owner or wrong-kind refusals are the caller's
// check's own errors, returned unchanged.
var (
	ErrUnknown = errors.New("refresh token is unknown")
	ErrRevoked = errors.New("refresh token revoked")
	ErrExpired = errors.New("refresh token expired")
	// ErrReused: a spent token presented again outside the grace rule.
	// The family is revoked, with every token derived from it.
	ErrReused = errors.New("refresh token reused")
	// ErrOtherKey: the family is bound to another DPoP key than the
	// request proves; nothing was spent.
	ErrOtherKey = errors.New("refresh token bound to another DPoP key")
)

// Store is what families need of the database.
type Store interface {
	CreateFamily(ctx context.Context, f *domain.Family, first domain.RefreshToken) error
	LookupRefresh(ctx context.Context, hash []byte) (domain.Family, domain.RefreshToken, error)
	RotateBound(ctx context.Context, hash []byte, grace time.Duration, next domain.RefreshToken, jkt string, check func(domain.Family) error) (domain.Family, bool, error)
	RevokeFamily(ctx context.Context, id, reason string) ([]string, error)
	AddBoundRefreshToken(ctx context.Context, familyID string, rt domain.RefreshToken, jkt string, check func(domain.Family) error) (domain.Family, error)
	Family(ctx context.Context, id string) (domain.Family, error)
	FamilyOfDescendant(ctx context.Context, hashes [][]byte) (domain.Family, error)
	Audit(ctx context.Context, e domain.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// Families starts, rotates and revokes refresh families.
type Families struct {
	Store       Store
	Revocations *token.Revocations
	// TTL is the life of each refresh token; Grace how long a spent one
	// still answers with its successor (racing tabs).
	TTL   time.Duration
	Grace time.Duration
	Now   func() time.Time
	// successorKey derives a token's successor from its secret, so a
	// replay within grace gets the very token already issued while the
	// database holds only hashes.
	successorKey []byte
}

// New returns Families whose successors are keyed by secret.
func New(store Store, rev *token.Revocations, secret token.Secret, ttl, grace time.Duration, now func() time.Time) *Families {
	if now == nil {
		now = time.Now
	}
	return &Families{Store: store, Revocations: rev, TTL: ttl, Grace: grace, Now: now, successorKey: secret.Derive("refresh successor", 32)}
}

// Successor is the secret that follows secret in its family: the same
// prefix and an HMAC of the whole secret under a key only the server has.
func (f *Families) Successor(secret string) string {
	prefix := ""
	if i := indexUnderscore(secret); i >= 0 {
		prefix = secret[:i+1]
	}
	m := hmac.New(sha256.New, f.successorKey)
	m.Write([]byte(secret))
	return prefix + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func indexUnderscore(s string) int {
	for i := 0; i < len(s) && i < 8; i++ {
		if s[i] == '_' {
			return i
		}
	}
	return -1
}

// expiry is the end of a token minted now in fam: its TTL, or the
// family's hard end if sooner.
func (f *Families) expiry(fam domain.Family, now time.Time) time.Time {
	exp := now.Add(f.TTL)
	if !fam.ExpiresAt.IsZero() && fam.ExpiresAt.Before(exp) {
		return fam.ExpiresAt
	}
	return exp
}

// AccessTTL caps an access token's life at the family's hard end, so no
// token outlives what it was derived from (docs/security.md, I1).
func AccessTTL(fam domain.Family, ttl time.Duration, now time.Time) time.Duration {
	if fam.ExpiresAt.IsZero() {
		return ttl
	}
	if left := fam.ExpiresAt.Sub(now); left < ttl {
		return max(left, time.Second)
	}
	return ttl
}

// Start stores fam (its ID set when empty) with a first refresh token of
// prefix and returns that token.
func (f *Families) Start(ctx context.Context, fam *domain.Family, prefix string) (string, error) {
	if fam.ID == "" {
		fam.ID = token.NewID()
	}
	secret, hash := token.NewOpaque(prefix)
	now := f.Now()
	if err := f.Store.CreateFamily(ctx, fam, domain.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: f.expiry(*fam, now)}); err != nil {
		return "", err
	}
	return secret, nil
}

// StartSession stores a family that has no refresh tokens (an implicit
// grant), so the revocation events of its subject and client reach the
// access tokens that carry its id.
func (f *Families) StartSession(ctx context.Context, fam *domain.Family) error {
	if fam.ID == "" {
		fam.ID = token.NewID()
	}
	return f.Store.CreateFamily(ctx, fam, domain.RefreshToken{})
}

// Add gives a live family a new refresh token and retires its others:
// the cookie path of a returning visitor, which proves possession by the
// cookie rather than by the previous token. check runs on the family
// before anything changes; its error is returned as is.
func (f *Families) Add(ctx context.Context, id, prefix string, check func(domain.Family) error) (domain.Family, string, error) {
	return f.AddBound(ctx, id, prefix, "", check)
}

// AddBound is Add for a request that proves DPoP key jkt: an unbound
// family is bound to it; one bound to another key is ErrOtherKey.
func (f *Families) AddBound(ctx context.Context, id, prefix, jkt string, check func(domain.Family) error) (domain.Family, string, error) {
	secret, hash := token.NewOpaque(prefix)
	now := f.Now()
	fam, err := f.Store.AddBoundRefreshToken(ctx, id, domain.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(f.TTL)}, jkt, check)
	switch {
	case errors.Is(err, domain.ErrOtherKey):
		return fam, "", ErrOtherKey
	case errors.Is(err, domain.ErrRevoked):
		return fam, "", ErrRevoked
	case errors.Is(err, domain.ErrExpired):
		return fam, "", ErrExpired
	case errors.Is(err, domain.ErrNotFound):
		return fam, "", ErrUnknown
	case err != nil:
		return fam, "", err
	}
	return fam, secret, nil
}

// Lookup finds the family of secret without spending it.
func (f *Families) Lookup(ctx context.Context, secret string) (domain.Family, domain.RefreshToken, error) {
	fam, rt, err := f.Store.LookupRefresh(ctx, token.Hash(secret))
	if errors.Is(err, domain.ErrNotFound) {
		return fam, rt, ErrUnknown
	}
	return fam, rt, err
}

// Rotate spends secret and returns its family and the successor. check
// runs on the family before anything is spent, so a caller who may not
// refresh it (another client, another user) cannot burn the token; its
// error is returned as is. A replay within the grace window answers the
// successor already issued (the same secret), never a new branch.
func (f *Families) Rotate(ctx context.Context, secret string, check func(domain.Family) error) (domain.Family, string, error) {
	return f.RotateBound(ctx, secret, "", check)
}

// RotateBound is Rotate for a request that proves DPoP key jkt ("" for
// none): see sqlstore.DB.RotateBound for how keys and families meet.
func (f *Families) RotateBound(ctx context.Context, secret, jkt string, check func(domain.Family) error) (domain.Family, string, error) {
	next := f.Successor(secret)
	now := f.Now()
	fam, _, err := f.Store.RotateBound(ctx, token.Hash(secret), f.Grace, domain.RefreshToken{Hash: token.Hash(next), CreatedAt: now, ExpiresAt: now.Add(f.TTL)}, jkt, check)
	switch {
	case errors.Is(err, domain.ErrOtherKey):
		return fam, "", ErrOtherKey
	case errors.Is(err, domain.ErrReused):
		f.Revocations.Add(append([]string{fam.ID}, fam.Ended...)...)
		f.audit(ctx, fam)
		return fam, "", ErrReused
	case errors.Is(err, domain.ErrRevoked):
		return fam, "", ErrRevoked
	case errors.Is(err, domain.ErrExpired):
		return fam, "", ErrExpired
	case errors.Is(err, domain.ErrNotFound):
		return f.descendantReuse(ctx, secret, check)
	case err != nil:
		return fam, "", err
	}
	return fam, next, nil
}

// descendantReuse handles a token the store does not hold. Spent tokens
// are dropped after the next rotation (a family keeps a few rows however
// often it refreshes), so an old stolen token is no longer found by its
// hash; but its successors are derived from it, and if one of them is
// still stored the token was spent: that is reuse, and the family is
// revoked as for any other (docs/security.md, I3).
func (f *Families) descendantReuse(ctx context.Context, secret string, check func(domain.Family) error) (domain.Family, string, error) {
	hashes := make([][]byte, sqlstore.ChainLen)
	s := secret
	for i := range hashes {
		s = f.Successor(s)
		hashes[i] = token.Hash(s)
	}
	fam, err := f.Store.FamilyOfDescendant(ctx, hashes)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return fam, "", ErrUnknown
	case err != nil:
		return fam, "", err
	}
	// The caller's own refusal first (another client, another user), as
	// for a token that is found: a wrong presenter revokes nothing.
	if check != nil {
		if err := check(fam); err != nil {
			return fam, "", err
		}
	}
	if err := f.Revoke(ctx, fam.ID, "refresh token reused"); err != nil {
		return fam, "", err
	}
	f.audit(ctx, fam)
	return fam, "", ErrReused
}

func (f *Families) audit(ctx context.Context, fam domain.Family) {
	subject, detail := "user:"+fam.Subject, "sign-in revoked"
	switch fam.Kind {
	case KindOAuth:
		detail = "OAuth grant of client " + fam.ClientID + " revoked"
	case KindCustomer:
		subject, detail = "customer:"+fam.Subject, "visitor's tokens revoked"
	}
	f.Store.Audit(ctx, domain.AuditEvent{OrgID: fam.OrgID, Event: "refresh.reuse_detected", Subject: subject, Detail: detail})
}

// Revoke ends a family: its refresh tokens stop at once, and its access
// tokens on every process once the revocation reaches their verifiers.
func (f *Families) Revoke(ctx context.Context, id, reason string) error {
	ids, err := f.Store.RevokeFamily(ctx, id, reason)
	f.Revocations.Add(ids...)
	return err
}

// APIError maps Rotate's errors to the agent and customer APIs' answers
// (the OAuth token endpoint maps them to RFC 6749 errors itself); again
// says how to start over.
func APIError(err error, again string) error {
	switch {
	case errors.Is(err, ErrReused):
		return apierr.InvalidToken("refresh token was already used; for safety every token of this session is now revoked. " + again)
	case errors.Is(err, ErrRevoked):
		return apierr.InvalidToken("refresh token revoked; " + again)
	case errors.Is(err, ErrExpired):
		return apierr.InvalidToken("refresh token expired; " + again)
	case errors.Is(err, ErrUnknown):
		return apierr.InvalidToken("refresh token is unknown; " + again)
	case errors.Is(err, ErrOtherKey):
		return &apierr.Error{Code: shared.ErrInvalidDPoPProof, Status: 400, Message: "refresh token is bound to a DPoP key: send a DPoP proof signed by that key (the browser that got it)"}
	}
	if _, ok := apierr.As(err); ok {
		return err
	}
	return apierr.Internal(err)
}
