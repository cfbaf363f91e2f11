// Package domain holds what chatauth is about, apart from how it is
// stored or served: organizations and their users, OAuth clients,
// sessions (refresh families and their tokens), website visitors,
// long-lived credentials, authorization codes and audit events, and the
// errors every layer uses to talk about them. The store (backend/sqlstore)
// persists these types; the services (backend/credential, refresh,
// agentauth, customerauth, oauth, directory) apply the rules to them.
package domain

import (
	"errors"
	"strings"
	"time"

	"chatauth/shared"
)

// Errors a caller can act on. Everything else is an internal failure.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrExpired  = errors.New("expired")
	ErrRevoked  = errors.New("revoked")
	ErrReused   = errors.New("reused after rotation")
	// ErrOtherKey: the refresh token's family is bound to another DPoP
	// key than the request proves (docs/dpop.md).
	ErrOtherKey = errors.New("bound to another DPoP key")
)

// ErrInUse means other rows still refer to the one being deleted.
var ErrInUse = errors.New("still referenced")

// ErrLimit means a bounded collection is full (a client's identity keys).
var ErrLimit = errors.New("limit reached")

// ErrCodeUsed is returned by RedeemCode for a code that was redeemed
// before; the Code returned names the family its first use produced.
var ErrCodeUsed = errors.New("code already used")

// NormalizeEmail is how emails are stored and looked up: one account per
// address whatever its case.
func NormalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// User is an agent, bot-operating human or admin. PasswordHash is never
// serialized.
type User struct {
	ID             int64       `json:"id"`
	OrgID          int64       `json:"account_id"`
	Email          string      `json:"email"`
	Name           string      `json:"name"`
	Role           shared.Role `json:"role"`
	PasswordHash   string      `json:"-"`
	APITokenUsedAt time.Time   `json:"-"`
	CreatedAt      time.Time   `json:"created_at"`
	UpdatedAt      time.Time   `json:"updated_at"`
}

// Organization is a tenant (an "account" in Chatwoot's words).
type Organization struct {
	ID        int64     `json:"id"`
	ParentID  int64     `json:"parent_id,omitempty"` // 0 for a root
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Client is a registered OAuth client. SecretHash is nil for public
// clients.
type Client struct {
	ID             string
	OrgID          int64
	Name           string
	Company        string
	Type           string // "public" or "confidential"
	SecretHash     []byte
	RedirectURIs   []string
	Scopes         string
	AllowedOrigins []string
	// CCEpoch names the current session of the client's client-credentials
	// tokens (ClientCredentialsSession); it moves on when they are revoked.
	CCEpoch int64
	// IdentityRequired: the client's widget accepts only visitors its
	// site identified (docs/identity.md).
	IdentityRequired bool
	// DPoP is DPoPRequired or DPoPOptional (docs/dpop.md).
	DPoP string
	// OpenID Connect (docs/oidc.md): where RP-initiated logout may send
	// the browser back (matched exactly), where back-channel logout
	// tokens are posted, and the ID-token algorithm ("" is RS256).
	PostLogoutRedirectURIs []string
	BackchannelLogoutURI   string
	IDTokenAlg             string
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

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
	// ExpiresAt, when set, is a hard end inherited from the credential the
	// family was derived from: no refresh token or access token of the
	// family outlives it (docs/security.md, I1).
	ExpiresAt time.Time
	// Parent is the credential the family derives from other than its
	// subject (the credential that vouched for a visitor): revoking it
	// revokes the family.
	Parent string
	// JKT, when set, binds the family to a DPoP key (RFC 9449): its
	// refresh tokens are taken only with a proof of that key, and its
	// access tokens carry it as cnf.jkt (docs/dpop.md).
	JKT       string
	RevokedAt time.Time
	Reason    string
	// Ended, set by Rotate with ErrReused, lists every session that the
	// reuse revoked (the family and those it vouched for).
	Ended []string
}

// RefreshToken is a stored refresh token; only its SHA-256 hash is kept.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	RotatedAt time.Time
	// Dead marks a token retired without a grace window: a sibling that
	// lost to a rotation of its twin (docs/security.md, I3).
	Dead bool
}

// Customer is a website visitor, known by entity_id.
type Customer struct {
	EntityID string `json:"entity_id"`
	OrgID    int64  `json:"account_id"`
	ClientID string `json:"client_id"`
	Name     string `json:"name"`
	Email    string `json:"email"`
	// ExternalID is the site's user id of an identified visitor (the
	// identity token's sub, docs/identity.md); empty for anonymous ones.
	ExternalID    string    `json:"external_id"`
	EmailVerified bool      `json:"email_verified"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Identified reports whether the site vouched for the visitor.
func (c Customer) Identified() bool { return c.ExternalID != "" }

// IdentityKey verifies the identity tokens a widget client's site signs
// (docs/identity.md).
type IdentityKey struct {
	KID      string
	ClientID string
	OrgID    int64
	Kind     string // IdentitySecret, IdentityJWK or IdentityJWKSURI
	Alg      string // HS256, ES256, EdDSA, RS256; empty for a jwks_uri
	// Secret is the sealed HS256 key (never shown after creation).
	Secret    []byte
	JWK       string // the public JWK, as registered
	JWKSURI   string
	CreatedAt time.Time
}

// A client's DPoP policy: with required, its tokens are issued only
// against a proof and are always bound.
const (
	DPoPRequired = "required"
	DPoPOptional = "optional"
)

// NewDPoP is the DPoP policy a new client gets when none is asked: a
// widget (a public client that pages of listed origins embed) requires
// bound tokens, since its SDK makes them; every other client, and stock
// OAuth libraries that send no proofs, stays optional (docs/dpop.md).
func (c Client) NewDPoP() string {
	if c.Type == "public" && len(c.AllowedOrigins) > 0 {
		return DPoPRequired
	}
	return DPoPOptional
}

// Kinds of identity keys.
const (
	IdentitySecret  = "secret"
	IdentityJWK     = "jwk"
	IdentityJWKSURI = "jwks_uri"
)

// Credential is a long-lived secret: a personal access token, an agent
// bot's token or a platform token. Only the hash of the secret is stored.
type Credential struct {
	ID         int64
	Kind       string // "pat", "bot", "platform"
	OrgID      int64  // 0 for platform tokens
	UserID     int64  // the owner of a personal access token
	Name       string
	Scope      string
	Hash       []byte
	ExpiresAt  time.Time
	LastUsedAt time.Time
	CreatedAt  time.Time
}

// Code is a stored authorization code (only its hash).
type Code struct {
	Hash          []byte
	ClientID      string
	UserID        int64
	OrgID         int64
	RedirectURI   string
	Scope         string
	CodeChallenge string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UsedAt        time.Time
	FamilyID      string
	// OpenID Connect (docs/oidc.md): the OIDC scopes granted (openid,
	// profile, email; kept apart from Scope, which holds chatauth's API
	// scopes), the authorize request's nonce, when the user signed in on
	// the authorize page and that browser session's id.
	OIDCScope  string
	Nonce      string
	AuthTime   time.Time
	BrowserSID string
	// Ended, set by RedeemCode with ErrCodeUsed, lists every session the
	// reuse revoked (the grant and the visitors it vouched for).
	Ended []string
}

// AuditEvent is one entry of the credential audit log.
type AuditEvent struct {
	ID        int64     `json:"id"`
	OrgID     int64     `json:"account_id"`
	Actor     string    `json:"actor"`
	Event     string    `json:"event"`
	Subject   string    `json:"subject"`
	Detail    string    `json:"detail"`
	CreatedAt time.Time `json:"created_at"`
}
