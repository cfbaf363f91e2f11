package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/shared"
)

type authTokenRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`
	ClientID     string `json:"clientId"`
}

// noStore marks an answer that carries (or answers a request for) a
// token as never to be cached, by the browser or anything between (RFC
// 6749 §5.1; Pragma for HTTP/1.0 caches). Set first, so error answers
// carry it too: the error handler keeps the headers already set.
func noStore(c echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// noStoreFirst is noStore as a middleware, for routes whose middleware
// may answer before the handler runs.
func noStoreFirst(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		noStore(c)
		return next(c)
	}
}

// postAuthToken is password login, or refresh after expiry when the body
// carries a refresh token (docs/api.md, "Agent authentication").
func (s *Server) postAuthToken(c echo.Context) error {
	noStore(c)
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
	noStore(c)
	a := AgentFrom(c)
	rt := c.QueryParam("refreshToken")
	if rt == "" {
		return apierr.InvalidRequest("refreshToken: required as a query parameter")
	}
	if !a.Cred.FirstParty() {
		return apierr.InvalidToken("refreshing before expiry needs the access token of the same sign-in as the refresh token, not " + string(a.Cred.Kind) + " credentials")
	}
	p, err := s.Auth.Refresh(c.Request().Context(), rt, agentauth.BySession(a.Subject, a.Session))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// self loads the caller's own user record.
func (s *Server) self(c echo.Context, act shared.Action) (domain.User, error) {
	a := AgentFrom(c)
	if err := allow(a, shared.Self, act); err != nil {
		return domain.User{}, err
	}
	id, err := strconv.ParseInt(a.Subject, 10, 64)
	if err != nil {
		return domain.User{}, apierr.NotFound("this token does not belong to a user, so it has no profile")
	}
	u, err := s.Store.UserByID(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) || (err == nil && u.OrgID != a.Org) {
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
		// ChangePassword writes the password alone; the name below.
		if err := s.Auth.ChangePassword(ctx, &u, req.CurrentPassword, *req.Password, AgentFrom(c).Session, c.RealIP()); err != nil {
			return err
		}
	}
	if req.Name != nil {
		if err := s.Store.UpdateUser(ctx, &u, "name"); err != nil {
			return apierr.Internal(err)
		}
	}
	return c.JSON(http.StatusOK, agentauth.ProfileOf(u))
}

func (s *Server) resetAccessToken(c echo.Context) error {
	if _, err := s.self(c, shared.Update); err != nil {
		return err
	}
	tok, err := s.Auth.ResetAPIToken(c.Request().Context(), AgentFrom(c).Cred)
	if err != nil {
		return err
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string]string{"access_token": tok})
}

// logout ends the caller's sign-in: its refresh family and every access
// token of it, on every process (docs/security.md, I6).
func (s *Server) logout(c echo.Context) error {
	a := AgentFrom(c)
	if !a.Cred.FirstParty() {
		return apierr.InvalidRequest("Authorization: signing out ends a sign-in; send the access token of the sign-in (from POST /api/v1/auth/token). Revoke OAuth tokens at /oauth/revoke, personal tokens at DELETE /api/v1/personal_access_tokens/{id}")
	}
	if err := s.Cascade.SignOut(c.Request().Context(), a.Session); err != nil {
		return apierr.Internal(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// logoutAll ends every sign-in of the caller's user.
func (s *Server) logoutAll(c echo.Context) error {
	a := AgentFrom(c)
	if !a.Cred.FirstParty() {
		return apierr.InvalidRequest("Authorization: signing out everywhere needs the access token of a sign-in (from POST /api/v1/auth/token)")
	}
	if err := s.Cascade.SignOutAll(c.Request().Context(), a.Cred.UserID()); err != nil {
		return apierr.Internal(err)
	}
	return c.NoContent(http.StatusNoContent)
}
