// Package apptest starts a real chatauth (real router, real database) on
// an httptest server for integration tests, and speaks JSON to it.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"chatauth/backend/accesslog"
	"chatauth/backend/app"
	"chatauth/backend/config"
)

// Secret is the master secret every test app uses.
const Secret = "test-secret-0123456789-0123456789-abcdef"

// Env is one running app.
type Env struct {
	T   testing.TB
	App *app.App
	Srv *httptest.Server
	DSN string
	Cfg config.Config
}

// AdminEmail and AdminPassword are bootstrapped into every Env.
const (
	AdminEmail    = "admin@example.com"
	AdminPassword = "admin-password-1"
)

// Start runs chatauth on dsn with the given extra environment.
func Start(tb testing.TB, dsn string, extra map[string]string) *Env {
	tb.Helper()
	return start(tb, dsn, extra, nil)
}

// StartLoopback runs chatauth like Start, on a real loopback port whose
// URL is its issuer (CHATAUTH_ISSUER), for a client outside the process
// (a node script) that discovers it and checks that every iss matches.
func StartLoopback(tb testing.TB, dsn string, extra map[string]string) *Env {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	vars := map[string]string{"CHATAUTH_ISSUER": "http://" + ln.Addr().String()}
	for k, v := range extra {
		vars[k] = v
	}
	return start(tb, dsn, vars, ln)
}

func start(tb testing.TB, dsn string, extra map[string]string, ln net.Listener) *Env {
	tb.Helper()
	vars := map[string]string{
		"CHATAUTH_DB": dsn, "CHATAUTH_SECRET": Secret, "CHATAUTH_ISSUER": "http://chatauth.test",
		"CHATAUTH_ADMIN_EMAIL": AdminEmail, "CHATAUTH_ADMIN_PASSWORD": AdminPassword,
	}
	for k, v := range extra {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] }, nil)
	if err != nil {
		tb.Fatal(err)
	}
	// As in production: the access log's fast path writes beside slog.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	access := accesslog.New(log, io.Discard, accesslog.Text)
	a, err := app.New(context.Background(), cfg, log, app.WithBcryptCost(4), app.WithAccessLog(access))
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(a.Server.Handler())
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	e := &Env{T: tb, App: a, Srv: srv, DSN: dsn, Cfg: cfg}
	tb.Cleanup(e.Stop)
	return e
}

// Stop shuts the server and the app down; it is safe to call twice.
func (e *Env) Stop() {
	if e.Srv != nil {
		e.Srv.Close()
		e.App.Close()
		e.Srv = nil
	}
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

// Str returns a string field of the body.
func (r Response) Str(k string) string { s, _ := r.Body[k].(string); return s }

// Do sends body (marshalled unless it is a string or []byte) with headers
// given as "Name: value".
func (e *Env) Do(method, path string, body any, headers ...string) Response {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.T.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.Srv.URL+path, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := e.Srv.Client().Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer res.Body.Close()
	if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		// A stream never ends; that it opened is the answer.
		return Response{Status: res.StatusCode, Header: res.Header}
	}
	raw, _ := io.ReadAll(res.Body)
	out := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	json.Unmarshal(raw, &out.Body)
	return out
}

// Login signs in and returns the answer, failing the test unless it is 200.
func (e *Env) Login(email, password string) Response {
	e.T.Helper()
	r := e.Do("POST", "/api/v1/auth/token", map[string]string{"email": email, "password": password})
	if r.Status != 200 {
		e.T.Fatalf("login %s: %d %s", email, r.Status, r.Raw)
	}
	return r
}

// Bearer formats an Authorization header.
func Bearer(tok string) string { return "Authorization: Bearer " + tok }
