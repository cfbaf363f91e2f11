package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
)

// CORS of the token and revocation endpoints, for the public clients
// that call them from a page (a single-page app with PKCE and DPoP): a
// page of an origin some client lists in allowed_origins may call them,
// without credentials (no cookie is read there), sending a DPoP proof
// and reading DPoP-Nonce. The client itself is authenticated as for any
// other caller; the origin only lets the browser show it the answer.

func (s *Server) corsOrigin(c echo.Context) (string, error) {
	origin := c.Request().Header.Get("Origin")
	if origin == "" {
		return "", nil
	}
	ok, err := s.Store.OriginAllowed(c.Request().Context(), origin)
	if err != nil {
		return "", apierr.Internal(err)
	}
	if !ok {
		return "", nil
	}
	return origin, nil
}

// tokenCORS adds the CORS answer headers for an allowed origin.
func (s *Server) tokenCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		origin, err := s.corsOrigin(c)
		if err != nil {
			return err
		}
		if origin != "" {
			h := c.Response().Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Expose-Headers", "DPoP-Nonce, WWW-Authenticate")
		}
		return next(c)
	}
}

// tokenPreflight answers the preflight of a page's POST.
func (s *Server) tokenPreflight(c echo.Context) error {
	origin, err := s.corsOrigin(c)
	if err != nil {
		return err
	}
	if origin == "" {
		return apierr.New(apierr.CodeForbidden, "origin "+quoteShort(c.Request().Header.Get("Origin"))+" is not in the allowed_origins of any client")
	}
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	return c.NoContent(http.StatusNoContent)
}
