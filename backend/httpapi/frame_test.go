package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// TestPanicIsA500WithRequestID: a handler that panics answers 500 with
// the request id in body and header (what a person quotes to an
// operator), and the server goes on serving.
func TestPanicIsA500WithRequestID(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	e.App.Server.Echo().GET("/test/panic", func(echo.Context) error { panic("boom") })
	res := e.Do("GET", "/test/panic", nil)
	if res.Status != 500 || res.Str("error") != "internal_error" {
		t.Fatalf("panic: %d %v", res.Status, res.Body)
	}
	id := res.Header.Get("X-Request-Id")
	if id == "" || res.Str("request_id") != id {
		t.Fatalf("request id: header %q, body %q", id, res.Str("request_id"))
	}
	if strings.Contains(res.Str("message"), "boom") {
		t.Fatalf("the panic value reached the client: %q", res.Str("message"))
	}
	if res := e.Do("GET", "/healthz", nil); res.Status != 200 {
		t.Fatalf("after the panic: %d", res.Status)
	}
}

// TestRequestIDFromCaller: a proxy's or tracer's X-Request-ID is kept when
// it is short and plain, and replaced when it could bloat or forge a log
// line.
func TestRequestIDFromCaller(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	for _, tc := range []struct {
		sent string
		kept bool
	}{
		{"trace-00f067aa0ba902b7", true},
		{"a b", false},
		{`x" level=ERROR msg="forged`, false},
		{strings.Repeat("x", 129), false},
		{"", false},
	} {
		var headers []string
		if tc.sent != "" {
			headers = append(headers, "X-Request-ID: "+tc.sent)
		}
		got := e.Do("GET", "/healthz", nil, headers...).Header.Get("X-Request-Id")
		if (got == tc.sent) != tc.kept || got == "" {
			t.Errorf("sent %q, answered %q (kept should be %v)", tc.sent, got, tc.kept)
		}
	}
}

// TestChunkedBodyOverTheLimit: a body without Content-Length is cut off
// at the limit while it is read, and answered 413 (JSON API) or
// invalid_request (OAuth form), never 500.
func TestChunkedBodyOverTheLimit(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	for _, tc := range []struct {
		path, ct string
		status   int
	}{
		{"/api/v1/auth/token", "application/json", 413},
		{"/oauth/token", "application/x-www-form-urlencoded", 400},
	} {
		// An io.Reader of unknown length makes the client send it chunked.
		body := io.MultiReader(strings.NewReader(`{"email":"`), strings.NewReader(strings.Repeat("x", 100<<10)))
		req, _ := http.NewRequest("POST", e.Srv.URL+tc.path, body)
		req.Header.Set("Content-Type", tc.ct)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if req.ContentLength != 0 || res.StatusCode != tc.status {
			t.Errorf("%s: sent length %d, got %d %s", tc.path, req.ContentLength, res.StatusCode, raw)
		}
	}
}
