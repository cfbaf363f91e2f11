// Package httpapi is chatauth's Echo server: the route table, the
// middleware (request ids, access logs, body limits, the two bearer
// families), the one error handler, and the handlers, which translate
// between HTTP and the services.
package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gorilla/sessions"

	"chatauth/backend/accesslog"
	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/directory"
	"chatauth/backend/dpop"
	"chatauth/backend/hub"
	"chatauth/backend/identity"
	"chatauth/backend/oauth"
	"chatauth/backend/sqlstore"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
)

// Deps is everything the handlers use.
type Deps struct {
	Store            *sqlstore.DB
	Keys             *token.Keys
	Agents           *token.AgentVerifier
	Customers        *token.CustomerVerifier
	Auth             *agentauth.Service
	Log              *slog.Logger
	TrustProxyHeader bool
	// IndexHTML is served at "/".
	IndexHTML []byte
	OAuth     *oauth.Provider
	Sessions  *sessions.CookieStore
	// Issuer is CHATAUTH_ISSUER, the base of every absolute URL we publish.
	Issuer           string
	CustomerAuth     *customerauth.Service
	CustomerSessions *VisitorCookies
	// Identity verifies identity tokens and makes identity keys.
	Identity *identity.Verifier
	// DPoP checks the proofs of sender-constrained tokens (RFC 9449).
	DPoP *dpop.Checker
	// Creations rate-limits new visitors per client IP.
	Creations *throttle.Window
	// Inspector classifies every presented secret; Cascade carries
	// revocation events to derived credentials; Guesses throttles secret
	// guesses (backend/credential, backend/throttle).
	Inspector *credential.Inspector
	Cascade   *credential.Cascade
	Guesses   *throttle.Guesses
	// Users is user management, for the agent and platform APIs alike.
	Users *directory.Users
	// Revoked says whether a session was revoked (the revocation set):
	// event streams end within a second of it. StreamLimits bound
	// concurrent streams.
	Revoked      func(sid string) bool
	StreamLimits hub.Limits
	// SelfNotified reports that this process hears its own announcements
	// of new messages (LISTEN/NOTIFY is up): the hub is then woken by the
	// notification alone, and reads a new message once.
	SelfNotified func() bool
	// DemoClientID is the public client of the demo page at "/".
	DemoClientID string
	// Platform enables /platform/api/v1 (CHATAUTH_PLATFORM).
	Platform bool
	// AccessLog writes the line per request; nil writes it through Log.
	AccessLog *accesslog.Logger
}

// Server is the HTTP face of chatauth.
type Server struct {
	Deps
	e     *echo.Echo
	log   *slog.Logger
	table []Route
	// Hub holds the event streams of this process.
	Hub *hub.Hub
	// requestID makes the id of a request that brought none.
	requestID func() string
}

// New builds the router.
func New(d Deps) *Server {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{Deps: d, e: e, log: d.Log, requestID: newRequestIDs()}
	s.Hub = hub.New(s.loadMessages, d.Revoked, d.StreamLimits, d.Log)
	if s.AccessLog == nil {
		s.AccessLog = accesslog.New(d.Log, nil, accesslog.Text)
	}
	e.HTTPErrorHandler = s.handleError
	e.JSONSerializer = jsonSerializer{}
	// Without a trusted proxy, X-Forwarded-For is attacker-controlled and
	// would let anyone dodge the per-IP login throttle.
	if d.TrustProxyHeader {
		e.IPExtractor = echo.ExtractIPFromXFFHeader()
	} else {
		e.IPExtractor = echo.ExtractIPDirect()
	}
	e.Use(s.frame)
	s.routes()
	return s
}

// Handler is the server as an http.Handler (for httptest and http.Server).
func (s *Server) Handler() http.Handler { return s.e }

// Echo exposes the router so later route groups can be mounted.
func (s *Server) Echo() *echo.Echo { return s.e }

func (s *Server) routes() {
	e := s.e
	e.GET("/", s.index)
	e.GET("/healthz", s.healthz)
	e.GET("/web/dist/*", s.serveDist)
	e.GET("/web/widget.js", s.serveAsset("widget.js"))
	e.GET("/console", s.serveAsset("console/index.html"))
	e.GET("/console/", s.serveAsset("console/index.html"))
	e.GET("/console/:file", s.serveConsoleFile)
	e.GET("/.well-known/jwks.json", s.jwks)

	v1 := e.Group("/api/v1")
	v1.POST("/auth/token", s.postAuthToken)
	// no-store before the bearer check, so its 401 carries it too.
	v1.GET("/auth/token", s.getAuthToken, noStoreFirst, s.RequireAgent)
	v1.POST("/auth/logout", s.logout, s.RequireAgent)
	v1.POST("/auth/logout_all", s.logoutAll, s.RequireAgent)
	v1.GET("/profile", s.getProfile, s.RequireAgent)
	v1.PATCH("/profile", s.patchProfile, s.RequireAgent)
	v1.POST("/profile/reset_access_token", s.resetAccessToken, s.RequireAgent)
	s.chatRoutes(v1)
	s.clientRoutes(v1)
	s.identityKeyRoutes(v1)
	s.credentialRoutes(v1)
	s.oauthRoutes()
	s.customerRoutes()
	s.platformRoutes()
}

// frame is the outermost middleware. It gives the request its id, bounds
// its body, turns a panic into a logged 500, renders any error through
// the one error handler, and writes one access-log line. The line has the
// path without the query string, since refresh tokens and SSE bearers
// travel there, and never a header value. One middleware instead of
// Echo's RequestID, Recover, BodyLimit and a logger: the cheapest requests
// are dominated by what wraps them, and Echo v4 re-wraps every middleware
// on every request.
func (s *Server) frame(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		r, w := c.Request(), c.Response()
		id := r.Header.Get(echo.HeaderXRequestID)
		if !validRequestID(id) {
			id = s.requestID()
		}
		w.Header()[echo.HeaderXRequestID] = []string{id}
		var err error
		switch {
		case r.ContentLength > maxBody:
			err = tooLarge()
		case r.Body != http.NoBody:
			// Every body is bounded, whoever reads it; past the limit
			// the read fails and net/http closes the connection rather
			// than read the rest.
			r.Body = http.MaxBytesReader(w.Writer, r.Body, maxBody)
			fallthrough
		default:
			err = s.serveRecovering(c, next)
		}
		if err != nil {
			c.Error(err)
		}
		level := slog.LevelInfo
		if w.Status >= 500 {
			level = slog.LevelError
		}
		s.AccessLog.Log(r.Context(), &accesslog.Entry{Time: start, Level: level, RequestID: id, Method: r.Method, Path: r.URL.Path,
			Status: w.Status, Bytes: w.Size, Duration: time.Since(start), IP: c.RealIP()})
		return nil
	}
}

// serveRecovering runs next and turns a panic into an internal error,
// logged with its stack; the person sees a 500 with the request id.
func (s *Server) serveRecovering(c echo.Context, next echo.HandlerFunc) (err error) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p) // net/http's way to abort a response; it logs nothing
		}
		stack := make([]byte, 8<<10)
		stack = stack[:runtime.Stack(stack, false)]
		s.log.Error("handler panicked", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "panic", fmt.Sprint(p), "stack", string(stack))
		err = apierr.Internal(fmt.Errorf("panic: %v", p))
	}()
	return next(c)
}

// validRequestID accepts a caller's X-Request-ID (a proxy's or a
// tracer's) only when it is short and plain, so it can neither bloat nor
// forge a log line; otherwise the server makes its own.
func validRequestID(id string) bool { return len(id) <= 128 && accesslog.Plain(id) }

func (s *Server) healthz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		s.log.Warn("health check: database unreachable", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok", "database": s.Store.Kind()})
}

// index serves the demo site with the demo client's id filled in.
func (s *Server) index(c echo.Context) error {
	page := bytes.ReplaceAll(s.IndexHTML, []byte("__DEMO_CLIENT_ID__"), []byte(s.DemoClientID))
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.HTMLBlob(http.StatusOK, page)
}

func (s *Server) jwks(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.Blob(http.StatusOK, "application/json", s.Keys.JWKS())
}

// newRequestIDs makes request ids from a random per-process prefix and a
// counter: unique across processes and restarts, and a fraction of the
// cost of Echo's 32 random characters per request. A request id only
// needs to find a log line; it is not a secret.
func newRequestIDs() func() string {
	var b [6]byte
	rand.Read(b[:])
	prefix := hex.EncodeToString(b[:]) + "-"
	var n atomic.Uint64
	return func() string { return prefix + strconv.FormatUint(n.Add(1), 36) }
}

// announced wakes the streams of conv after a message was stored, unless
// the notification the store sent in its transaction will.
func (s *Server) announced(conv int64) {
	if s.SelfNotified == nil || !s.SelfNotified() {
		s.Hub.Notify(conv)
	}
}
