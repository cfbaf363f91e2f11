package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

// statusOf is the one table from error code to HTTP status.
var statusOf = map[string]int{
	apierr.CodeInvalidToken:      http.StatusUnauthorized,
	apierr.CodeInvalidCredential: http.StatusUnauthorized,
	apierr.CodeInsufficientScope: http.StatusForbidden,
	apierr.CodeForbidden:         http.StatusForbidden,
	apierr.CodeSignInRequired:    http.StatusForbidden,
	apierr.CodeInvalidClient:     http.StatusBadRequest,
	apierr.CodeNotFound:          http.StatusNotFound,
	apierr.CodeMethodNotAllowed:  http.StatusMethodNotAllowed,
	apierr.CodeInvalidRequest:    http.StatusBadRequest,
	apierr.CodeConflict:          http.StatusConflict,
	apierr.CodeTooLarge:          http.StatusRequestEntityTooLarge,
	apierr.CodeTooManyRequests:   http.StatusTooManyRequests,
	apierr.CodeUnavailable:       http.StatusServiceUnavailable,
	apierr.CodeInternal:          http.StatusInternalServerError,
	shared.ErrInvalidIdentity:    http.StatusUnauthorized,
	shared.ErrIdentityExpired:    http.StatusUnauthorized,
	shared.ErrIdentityRequired:   http.StatusForbidden,
}

// fromEcho turns Echo's own errors (no route, wrong method, body too
// large) into ours, with a message that says what to do.
func fromEcho(he *echo.HTTPError, c echo.Context) *apierr.Error {
	r := c.Request()
	switch he.Code {
	case http.StatusNotFound:
		return apierr.NotFound("no such path: " + r.Method + " " + r.URL.Path + "; see the API in README.md")
	case http.StatusMethodNotAllowed:
		return apierr.New(apierr.CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	case http.StatusRequestEntityTooLarge:
		return tooLarge()
	case http.StatusUnauthorized:
		return apierr.InvalidToken("credentials are missing or malformed")
	case http.StatusBadRequest:
		return apierr.InvalidRequest("the request could not be read")
	case http.StatusServiceUnavailable:
		return apierr.New(apierr.CodeUnavailable, "the server is busy or shutting down; try again shortly")
	}
	if he.Code >= 500 {
		return apierr.Internal(he)
	}
	return &apierr.Error{Code: strings.ToLower(strings.ReplaceAll(http.StatusText(he.Code), " ", "_")), Message: http.StatusText(he.Code)}
}

// handleError renders every error with the body of (docs/api.md, "Errors"). Echo v4's default
// handler would turn a wrapped *echo.HTTPError into a 500 and, in debug
// mode, echo internal text; this one never shows an internal cause.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var e *apierr.Error
	var he *echo.HTTPError
	var big *http.MaxBytesError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &he):
		e = fromEcho(he, c)
	case errors.As(err, &big):
		e = tooLarge()
	default:
		e = apierr.Internal(err)
	}
	if e.Code == apierr.CodeInternal {
		e = unavailable(e)
	}
	status, ok := statusOf[e.Code]
	if !ok {
		status = http.StatusBadRequest
		if he != nil {
			status = he.Code
		}
	}
	if e.Status != 0 {
		status = e.Status
	}
	h := c.Response().Header()
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer realm="chatauth", error="invalid_token", error_description="`+headerSafe(e.Message)+`"`)
	case http.StatusForbidden:
		if e.Code == apierr.CodeInsufficientScope {
			h.Set("WWW-Authenticate", `Bearer realm="chatauth", error="insufficient_scope", error_description="`+headerSafe(e.Message)+`"`)
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		secs := int64(e.RetryAfter.Seconds() + 0.999)
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	for k, v := range e.Headers {
		h.Set(k, v)
	}
	body := map[string]string{"error": e.Code, "message": e.Message}
	if status >= 500 {
		id := c.Response().Header().Get(echo.HeaderXRequestID)
		body["request_id"] = id
		s.log.Error("request failed", "request_id", id, "method", c.Request().Method, "path", c.Request().URL.Path, "err", e.Internal)
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(status)
		return
	}
	if err := c.JSON(status, body); err != nil {
		s.log.Warn("write error response", "err", err)
	}
}

// unavailable turns an internal error that is really the database being
// down, full or read-only into a 503 that says so.
func unavailable(e *apierr.Error) *apierr.Error {
	msg, ok := sqlstore.Unavailable(e.Internal)
	if !ok {
		return e
	}
	return &apierr.Error{Code: apierr.CodeUnavailable, Message: msg, Internal: e.Internal, RetryAfter: time.Second}
}

// headerSafe keeps a message inside a quoted-string (RFC 7230 §3.2.6).
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r > 0x7e {
			return '\''
		}
		return r
	}, s)
}

func tooLarge() *apierr.Error {
	return apierr.New(apierr.CodeTooLarge, "request body is too large; the limit is "+strconv.Itoa(maxBody/1024)+" KB")
}
