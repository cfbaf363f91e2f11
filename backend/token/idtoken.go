package token

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OpenID Connect ID tokens and back-channel logout tokens (docs/oidc.md).
// They are signed by their own key families (FamilyIDToken, RS256 by
// default; FamilyIDTokenEdDSA), never by the access-token keys, and they
// carry typ "JWT" (ID tokens) or "logout+jwt": the access-token verifiers
// refuse both by family and by typ.

// IDClaims are the claims of an ID token (OIDC Core §2, §3.1.3.6, §5.1).
// Fields left empty are omitted.
type IDClaims struct {
	jwt.RegisteredClaims
	AuthTime      int64          `json:"auth_time,omitempty"`
	Nonce         string         `json:"nonce,omitempty"`
	AtHash        string         `json:"at_hash,omitempty"`
	AMR           []string       `json:"amr,omitempty"`
	ACR           string         `json:"acr,omitempty"`
	AZP           string         `json:"azp,omitempty"`
	SID           string         `json:"sid,omitempty"`
	Name          string         `json:"name,omitempty"`
	UpdatedAt     int64          `json:"updated_at,omitempty"`
	Email         string         `json:"email,omitempty"`
	EmailVerified *bool          `json:"email_verified,omitempty"`
	Chatauth      *ChatauthClaim `json:"chatauth,omitempty"`
}

// ChatauthClaim says where in chatauth the user is: the organization and
// the role the grant acts with.
type ChatauthClaim struct {
	Org  int64  `json:"org"`
	Role string `json:"role"`
}

// LogoutClaims are an OpenID Connect Back-Channel Logout 1.0 §2.4 logout
// token's claims.
type LogoutClaims struct {
	jwt.RegisteredClaims
	SID    string                    `json:"sid,omitempty"`
	Events map[string]map[string]any `json:"events"`
}

// BackchannelLogoutEvent is the logout token's one event.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// IDTokenAlgs are the algorithms an ID token may be signed with, the
// default first.
var IDTokenAlgs = []string{"RS256", "EdDSA"}

// familyForAlg picks the ID-token family of a client's registered
// id_token_signed_response_alg ("" is RS256).
func familyForAlg(alg string) (Family, error) {
	switch alg {
	case "", "RS256":
		return FamilyIDToken, nil
	case "EdDSA":
		return FamilyIDTokenEdDSA, nil
	}
	return "", fmt.Errorf("id_token_signed_response_alg %q is not supported; use RS256 or EdDSA", alg)
}

// IDToken signs c with the ID-token family of alg. iss and iat are filled
// in; the caller sets sub, aud, exp and the rest.
func (i *Issuer) IDToken(c IDClaims, alg string) (string, error) {
	f, err := familyForAlg(alg)
	if err != nil {
		return "", err
	}
	c.Issuer = i.issuer
	c.IssuedAt = jwt.NewNumericDate(i.Now())
	if c.ExpiresAt == nil || c.Subject == "" || len(c.Audience) == 0 {
		return "", errors.New("issue ID token: sub, aud and exp are required")
	}
	return i.signFamily(f, c, "JWT")
}

// LogoutToken signs a back-channel logout token for client aud about the
// user sub and the browser session sid (§2.4: iss, aud, iat, exp, jti,
// events, sid and/or sub; never a nonce).
func (i *Issuer) LogoutToken(aud, sub, sid, alg string, ttl time.Duration) (string, error) {
	f, err := familyForAlg(alg)
	if err != nil {
		return "", err
	}
	now := i.Now()
	c := LogoutClaims{RegisteredClaims: registered(i.issuer, sub, aud, now, ttl), SID: sid,
		Events: map[string]map[string]any{BackchannelLogoutEvent: {}}}
	return i.signFamily(f, c, "logout+jwt")
}

// signFamily signs claims with the current key of family f, with the JWT
// typ header typ.
func (i *Issuer) signFamily(f Family, claims jwt.Claims, typ string) (string, error) {
	k, err := i.keys.signer(f)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", f, err)
	}
	var m jwt.SigningMethod = jwt.SigningMethodEdDSA
	if k.alg == "RS256" {
		m = jwt.SigningMethodRS256
	}
	t := jwt.NewWithClaims(m, claims)
	t.Header["kid"] = k.kid
	t.Header["typ"] = typ
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign %s token: %w", f, err)
	}
	return s, nil
}

// ErrBadIDTokenHint is VerifyIDTokenHint's refusal; the wrapped message
// says why.
var ErrBadIDTokenHint = errors.New("id_token_hint is not valid")

// VerifyIDTokenHint checks an id_token_hint (OIDC RP-Initiated Logout
// §2): an ID token this server signed with an ID-token key, for issuer,
// and expired by at most maxExpired, since relying parties often log out
// with the ID token of a long session. It returns the claims.
func (i *Issuer) VerifyIDTokenHint(raw string, maxExpired time.Duration) (IDClaims, error) {
	var c IDClaims
	if len(raw) > 8192 || strings.Count(raw, ".") != 2 {
		return c, fmt.Errorf("%w: not a JWT", ErrBadIDTokenHint)
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(IDTokenAlgs),
		jwt.WithIssuer(i.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(maxExpired),
		jwt.WithTimeFunc(i.Now),
	)
	_, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "" && !strings.EqualFold(typ, "JWT") {
			return nil, errors.New("not an ID token (typ " + typ + ")")
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := i.keys.lookup(kid)
		if !ok && i.keys.ReloadIfStale(context.Background(), time.Second) {
			k, ok = i.keys.lookup(kid)
		}
		if !ok || (k.family != FamilyIDToken && k.family != FamilyIDTokenEdDSA) {
			return nil, errors.New("not signed by one of this server's ID-token keys")
		}
		if t.Method.Alg() != k.alg {
			return nil, errors.New("algorithm does not match the key")
		}
		return k.pub, nil
	})
	if err != nil {
		return c, fmt.Errorf("%w: %v", ErrBadIDTokenHint, err)
	}
	return c, nil
}
