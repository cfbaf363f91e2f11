package httpapi_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

func expect(t *testing.T, r apptest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.Str("error") != code) {
		t.Fatalf("got %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	if status == 401 && !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("401 without WWW-Authenticate invalid_token: %v", r.Header)
	}
	if status >= 400 && r.Str("message") == "" {
		t.Fatalf("error without a message: %s", r.Raw)
	}
}

// The whole life of an agent session, on both databases (issue 2's first
// acceptance line).
func TestAgentSessionLifecycle(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_REFRESH_GRACE": "1s"})
		login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		if login.Str("tokenType") != "Bearer" || login.Str("scope") != "admin read write chat" || login.Body["expiresIn"].(float64) != 86400 {
			t.Fatalf("login answer: %s", login.Raw)
		}
		if u := login.Body["user"].(map[string]any); u["email"] != apptest.AdminEmail || u["role"] != "admin" || u["account_id"].(float64) != 1 {
			t.Fatalf("user: %v", u)
		}
		tok, rt := login.Str("token"), login.Str("refreshToken")

		prof := e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok))
		expect(t, prof, 200, "")
		for _, k := range []string{"id", "name", "email", "account_id", "role"} {
			if _, ok := prof.Body[k]; !ok {
				t.Fatalf("profile lacks %s: %s", k, prof.Raw)
			}
		}

		// Refresh before expiry: GET with the bearer.
		r1 := e.Do("GET", "/api/v1/auth/token?refreshToken="+rt, nil, apptest.Bearer(tok))
		expect(t, r1, 200, "")
		// Refresh after expiry: POST with clientId, no bearer.
		r2 := e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r1.Str("refreshToken"), "clientId": apptest.AdminEmail})
		expect(t, r2, 200, "")
		// A wrong clientId does not spend the token.
		expect(t, e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r2.Str("refreshToken"), "clientId": "someone@else.com"}), 401, "invalid_token")

		// r1's token was just rotated: a racing tab replaying it gets the
		// successor already issued, never a branch of its own.
		r3 := e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r1.Str("refreshToken"), "clientId": apptest.AdminEmail})
		expect(t, r3, 200, "")
		if r3.Str("refreshToken") != r2.Str("refreshToken") {
			t.Fatal("a replay within grace got a new branch instead of the successor already issued")
		}
		// Once that successor is spent too, a replay is reuse: the family dies.
		r4 := e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r2.Str("refreshToken"), "clientId": apptest.AdminEmail})
		expect(t, r4, 200, "")
		expect(t, e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r1.Str("refreshToken"), "clientId": apptest.AdminEmail}), 401, "invalid_token")
		expect(t, e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": r4.Str("refreshToken"), "clientId": apptest.AdminEmail}), 401, "invalid_token")
		// ... and its access tokens with it.
		expect(t, e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(r3.Str("token"))), 401, "invalid_token")
		expect(t, e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(r4.Str("token"))), 401, "invalid_token")

		// A new sign-in; an old token replayed after the grace window kills
		// the family at once.
		l2 := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		keep := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		n1 := e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": l2.Str("refreshToken"), "clientId": apptest.AdminEmail})
		expect(t, n1, 200, "")
		time.Sleep(1100 * time.Millisecond)
		replay := e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": l2.Str("refreshToken"), "clientId": apptest.AdminEmail})
		expect(t, replay, 401, "invalid_token")
		if !strings.Contains(replay.Str("message"), "already used") {
			t.Fatalf("reuse message: %s", replay.Raw)
		}
		expect(t, e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(n1.Str("token"))), 401, "invalid_token")
		// Another sign-in is unaffected, and the audit log saw the reuse.
		expect(t, e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(keep.Str("token"))), 200, "")
		if a := e.Do("GET", "/api/v1/audit_events", nil, apptest.Bearer(keep.Str("token"))); !strings.Contains(string(a.Raw), "refresh.reuse_detected") {
			t.Fatalf("audit log: %s", a.Raw)
		}
	})
}

func TestExpiredAndForgedTokens(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_ACCESS_TTL": "1s"})
	tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")

	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(payload), `"sub":"1"`, `"sub":"2"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`)) + "." + parts[1] + "."
	hs := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"at+jwt","kid":"x"}`)) + "." + parts[1] + ".c2ln"
	cust, _, err := token.NewIssuer(e.App.Keys, e.Cfg.Issuer).Customer(shared.CustomerClaims{Subject: "ent", Org: 1, ClientID: "c"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{"tampered": tampered, "alg none": none, "HS256": hs, "garbage": "not-a-token"} {
		r := e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(bad))
		expect(t, r, 401, "invalid_token")
		_ = name
	}
	r := e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(cust))
	expect(t, r, 401, "invalid_token")
	if !strings.Contains(r.Str("message"), "customer token") || !strings.Contains(r.Str("message"), "agent token") {
		t.Fatalf("customer token on agent API should name both: %s", r.Raw)
	}
	time.Sleep(2100 * time.Millisecond)
	r = e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok))
	expect(t, r, 401, "invalid_token")
	if !strings.Contains(r.Str("message"), "expired") {
		t.Fatalf("expired message: %s", r.Raw)
	}
}

func TestRestartKeepsTokensAndRotation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
		e.Stop()
		e2 := apptest.Start(t, dsn, nil)
		expect(t, e2.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok)), 200, "")
		kid, _, err := e2.App.Keys.Rotate(context.Background(), token.FamilyAgent, time.Hour, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		jwks := e2.Do("GET", "/.well-known/jwks.json", nil)
		// Two agent keys, and one each of customer, id_token (RS256) and
		// id_token_eddsa (docs/oidc.md).
		if !strings.Contains(string(jwks.Raw), kid) || len(jwks.Body["keys"].([]any)) != 5 {
			t.Fatalf("jwks after rotate: %s", jwks.Raw)
		}
		expect(t, e2.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok)), 200, "")
		// New tokens still use the old key during the publish delay.
		newTok := e2.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
		hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(newTok, ".")[0])
		if strings.Contains(string(hdr), kid) {
			t.Fatalf("new key signs before its publish delay")
		}
	})
}

func TestBadInputIsA4xx(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	big := `{"email":"` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name, body string
		status     int
		mention    string
	}{
		{"empty", "", 400, "empty"},
		{"not json", "email=a", 400, "not valid JSON"},
		{"truncated", `{"email":"a`, 400, "JSON"},
		{"array", `[1,2]`, 400, "object"},
		{"wrong type", `{"email":1,"password":"x"}`, 400, "email"},
		{"unknown field", `{"email":"a@b.c","password":"x","pasword":"y"}`, 400, "pasword"},
		{"missing password", `{"email":"a@b.c"}`, 400, "password"},
		{"neither", `{}`, 400, "refreshToken"},
		{"two values", `{"email":"a@b.c","password":"x"}{}`, 400, "one"},
		{"refresh without clientId", `{"refreshToken":"car_x"}`, 400, "clientId"},
		{"1 MB", big, 413, "too large"},
	}
	for _, tt := range tests {
		r := e.Do("POST", "/api/v1/auth/token", tt.body)
		if r.Status != tt.status || !strings.Contains(r.Str("message"), tt.mention) {
			t.Errorf("%s: %d %s; want %d naming %q", tt.name, r.Status, r.Raw, tt.status, tt.mention)
		}
	}
	expect(t, e.Do("PATCH", "/api/v1/profile", `{"name":5}`, apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))), 400, "invalid_request")
	expect(t, e.Do("GET", "/nope", nil), 404, "not_found")
	expect(t, e.Do("DELETE", "/api/v1/auth/token", nil), 405, "method_not_allowed")
	// The server keeps serving.
	expect(t, e.Do("GET", "/healthz", nil), 200, "")
}

func TestLoginThrottleAndOneError(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	unknown := e.Do("POST", "/api/v1/auth/token", map[string]string{"email": "nobody@example.com", "password": "whatever1"})
	wrong := e.Do("POST", "/api/v1/auth/token", map[string]string{"email": apptest.AdminEmail, "password": "whatever1"})
	if unknown.Status != 401 || string(unknown.Raw) != string(wrong.Raw) {
		t.Fatalf("unknown user and wrong password must answer alike:\n%s\n%s", unknown.Raw, wrong.Raw)
	}
	var last = wrong
	for range 10 {
		last = e.Do("POST", "/api/v1/auth/token", map[string]string{"email": apptest.AdminEmail, "password": "whatever1"})
	}
	expect(t, last, 429, "too_many_requests")
	events, err := e.App.Store.AuditEvents(context.Background(), 1, 0, 10)
	if err != nil || len(events) == 0 || events[0].Event != "login.lockout" {
		t.Fatalf("lockout not audited: %+v %v", events, err)
	}
	if last.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	// Even the right password waits: the lock is on the account.
	expect(t, e.Do("POST", "/api/v1/auth/token", map[string]string{"email": apptest.AdminEmail, "password": apptest.AdminPassword}), 429, "too_many_requests")
}

func TestAPITokenAndProfile(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		auth := apptest.Bearer(login.Str("token"))
		r := e.Do("POST", "/api/v1/profile/reset_access_token", nil, auth)
		expect(t, r, 200, "")
		t1 := r.Str("access_token")
		expect(t, e.Do("GET", "/api/v1/profile", nil, "api_access_token: "+t1), 200, "")
		// The API token cannot mint its successor: only a sign-in may.
		expect(t, e.Do("POST", "/api/v1/profile/reset_access_token", nil, "api_access_token: "+t1), 403, "sign_in_required")
		t2 := e.Do("POST", "/api/v1/profile/reset_access_token", nil, auth).Str("access_token")
		expect(t, e.Do("GET", "/api/v1/profile", nil, "api_access_token: "+t1), 401, "invalid_token")
		expect(t, e.Do("GET", "/api/v1/profile", nil, "api_access_token: "+t2), 200, "")
		expect(t, e.Do("GET", "/api/v1/profile", nil, "api_access_token: "+t2, auth), 401, "invalid_token")

		p := e.Do("PATCH", "/api/v1/profile", map[string]string{"name": "Ada"}, auth)
		if p.Status != 200 || p.Str("name") != "Ada" {
			t.Fatalf("rename: %s", p.Raw)
		}
		expect(t, e.Do("PATCH", "/api/v1/profile", map[string]string{"password": "new-password-1", "current_password": "wrong"}, auth), 400, "invalid_request")
		other := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		expect(t, e.Do("PATCH", "/api/v1/profile", map[string]string{"password": "new-password-1", "current_password": apptest.AdminPassword}, auth), 200, "")
		// Other sessions end; this one goes on; the new password works.
		expect(t, e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(other.Str("token"))), 401, "invalid_token")
		expect(t, e.Do("GET", "/api/v1/profile", nil, auth), 200, "")
		e.Login(apptest.AdminEmail, "new-password-1")
	})
}

func TestWrongSchemesAreExplained(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	for _, h := range []string{"Authorization: Basic YTpi", "Authorization: Token abc", "Authorization: Bearer ", "api_access_token: nope"} {
		r := e.Do("GET", "/api/v1/profile", nil, h)
		expect(t, r, 401, "invalid_token")
	}
}
