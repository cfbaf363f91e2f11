package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/token"
	"chatauth/shared"
)

// platformRoutes mounts the platform API (Chatwoot's, for server-to-
// server management of accounts and users) in platform mode only; with
// the mode off the paths do not exist (404).
func (s *Server) platformRoutes() {
	if !s.Platform {
		return
	}
	g := s.e.Group("/platform/api/v1", s.RequirePlatform)
	g.GET("/accounts", s.platformListAccounts)
	g.POST("/accounts", s.platformCreateAccount)
	g.GET("/accounts/:id", s.platformAccount)
	g.PATCH("/accounts/:id", s.platformPatchAccount)
	g.DELETE("/accounts/:id", s.platformDeleteAccount)
	g.GET("/users", s.platformListUsers)
	g.POST("/users", s.platformCreateUser)
	g.GET("/users/:id", s.platformUser)
	g.PATCH("/users/:id", s.platformPatchUser)
	g.DELETE("/users/:id", s.platformDeleteUser)
}

// RequirePlatform accepts platform tokens only, in api_access_token.
func (s *Server) RequirePlatform(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := c.Request().Header.Get(headerAPIToken)
		if !token.HasPrefix(tok, token.PrefixPlatform) {
			return apierr.InvalidToken("the platform API takes platform tokens only, in the api_access_token header (make one with `chatauth platform-token create NAME`); agent, bot, OAuth and customer tokens do not work here")
		}
		cred, err := s.inspectOpaque(c, func() (credential.Credential, error) { return s.Inspector.Inspect(c.Request().Context(), tok) })
		if err != nil {
			return err
		}
		if err := s.Inspector.Use(c.Request().Context(), cred); err != nil {
			return apierr.Internal(err)
		}
		return next(c)
	}
}

func (s *Server) platformListAccounts(c echo.Context) error {
	after, limit, err := page(c)
	if err != nil {
		return err
	}
	orgs, more, err := s.Store.AllOrganizations(c.Request().Context(), after, limit)
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, pageOf(orgs, more, orgID, renderOrg))
}

func (s *Server) platformOrg(c echo.Context) (domain.Organization, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return domain.Organization{}, err
	}
	o, err := s.Store.Organization(c.Request().Context(), id)
	if err != nil {
		return o, storeErr(err, shared.Organization, id)
	}
	return o, nil
}

func (s *Server) platformAccount(c echo.Context) error {
	o, err := s.platformOrg(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderOrg(o))
}

func (s *Server) platformCreateAccount(c echo.Context) error {
	var req orgBody
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return apierr.InvalidRequest("name: required")
	}
	if err := first(required("name", *req.Name), maxLen("name", *req.Name, 200)); err != nil {
		return err
	}
	o := &domain.Organization{Name: strings.TrimSpace(*req.Name)}
	if req.ParentID != nil {
		if _, err := s.Store.Organization(c.Request().Context(), *req.ParentID); err != nil {
			return apierr.InvalidRequest("parent_id: no such account")
		}
		o.ParentID = *req.ParentID
	}
	if err := s.Store.CreateOrganization(c.Request().Context(), o); err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusCreated, renderOrg(*o))
}

func (s *Server) platformPatchAccount(c echo.Context) error {
	var req orgBody
	if err := decode(c, &req); err != nil {
		return err
	}
	o, err := s.platformOrg(c)
	if err != nil {
		return err
	}
	if req.ParentID != nil {
		return apierr.InvalidRequest("parent_id: cannot be changed")
	}
	if err := s.renameOrg(c, &o, req.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderOrg(o))
}

func (s *Server) platformDeleteAccount(c echo.Context) error {
	o, err := s.platformOrg(c)
	if err != nil {
		return err
	}
	if err := s.Store.DeleteOrganization(c.Request().Context(), o.ID); err != nil {
		if errors.Is(err, domain.ErrInUse) {
			return apierr.Conflict("account still has child accounts, users or data; delete them first so nothing is lost")
		}
		return storeErr(err, shared.Organization, o.ID)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) platformListUsers(c echo.Context) error {
	after, limit, err := page(c)
	if err != nil {
		return err
	}
	users, more, err := s.Store.AllUsers(c.Request().Context(), after, limit)
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, pageOf(users, more, userID, renderUser))
}

func (s *Server) platformUserByID(c echo.Context) (domain.User, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return domain.User{}, err
	}
	u, err := s.Store.UserByID(c.Request().Context(), id)
	if err != nil {
		return u, storeErr(err, shared.User, id)
	}
	return u, nil
}

func (s *Server) platformUser(c echo.Context) error {
	u, err := s.platformUserByID(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderUser(u))
}

func (s *Server) platformCreateUser(c echo.Context) error {
	var req userBody
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.AccountID == nil {
		return apierr.InvalidRequest("account_id: required; the account the user belongs to")
	}
	if _, err := s.Store.Organization(c.Request().Context(), *req.AccountID); err != nil {
		return apierr.InvalidRequest("account_id: no such account")
	}
	u, err := s.Users.Create(c.Request().Context(), nil, *req.AccountID, req.patch())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, renderUser(u))
}

func (s *Server) platformPatchUser(c echo.Context) error {
	var req userBody
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.platformUserByID(c)
	if err != nil {
		return err
	}
	if req.AccountID != nil {
		return apierr.InvalidRequest("account_id: cannot be changed")
	}
	if err := s.Users.Update(c.Request().Context(), nil, &u, req.patch()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderUser(u))
}

func (s *Server) platformDeleteUser(c echo.Context) error {
	u, err := s.platformUserByID(c)
	if err != nil {
		return err
	}
	if err := s.Users.Delete(c.Request().Context(), u.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
