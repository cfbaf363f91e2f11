package token

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"chatauth/shared"
)

// agentJWT and customerJWT are the wire forms of the shared claim types;
// they exist so shared/ need not import the JWT library.
type agentJWT struct {
	jwt.RegisteredClaims
	Scope    string               `json:"scope"`
	Org      int64                `json:"org"`
	ClientID string               `json:"client_id,omitempty"`
	Session  string               `json:"sid,omitempty"`
	Cnf      *shared.Confirmation `json:"cnf,omitempty"`
}

type customerJWT struct {
	jwt.RegisteredClaims
	Scope    string `json:"scope"`
	Org      int64  `json:"org"`
	ClientID string `json:"client_id"`
	Session  string `json:"sid,omitempty"`
	// Identified: the site vouched for the visitor (docs/identity.md).
	Identified bool                 `json:"idf,omitempty"`
	Cnf        *shared.Confirmation `json:"cnf,omitempty"`
}

// Issuer signs access tokens: agent claims with the agent key set,
// customer claims with the customer key set.
type Issuer struct {
	keys   *Keys
	issuer string
	Now    func() time.Time
}

// NewIssuer returns an Issuer naming issuer as "iss".
func NewIssuer(keys *Keys, issuer string) *Issuer {
	return &Issuer{keys: keys, issuer: issuer, Now: keys.Now}
}

func registered(iss, sub, aud string, now time.Time, ttl time.Duration) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{
		Issuer:    iss,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        NewID(),
	}
}

// Agent signs an agent-family token valid for ttl and returns it with the
// claims as signed (iss, aud, iat, exp, jti filled in).
func (i *Issuer) Agent(c shared.AgentClaims, ttl time.Duration) (string, shared.AgentClaims, error) {
	now := i.Now()
	c.Issuer, c.Audience = i.issuer, shared.AudienceAgent
	w := agentJWT{RegisteredClaims: registered(c.Issuer, c.Subject, c.Audience, now, ttl), Scope: c.Scope.String(), Org: c.Org, ClientID: c.ClientID, Session: c.Session, Cnf: c.Cnf}
	c.IssuedAt, c.Expiry, c.ID = w.IssuedAt.Unix(), w.ExpiresAt.Unix(), w.ID
	if err := c.Validate(); err != nil {
		return "", c, fmt.Errorf("issue agent token: %w", err)
	}
	s, err := i.sign(FamilyAgent, w)
	return s, c, err
}

// Customer signs a customer token valid for ttl.
func (i *Issuer) Customer(c shared.CustomerClaims, ttl time.Duration) (string, shared.CustomerClaims, error) {
	now := i.Now()
	c.Issuer, c.Audience = i.issuer, shared.AudienceCustomer
	w := customerJWT{RegisteredClaims: registered(c.Issuer, c.Subject, c.Audience, now, ttl), Scope: c.Scope().String(), Org: c.Org, ClientID: c.ClientID, Session: c.Session, Identified: c.Identified, Cnf: c.Cnf}
	c.IssuedAt, c.Expiry, c.ID = w.IssuedAt.Unix(), w.ExpiresAt.Unix(), w.ID
	if err := c.Validate(); err != nil {
		return "", c, fmt.Errorf("issue customer token: %w", err)
	}
	s, err := i.sign(FamilyCustomer, w)
	return s, c, err
}

func (i *Issuer) sign(f Family, claims jwt.Claims) (string, error) {
	k, err := i.keys.signer(f)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", f, err)
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.kid
	t.Header["typ"] = shared.TokenType
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", f, err)
	}
	return s, nil
}
