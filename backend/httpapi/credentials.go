package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/oauth"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

func (s *Server) credentialRoutes(v1 *echo.Group) {
	const p = "/api/v1"
	// Personal access tokens are the caller's own: the matrix's
	// "user (self)" row.
	s.agentRoute(v1, p, "GET", "/personal_access_tokens", shared.Self, shared.Fetch, s.listPATs)
	s.agentRoute(v1, p, "POST", "/personal_access_tokens", shared.Self, shared.Update, s.createPAT)
	s.agentRoute(v1, p, "DELETE", "/personal_access_tokens/:id", shared.Self, shared.Update, s.deletePAT)
	// Bots and the audit log are administering the organization.
	s.agentRoute(v1, p, "GET", "/agent_bots", shared.Organization, shared.Update, s.listBots)
	s.agentRoute(v1, p, "POST", "/agent_bots", shared.Organization, shared.Update, s.createBot)
	s.agentRoute(v1, p, "POST", "/agent_bots/:id/reset_access_token", shared.Organization, shared.Update, s.resetBot)
	s.agentRoute(v1, p, "DELETE", "/agent_bots/:id", shared.Organization, shared.Update, s.deleteBot)
	acct := v1.Group("/accounts/:account_id")
	s.agentRoute(acct, p+"/accounts/:account_id", "POST", "/agent_bots/:id/reset_access_token", shared.Organization, shared.Update, s.resetBot, sameAccount)
	s.agentRoute(v1, p, "GET", "/audit_events", shared.Organization, shared.Update, s.listAudit)
	// The debugger inspects whatever credential it is given; it needs none.
	v1.GET("/token/info", s.tokenInfo)
	v1.POST("/token/info", s.tokenInfo)
}

func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

func renderPAT(c domain.Credential, secret string) map[string]any {
	m := map[string]any{"id": c.ID, "name": c.Name, "scopes": strings.Fields(c.Scope), "expires_at": ts(c.ExpiresAt),
		"last_used_at": ts(c.LastUsedAt), "created_at": ts(c.CreatedAt), "account_id": c.OrgID}
	if secret != "" {
		m["token"] = secret
	}
	return m
}

func (s *Server) selfUser(c echo.Context) (domain.User, error) {
	id, err := strconv.ParseInt(AgentFrom(c).Subject, 10, 64)
	if err != nil {
		return domain.User{}, apierr.New(apierr.CodeForbidden, "only users have personal access tokens; this token is a bot's or a client's")
	}
	u, err := s.Store.UserByID(c.Request().Context(), id)
	if err != nil {
		return u, apierr.InvalidToken("the user of this token no longer exists")
	}
	return u, nil
}

func (s *Server) listPATs(c echo.Context) error {
	u, err := s.selfUser(c)
	if err != nil {
		return err
	}
	list, err := s.Store.ListCredentials(c.Request().Context(), "pat", u.OrgID, u.ID)
	if err != nil {
		return apierr.Internal(err)
	}
	out := listPage{Data: make([]any, len(list))}
	for i, cr := range list {
		out.Data[i] = renderPAT(cr, "")
	}
	return c.JSON(http.StatusOK, out)
}

type patBody struct {
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	ExpiresIn *int64   `json:"expires_in"`
}

func (s *Server) createPAT(c echo.Context) error {
	var b patBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := first(required("name", b.Name), maxLen("name", b.Name, 200)); err != nil {
		return err
	}
	if len(b.Scopes) == 0 {
		return apierr.InvalidRequest("scopes: name at least one of read, write, chat (and optionally a role up to yours)")
	}
	holder := AgentFrom(c).Cred
	if err := credential.LongLived(holder, "creating a personal access token"); err != nil {
		return err
	}
	u, err := s.selfUser(c)
	if err != nil {
		return err
	}
	scope, err := oauth.ResolveScope(strings.Join(b.Scopes, " "), shared.FirstParty, u.Role)
	if err != nil {
		var oe *oauth.Error
		if errors.As(err, &oe) {
			return apierr.InvalidRequest("scopes: " + oe.Description)
		}
		return apierr.Internal(err)
	}
	if err := credential.Within(holder.Agent.Scope, scope); err != nil {
		return err
	}
	cr := domain.Credential{Kind: "pat", OrgID: u.OrgID, UserID: u.ID, Name: strings.TrimSpace(b.Name), Scope: scope.String()}
	if b.ExpiresIn != nil {
		if *b.ExpiresIn <= 0 || *b.ExpiresIn > 10*365*24*3600 {
			return apierr.InvalidRequest("expires_in: seconds from 1 to 315360000 (ten years); leave it out for a token that does not expire")
		}
		cr.ExpiresAt = time.Now().Add(time.Duration(*b.ExpiresIn) * time.Second)
	}
	secret, hash := token.NewOpaque(token.PrefixPersonal)
	cr.Hash = hash
	if err := s.Store.CreateCredential(c.Request().Context(), &cr); err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cr.OrgID, "credential.created", "pat:"+strconv.FormatInt(cr.ID, 10), cr.Name)
	c.Response().Header().Set("Cache-Control", "no-store")
	out := renderPAT(cr, secret)
	out["usage"] = "Authorization: Basic base64(" + strconv.FormatInt(cr.OrgID, 10) + ":<token>)"
	return c.JSON(http.StatusCreated, out)
}

func (s *Server) deletePAT(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	u, err := s.selfUser(c)
	if err != nil {
		return err
	}
	cr, err := s.Store.CredentialByID(c.Request().Context(), "pat", id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && cr.UserID != u.ID) {
		return apierr.NotFound("personal access token " + strconv.FormatInt(id, 10) + " not found")
	}
	if err != nil {
		return apierr.Internal(err)
	}
	if err := s.Store.DeleteCredential(c.Request().Context(), id); err != nil {
		return storeErr(err, shared.Self, id)
	}
	if err := s.Cascade.CredentialEnded(c.Request().Context(), sqlstore.CredentialParent("pat", id), "personal access token deleted"); err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cr.OrgID, "credential.revoked", "pat:"+strconv.FormatInt(id, 10), cr.Name)
	return c.NoContent(http.StatusNoContent)
}

func renderBot(c domain.Credential, secret string) map[string]any {
	m := map[string]any{"id": c.ID, "name": c.Name, "account_id": c.OrgID, "last_used_at": ts(c.LastUsedAt), "created_at": ts(c.CreatedAt)}
	if secret != "" {
		m["access_token"] = secret
	}
	return m
}

func (s *Server) listBots(c echo.Context) error {
	list, err := s.Store.ListCredentials(c.Request().Context(), "bot", AgentFrom(c).Org, 0)
	if err != nil {
		return apierr.Internal(err)
	}
	out := listPage{Data: make([]any, len(list))}
	for i, cr := range list {
		out.Data[i] = renderBot(cr, "")
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createBot(c echo.Context) error {
	var b struct {
		Name string `json:"name"`
	}
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := first(required("name", b.Name), maxLen("name", b.Name, 200)); err != nil {
		return err
	}
	if err := credential.LongLived(AgentFrom(c).Cred, "creating an agent bot"); err != nil {
		return err
	}
	secret, hash := token.NewOpaque(token.PrefixBot)
	cr := domain.Credential{Kind: "bot", OrgID: AgentFrom(c).Org, Name: strings.TrimSpace(b.Name), Scope: "bot read write chat", Hash: hash}
	if err := s.Store.CreateCredential(c.Request().Context(), &cr); err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cr.OrgID, "credential.created", "bot:"+strconv.FormatInt(cr.ID, 10), cr.Name)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, renderBot(cr, secret))
}

func (s *Server) orgBot(c echo.Context) (domain.Credential, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return domain.Credential{}, err
	}
	cr, err := s.Store.CredentialByID(c.Request().Context(), "bot", id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && cr.OrgID != AgentFrom(c).Org) {
		return cr, apierr.NotFound("agent bot " + strconv.FormatInt(id, 10) + " not found")
	}
	if err != nil {
		return cr, apierr.Internal(err)
	}
	return cr, nil
}

func (s *Server) resetBot(c echo.Context) error {
	cr, err := s.orgBot(c)
	if err != nil {
		return err
	}
	if err := credential.LongLived(AgentFrom(c).Cred, "resetting an agent bot's token"); err != nil {
		return err
	}
	secret, hash := token.NewOpaque(token.PrefixBot)
	if err := s.Store.ResetCredential(c.Request().Context(), cr.ID, hash); err != nil {
		return apierr.Internal(err)
	}
	if err := s.Cascade.CredentialEnded(c.Request().Context(), sqlstore.CredentialParent("bot", cr.ID), "bot token reset"); err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cr.OrgID, "credential.reset", "bot:"+strconv.FormatInt(cr.ID, 10), cr.Name)
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]any{"id": cr.ID, "access_token": secret})
}

func (s *Server) deleteBot(c echo.Context) error {
	cr, err := s.orgBot(c)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteCredential(c.Request().Context(), cr.ID); err != nil {
		return apierr.Internal(err)
	}
	if err := s.Cascade.CredentialEnded(c.Request().Context(), sqlstore.CredentialParent("bot", cr.ID), "bot deleted"); err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cr.OrgID, "credential.revoked", "bot:"+strconv.FormatInt(cr.ID, 10), cr.Name)
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listAudit(c echo.Context) error {
	var before int64
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return apierr.InvalidRequest("before: must be an event id")
		}
		before = n
	}
	events, err := s.Store.AuditEvents(c.Request().Context(), AgentFrom(c).Org, before, 100)
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"data": events})
}
