package token

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"chatauth/shared"
)

// Reasons a token is refused. Verify wraps one of them in a *VerifyError
// whose message a person can act on.
var (
	ErrMalformed    = errors.New("malformed token")
	ErrExpired      = errors.New("token expired")
	ErrBadSignature = errors.New("signature does not match any current key")
	ErrWrongFamily  = errors.New("token of the other family")
	ErrRevoked      = errors.New("token revoked")
	ErrBadClaims    = errors.New("token claims are not acceptable")
)

// VerifyError carries a reason for the person holding the token.
type VerifyError struct {
	Err    error
	Reason string
	// ExpiredAt is set for ErrExpired.
	ExpiredAt time.Time
	// Org is the organization of a token whose signature verified but that
	// expired or was revoked (0 otherwise): the debugger tells only that
	// organization why.
	Org int64
}

func (e *VerifyError) Error() string { return e.Reason }
func (e *VerifyError) Unwrap() error { return e.Err }

// verifier is the part both families share: the JWT parse with an explicit
// algorithm list, audience, issuer and required expiry; the key lookup by
// kid within one family; the revocation check.
type verifier struct {
	keys     *Keys
	family   Family
	audience string
	issuer   string
	revoked  func(sid string) bool
	now      func() time.Time
}

// Wrong-family messages name the token used and the one needed.
const (
	msgCustomerOnAgent = "this is a customer token; the agent API needs an agent token (sign in at POST /api/v1/auth/token, or use an API or OAuth token). Customer tokens work on /customer/api/v1"
	msgAgentOnCustomer = "this is an agent token; the customer API needs a customer token (POST /customer/token). Agent tokens work on /api/v1"
)

func (v *verifier) wrongFamilyMessage() string {
	if v.family == FamilyAgent {
		return msgCustomerOnAgent
	}
	return msgAgentOnCustomer
}

func (v *verifier) parse(raw string, claims jwt.Claims) error {
	if raw == "" {
		return &VerifyError{Err: ErrMalformed, Reason: "no token was sent"}
	}
	if len(raw) > 8192 {
		return &VerifyError{Err: ErrMalformed, Reason: "token is too long to be one of ours"}
	}
	if strings.Count(raw, ".") != 2 {
		return &VerifyError{Err: ErrMalformed, Reason: "not a JWT access token (expected three dot-separated parts)"}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}),
		jwt.WithAudience(v.audience),
		jwt.WithIssuer(v.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
	)
	t, err := p.ParseWithClaims(raw, claims, v.keyFor)
	if err == nil {
		return nil
	}
	var ve *VerifyError
	switch {
	case t != nil && t.Method != nil && t.Method.Alg() != "EdDSA":
		return &VerifyError{Err: ErrMalformed, Reason: "token is signed with an algorithm this server does not accept (only EdDSA)"}
	case errors.As(err, &ve):
		return ve
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return &VerifyError{Err: ErrBadSignature, Reason: "signature does not match any current key"}
	case errors.Is(err, jwt.ErrTokenExpired):
		exp, _ := claims.GetExpirationTime()
		e := &VerifyError{Err: ErrExpired, Reason: "token expired; refresh it or sign in again"}
		if exp != nil {
			e.ExpiredAt = exp.Time
			e.Reason = "token expired " + Ago(v.now().Sub(exp.Time)) + "; refresh it or sign in again"
		}
		return e
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return &VerifyError{Err: ErrWrongFamily, Reason: v.wrongFamilyMessage()}
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return &VerifyError{Err: ErrBadClaims, Reason: "token was issued by another server (iss does not match CHATAUTH_ISSUER)"}
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return &VerifyError{Err: ErrBadClaims, Reason: "token has no expiry"}
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return &VerifyError{Err: ErrBadClaims, Reason: "token is not valid yet; check the clock of the machine that made it"}
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return &VerifyError{Err: ErrMalformed, Reason: "token uses an algorithm this server does not accept (only EdDSA)"}
	default:
		return &VerifyError{Err: ErrMalformed, Reason: "malformed token; send the access token exactly as it was issued"}
	}
}

func (v *verifier) keyFor(t *jwt.Token) (any, error) {
	if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, shared.TokenType) {
		return nil, &VerifyError{Err: ErrMalformed, Reason: "not an access token (JWT typ must be at+jwt)"}
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, &VerifyError{Err: ErrBadSignature, Reason: "token names no signing key (kid)"}
	}
	k, ok := v.keys.lookup(kid)
	if !ok && v.keys.ReloadIfStale(context.Background(), time.Second) {
		k, ok = v.keys.lookup(kid)
	}
	if !ok {
		return nil, &VerifyError{Err: ErrBadSignature, Reason: "signature does not match any current key (unknown or retired kid)"}
	}
	if k.family != v.family {
		return nil, &VerifyError{Err: ErrWrongFamily, Reason: v.wrongFamilyMessage()}
	}
	return k.pub, nil
}

func (v *verifier) checkRevoked(sid string) error {
	if sid != "" && v.revoked != nil && v.revoked(sid) {
		return &VerifyError{Err: ErrRevoked, Reason: "token revoked (its session was signed out or its refresh token was reused); sign in again"}
	}
	return nil
}

// AgentVerifier accepts agent-family access tokens only.
type AgentVerifier struct {
	v     verifier
	cache *verified[shared.AgentClaims]
}

// CustomerVerifier accepts customer access tokens only.
type CustomerVerifier struct {
	v     verifier
	cache *verified[shared.CustomerClaims]
}

// NewAgentVerifier verifies tokens signed by the agent key set for issuer.
// revoked may be nil.
func NewAgentVerifier(keys *Keys, issuer string, revoked func(string) bool) *AgentVerifier {
	return &AgentVerifier{v: verifier{keys: keys, family: FamilyAgent, audience: shared.AudienceAgent, issuer: issuer, revoked: revoked, now: keys.Now},
		cache: newVerified[shared.AgentClaims](cacheSize)}
}

// NewCustomerVerifier verifies tokens signed by the customer key set.
func NewCustomerVerifier(keys *Keys, issuer string, revoked func(string) bool) *CustomerVerifier {
	return &CustomerVerifier{v: verifier{keys: keys, family: FamilyCustomer, audience: shared.AudienceCustomer, issuer: issuer, revoked: revoked, now: keys.Now},
		cache: newVerified[shared.CustomerClaims](cacheSize)}
}

// Verify checks raw and returns its claims.
func (a *AgentVerifier) Verify(raw string) (shared.AgentClaims, error) {
	if c, ok := a.cache.get(raw, a.v.now()); ok {
		return c, withOrg(a.v.checkRevoked(c.Session), c.Org)
	}
	c, err := a.verify(raw)
	if err == nil {
		a.cache.put(raw, c, c.Expiry, a.v.now())
	}
	return c, withOrg(err, c.Org)
}

// withOrg notes org on an expiry or revocation: the signature verified,
// so the organization is the token's.
func withOrg(err error, org int64) error {
	if ve, ok := err.(*VerifyError); ok && (ve.Err == ErrExpired || ve.Err == ErrRevoked) {
		ve.Org = org
	}
	return err
}

func (a *AgentVerifier) verify(raw string) (shared.AgentClaims, error) {
	var w agentJWT
	if err := a.v.parse(raw, &w); err != nil {
		return shared.AgentClaims{Org: w.Org}, err
	}
	scope, err := shared.ParseScope(w.Scope)
	if err != nil {
		return shared.AgentClaims{}, &VerifyError{Err: ErrBadClaims, Reason: "token scope is not valid: " + err.Error()}
	}
	c := shared.AgentClaims{Issuer: w.Issuer, Subject: w.Subject, Audience: shared.AudienceAgent, Expiry: w.ExpiresAt.Unix(),
		ID: w.ID, Scope: scope, Org: w.Org, ClientID: w.ClientID, Session: w.Session, Cnf: w.Cnf}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Unix()
	}
	if err := c.Validate(); err != nil {
		if errors.Is(err, shared.ErrBadRole) && scope.Role == shared.RoleGuest {
			return c, &VerifyError{Err: ErrWrongFamily, Reason: msgCustomerOnAgent}
		}
		return c, &VerifyError{Err: ErrBadClaims, Reason: "token claims are not acceptable: " + err.Error()}
	}
	return c, a.v.checkRevoked(c.Session)
}

// Verify checks raw and returns its claims.
func (cv *CustomerVerifier) Verify(raw string) (shared.CustomerClaims, error) {
	if c, ok := cv.cache.get(raw, cv.v.now()); ok {
		return c, withOrg(cv.v.checkRevoked(c.Session), c.Org)
	}
	c, err := cv.verify(raw)
	if err == nil {
		cv.cache.put(raw, c, c.Expiry, cv.v.now())
	}
	return c, withOrg(err, c.Org)
}

func (cv *CustomerVerifier) verify(raw string) (shared.CustomerClaims, error) {
	var w customerJWT
	if err := cv.v.parse(raw, &w); err != nil {
		return shared.CustomerClaims{Org: w.Org}, err
	}
	c := shared.CustomerClaims{Issuer: w.Issuer, Subject: w.Subject, Audience: shared.AudienceCustomer, Expiry: w.ExpiresAt.Unix(),
		ID: w.ID, Org: w.Org, ClientID: w.ClientID, Session: w.Session, Identified: w.Identified, Cnf: w.Cnf}
	if w.IssuedAt != nil {
		c.IssuedAt = w.IssuedAt.Unix()
	}
	if err := c.Validate(); err != nil {
		return c, &VerifyError{Err: ErrBadClaims, Reason: "token claims are not acceptable: " + err.Error()}
	}
	return c, cv.v.checkRevoked(c.Session)
}

// Ago formats a duration the way a person says it: "3h ago" is built from
// "3h". It rounds to the largest sensible unit.
func Ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return itoa(int64(d/time.Second)) + "s ago"
	case d < time.Hour:
		return itoa(int64(d/time.Minute)) + "m ago"
	case d < 48*time.Hour:
		return itoa(int64(d/time.Hour)) + "h ago"
	default:
		return itoa(int64(d/(24*time.Hour))) + " days ago"
	}
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
