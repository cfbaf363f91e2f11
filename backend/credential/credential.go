// Package credential is chatauth's credential core (docs/security.md): the
// one place that classifies a presented secret (Inspect), the ceiling
// every minting endpoint obeys (I1), and the revocation cascade that ends
// every credential derived from a user, a sign-in, a grant or a client
// (I2). The bearer middleware, the token debugger and introspection all
// call Inspect; no handler classifies a secret of its own.
package credential

import (
	"strconv"
	"time"

	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

// Kind names what a credential is. The strings are the token debugger's
// "type" (docs/api.md, "Token debugger").
type Kind string

// Every kind of credential the server issues.
const (
	// Session is the access token of a first-party sign-in (password, and
	// later SSO): the only credential that may mint long-lived ones.
	Session Kind = "agent"
	// OAuth is the access token of an OAuth grant (code or implicit).
	OAuth Kind = "oauth"
	// ClientToken is a client-credentials token: the client is the subject.
	ClientToken Kind = "oauth_client"
	// Customer is a website visitor's access token.
	Customer        Kind = "customer"
	Refresh         Kind = "refresh"
	CustomerRefresh Kind = "customer_refresh"
	// API is a user's API token (api_access_token), acting with the
	// user's current role and first-party scopes.
	API      Kind = "api"
	Personal Kind = "personal"
	Bot      Kind = "bot"
	Platform Kind = "platform"
)

// Credential is what a presented secret turned out to be.
type Credential struct {
	Kind Kind
	// Agent is set for the agent-family kinds (every kind but Customer,
	// CustomerRefresh and Platform): who acts, with which scope.
	Agent shared.AgentClaims
	// Visitor is set for Customer.
	Visitor shared.CustomerClaims
	// ID is the row of a long-lived credential (personal, bot, platform).
	ID int64
	// Name is a long-lived credential's name.
	Name      string
	ExpiresAt time.Time
	IssuedAt  time.Time
	// LastUsedAt is when a long-lived credential was last used (recorded
	// at most once a minute).
	LastUsedAt time.Time
	// Refresh tokens: the family they belong to.
	Family string
}

// UserID is the user a credential acts for, or 0 (bots, clients,
// visitors, platform tokens).
func (c Credential) UserID() int64 {
	switch c.Kind {
	case Session, OAuth, API, Personal, Refresh:
		id, err := strconv.ParseInt(c.Agent.Subject, 10, 64)
		if err != nil {
			return 0
		}
		return id
	}
	return 0
}

// FirstParty reports whether c is a first-party sign-in's access token.
func (c Credential) FirstParty() bool { return c.Kind == Session }

// Expiry is when c stops working; zero for credentials without expiry.
func (c Credential) Expiry() time.Time {
	switch c.Kind {
	case Session, OAuth, ClientToken:
		return time.Unix(c.Agent.Expiry, 0)
	case Customer:
		return time.Unix(c.Visitor.Expiry, 0)
	}
	return c.ExpiresAt
}

// Placement says where a kind is sent on the agent API, for the debugger's
// hint and the middleware's refusal of a misplaced one.
func (k Kind) Placement() string {
	switch k {
	case Personal:
		return "Authorization: Basic base64(account_id:token) on /api/v1"
	case API, Bot:
		return "the api_access_token header on /api/v1"
	case Platform:
		return "the api_access_token header on /platform/api/v1"
	case Refresh:
		return "exchange at POST /api/v1/auth/token (or /oauth/token for OAuth grants)"
	case CustomerRefresh:
		return "exchange at POST /customer/token with grant_type refresh_token"
	case Customer:
		return "customer token: use it on the customer API (/customer/api/v1), not on /api/v1"
	}
	return "Authorization: Bearer on /api/v1"
}

// Invalid is a presented secret that is not a working credential. Reason
// is for the person holding it; Kind is what it looked like, when known.
type Invalid struct {
	Kind   Kind
	Reason string
	// Org is the organization of a secret found but not working (a spent
	// refresh token, an expired personal token), 0 when unknown: the
	// debugger tells only that organization why.
	Org int64
	// JKT is the DPoP key a spent, expired or revoked refresh token's
	// family is bound to: the debugger tells why only to that key.
	JKT string
	Err error
}

func (e *Invalid) Error() string { return e.Reason }
func (e *Invalid) Unwrap() error { return e.Err }

func invalid(k Kind, reason string) *Invalid { return &Invalid{Kind: k, Reason: reason} }

// Parent names c as the credential a derived session depends on (a
// visitor it vouched for): the session it belongs to, or for a credential
// without one its own row, so that revoking, deleting or resetting c
// revokes what it vouched for.
func (c Credential) Parent() string {
	switch c.Kind {
	case API:
		return sqlstore.APITokenParent(c.UserID())
	case Personal:
		return sqlstore.CredentialParent("pat", c.ID)
	case Bot:
		return sqlstore.CredentialParent("bot", c.ID)
	}
	// A client-credentials token's session is the client's epoch plus the
	// token: revoking the token (RFC 7009) or the epoch (client events)
	// both reach what it vouched for.
	return c.Agent.Session
}
