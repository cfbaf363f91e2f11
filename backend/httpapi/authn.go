package httpapi

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Agent is the caller on the agent API, however it authenticated.
type Agent struct {
	shared.AgentClaims
	// Via names the credential: "jwt" or "api_token".
	Via string
}

const ctxAgent = "chatauth.agent"

// headerAPIToken is Chatwoot's api_access_token header in the canonical
// form net/http stores it under. Looked up by the lower-case name, it
// would be canonicalized again, into a new string, on every request.
const headerAPIToken = "Api_access_token"

// AgentFrom returns the authenticated agent; requireAgent guarantees one.
func AgentFrom(c echo.Context) *Agent {
	a, _ := c.Get(ctxAgent).(*Agent)
	return a
}

// bearer extracts an RFC 6750 bearer token. ok is false when no
// Authorization header was sent. Basic credentials are left to the
// caller (basic is true).
func bearer(c echo.Context) (tok string, ok bool, err error) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", false, nil
	}
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return "", true, apierr.InvalidToken("Authorization: Bearer is empty; send the access token after it")
		}
		return rest, true, nil
	case strings.EqualFold(scheme, "Basic"):
		return "", true, apierr.InvalidToken("Basic credentials are personal access tokens, which work on the agent API only (/api/v1)")
	default:
		return "", true, apierr.InvalidToken("unsupported Authorization scheme " + quoteShort(scheme) + "; use Authorization: Bearer <access token>")
	}
}

func quoteShort(s string) string {
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return `"` + headerSafe(s) + `"`
}

func verifyErr(err error) error {
	var ve *token.VerifyError
	if errors.As(err, &ve) {
		return apierr.InvalidToken(ve.Reason)
	}
	return apierr.Internal(err)
}

// RequireAgent authenticates an agent-family caller by bearer JWT or by
// the api_access_token header.
func (s *Server) RequireAgent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		a, err := s.authenticateAgent(c)
		if err != nil {
			return err
		}
		c.Set(ctxAgent, a)
		return next(c)
	}
}

func (s *Server) authenticateAgent(c echo.Context) (*Agent, error) {
	r := c.Request()
	h, apiTok := r.Header.Get(echo.HeaderAuthorization), r.Header.Get(headerAPIToken)
	if h != "" && apiTok != "" {
		return nil, apierr.InvalidToken("send one credential: either Authorization or api_access_token, not both")
	}
	if apiTok != "" {
		return s.apiTokenAgent(c, apiTok)
	}
	if h == "" {
		return nil, apierr.InvalidToken("no credentials; send Authorization: Bearer <access token> or the api_access_token header")
	}
	if scheme, _, _ := strings.Cut(h, " "); strings.EqualFold(scheme, "Basic") {
		return s.personalAgent(c, h)
	}
	tok, _, err := bearer(c)
	if err != nil {
		return nil, err
	}
	switch {
	case token.HasPrefix(tok, token.PrefixPersonal):
		return nil, apierr.InvalidToken("personal access tokens use the Basic scheme, not Bearer: Authorization: Basic base64(account_id:token)")
	case token.HasPrefix(tok, token.PrefixAPIToken), token.HasPrefix(tok, token.PrefixBot), token.HasPrefix(tok, token.PrefixPlatform):
		return nil, apierr.InvalidToken("this is an API token; send it in the api_access_token header, not as a bearer")
	case token.HasPrefix(tok, token.PrefixRefresh), token.HasPrefix(tok, token.PrefixCustomerRefresh):
		return nil, apierr.InvalidToken("this is a refresh token, not an access token; exchange it at POST /api/v1/auth/token (or /oauth/token)")
	}

	claims, err := s.Agents.Verify(tok)
	if err != nil {
		return nil, verifyErr(err)
	}
	return &Agent{AgentClaims: claims, Via: "jwt"}, nil
}

// apiTokenAgent authenticates the api_access_token header: a user's API
// token or an agent bot's token.
func (s *Server) apiTokenAgent(c echo.Context, tok string) (*Agent, error) {
	ctx := c.Request().Context()
	switch {
	case token.HasPrefix(tok, token.PrefixBot):
		cr, err := s.credential(c, tok, "bot")
		if err != nil {
			return nil, err
		}
		return &Agent{AgentClaims: shared.AgentClaims{Subject: "bot:" + strconv.FormatInt(cr.ID, 10), Audience: shared.AudienceAgent, Org: cr.OrgID,
			Scope: shared.Scope{Role: shared.RoleBot, API: shared.FirstParty}}, Via: "bot"}, nil
	case token.HasPrefix(tok, token.PrefixPlatform):
		return nil, apierr.InvalidToken("platform tokens work only on the platform API (/platform/api/v1)")
	case token.HasPrefix(tok, token.PrefixPersonal):
		return nil, apierr.InvalidToken("personal access tokens use Authorization: Basic base64(account_id:token), not api_access_token")
	}
	u, err := s.Auth.AuthenticateAPIToken(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &Agent{AgentClaims: agentauth.ClaimsForUser(u), Via: "api_token"}, nil
}

// personalAgent authenticates a personal access token sent as
// Basic base64(account_id:token).
func (s *Server) personalAgent(c echo.Context, header string) (*Agent, error) {
	account, tok, err := agentauth.ParsePATBasic(header)
	if err != nil {
		return nil, apierr.InvalidToken(err.Error())
	}
	if !token.HasPrefix(tok, token.PrefixPersonal) {
		return nil, apierr.InvalidToken("the token in the Basic credential is not a personal access token (they start with " + token.PrefixPersonal + ")")
	}
	cr, err := s.credential(c, tok, "pat")
	if err != nil {
		return nil, err
	}
	if cr.OrgID != account {
		return nil, apierr.InvalidToken("the account_id in the Basic credential is not this token's account; use " + strconv.FormatInt(cr.OrgID, 10))
	}
	u, err := s.Store.UserByID(c.Request().Context(), cr.UserID)
	if err != nil {
		return nil, apierr.InvalidToken("the owner of this personal access token no longer exists")
	}
	scope, err := shared.ParseScope(cr.Scope)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	if !u.Role.Includes(scope.Role) {
		scope.Role = u.Role // a demoted owner's token shrinks with them
	}
	return &Agent{AgentClaims: shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Audience: shared.AudienceAgent, Org: u.OrgID, Scope: scope}, Via: "pat"}, nil
}

// credential finds a long-lived credential of kind by its secret, checks
// its expiry, and records its use (at most once a minute; the first use
// goes to the audit log).
func (s *Server) credential(c echo.Context, secret, kind string) (sqlstore.Credential, error) {
	ctx := c.Request().Context()
	cr, err := s.Store.CredentialByHash(ctx, token.Hash(secret))
	if errors.Is(err, sqlstore.ErrNotFound) || (err == nil && cr.Kind != kind) {
		return cr, apierr.InvalidToken("this token is not valid: it was revoked or reset, or never existed")
	}
	if err != nil {
		return cr, apierr.Internal(err)
	}
	now := time.Now()
	if !cr.ExpiresAt.IsZero() && !now.Before(cr.ExpiresAt) {
		return cr, apierr.InvalidToken("this token expired " + token.Ago(now.Sub(cr.ExpiresAt)) + "; create a new one")
	}
	if now.Sub(cr.LastUsedAt) > time.Minute {
		first, err := s.Store.TouchCredential(ctx, cr.ID, now)
		if err != nil {
			return cr, apierr.Internal(err)
		}
		if first {
			s.audit(c, cr.OrgID, "credential.first_use", kind+":"+strconv.FormatInt(cr.ID, 10), cr.Name)
		}
	}
	return cr, nil
}

// audit records a credential event; a failure is logged, never shown.
func (s *Server) audit(c echo.Context, org int64, event, subject, detail string) {
	actor := ""
	if a := AgentFrom(c); a != nil {
		actor = a.Subject
	}
	if err := s.Store.Audit(c.Request().Context(), sqlstore.AuditEvent{OrgID: org, Actor: actor, Event: event, Subject: subject, Detail: detail}); err != nil {
		s.log.Warn("audit event lost", "event", event, "err", err)
	}
}

// allow checks the matrix and the token's API scopes for one action, and
// says which role or scope is missing.
func allow(a *Agent, res shared.Resource, act shared.Action) error {
	if !shared.Allowed(a.Scope.Role, res, act) {
		min := shared.MinRole(res, act)
		if !min.Valid() {
			return apierr.InsufficientScope("nobody may " + act.String() + " " + res.String())
		}
		return apierr.InsufficientScope("role " + min.String() + " or higher is needed to " + act.String() + " " + res.String() + "; this token has role " + a.Scope.Role.String())
	}
	need := shared.Required(res, act)
	if missing := need &^ a.Scope.API; missing != 0 {
		return apierr.InsufficientScope("scope " + missing.String() + " is needed to " + act.String() + " " + res.String() + "; this token has scope \"" + a.Scope.String() + "\"")
	}
	return nil
}
