package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// reference is what jsonSerializer writes for v.
func reference(t *testing.T, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// checkAppends asserts that v.appendJSON, when it takes an answer,
// writes exactly encoding/json's bytes for it.
func checkAppends(t *testing.T, v jsonAppender) {
	t.Helper()
	got, ok := v.appendJSON(nil)
	if !ok {
		return
	}
	if want := reference(t, v); string(got) != want {
		t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
	}
}

func checkInfo(t *testing.T, i TokenInfo) { t.Helper(); checkAppends(t, &i) }

func TestTokenAnswerJSON(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		a    tokenAnswer
		fast bool
	}{
		"client credentials": {tokenAnswer{AccessToken: "eyJ.eyJ.sig-_", TokenType: "Bearer", ExpiresIn: 86400, Scope: "bot read"}, true},
		"with refresh":       {tokenAnswer{AccessToken: "a.b.c", TokenType: "Bearer", ExpiresIn: 1, RefreshToken: "car_xyz", Scope: "agent read write chat"}, true},
		"empty":              {tokenAnswer{}, true},
		"negative expiry":    {tokenAnswer{ExpiresIn: -5}, true},
		"quote in scope":     {tokenAnswer{Scope: `read"`}, false},
		"unicode":            {tokenAnswer{AccessToken: "é"}, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, ok := tc.a.appendJSON(nil); ok != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", ok, tc.fast)
			}
			checkAppends(t, &tc.a)
		})
	}
}

func FuzzTokenAnswerJSON(f *testing.F) {
	f.Add("eyJ.eyJ.sig", "Bearer", int64(86400), "", "bot read")
	f.Add("a\"b", "bearer\u2028", int64(-1), "car_\\x", "")
	f.Fuzz(func(t *testing.T, access, typ string, exp int64, refresh, scope string) {
		checkAppends(t, &tokenAnswer{AccessToken: access, TokenType: typ, ExpiresIn: exp, RefreshToken: refresh, Scope: scope})
	})
}

func TestTokenInfoJSON(t *testing.T) {
	t.Parallel()
	full := TokenInfo{Valid: true, Type: "oauth", Role: "agent", Scopes: []string{"agent", "read", "chat"}, Subject: "42", Organization: 7, ClientID: "c_abc",
		ExpiresAt: stamp(1796216400), IssuedAt: stamp(1796130000), Hint: "send as Authorization: Bearer on /api/v1"}
	cases := map[string]struct {
		info TokenInfo
		fast bool
	}{
		"full":             {full, true},
		"invalid":          {invalid("customer", "expired 3h ago; refresh it or sign in again"), true},
		"empty":            {TokenInfo{}, true},
		"empty scopes":     {TokenInfo{Valid: true, Scopes: []string{}}, true},
		"negative org":     {TokenInfo{Organization: -1}, true},
		"html":             {TokenInfo{Reason: "send <token> & retry"}, true},
		"quote":            {TokenInfo{Reason: `unsupported scheme "Foo"`}, false},
		"backslash":        {TokenInfo{Subject: `a\b`}, false},
		"unicode":          {TokenInfo{Reason: "scheme \"Bearer…\""}, false},
		"control":          {TokenInfo{ClientID: "a\tb"}, false},
		"scope with quote": {TokenInfo{Scopes: []string{`a"`}}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, ok := tc.info.appendJSON(nil); ok != tc.fast {
				t.Fatalf("fast path taken = %v, want %v", ok, tc.fast)
			}
			checkInfo(t, tc.info)
		})
	}
}

func FuzzTokenInfoJSON(f *testing.F) {
	f.Add(true, "", "agent", "agent", "agent read write chat", "42", int64(1), "", int64(1796216400), int64(1796130000), "send as Authorization: Bearer on /api/v1")
	f.Add(false, "expired 3h ago", "customer", "", "", "", int64(0), "", int64(0), int64(0), "")
	f.Add(false, "x\"y\\z\u2028<>&\x7f", "é", "", "a  b", "", int64(-9), "c", int64(-1), int64(253402300800), "")
	f.Fuzz(func(t *testing.T, valid bool, reason, typ, role, scopes, subject string, org int64, client string, exp, iat int64, hint string) {
		checkInfo(t, TokenInfo{Valid: valid, Reason: reason, Type: typ, Role: role, Scopes: strings.Split(scopes, " "), Subject: subject,
			Organization: org, ClientID: client, ExpiresAt: stamp(exp), IssuedAt: stamp(iat), Hint: hint})
		checkInfo(t, TokenInfo{Valid: valid, Reason: reason, Type: typ, Subject: subject, Hint: hint})
	})
}

// TestWriteJSONMatchesEcho: the fast path answers with the same status,
// headers and body as c.JSON, and ?pretty still indents.
func TestWriteJSONMatchesEcho(t *testing.T) {
	t.Parallel()
	e := echo.New()
	e.JSONSerializer = jsonSerializer{}
	info := TokenInfo{Valid: true, Type: "agent", Role: "admin", Scopes: []string{"admin", "read"}, Subject: "1", Organization: 1}
	for _, target := range []string{"/x", "/x?pretty", "/x?a=b"} {
		fast, slow := httptest.NewRecorder(), httptest.NewRecorder()
		if err := writeJSON(e.NewContext(httptest.NewRequest("GET", target, nil), fast), 200, &info); err != nil {
			t.Fatal(err)
		}
		if err := e.NewContext(httptest.NewRequest("GET", target, nil), slow).JSON(200, &info); err != nil {
			t.Fatal(err)
		}
		if fast.Code != slow.Code || fast.Body.String() != slow.Body.String() || fast.Header().Get("Content-Type") != slow.Header().Get("Content-Type") {
			t.Fatalf("%s: fast %d %q %q, echo %d %q %q", target, fast.Code, fast.Header().Get("Content-Type"), fast.Body, slow.Code, slow.Header().Get("Content-Type"), slow.Body)
		}
	}
}
