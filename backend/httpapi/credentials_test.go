package httpapi_test

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apptest"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

func basic(account int64, tok string) string {
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(account, 10)+":"+tok))
}

func TestPersonalAccessTokens(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newWorld(t, e)
		admin := apptest.Bearer(w.tokens[shared.RoleAdmin])
		r := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "reporting", "scopes": []string{"read", "chat"}}, admin)
		expect(t, r, 201, "")
		pat := r.Str("token")
		if !strings.HasPrefix(pat, "cap_") || !strings.Contains(r.Str("usage"), "Basic") {
			t.Fatalf("create: %s", r.Raw)
		}
		if l := e.Do("GET", "/api/v1/personal_access_tokens", nil, admin); strings.Contains(string(l.Raw), pat) || len(l.Body["data"].([]any)) != 1 {
			t.Fatalf("list: %s", l.Raw)
		}
		// Works as Basic with its scopes, and nowhere else.
		expect(t, e.Do("GET", "/api/v1/conversations", nil, basic(w.org, pat)), 200, "")
		expect(t, e.Do("POST", "/api/v1/contacts", map[string]any{"name": "x"}, basic(w.org, pat)), 403, "insufficient_scope")
		expect(t, e.Do("GET", "/customer/api/v1/me", nil, basic(w.org, pat)), 401, "invalid_token")
		// The mistakes of the seeds get their own messages.
		escaped := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(w.org, 10)+"%3A"+pat))
		if m := e.Do("GET", "/api/v1/profile", nil, escaped); m.Status != 401 || !strings.Contains(m.Str("message"), "%3A") {
			t.Fatalf("%%3A: %s", m.Raw)
		}
		if m := e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(pat)); m.Status != 401 || !strings.Contains(m.Str("message"), "Basic") {
			t.Fatalf("PAT as Bearer: %s", m.Raw)
		}
		expect(t, e.Do("GET", "/api/v1/profile", nil, basic(w.org+99, pat)), 401, "invalid_token")
		// Revoke: dead on the very next request. Others cannot revoke it.
		id := strconv.Itoa(int(r.Body["id"].(float64)))
		expect(t, e.Do("DELETE", "/api/v1/personal_access_tokens/"+id, nil, apptest.Bearer(w.tokens[shared.RoleAgent])), 404, "not_found")
		expect(t, e.Do("DELETE", "/api/v1/personal_access_tokens/"+id, nil, admin), 204, "")
		expect(t, e.Do("GET", "/api/v1/conversations", nil, basic(w.org, pat)), 401, "invalid_token")
		// Expiry.
		short := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "short", "scopes": []string{"read"}, "expires_in": 1}, admin)
		time.Sleep(1100 * time.Millisecond)
		if m := e.Do("GET", "/api/v1/contacts", nil, basic(w.org, short.Str("token"))); m.Status != 401 || !strings.Contains(m.Str("message"), "expired") {
			t.Fatalf("expired PAT: %s", m.Raw)
		}
		expect(t, e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "x", "scopes": []string{"sudo"}}, admin), 400, "invalid_request")
		expect(t, e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "x", "scopes": []string{"admin", "read"}}, apptest.Bearer(w.tokens[shared.RoleAgent])), 400, "invalid_request")
	})
}

func TestAgentBotsAndPlatform(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_PLATFORM": "true"})
		w := newWorld(t, e)
		admin := apptest.Bearer(w.tokens[shared.RoleAdmin])
		b := e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": "Triage bot"}, admin)
		expect(t, b, 201, "")
		bot, botID := "api_access_token: "+b.Str("access_token"), strconv.Itoa(int(b.Body["id"].(float64)))
		expect(t, e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": "x"}, apptest.Bearer(w.tokens[shared.RoleAgent])), 403, "insufficient_scope")
		// Role bot: may list messages, which an agent may not.
		conv := e.Do("POST", "/api/v1/conversations", map[string]any{}, admin)
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		expect(t, e.Do("GET", "/api/v1/conversations/"+cid+"/messages", nil, bot), 200, "")
		m := e.Do("POST", "/api/v1/accounts/"+strconv.FormatInt(w.org, 10)+"/conversations/"+cid+"/messages", map[string]any{"content": "Bot message", "message_type": "outgoing"}, bot)
		if m.Status != 201 || m.Str("sender_type") != "bot" {
			t.Fatalf("bot message: %s", m.Raw)
		}
		expect(t, e.Do("POST", "/api/v1/conversations", map[string]any{}, "api_access_token: cab_nope"), 401, "invalid_token")
		// A bot token on the platform API: 401.
		expect(t, e.Do("GET", "/platform/api/v1/accounts", nil, bot), 401, "invalid_token")
		// Reset (Chatwoot's path): the old token is dead at once.
		r := e.Do("POST", "/api/v1/accounts/"+strconv.FormatInt(w.org, 10)+"/agent_bots/"+botID+"/reset_access_token", nil, admin)
		expect(t, r, 200, "")
		expect(t, e.Do("GET", "/api/v1/contacts", nil, bot), 401, "invalid_token")
		newBot := "api_access_token: " + r.Str("access_token")
		expect(t, e.Do("GET", "/api/v1/contacts", nil, newBot), 200, "")
		expect(t, e.Do("DELETE", "/api/v1/agent_bots/"+botID, nil, admin), 204, "")
		expect(t, e.Do("GET", "/api/v1/contacts", nil, newBot), 401, "invalid_token")

		// Platform tokens work on the platform API only.
		secret, hash := token.NewOpaque(token.PrefixPlatform)
		if err := e.App.Store.CreateCredential(context.Background(), &domain.Credential{Kind: "platform", Name: "provisioner", Hash: hash}); err != nil {
			t.Fatal(err)
		}
		plat := "api_access_token: " + secret
		expect(t, e.Do("GET", "/api/v1/contacts", nil, plat), 401, "invalid_token")
		expect(t, e.Do("GET", "/platform/api/v1/accounts", nil, admin), 401, "invalid_token")
		acct := e.Do("POST", "/platform/api/v1/accounts", map[string]any{"name": "New tenant"}, plat)
		expect(t, acct, 201, "")
		aid := int64(acct.Body["id"].(float64))
		u := e.Do("POST", "/platform/api/v1/users", map[string]any{"name": "T", "email": "t@tenant.example", "password": "password-123", "role": "admin", "account_id": aid}, plat)
		expect(t, u, 201, "")
		uid := strconv.Itoa(int(u.Body["id"].(float64)))
		expect(t, e.Do("PATCH", "/platform/api/v1/users/"+uid, map[string]any{"name": "Tenant admin"}, plat), 200, "")
		e.Login("t@tenant.example", "password-123")
		expect(t, e.Do("GET", "/platform/api/v1/users/"+uid, nil, plat), 200, "")
		expect(t, e.Do("DELETE", "/platform/api/v1/accounts/"+strconv.FormatInt(aid, 10), nil, plat), 409, "conflict")
		expect(t, e.Do("DELETE", "/platform/api/v1/users/"+uid, nil, plat), 204, "")
		expect(t, e.Do("DELETE", "/platform/api/v1/accounts/"+strconv.FormatInt(aid, 10), nil, plat), 204, "")

		// The audit log saw the credential events.
		audit := e.Do("GET", "/api/v1/audit_events", nil, admin)
		for _, ev := range []string{"credential.created", "credential.first_use", "credential.reset", "credential.revoked"} {
			if !strings.Contains(string(audit.Raw), ev) {
				t.Errorf("audit log lacks %s: %s", ev, audit.Raw)
			}
		}
		if strings.Contains(string(audit.Raw), "cab_") {
			t.Fatal("the audit log holds a secret")
		}
	})
}

func TestPlatformOffIs404(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	expect(t, e.Do("GET", "/platform/api/v1/accounts", nil, "api_access_token: cpl_x"), 404, "not_found")
}

func TestTokenDebugger(t *testing.T) {
	t.Parallel()
	// The access TTL must outlast the checks before the expiry one on a
	// loaded CI machine (1 s did not, once), and stay short for the sleep.
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_ACCESS_TTL": "4s", "CHATAUTH_REFRESH_GRACE": "1ms"})
	loginAt := time.Now()
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	// POST asks as someone: a sign-in of the organization the tokens are of.
	info := func(tok string) apptest.Response {
		asker := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
		return e.Do("POST", "/api/v1/token/info", map[string]any{"token": tok}, asker)
	}

	ok := e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(login.Str("token")))
	if ok.Status != 200 || ok.Body["valid"] != true || ok.Str("type") != "agent" || ok.Str("role") != "admin" || ok.Str("expires_at") == "" {
		t.Fatalf("valid agent token: %s", ok.Raw)
	}
	rt := info(login.Str("refreshToken"))
	if rt.Body["valid"] != true || rt.Str("type") != "refresh" {
		t.Fatalf("refresh: %s", rt.Raw)
	}
	// A used refresh token says so.
	e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": login.Str("refreshToken"), "clientId": apptest.AdminEmail})
	if r := info(login.Str("refreshToken")); r.Body["valid"] != false || !strings.Contains(r.Str("reason"), "already used") {
		t.Fatalf("used refresh: %s", r.Raw)
	}
	// Revoked: replay after the grace window kills the family.
	time.Sleep(10 * time.Millisecond)
	e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": login.Str("refreshToken"), "clientId": apptest.AdminEmail})
	if r := info(login.Str("token")); r.Body["valid"] != false || !strings.Contains(r.Str("reason"), "revoked") {
		t.Fatalf("revoked: %s", r.Raw)
	}
	// Wrong type: a customer token is valid, with a hint.
	w := newCustomerWorld(t, e)
	ct := w.visitorToken(map[string]any{"response_type": "token"})
	if r := info(ct.Str("access_token")); r.Body["valid"] != true || r.Str("type") != "customer" || !strings.Contains(r.Str("hint"), "customer API") {
		t.Fatalf("customer token: %s", r.Raw)
	}
	if r := info(ct.Str("refresh_token")); r.Body["valid"] != true || r.Str("type") != "customer_refresh" {
		t.Fatalf("customer refresh: %s", r.Raw)
	}
	// Bad signature.
	parts := strings.Split(ok2(e), ".")
	// (A forged token's organization is unknown, so POST does not say why;
	// its holder, asking with GET, is told.)
	if r := e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(parts[0]+"."+parts[1]+"."+strings.Repeat("A", len(parts[2])))); r.Body["valid"] != false || !strings.Contains(r.Str("reason"), "signature") {
		t.Fatalf("bad signature: %s", r.Raw)
	}
	// Expired, with how long ago.
	time.Sleep(time.Until(loginAt.Add(4100 * time.Millisecond)))
	if r := info(ok2(e)); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := info(login.Str("token")); r.Body["valid"] != false || !strings.Contains(r.Str("reason"), "ago") {
		t.Fatalf("expired: %s", r.Raw)
	}
	if r := info("hello"); r.Body["valid"] != false || r.Str("reason") == "" {
		t.Fatalf("garbage: %s", r.Raw)
	}
}

func ok2(e *apptest.Env) string {
	return e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
}

// BenchmarkAPITokenAuth is the agent middleware with an api_access_token:
// one indexed lookup by the token's SHA-256, no cache, so a reset is
// honoured on the very next request.
func BenchmarkAPITokenAuth(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	tok := e.Do("POST", "/api/v1/profile/reset_access_token", nil, apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))).Str("access_token")
	h := e.App.Server.RequireAgent(func(echo.Context) error { return nil })
	req := httptest.NewRequest("GET", "/api/v1/profile", nil)
	req.Header.Set("api_access_token", tok)
	b.ReportAllocs()
	for b.Loop() {
		if err := h(e.App.Server.Echo().NewContext(req, httptest.NewRecorder())); err != nil {
			b.Fatal(err)
		}
	}
}
