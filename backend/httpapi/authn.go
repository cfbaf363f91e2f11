package httpapi

import (
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
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

// AgentFrom returns the authenticated agent; requireAgent guarantees one.
func AgentFrom(c echo.Context) *Agent {
	a, _ := c.Get(ctxAgent).(*Agent)
	return a
}

// bearer extracts an RFC 6750 bearer token. ok is false when no
// Authorization header was sent.
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
		return "", true, apierr.InvalidToken("Basic credentials are for personal access tokens, which this server does not accept yet; use Authorization: Bearer <access token> or the api_access_token header")
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
	tok, sent, err := bearer(c)
	if err != nil {
		return nil, err
	}
	apiTok := c.Request().Header.Get("api_access_token")
	switch {
	case sent && apiTok != "":
		return nil, apierr.InvalidToken("send one credential: either Authorization or api_access_token, not both")
	case sent:
		claims, err := s.Agents.Verify(tok)
		if err != nil {
			return nil, verifyErr(err)
		}
		return &Agent{AgentClaims: claims, Via: "jwt"}, nil
	case apiTok != "":
		u, err := s.Auth.AuthenticateAPIToken(c.Request().Context(), apiTok)
		if err != nil {
			return nil, err
		}
		return &Agent{AgentClaims: agentauth.ClaimsForUser(u), Via: "api_token"}, nil
	default:
		return nil, apierr.InvalidToken("no credentials; send Authorization: Bearer <access token> or the api_access_token header")
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
