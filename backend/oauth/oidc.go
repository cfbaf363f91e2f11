package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// OpenID Connect (docs/oidc.md): chatauth as an OpenID Provider on top of
// the code grant. The OIDC scopes are kept apart from chatauth's API
// scopes: shared.ParseScope knows read, write, chat and the roles only,
// so a request's scope is split (SplitScope), the API part resolved as
// before and the OIDC part stored beside it, on the code and then on the
// grant (sqlstore.OIDCGrant).

// The OIDC scopes this server knows (OIDC Core §5.4).
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	ScopeEmail   = "email"
)

// OIDCScopes are the OIDC scope words, in the order they are stored.
var OIDCScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail}

// ACR names how the user authenticated: a password on the authorize
// page, the only way chatauth signs people in.
const ACR = "urn:chatauth:pwd"

// SplitScope separates the OIDC words of a requested scope from the rest
// (chatauth's API scopes and roles, validated later by ResolveScope).
// The OIDC words come back deduplicated in OIDCScopes order.
func SplitScope(s string) (api string, oidc []string) {
	var rest []string
	seen := map[string]bool{}
	for _, w := range strings.Fields(s) {
		if hasWord(OIDCScopes, w) {
			seen[w] = true
			continue
		}
		rest = append(rest, w)
	}
	for _, w := range OIDCScopes {
		if seen[w] {
			oidc = append(oidc, w)
		}
	}
	return strings.Join(rest, " "), oidc
}

func hasWord(list []string, w string) bool {
	for _, x := range list {
		if x == w {
			return true
		}
	}
	return false
}

// ClaimsOf lists the claims an OIDC scope set releases, beyond sub and
// the chatauth claim, for the consent page and userinfo.
func ClaimsOf(oidc []string) []string {
	var out []string
	if hasWord(oidc, ScopeProfile) {
		out = append(out, "name", "updated_at")
	}
	if hasWord(oidc, ScopeEmail) {
		out = append(out, "email", "email_verified")
	}
	return out
}

// Session is the authorize page's browser sign-in a code is issued in:
// its id (the ID token's sid) and when the user signed in (auth_time).
type Session struct {
	SID      string
	AuthTime time.Time
}

// idTTL is how long an ID token is valid: it asserts a sign-in to a
// client that checks it at once, so it lives at most an hour, never
// longer than the access token it comes with.
func (p *Provider) idTTL() time.Duration {
	return min(p.AccessTTL, time.Hour)
}

// oidcAnswer is what an ID token says about one grant.
type oidcAnswer struct {
	scope    []string
	authTime time.Time
	sid      string
	nonce    string
}

// idToken signs the ID token of a token response (OIDC Core §3.1.3.6):
// at_hash binds it to the access token it comes with.
func (p *Provider) idToken(client domain.Client, u domain.User, scope shared.Scope, a oidcAnswer, accessToken string) (string, error) {
	alg := client.IDTokenAlg
	if alg == "" {
		alg = "RS256"
	}
	c := token.IDClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   strconv.FormatInt(u.ID, 10),
			Audience:  jwt.ClaimStrings{client.ID},
			ExpiresAt: jwt.NewNumericDate(p.Now().Add(p.idTTL())),
			ID:        token.NewID(),
		},
		Nonce: a.nonce, AMR: []string{"pwd"}, ACR: ACR, AZP: client.ID, SID: a.sid,
		AtHash:   atHash(alg, accessToken),
		Chatauth: &token.ChatauthClaim{Org: u.OrgID, Role: scope.Role.String()},
	}
	if !a.authTime.IsZero() {
		c.AuthTime = a.authTime.Unix()
	}
	applyUserClaims(&c, u, a.scope)
	return p.Issuer.IDToken(c, alg)
}

// applyUserClaims adds the claims of the profile and email scopes.
// chatauth does not verify email addresses (an admin types them in), so
// email_verified is false: a client that needs a verified address must
// not take ours as one.
func applyUserClaims(c *token.IDClaims, u domain.User, oidc []string) {
	if hasWord(oidc, ScopeProfile) {
		c.Name, c.UpdatedAt = u.Name, u.UpdatedAt.Unix()
	}
	if hasWord(oidc, ScopeEmail) {
		verified := false
		c.Email, c.EmailVerified = u.Email, &verified
	}
}

// atHash is OIDC Core §3.1.3.6's at_hash: the left half of the hash of
// the access token, with the hash of the ID token's algorithm (SHA-512
// for EdDSA over Ed25519, as go-oidc and the OpenID errata have it).
func atHash(alg, accessToken string) string {
	var h hash.Hash = sha256.New()
	if alg == "EdDSA" {
		h = sha512.New()
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// grantOIDC records the OIDC side of a grant started from code c and
// returns what its first ID token says; ok is false for a code issued
// without openid.
func (p *Provider) grantOIDC(ctx context.Context, c domain.Code, familyID string) (oidcAnswer, bool, error) {
	scope := strings.Fields(c.OIDCScope)
	if !hasWord(scope, ScopeOpenID) {
		return oidcAnswer{}, false, nil
	}
	err := p.Store.CreateOIDCGrant(ctx, sqlstore.OIDCGrant{FamilyID: familyID, ClientID: c.ClientID, UserID: c.UserID, BrowserSID: c.BrowserSID, Scope: c.OIDCScope, AuthTime: c.AuthTime})
	return oidcAnswer{scope: scope, authTime: c.AuthTime, sid: c.BrowserSID, nonce: c.Nonce}, true, err
}

// signInStands refuses a grant (familyID) made in browser sign-in sid of
// user uid when that sign-in has ended meanwhile (a code redeemed after
// end_session, from the browser history or a log; a password change or
// sign-out everywhere racing the grant): the grant is ended at once.
// Called after everything the grant records, so an end racing it either
// finds the grant or is seen here.
func (p *Provider) signInStands(ctx context.Context, sid string, uid int64, familyID string) error {
	if sid == "" {
		return nil // a code from before codes recorded their sign-in
	}
	live, err := p.Cascade.BrowserSessionLive(ctx, sid, uid)
	if err != nil || live {
		return err
	}
	if err := p.Cascade.SignOut(ctx, familyID); err != nil {
		return err
	}
	return ErrInvalidGrant.WithDescription("the sign-in this authorization was made in has ended (the user signed out, or their password changed); start the authorization again")
}

// refreshOIDC is what a refreshed ID token of grant familyID says (OIDC
// Core §12.2: the original auth_time, no nonce); ok is false for a grant
// made without openid.
func (p *Provider) refreshOIDC(ctx context.Context, familyID string) (oidcAnswer, bool, error) {
	g, err := p.Store.OIDCGrant(ctx, familyID)
	if notFound(err) {
		return oidcAnswer{}, false, nil
	}
	if err != nil {
		return oidcAnswer{}, false, err
	}
	scope := strings.Fields(g.Scope)
	return oidcAnswer{scope: scope, authTime: g.AuthTime, sid: g.BrowserSID}, hasWord(scope, ScopeOpenID), nil
}

// UserInfo is OIDC Core §5.3's answer for a verified access token: the
// claims its grant's OIDC scopes release. A token of a grant made
// without openid is insufficient_scope.
func (p *Provider) UserInfo(ctx context.Context, claims shared.AgentClaims) (map[string]any, error) {
	if claims.ClientID == "" || claims.Session == "" {
		return nil, ErrInsufficientScope.WithDescription("this access token was not issued by an OpenID Connect authorization (scope openid); userinfo answers only those")
	}
	g, err := p.Store.OIDCGrant(ctx, claims.Session)
	if notFound(err) || (err == nil && (g.ClientID != claims.ClientID || !hasWord(strings.Fields(g.Scope), ScopeOpenID))) {
		return nil, ErrInsufficientScope.WithDescription("this access token's grant has no openid scope; authorize with scope openid to use userinfo")
	}
	if err != nil {
		return nil, err
	}
	u, err := p.Store.UserByID(ctx, g.UserID)
	if notFound(err) {
		return nil, ErrInvalidToken.WithDescription("the user of this access token no longer exists")
	}
	if err != nil {
		return nil, err
	}
	var c token.IDClaims
	applyUserClaims(&c, u, strings.Fields(g.Scope))
	out := map[string]any{"sub": strconv.FormatInt(u.ID, 10), "chatauth": token.ChatauthClaim{Org: u.OrgID, Role: claims.Scope.Role.String()}}
	if c.Name != "" || hasWord(strings.Fields(g.Scope), ScopeProfile) {
		out["name"], out["updated_at"] = c.Name, c.UpdatedAt
	}
	if c.EmailVerified != nil {
		out["email"], out["email_verified"] = c.Email, *c.EmailVerified
	}
	return out, nil
}

// Metadata is the one description of this server, served both as RFC
// 8414 authorization-server metadata and as OpenID Connect Discovery
// 1.0's provider configuration, so the two never disagree.
func Metadata(issuer string) map[string]any {
	return map[string]any{
		"issuer":                                        issuer,
		"authorization_endpoint":                        issuer + "/oauth/authorize",
		"token_endpoint":                                issuer + "/oauth/token",
		"introspection_endpoint":                        issuer + "/oauth/introspect",
		"revocation_endpoint":                           issuer + "/oauth/revoke",
		"userinfo_endpoint":                             issuer + "/oauth/userinfo",
		"end_session_endpoint":                          issuer + "/oauth/end_session",
		"jwks_uri":                                      issuer + "/.well-known/jwks.json",
		"response_types_supported":                      []string{"code", "token"},
		"response_modes_supported":                      []string{"query", "fragment"},
		"grant_types_supported":                         []string{"authorization_code", "implicit", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":              []string{"S256"},
		"scopes_supported":                              []string{ScopeOpenID, ScopeProfile, ScopeEmail, "read", "write", "chat", "agent", "bot", "admin"},
		"prompt_values_supported":                       []string{"none", "login", "consent"},
		"dpop_signing_alg_values_supported":             dpop.Algs,
		"id_token_signing_alg_values_supported":         token.IDTokenAlgs,
		"subject_types_supported":                       []string{"public"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr", "acr", "azp", "sid",
			"name", "updated_at", "email", "email_verified", "chatauth"},
		"acr_values_supported":                           []string{ACR},
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
	}
}
