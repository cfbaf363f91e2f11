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
)

// eventually polls check every 50 ms until it holds or limit passes, and
// returns how long it took.
func eventually(t *testing.T, limit time.Duration, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if check() {
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// TestTwoProcessesOneDatabase runs two servers (separate key caches,
// revocation sets and verification caches) on one PostgreSQL database,
// as a scaled-out deployment does (docs/api.md, "Scale-out and faults").
func TestTwoProcessesOneDatabase(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	extra := map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"}
	a := apptest.Start(t, dsn, extra)
	b := apptest.Start(t, dsn, extra)
	profile := func(e *apptest.Env, tok string) int {
		return e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok)).Status
	}

	// A token issued by one works on the other.
	la := a.Login(apptest.AdminEmail, apptest.AdminPassword)
	if profile(b, la.Str("token")) != 200 {
		t.Fatal("A's token refused by B")
	}

	// Refresh on A, replay the old refresh token on B: detected, and the
	// family's newest access token dies on A too, within a second.
	r2 := a.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": la.Str("refreshToken"), "clientId": apptest.AdminEmail})
	expect(t, r2, 200, "")
	if profile(a, r2.Str("token")) != 200 {
		t.Fatal("fresh token refused")
	}
	time.Sleep(20 * time.Millisecond)
	replay := b.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": la.Str("refreshToken"), "clientId": apptest.AdminEmail})
	if replay.Status != 401 || !strings.Contains(replay.Str("message"), "already used") {
		t.Fatalf("replay on B: %s", replay.Raw)
	}
	took := eventually(t, time.Second+200*time.Millisecond, "A honours B's reuse revocation", func() bool { return profile(a, r2.Str("token")) == 401 })
	t.Logf("revocation on B reached A in %v", took)

	// A revocation on A (password change ends other sessions) is honoured
	// by B within one second, though B has the token in its cache.
	victim := a.Login(apptest.AdminEmail, apptest.AdminPassword)
	keeper := a.Login(apptest.AdminEmail, apptest.AdminPassword)
	if profile(b, victim.Str("token")) != 200 {
		t.Fatal("victim token refused before revocation")
	}
	expect(t, a.Do("PATCH", "/api/v1/profile", map[string]any{"password": "second-password-1", "current_password": apptest.AdminPassword}, apptest.Bearer(keeper.Str("token"))), 200, "")
	took = eventually(t, time.Second+200*time.Millisecond, "B honours A's revocation", func() bool { return profile(b, victim.Str("token")) == 401 })
	t.Logf("revocation on A reached B in %v", took)

	// A key rotation on A reaches B: A signs with the new key at once
	// (publish delay 0 here) and B picks the key up from the database.
	kid, _, err := a.App.Keys.Rotate(context.Background(), token.FamilyAgent, 0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fresh := a.Login(apptest.AdminEmail, "second-password-1").Str("token")
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(fresh, ".")[0])
	if !strings.Contains(string(hdr), kid) {
		t.Fatalf("A does not sign with the new key: %s", hdr)
	}
	eventually(t, 3*time.Second, "B verifies the new key", func() bool { return profile(b, fresh) == 200 })
	if !strings.Contains(string(b.Do("GET", "/.well-known/jwks.json", nil).Raw), kid) {
		// B's JWKS document refreshes on the reload the unknown kid caused.
		t.Fatalf("B's JWKS lacks %s", kid)
	}
}
