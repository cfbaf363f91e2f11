package httpapi

import (
	"context"
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Agent is the caller on the agent API, however it authenticated.
type Agent struct {
	shared.AgentClaims
	// Cred is what the credential is (Cred.Kind), for the rules about
	// which credential may do what (backend/credential).
	Cred credential.Credential
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
	tok, _, ok, err = presented(c)
	return tok, ok, err
}

// presented is the access token of the Authorization header and whether
// it came under the DPoP scheme (RFC 9449, section 7.1) rather than
// Bearer; which of the two a token must use is decided by its binding
// (requireProof).
func presented(c echo.Context) (tok string, dpopScheme, ok bool, err error) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", false, false, nil
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"), strings.EqualFold(scheme, "DPoP"):
		if rest == "" {
			return "", false, true, apierr.InvalidToken("Authorization: " + scheme + " is empty; send the access token after it")
		}
		return rest, strings.EqualFold(scheme, "DPoP"), true, nil
	case strings.EqualFold(scheme, "Basic"):
		return "", false, true, apierr.InvalidToken("Basic credentials are personal access tokens, which work on the agent API only (/api/v1)")
	default:
		// The scheme is not repeated: a token sent without one would be
		// echoed in the answer.
		return "", false, true, apierr.InvalidToken("unsupported Authorization scheme; use Authorization: Bearer <access token> (or DPoP <access token> with a DPoP proof)")
	}
}

func quoteShort(s string) string {
	if len(s) > 20 {
		s = s[:20] + "…"
	}
	return `"` + headerSafe(s) + `"`
}

// invalidErr turns what Inspect refused into the API's 401.
func invalidErr(err error) error {
	var inv *credential.Invalid
	if errors.As(err, &inv) {
		return apierr.InvalidToken(inv.Reason)
	}
	return apierr.Internal(err)
}

// RequireAgent authenticates an agent-family caller by bearer JWT, by
// the api_access_token header or by a personal access token (Basic).
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

// wrongPlace refuses a credential of a kind that is not sent where it
// was, so a misplaced secret gets told where it goes.
func wrongPlace(k credential.Kind, where string) error {
	switch k {
	case credential.Personal:
		return apierr.InvalidToken("personal access tokens use Authorization: Basic base64(account_id:token), not " + where)
	case credential.API, credential.Bot:
		return apierr.InvalidToken("this is an API token; send it in the api_access_token header, not " + where)
	case credential.Platform:
		return apierr.InvalidToken("platform tokens work only on the platform API (/platform/api/v1)")
	case credential.Refresh, credential.CustomerRefresh:
		return apierr.InvalidToken("this is a refresh token, not an access token; exchange it at POST /api/v1/auth/token (or /oauth/token)")
	case credential.Customer:
		return apierr.InvalidToken("this is a customer token; the agent API needs an agent token (sign in at POST /api/v1/auth/token, or use an API or OAuth token). Customer tokens work on /customer/api/v1")
	}
	return apierr.InvalidToken("this credential does not go in " + where)
}

// opaqueKind is the kind an opaque secret's prefix announces, or "" for
// a JWT.
func opaqueKind(tok string) credential.Kind {
	switch {
	case token.HasPrefix(tok, token.PrefixPersonal):
		return credential.Personal
	case token.HasPrefix(tok, token.PrefixAPIToken):
		return credential.API
	case token.HasPrefix(tok, token.PrefixBot):
		return credential.Bot
	case token.HasPrefix(tok, token.PrefixPlatform):
		return credential.Platform
	case token.HasPrefix(tok, token.PrefixRefresh):
		return credential.Refresh
	case token.HasPrefix(tok, token.PrefixCustomerRefresh):
		return credential.CustomerRefresh
	}
	return ""
}

func (s *Server) authenticateAgent(c echo.Context) (*Agent, error) {
	r := c.Request()
	h, apiTok := r.Header.Get(echo.HeaderAuthorization), r.Header.Get(headerAPIToken)
	if h != "" && apiTok != "" {
		return nil, apierr.InvalidToken("send one credential: either Authorization or api_access_token, not both")
	}
	ctx := r.Context()
	var (
		cred credential.Credential
		err  error
	)
	switch {
	case apiTok != "":
		if k := opaqueKind(apiTok); k != credential.API && k != credential.Bot {
			if k == "" {
				return nil, apierr.InvalidToken("api_access_token is not a user API token of this server (they start with " + token.PrefixAPIToken + "); reset it at POST /api/v1/profile/reset_access_token")
			}
			return nil, wrongPlace(k, "api_access_token")
		}
		cred, err = s.inspectOpaque(c, func() (credential.Credential, error) { return s.Inspector.Inspect(ctx, apiTok) })
	case h == "":
		return nil, apierr.InvalidToken("no credentials; send Authorization: Bearer <access token> or the api_access_token header")
	default:
		if scheme, _, _ := strings.Cut(h, " "); strings.EqualFold(scheme, "Basic") {
			cred, err = s.inspectOpaque(c, func() (credential.Credential, error) { return s.Inspector.InspectBasic(ctx, h) })
			break
		}
		tok, dpopScheme, _, berr := presented(c)
		if berr != nil {
			return nil, berr
		}
		if k := opaqueKind(tok); k != "" {
			return nil, wrongPlace(k, "Authorization: Bearer")
		}
		if cred, err = s.Inspector.JWT(tok); err != nil {
			return nil, invalidErr(err)
		}
		if cred.Kind == credential.Customer {
			return nil, wrongPlace(credential.Customer, "")
		}
		// A client that requires DPoP refuses its own unbound tokens
		// too, such as those issued before the switch.
		required, err := s.clientRequiresDPoP(ctx, cred.Agent)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		if err := s.requireProof(c, tok, dpopScheme, shared.BoundKey(cred.Agent.Cnf), required); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.Inspector.Use(ctx, cred); err != nil {
		return nil, apierr.Internal(err)
	}
	return &Agent{AgentClaims: cred.Agent, Cred: cred}, nil
}

// clientRequiresDPoP reports whether the OAuth client of an unbound
// token requires DPoP: such a client refuses its own unbound tokens too,
// such as those issued before the switch, wherever they are presented.
func (s *Server) clientRequiresDPoP(ctx context.Context, a shared.AgentClaims) (bool, error) {
	if a.ClientID == "" || a.Cnf != nil {
		return false, nil
	}
	cl, err := s.Store.Client(ctx, a.ClientID)
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	}
	return cl.DPoP == domain.DPoPRequired, err
}

// inspectOpaque inspects a secret that is looked up by its hash (API,
// bot and personal tokens) under the guess throttle: a wrong one is
// counted against the client IP, in the database, and a blocked IP is
// refused before the lookup.
func (s *Server) inspectOpaque(c echo.Context, inspect func() (credential.Credential, error)) (credential.Credential, error) {
	keys := s.Guesses.IPKeys(c.RealIP())
	if err := s.Guesses.CheckFast(keys); err != nil {
		return credential.Credential{}, err
	}
	cred, err := inspect()
	var inv *credential.Invalid
	if errors.As(err, &inv) {
		return cred, s.Guesses.Fail(c.Request().Context(), keys, 0, "", apierr.InvalidToken(inv.Reason))
	}
	if err != nil {
		return cred, apierr.Internal(err)
	}
	return cred, nil
}

// audit records a credential event; a failure is logged, never shown.
func (s *Server) audit(c echo.Context, org int64, event, subject, detail string) {
	actor := ""
	if a := AgentFrom(c); a != nil {
		actor = a.Subject
	}
	if err := s.Store.Audit(c.Request().Context(), domain.AuditEvent{OrgID: org, Actor: actor, Event: event, Subject: subject, Detail: detail}); err != nil {
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
