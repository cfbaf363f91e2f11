package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

type authTokenRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`
	ClientID     string `json:"clientId"`
}

// postAuthToken is password login, or refresh after expiry when the body
// carries a refresh token (SPEC §4).
func (s *Server) postAuthToken(c echo.Context) error {
	var req authTokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	switch {
	case req.RefreshToken != "":
		if err := required("clientId", req.ClientID); err != nil {
			return apierr.InvalidRequest("clientId: required with refreshToken; send the email (or bot id) the token was issued to")
		}
		p, err := s.Auth.Refresh(ctx, req.RefreshToken, agentauth.ByClientID(req.ClientID))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, p)
	case req.Email != "" || req.Password != "":
		if err := first(required("email", req.Email), required("password", req.Password), maxLen("email", req.Email, 254), maxLen("password", req.Password, 1024)); err != nil {
			return err
		}
		p, err := s.Auth.Login(ctx, req.Email, req.Password, c.RealIP())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, p)
	default:
		return apierr.InvalidRequest("send {\"email\",\"password\"} to sign in, or {\"refreshToken\",\"clientId\"} to refresh")
	}
}

// getAuthToken is refresh before expiry: a valid bearer and its refresh
// token in the query.
func (s *Server) getAuthToken(c echo.Context) error {
	a := AgentFrom(c)
	rt := c.QueryParam("refreshToken")
	if rt == "" {
		return apierr.InvalidRequest("refreshToken: required as a query parameter")
	}
	p, err := s.Auth.Refresh(c.Request().Context(), rt, agentauth.BySubject(a.Subject))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// self loads the caller's own user record.
func (s *Server) self(c echo.Context, act shared.Action) (sqlstore.User, error) {
	a := AgentFrom(c)
	if err := allow(a, shared.Self, act); err != nil {
		return sqlstore.User{}, err
	}
	id, err := strconv.ParseInt(a.Subject, 10, 64)
	if err != nil {
		return sqlstore.User{}, apierr.NotFound("this token does not belong to a user, so it has no profile")
	}
	u, err := s.Store.UserByID(c.Request().Context(), id)
	if errors.Is(err, sqlstore.ErrNotFound) || (err == nil && u.OrgID != a.Org) {
		return u, apierr.InvalidToken("the user of this token no longer exists")
	}
	if err != nil {
		return u, apierr.Internal(err)
	}
	return u, nil
}

func (s *Server) getProfile(c echo.Context) error {
	u, err := s.self(c, shared.Fetch)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, agentauth.ProfileOf(u))
}

type profilePatch struct {
	Name            *string `json:"name"`
	Password        *string `json:"password"`
	CurrentPassword string  `json:"current_password"`
}

func (s *Server) patchProfile(c echo.Context) error {
	var req profilePatch
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.self(c, shared.Update)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if req.Name == nil && req.Password == nil {
		return apierr.InvalidRequest("send name and/or password (with current_password) to update")
	}
	if req.Name != nil {
		if err := first(required("name", *req.Name), maxLen("name", *req.Name, 200)); err != nil {
			return err
		}
		u.Name = *req.Name
	}
	if req.Password != nil {
		if err := first(required("current_password", req.CurrentPassword), maxLen("password", *req.Password, 72)); err != nil {
			return err
		}
		// ChangePassword writes the whole user, the new name included.
		if err := s.Auth.ChangePassword(ctx, &u, req.CurrentPassword, *req.Password, AgentFrom(c).Session); err != nil {
			return err
		}
	} else if err := s.Store.UpdateUser(ctx, &u); err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, agentauth.ProfileOf(u))
}

func (s *Server) resetAccessToken(c echo.Context) error {
	u, err := s.self(c, shared.Update)
	if err != nil {
		return err
	}
	tok, err := s.Auth.ResetAPIToken(c.Request().Context(), u.ID)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"access_token": tok})
}
