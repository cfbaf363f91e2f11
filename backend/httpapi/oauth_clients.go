package httpapi

import (
	"context"
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
	"chatauth/backend/token"
	"chatauth/shared"
)

// The client registry is part of administering an organization, so it is
// authorized as "update organization" (admin) by the matrix: (docs/api.md, "OAuth 2.0") says
// clients are managed by admins, and the matrix has no row of its own.
func (s *Server) clientRoutes(v1 *echo.Group) {
	const p = "/api/v1"
	s.agentRoute(v1, p, "GET", "/oauth/clients", shared.Organization, shared.Update, s.listClients)
	s.agentRoute(v1, p, "POST", "/oauth/clients", shared.Organization, shared.Update, s.createClient)
	s.agentRoute(v1, p, "GET", "/oauth/clients/:id", shared.Organization, shared.Update, s.fetchClient)
	s.agentRoute(v1, p, "PUT", "/oauth/clients/:id", shared.Organization, shared.Update, s.updateClient)
	s.agentRoute(v1, p, "PATCH", "/oauth/clients/:id", shared.Organization, shared.Update, s.updateClient)
	s.agentRoute(v1, p, "DELETE", "/oauth/clients/:id", shared.Organization, shared.Update, s.deleteClient)
	s.agentRoute(v1, p, "POST", "/oauth/clients/:id/reset_secret", shared.Organization, shared.Update, s.resetClientSecret)
}

type clientBody struct {
	Name           *string   `json:"name"`
	Company        *string   `json:"company"`
	RedirectURIs   *[]string `json:"redirect_uris"`
	ClientType     *string   `json:"client_type"`
	Scopes         *[]string `json:"scopes"`
	AllowedOrigins *[]string `json:"allowed_origins"`
	// IdentityRequired: only visitors the site identified (docs/identity.md).
	IdentityRequired *bool `json:"identity_required"`
	// DPoP: "required" (every token bound to a DPoP key) or "optional";
	// left out at creation, domain.Client.NewDPoP picks it.
	DPoP *string `json:"dpop"`
	// OpenID Connect (docs/oidc.md).
	PostLogoutRedirectURIs   *[]string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI     *string   `json:"backchannel_logout_uri"`
	IDTokenSignedResponseAlg *string   `json:"id_token_signed_response_alg"`
}

func renderClient(c domain.Client, secret string) map[string]any {
	m := map[string]any{
		"client_id": c.ID, "id": c.ID, "account_id": c.OrgID, "name": c.Name, "company": c.Company, "client_type": c.Type,
		"redirect_uris": nonNil(c.RedirectURIs), "scopes": strings.Fields(c.Scopes), "allowed_origins": nonNil(c.AllowedOrigins),
		"identity_required": c.IdentityRequired, "dpop": dpopOf(c),
		"post_logout_redirect_uris": nonNil(c.PostLogoutRedirectURIs), "backchannel_logout_uri": c.BackchannelLogoutURI, "id_token_signed_response_alg": idTokenAlgOf(c),
		"created_at": c.CreatedAt.UTC().Format(time.RFC3339Nano), "updated_at": c.UpdatedAt.UTC().Format(time.RFC3339Nano),
	}
	if secret != "" {
		m["client_secret"] = secret
	}
	return m
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// apply validates b onto c; create requires name and client_type.
func (b clientBody) apply(c *domain.Client, create bool) error {
	if create {
		if b.Name == nil {
			return apierr.InvalidRequest("name: required")
		}
		if b.ClientType == nil {
			return apierr.InvalidRequest("client_type: required; public (browser or mobile apps, no secret) or confidential (servers, with a secret)")
		}
	}
	if b.Name != nil {
		if err := first(required("name", *b.Name), maxLen("name", *b.Name, 200)); err != nil {
			return err
		}
		c.Name = strings.TrimSpace(*b.Name)
	}
	if b.Company != nil {
		if err := maxLen("company", *b.Company, 200); err != nil {
			return err
		}
		c.Company = strings.TrimSpace(*b.Company)
	}
	if b.ClientType != nil {
		if *b.ClientType != "public" && *b.ClientType != "confidential" {
			return apierr.InvalidRequest("client_type: must be public or confidential")
		}
		c.Type = *b.ClientType
	}
	if b.RedirectURIs != nil {
		if len(*b.RedirectURIs) > 20 {
			return apierr.InvalidRequest("redirect_uris: at most 20")
		}
		for i, u := range *b.RedirectURIs {
			if err := oauth.ValidateRedirectURI(u); err != nil {
				return apierr.InvalidRequest("redirect_uris[" + strconv.Itoa(i) + "]: " + err.Error())
			}
		}
		c.RedirectURIs = *b.RedirectURIs
	}
	if b.Scopes != nil {
		api, err := oauth.ParseClientScopes(*b.Scopes)
		if err != nil {
			return apierr.InvalidRequest("scopes: " + err.Error())
		}
		if api == 0 {
			return apierr.InvalidRequest("scopes: name at least one of read, write, chat")
		}
		c.Scopes = api.String()
	} else if create {
		c.Scopes = shared.FirstParty.String()
	}
	if b.AllowedOrigins != nil {
		if len(*b.AllowedOrigins) > 50 {
			return apierr.InvalidRequest("allowed_origins: at most 50")
		}
		for i, o := range *b.AllowedOrigins {
			if err := oauth.ValidateOrigin(o); err != nil {
				return apierr.InvalidRequest("allowed_origins[" + strconv.Itoa(i) + "]: " + err.Error())
			}
		}
		c.AllowedOrigins = *b.AllowedOrigins
	}
	if b.IdentityRequired != nil {
		c.IdentityRequired = *b.IdentityRequired
	}
	if b.DPoP != nil {
		if *b.DPoP != domain.DPoPRequired && *b.DPoP != domain.DPoPOptional {
			return apierr.InvalidRequest(`dpop: must be "required" or "optional"`)
		}
		c.DPoP = *b.DPoP
	} else if create {
		c.DPoP = c.NewDPoP()
	}
	if b.PostLogoutRedirectURIs != nil {
		if len(*b.PostLogoutRedirectURIs) > 20 {
			return apierr.InvalidRequest("post_logout_redirect_uris: at most 20")
		}
		// The same rules as redirect_uris: the browser is sent there.
		for i, u := range *b.PostLogoutRedirectURIs {
			if err := oauth.ValidateRedirectURI(u); err != nil {
				return apierr.InvalidRequest("post_logout_redirect_uris[" + strconv.Itoa(i) + "]: " + err.Error())
			}
		}
		c.PostLogoutRedirectURIs = *b.PostLogoutRedirectURIs
	}
	if b.BackchannelLogoutURI != nil {
		if u := *b.BackchannelLogoutURI; u != "" {
			if err := oauth.ValidateRedirectURI(u); err != nil {
				return apierr.InvalidRequest("backchannel_logout_uri: " + err.Error())
			}
		}
		c.BackchannelLogoutURI = *b.BackchannelLogoutURI
	}
	if b.IDTokenSignedResponseAlg != nil {
		switch *b.IDTokenSignedResponseAlg {
		case "RS256", "EdDSA":
			c.IDTokenAlg = *b.IDTokenSignedResponseAlg
		default:
			return apierr.InvalidRequest(`id_token_signed_response_alg: must be "RS256" (the default) or "EdDSA"`)
		}
	}
	return nil
}

func idTokenAlgOf(c domain.Client) string {
	if c.IDTokenAlg == "" {
		return "RS256"
	}
	return c.IDTokenAlg
}

func dpopOf(c domain.Client) string {
	if c.DPoP == "" {
		return domain.DPoPOptional
	}
	return c.DPoP
}

func (s *Server) listClients(c echo.Context) error {
	clients, err := s.Store.ListClients(c.Request().Context(), AgentFrom(c).Org)
	if err != nil {
		return apierr.Internal(err)
	}
	out := listPage{Data: make([]any, len(clients))}
	for i, cl := range clients {
		out.Data[i] = renderClient(cl, "")
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createClient(c echo.Context) error {
	var b clientBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := credential.LongLived(AgentFrom(c).Cred, "registering an OAuth client"); err != nil {
		return err
	}
	cl := domain.Client{ID: token.NewID(), OrgID: AgentFrom(c).Org}
	if err := b.apply(&cl, true); err != nil {
		return err
	}
	var secret string
	if cl.Type == "confidential" {
		secret, cl.SecretHash = token.NewOpaque(token.PrefixClientSecret)
	}
	if err := s.Store.CreateClient(c.Request().Context(), &cl); err != nil {
		return apierr.Internal(err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, renderClient(cl, secret))
}

func (s *Server) clientInTree(c echo.Context) (domain.Client, error) {
	id := c.Param("id")
	cl, err := s.Store.ClientInTree(c.Request().Context(), AgentFrom(c).Org, id)
	if errors.Is(err, domain.ErrNotFound) {
		return cl, apierr.NotFound("OAuth client " + quoteShort(id) + " not found")
	}
	if err != nil {
		return cl, apierr.Internal(err)
	}
	return cl, nil
}

func (s *Server) fetchClient(c echo.Context) error {
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderClient(cl, ""))
}

// updateClient changes a client. Becoming confidential issues a secret
// (shown in this answer only); becoming public drops it.
func (s *Server) updateClient(c echo.Context) error {
	var b clientBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := credential.LongLived(AgentFrom(c).Cred, "changing an OAuth client"); err != nil {
		return err
	}
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	was, wasRequired := cl.Type, cl.IdentityRequired
	if err := b.apply(&cl, false); err != nil {
		return err
	}
	var secret string
	newSecret := false
	switch {
	case was != "confidential" && cl.Type == "confidential":
		secret, cl.SecretHash = token.NewOpaque(token.PrefixClientSecret)
		newSecret = true
	case was == "confidential" && cl.Type == "public":
		cl.SecretHash, newSecret = nil, true
	}
	if err := s.Store.UpdateClient(c.Request().Context(), &cl); err != nil {
		return storeErrClient(err, cl.ID)
	}
	if newSecret {
		if err := s.Store.SetClientSecret(c.Request().Context(), cl.ID, cl.SecretHash); err != nil {
			return storeErrClient(err, cl.ID)
		}
	}
	if was == "confidential" && cl.Type == "public" {
		// Its tokens were minted on the strength of a secret it no longer
		// has (docs/security.md, I2).
		if err := s.Cascade.ClientChanged(c.Request().Context(), cl.ID, "client made public"); err != nil {
			return apierr.Internal(err)
		}
	}
	if cl.IdentityRequired && !wasRequired {
		// Its anonymous visitors end now, cleanly: their streams get a
		// revoked event, their next call identity_required.
		if err := s.Cascade.AnonymousVisitorsEnded(c.Request().Context(), cl.ID); err != nil {
			return apierr.Internal(err)
		}
		// Once more when every process has seen the change (the memo of a
		// client lives a second): a visitor that another process started
		// on its old copy ends too.
		id := cl.ID
		time.AfterFunc(1500*time.Millisecond, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Cascade.AnonymousVisitorsEnded(ctx, id); err != nil {
				s.log.Warn("ending anonymous visitors again", "client", id, "err", err)
			}
		})
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, renderClient(cl, secret))
}

func (s *Server) resetClientSecret(c echo.Context) error {
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	if cl.Type != "confidential" {
		return apierr.InvalidRequest("client_type: a public client has no secret; switch it to confidential first")
	}
	if err := credential.LongLived(AgentFrom(c).Cred, "resetting a client secret"); err != nil {
		return err
	}
	var secret string
	secret, cl.SecretHash = token.NewOpaque(token.PrefixClientSecret)
	if err := s.Store.SetClientSecret(c.Request().Context(), cl.ID, cl.SecretHash); err != nil {
		return storeErrClient(err, cl.ID)
	}
	// A reset answers a leaked secret: what it minted ends with it.
	if err := s.Cascade.ClientChanged(c.Request().Context(), cl.ID, "client secret reset"); err != nil {
		return apierr.Internal(err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, renderClient(cl, secret))
}

func (s *Server) deleteClient(c echo.Context) error {
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	if err := s.Cascade.DeleteClient(c.Request().Context(), cl.ID); err != nil {
		return storeErrClient(err, cl.ID)
	}
	return c.NoContent(http.StatusNoContent)
}

func storeErrClient(err error, id string) error {
	if errors.Is(err, domain.ErrNotFound) {
		return apierr.NotFound("OAuth client " + quoteShort(id) + " not found")
	}
	return apierr.Internal(err)
}
