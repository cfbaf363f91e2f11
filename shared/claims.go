package shared

import "errors"

// Audiences keep the two token families apart (docs/api.md, "Tokens and scopes").
const (
	AudienceAgent    = "chatauth:agent"
	AudienceCustomer = "chatauth:customer"
)

// TokenType is the JWT "typ" header of every access token (RFC 9068).
const TokenType = "at+jwt"

// Errors of claim validation.
var (
	ErrWrongAudience = errors.New("token is for another API")
	ErrNoSubject     = errors.New("token has no subject")
	ErrNoExpiry      = errors.New("token has no expiry")
	ErrBadRole       = errors.New("token role does not fit its family")
)

// AgentClaims are the claims of an agent-family access token: agents, bots,
// admins, OAuth and personal tokens. It is a distinct type from
// CustomerClaims so a handler cannot be given the wrong one.
type AgentClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"` // user id, bot id or client id
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti,omitempty"`
	Scope    Scope  `json:"-"` // carried as the "scope" string
	Org      int64  `json:"org"`
	ClientID string `json:"client_id,omitempty"`
	// Session names the refresh family the token descends from, so a
	// revoked family takes its access tokens with it.
	Session string `json:"sid,omitempty"`
	// Cnf binds the token to a DPoP key (RFC 9449): it is taken only with
	// a proof of that key.
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is the cnf claim (RFC 7800) of a sender-constrained token:
// JKT is the RFC 7638 thumbprint of its DPoP key.
type Confirmation struct {
	JKT string `json:"jkt"`
}

// BoundKey is the thumbprint of the DPoP key a token is bound to, or "".
func BoundKey(c *Confirmation) string {
	if c == nil {
		return ""
	}
	return c.JKT
}

// Validate checks what the signature cannot: the family, a subject, an
// expiry, and a role that belongs to this family.
func (c *AgentClaims) Validate() error {
	switch {
	case c.Audience != AudienceAgent:
		return ErrWrongAudience
	case c.Subject == "":
		return ErrNoSubject
	case c.Expiry == 0:
		return ErrNoExpiry
	case c.Scope.Role < RoleAgent || !c.Scope.Role.Valid():
		return ErrBadRole
	}
	return nil
}

// CustomerClaims are the claims of a customer (website visitor) token.
type CustomerClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"` // the customer's entity_id
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	ID       string `json:"jti,omitempty"`
	Org      int64  `json:"org"`
	ClientID string `json:"client_id"`
	Session  string `json:"sid,omitempty"`
	// Identified: the site vouched for this visitor with an identity
	// token (docs/identity.md); anonymous visitors leave it out.
	Identified bool `json:"idf,omitempty"`
	// Cnf binds the token to the browser's DPoP key (docs/dpop.md).
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Scope is fixed for customers: guest, allowed to chat.
func (c *CustomerClaims) Scope() Scope {
	return Scope{Role: RoleGuest, API: FirstParty}
}

// Validate checks the family, the subject and the expiry.
func (c *CustomerClaims) Validate() error {
	switch {
	case c.Audience != AudienceCustomer:
		return ErrWrongAudience
	case c.Subject == "":
		return ErrNoSubject
	case c.Expiry == 0:
		return ErrNoExpiry
	}
	return nil
}
