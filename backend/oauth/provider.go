package oauth

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what the authorization server needs of the database.
type Store interface {
	Client(ctx context.Context, id string) (domain.Client, error)
	UserByID(ctx context.Context, id int64) (domain.User, error)
	CreateCode(ctx context.Context, c domain.Code) error
	RedeemCode(ctx context.Context, hash []byte, familyID string, check func(domain.Code) error) (domain.Code, error)
	Family(ctx context.Context, id string) (domain.Family, error)
	Audit(ctx context.Context, e domain.AuditEvent) error
	CreateOIDCGrant(ctx context.Context, g sqlstore.OIDCGrant) error
	OIDCGrant(ctx context.Context, familyID string) (sqlstore.OIDCGrant, error)
	OIDCGrantsOfSessions(ctx context.Context, sids []string) ([]sqlstore.OIDCGrant, error)
}

var _ Store = (*sqlstore.DB)(nil)

// FamilyKind marks refresh families made through OAuth.
const FamilyKind = refresh.KindOAuth

// Provider is the authorization server.
type Provider struct {
	Store     Store
	Issuer    *token.Issuer
	Inspector *credential.Inspector
	Families  *refresh.Families
	Cascade   *credential.Cascade
	// Guesses throttles client-secret guesses (docs/security.md, I5).
	Guesses *throttle.Guesses
	// Backchannel tells clients of a logout (OpenID Connect Back-Channel
	// Logout); nil sends nothing.
	Backchannel *Backchannel
	AccessTTL   time.Duration
	CodeTTL     time.Duration
	Now         func() time.Time
}

// TokenResponse is RFC 6749 §5.1's answer.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	// IDToken is OpenID Connect's, for a grant with scope openid.
	IDToken string `json:"id_token,omitempty"`
}

// access signs an access token; jkt, when set, binds it to a DPoP key
// (cnf.jkt, token_type DPoP: RFC 9449, section 5).
func (p *Provider) access(sub string, org int64, clientID string, scope shared.Scope, sid, jkt string) (TokenResponse, error) {
	c := shared.AgentClaims{Subject: sub, Org: org, Scope: scope, ClientID: clientID, Session: sid}
	if jkt != "" {
		c.Cnf = &shared.Confirmation{JKT: jkt}
	}
	tok, _, err := p.Issuer.Agent(c, p.AccessTTL)
	if err != nil {
		return TokenResponse{}, err
	}
	// token_type is "Bearer" (or "DPoP"), capitalized, whatever the
	// grant: the Zendesk forum's clients broke on a lowercase one.
	typ := "Bearer"
	if jkt != "" {
		typ = "DPoP"
	}
	return TokenResponse{AccessToken: tok, TokenType: typ, ExpiresIn: int64(p.AccessTTL / time.Second), Scope: scope.String()}, nil
}

// IssueCode stores an authorization code for an approved request, made
// in the browser sign-in sess. An OpenID Connect request's OIDC scopes
// and nonce ride on the code to its ID token.
func (p *Provider) IssueCode(ctx context.Context, r AuthorizeRequest, u domain.User, scope shared.Scope, sess Session) (string, error) {
	code, hash := token.NewOpaque(token.PrefixCode)
	now := p.Now()
	c := domain.Code{Hash: hash, ClientID: r.ClientID, UserID: u.ID, OrgID: u.OrgID, RedirectURI: r.RedirectURI,
		Scope: scope.String(), CodeChallenge: r.CodeChallenge, CreatedAt: now, ExpiresAt: now.Add(p.CodeTTL)}
	if r.OpenID() {
		c.OIDCScope, c.Nonce, c.AuthTime = strings.Join(r.OIDC, " "), r.Nonce, sess.AuthTime
	}
	// Every code names its sign-in: a grant made from it after that
	// sign-in ended is refused (signInStands).
	c.BrowserSID = sess.SID
	err := p.Store.CreateCode(ctx, c)
	return code, err
}

// IssueImplicit makes the fragment parameters of an implicit grant. The
// grant is recorded as a session without refresh tokens, so deleting the
// user or the client, or changing the user's role or password, ends it;
// asked with openid, it is also a grant of the browser sign-in sess, and
// ends with it (end_session).
func (p *Provider) IssueImplicit(ctx context.Context, r AuthorizeRequest, u domain.User, scope shared.Scope, sess Session) (url.Values, error) {
	fam := &domain.Family{Kind: refresh.KindImplicit, Subject: strconv.FormatInt(u.ID, 10), OrgID: u.OrgID, ClientID: r.ClientID,
		Scope: scope.String(), ExpiresAt: p.Now().Add(p.AccessTTL)}
	if err := p.Families.StartSession(ctx, fam); err != nil {
		return nil, err
	}
	if r.OpenID() {
		g := sqlstore.OIDCGrant{FamilyID: fam.ID, ClientID: r.ClientID, UserID: u.ID, BrowserSID: sess.SID, Scope: strings.Join(r.OIDC, " "), AuthTime: sess.AuthTime}
		if err := p.Store.CreateOIDCGrant(ctx, g); err != nil {
			return nil, err
		}
	}
	if err := p.signInStands(ctx, sess.SID, u.ID, fam.ID); errors.Is(err, ErrInvalidGrant) {
		return nil, ErrLoginRequired.WithDescription("the browser sign-in ended while authorizing; sign in again")
	} else if err != nil {
		return nil, err
	}
	t, err := p.access(strconv.FormatInt(u.ID, 10), u.OrgID, r.ClientID, scope, fam.ID, "")
	if err != nil {
		return nil, err
	}
	return url.Values{"access_token": {t.AccessToken}, "token_type": {t.TokenType}, "expires_in": {strconv.FormatInt(t.ExpiresIn, 10)}, "scope": {t.Scope}}, nil
}

// Token is the token endpoint (RFC 6749 §3.2): it authenticates the
// client and runs the grant; what the grant issues is bound to the key of
// the request's DPoP proof.
//
// proof checks the request's DPoP proof, after the client is
// authenticated (so a stranger's requests store no proof ids), and
// returns its key ("" without a proof).
func (p *Provider) Token(ctx context.Context, authorization, ip string, proof func() (string, error), form url.Values) (TokenResponse, error) {
	grant := form.Get("grant_type")
	if len(form["grant_type"]) > 1 {
		return TokenResponse{}, ErrInvalidRequest.WithDescription("grant_type given more than once")
	}
	ca, oerr := ReadClientAuth(authorization, form)
	if oerr != nil {
		return TokenResponse{}, oerr
	}
	client, err := p.AuthenticateClient(ctx, ca, ip)
	if err != nil {
		return TokenResponse{}, err
	}
	jkt, err := proof()
	if err != nil {
		return TokenResponse{}, err
	}
	if jkt == "" && client.DPoP == domain.DPoPRequired {
		return TokenResponse{}, ErrInvalidDPoPProof.WithDescription("this client requires DPoP: send a DPoP header with a proof (RFC 9449)")
	}
	switch grant {
	case "authorization_code":
		return p.grantCode(ctx, client, form, jkt)
	case "refresh_token":
		return p.grantRefresh(ctx, client, form, jkt)
	case "client_credentials":
		return p.grantClientCredentials(client, form, jkt)
	case "":
		return TokenResponse{}, ErrInvalidRequest.WithDescription("grant_type is missing; use authorization_code, refresh_token or client_credentials")
	default:
		return TokenResponse{}, ErrUnsupportedGrantType.WithDescription("grant_type \"" + clip(grant) + "\" is not supported; use authorization_code, refresh_token or client_credentials")
	}
}

// currentRole is the user's role now, so a demoted user's old grant
// cannot mint tokens with the old rights.
func capRole(granted shared.Scope, u domain.User) shared.Scope {
	if !u.Role.Includes(granted.Role) {
		granted.Role = u.Role
	}
	return granted
}

func notFound(err error) bool { return errors.Is(err, domain.ErrNotFound) }
