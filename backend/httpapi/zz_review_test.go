package httpapi_test

import (
	"chatauth/backend/notify"
	"context"
	"fmt"
	"golang.org/x/crypto/bcrypt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// R1: a visitor vouched for by a credential without expiry (bot token, user
// API token, personal token without expires_in) is revived by the cookie of
// the vouch answer after that credential is reset/deleted.
func TestReviewVouchedCookieOutlivesParent(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	botID, bot := w.bot(t)
	v := w.vouch(w.entity, "api_access_token: "+bot)
	want(t, "vouch by bot", v, 200)
	cookie := "Cookie: " + cookieOf(v)
	// the bot token is reset: the vouched session must end with it
	r := e.Do("POST", "/api/v1/agent_bots/"+botID+"/reset_access_token", nil, w.signIn(t))
	want(t, "reset bot", r, 200)
	if got := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(v.Str("access_token"))); got.Status != 401 {
		t.Fatalf("vouched access token survived the reset: %d", got.Status)
	}
	// the vouch answer's cookie
	again := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token", "entity_id": w.entity}, "Origin: "+shop, cookie)
	t.Logf("cookie after parent reset: %d entity=%s", again.Status, again.Str("entity_id"))
	if again.Status == 200 && again.Str("entity_id") == w.entity {
		me := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(again.Str("access_token")))
		t.Errorf("FINDING: the vouched visitor's cookie started a new session after its parent was reset: /me %d; new refresh %s…", me.Status, again.Str("refresh_token")[:8])
	}
}

// R2: a visitor refresh token (returned in JSON, readable by any script on
// the embedding page) is exchanged without a cookie; the answer sets the
// visitor cookie, the root credential that no revocation ends. After reuse
// detection revokes the family, the thief's cookie starts a new session.
func TestReviewRefreshTokenMintsRootCookie(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"})
	w := newCeilWorld(t, e)
	v := w.visitor(t) // the victim's widget: a visitor with a refresh token
	stolen := v.Str("refresh_token")
	// thief: exchange it, no cookie sent
	th := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "grant_type": "refresh_token", "refresh_token": stolen}, "Origin: "+shop)
	want(t, "thief refresh", th, 200)
	c := cookieOf(th)
	t.Logf("Set-Cookie on a refresh-token exchange: %v", c != "")
	if c == "" {
		return
	}
	// the victim presents its (now spent) refresh token: reuse detection
	time.Sleep(5 * time.Millisecond)
	re := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "grant_type": "refresh_token", "refresh_token": stolen}, "Origin: "+shop)
	want(t, "reuse detected", re, 401)
	if e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(th.Str("access_token"))).Status != 401 {
		t.Fatal("reuse did not revoke")
	}
	// thief: the cookie
	back := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token"}, "Origin: "+shop, "Cookie: "+c)
	if back.Status == 200 && back.Str("entity_id") == v.Str("entity_id") {
		t.Errorf("FINDING: after reuse detection the thief's cookie (minted from a refresh token) is the visitor again: %d, /me %d", back.Status,
			e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(back.Str("access_token"))).Status)
	}
}

// R3: the retention purge deletes spent refresh tokens once the grace
// window is over, so the legitimate holder's stale token is "unknown"
// instead of "reused": reuse detection never fires, and a thief who
// refreshed first keeps the sign-in for good.
func TestReviewPurgeDisarmsReuseDetection(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil) // default grace 10s
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	stolen := login.Str("refreshToken")
	th := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": stolen, "clientId": apptest.AdminEmail})
	want(t, "thief refresh", th, 200)
	// the background purger's run (every 10 min), some time after the grace window
	e.App.Store.Now = func() time.Time { return time.Now().Add(11 * time.Second) }
	st, err := e.App.Store.Purge(context.Background(), e.App.Purger.Policy)
	// (the store's clock stays 11 s ahead: the owner comes back after grace)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purged %+v", st)
	time.Sleep(10 * time.Millisecond)
	// the owner comes back (say the next morning) with the token it holds
	owner := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": stolen, "clientId": apptest.AdminEmail})
	t.Logf("owner presents the spent token: %d %s", owner.Status, owner.Str("message"))
	// the thief's line
	next := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": th.Str("refreshToken"), "clientId": apptest.AdminEmail})
	if next.Status == 200 {
		t.Errorf("FINDING: reuse went undetected after the purge; the thief still refreshes (%d) and its access token works: %d", next.Status,
			e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(next.Str("token"))).Status)
	}
}

// R4: bad input on PostgreSQL.
func TestReviewBadInputPostgres(t *testing.T) {
	reviewOnly(t)
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
		for _, p := range []string{"/api/v1/oauth/clients/%FF", "/api/v1/oauth/clients/a%00b"} {
			for _, m := range []string{"GET", "DELETE", "PATCH"} {
				var body any
				if m == "PATCH" {
					body = map[string]any{"name": "x"}
				}
				r := e.Do(m, p, body, admin)
				t.Logf("%s %s: %d %s", m, p, r.Status, r.Raw)
				if r.Status >= 500 {
					t.Errorf("FINDING: %s %s answered %d", m, p, r.Status)
				}
			}
		}
		for _, q := range []string{"/oauth/authorize?client_id=a%00b&response_type=code", "/customer/authorize?client_id=%FF&response_type=token", "/oauth/authorize?client_id=%FF"} {
			r := e.Do("GET", q, nil)
			if r.Status >= 500 {
				t.Errorf("FINDING: GET %s answered %d %s", q, r.Status, r.Raw)
			}
		}
		r := e.Do("POST", "/customer/token", map[string]any{"client_id": "a\u0000b", "response_type": "token"})
		t.Logf("customer/token NUL client: %d %s", r.Status, r.Raw)
		if r.Status >= 500 {
			t.Errorf("FINDING: POST /customer/token with a NUL in client_id answered %d", r.Status)
		}
		r = postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"a\x00b"}})
		t.Logf("oauth/token NUL client: %d %s", r.Status, r.Raw)
		if r.Status >= 500 {
			t.Errorf("FINDING: /oauth/token with a NUL in client_id answered %d", r.Status)
		}
		r = e.Do("POST", "/customer/token", map[string]any{"client_id": "x", "response_type": "token", "entity_id": "a\u0000b"}, admin)
		t.Logf("customer/token NUL entity: %d %s", r.Status, r.Raw)
		r = e.Do("POST", "/api/v1/auth/token", map[string]any{"email": "a\u0000b@x.com", "password": "xxxxxxxxx"})
		t.Logf("login NUL email: %d %s", r.Status, r.Raw)
		if r.Status >= 500 {
			t.Errorf("FINDING: login with a NUL in the email answered %d", r.Status)
		}
		r = e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": "car_x", "clientId": "a\u0000b"})
		t.Logf("refresh NUL clientId: %d %s", r.Status, r.Raw)
	})
}

func TestReviewNULBodiesPostgres(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.Postgres(t), nil)
	w := newCeilWorld(t, e)
	admin := w.signIn(t)
	for _, c := range []struct {
		m, p string
		body map[string]any
		h    []string
	}{
		{"POST", "/api/v1/contacts", map[string]any{"name": "a\u0000b"}, []string{admin}},
		{"POST", "/api/v1/oauth/clients", map[string]any{"name": "a\u0000b", "client_type": "public"}, []string{admin}},
		{"POST", "/api/v1/personal_access_tokens", map[string]any{"name": "a\u0000b", "scopes": []string{"read"}}, []string{admin}},
		{"POST", "/api/v1/agent_bots", map[string]any{"name": "a\u0000b"}, []string{admin}},
		{"PATCH", "/api/v1/profile", map[string]any{"name": "a\u0000b"}, []string{admin}},
		{"POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token", "entity_id": "a\u0000b"}, []string{admin, "Origin: " + shop}},
		{"POST", "/api/v1/token/info", map[string]any{"token": "cat_a\u0000b"}, []string{admin}},
	} {
		r := e.Do(c.m, c.p, c.body, c.h...)
		if r.Status >= 500 {
			t.Errorf("FINDING: %s %s with a NUL in the body: %d", c.m, c.p, r.Status)
		} else {
			t.Logf("%s %s: %d %s", c.m, c.p, r.Status, r.Str("error"))
		}
	}
}

// R5a: a revocation whose announcement is lost (publishing failed, or the
// revoking process died between its commit and pg_notify) never reaches a
// process whose bus is up: it does not poll the database while pushed.
func TestReviewLostAnnouncementNeverArrives(t *testing.T) {
	reviewOnly(t)
	dsn := sqlstoretest.Postgres(t)
	a := apptest.Start(t, dsn, nil)
	b := apptest.Start(t, dsn, nil)
	victim := a.Login(apptest.AdminEmail, apptest.AdminPassword)
	tok := apptest.Bearer(victim.Str("token"))
	want(t, "B accepts it", b.Do("GET", "/api/v1/profile", nil, tok), 200)
	// A's publishing fails from now on (its bus is closed: as if pg_notify
	// failed after the commit, or A was killed between the two).
	a.App.Bus.(*notify.Postgres).Close()
	want(t, "logout on A", a.Do("POST", "/api/v1/auth/logout", nil, tok), 204)
	want(t, "A refuses it", a.Do("GET", "/api/v1/profile", nil, tok), 401)
	time.Sleep(3 * time.Second)
	if r := b.Do("GET", "/api/v1/profile", nil, tok); r.Status == 200 {
		t.Errorf("FINDING: 3 s after a sign-out committed on A, B still accepts its access token (B's bus is up, so B never polls)")
	}
}

// R5b: a reused authorization code revoked its grant and the visitors the
// grant's token vouched for, but only the grant was announced: the vouched
// visitors' tokens kept working. Fixed twice over: the visitors are
// announced with their grant, and an OAuth app's token no longer vouches
// at all (credential.MayVouch), which this now checks.
func TestReviewCodeReuseMissesVouchedVisitors(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCeilWorld(t, e)
		back := w.authorize(t, "response_type=code&client_id="+url.QueryEscape(w.conf)+"&redirect_uri="+url.QueryEscape(redirectURI)+"&scope="+url.QueryEscape("read write chat")+"&state=st")
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirectURI}}, w.conf, w.secret)
		want(t, "exchange", r, 200)
		want(t, "vouch with the OAuth token", w.vouch(w.entity, apptest.Bearer(r.Str("access_token"))), 403, "forbidden")
	})
}

// R6: narrowing a client's registered scopes does not bind its grants:
// their refresh tokens keep minting tokens with the scopes taken away.
func TestReviewClientScopeNarrowingIgnoredByRefresh(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	_, rt := w.code(t, "read write chat")
	want(t, "narrow the client", e.Do("PATCH", "/api/v1/oauth/clients/"+w.conf, map[string]any{"scopes": []string{"read"}}, w.signIn(t)), 200)
	r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, w.conf, w.secret)
	want(t, "refresh", r, 200)
	if sc := r.Str("scope"); sc != "admin read" {
		tok := apptest.Bearer(r.Str("access_token"))
		st := e.Do("POST", "/api/v1/contacts", map[string]any{"name": "written after the client lost write"}, tok).Status
		t.Errorf("FINDING: the client is registered for \"read\" only, yet its refresh minted scope %q; POST /api/v1/contacts: %d", sc, st)
	}
}

// R7: an authorization code is spent before the client, redirect_uri and
// PKCE are checked: anyone naming any client burns a victim's code, and
// the legitimate exchange then fails as a "reuse".
func TestReviewCodeBurnedByWrongClient(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	back := w.authorize(t, "response_type=code&client_id="+url.QueryEscape(w.conf)+"&redirect_uri="+url.QueryEscape(redirectURI)+"&state=st")
	code := back.Query().Get("code")
	// the attacker's own public client (any client id of the server)
	r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "client_id": {w.pub}})
	t.Logf("wrong client: %d %s", r.Status, r.Str("error_description"))
	legit := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, w.conf, w.secret)
	if legit.Status != 200 {
		t.Errorf("FINDING: after another client presented it, the legitimate exchange of the code fails: %d %s", legit.Status, legit.Str("error_description"))
	}
}

// R8: /oauth/revoke of one client-credentials token does not end the
// visitors that token vouched for (their parent is the epoch).
func TestReviewRevokedCCTokenKeepsItsVisitors(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	cc := w.clientCredentials(t, w.conf, w.secret, "read write chat")
	v := w.vouch(w.entity, apptest.Bearer(cc))
	want(t, "vouch by cc", v, 200)
	want(t, "revoke cc", postForm(t, e, "/oauth/revoke", url.Values{"token": {cc}}, w.conf, w.secret), 200)
	time.Sleep(700 * time.Millisecond)
	want(t, "cc ended", e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(cc)), 401)
	if st := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(v.Str("access_token"))).Status; st == 200 {
		t.Errorf("FINDING: the visitor vouched for by a client-credentials token outlives that token's revocation (%d)", st)
	}
	rf := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "grant_type": "refresh_token", "refresh_token": v.Str("refresh_token")}, "Origin: "+shop)
	t.Logf("its refresh token: %d", rf.Status)
}

// R9: concurrent rotations of one token, on two processes.
func TestReviewConcurrentRotation(t *testing.T) {
	reviewOnly(t)
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		a := apptest.Start(t, dsn, nil)
		b := a
		if strings.Contains(dsn, "postgres") {
			b = apptest.Start(t, dsn, nil)
		}
		for round := 0; round < 5; round++ {
			rt := a.Login(apptest.AdminEmail, apptest.AdminPassword).Str("refreshToken")
			var wg sync.WaitGroup
			res := make([]apptest.Response, 16)
			for i := range res {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					e := a
					if i%2 == 1 {
						e = b
					}
					res[i] = e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": rt, "clientId": apptest.AdminEmail})
				}(i)
			}
			wg.Wait()
			seen := map[string]int{}
			for _, r := range res {
				if r.Status == 200 {
					seen[r.Str("refreshToken")]++
				} else {
					seen[fmt.Sprintf("status %d %s", r.Status, r.Str("message"))]++
				}
			}
			if len(seen) != 1 {
				t.Errorf("FINDING: concurrent rotations of one token gave %d outcomes", len(seen))
				for k, n := range seen {
					t.Logf("  %d × %.40s", n, k)
				}
			}
		}
	})
}

// R10: a secret sent in Authorization without a scheme is echoed (its first
// 16 characters after the prefix) in the 401 body and WWW-Authenticate.
func TestReviewSecretEchoedInError(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	api := w.apiToken(t)
	r := e.Do("GET", "/api/v1/contacts", nil, "Authorization: "+api)
	if strings.Contains(string(r.Raw), api[:20]) || strings.Contains(r.Header.Get("WWW-Authenticate"), api[:20]) {
		t.Errorf("FINDING: %d: the answer repeats the first 20 characters of the API token (%d of them secret): body %q", r.Status, 20-len("cat_"), strings.ReplaceAll(string(r.Raw), api[4:20], "<16 secret chars>"))
	}
}

// R11: a concurrent client update and secret reset: the update writes back
// the secret hash it read, so the reset's new secret is lost and the old
// (leaked) one works again, although the reset answered 200.
func TestReviewResetSecretLostUpdate(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.Postgres(t), nil)
	w := newCeilWorld(t, e)
	admin := w.signIn(t)
	for i := 0; i < 30; i++ {
		var wg sync.WaitGroup
		var reset apptest.Response
		wg.Add(2)
		go func() {
			defer wg.Done()
			reset = e.Do("POST", "/api/v1/oauth/clients/"+w.conf+"/reset_secret", nil, admin)
		}()
		go func() {
			defer wg.Done()
			e.Do("PATCH", "/api/v1/oauth/clients/"+w.conf, map[string]any{"name": fmt.Sprint("renamed ", i)}, admin)
		}()
		wg.Wait()
		want(t, "reset", reset, 200)
		old := w.secret
		w.secret = reset.Str("client_secret")
		time.Sleep(1100 * time.Millisecond) // past the client memo
		if w.secretWorks(t, w.conf, old) {
			t.Errorf("FINDING: round %d: the secret replaced by a reset that answered 200 still authenticates (new one works: %v)", i, w.secretWorks(t, w.conf, w.secret))
			return
		}
	}
}

// R12: PATCH /api/v1/profile {"name"} writes the whole user row it read
// (email, role, password hash). A demoted (or password-reset) user who
// keeps renaming themselves with their API token reverts the admin's
// change.
func TestReviewRenameRevertsDemotion(t *testing.T) {
	reviewOnly(t)
	sqlstoretest.Each(t, func(t *testing.T, dsn string) { renameRevertsDemotion(t, dsn) })
}

func renameRevertsDemotion(t *testing.T, dsn string) {
	e := apptest.Start(t, dsn, nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	u := e.Do("POST", "/api/v1/users", map[string]any{"name": "Mallory", "email": "mallory@example.com", "password": "mallory-pass-1", "role": "admin"}, admin)
	want(t, "create user", u, 201)
	id := fmt.Sprint(int(u.Body["id"].(float64)))
	ml := apptest.Bearer(e.Login("mallory@example.com", "mallory-pass-1").Str("token"))
	api := "api_access_token: " + e.Do("POST", "/api/v1/profile/reset_access_token", nil, ml).Str("access_token")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				e.Do("PATCH", "/api/v1/profile", map[string]any{"name": "Mallory"}, api)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 10; i++ {
		want(t, "demote", e.Do("PATCH", "/api/v1/users/"+id, map[string]any{"role": "agent"}, admin), 200)
		time.Sleep(300 * time.Millisecond)
		role := e.Do("GET", "/api/v1/users/"+id, nil, admin).Str("role")
		if role != "agent" {
			close(stop)
			wg.Wait()
			t.Errorf("FINDING: attempt %d: the admin demoted Mallory (200), yet her role is %q again; her API token acts as: %s", i, role,
				e.Do("GET", "/api/v1/profile", nil, api).Str("role"))
			return
		}
		e.Do("PATCH", "/api/v1/users/"+id, map[string]any{"role": "admin"}, admin)
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}

func TestReviewRenameRevertsPasswordReset(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.Postgres(t), nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	u := e.Do("POST", "/api/v1/users", map[string]any{"name": "Mallory", "email": "mallory@example.com", "password": "mallory-pass-1", "role": "agent"}, admin)
	want(t, "create user", u, 201)
	id := fmt.Sprint(int(u.Body["id"].(float64)))
	ml := apptest.Bearer(e.Login("mallory@example.com", "mallory-pass-1").Str("token"))
	pat := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "p", "scopes": []string{"read", "write"}}, ml)
	want(t, "pat", pat, 201)
	basicH := basic(int64(pat.Body["account_id"].(float64)), pat.Str("token"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				e.Do("PATCH", "/api/v1/profile", map[string]any{"name": "Mallory"}, basicH)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)
	t.Logf("rename with the PAT: %d", e.Do("PATCH", "/api/v1/profile", map[string]any{"name": "Mallory"}, basicH).Status)
	for i := 0; i < 10; i++ {
		pw := fmt.Sprint("admin-chosen-", i)
		want(t, "reset password", e.Do("PATCH", "/api/v1/users/"+id, map[string]any{"password": pw}, admin), 200)
		time.Sleep(300 * time.Millisecond)
		uid, _ := strconv.ParseInt(id, 10, 64)
		stored, _ := e.App.Store.UserByID(context.Background(), uid)
		if bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte(pw)) != nil {
			ok := bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte("mallory-pass-1")) == nil
			t.Errorf("FINDING: attempt %d: after the admin reset Mallory's password (200), the stored hash is not the new password's; old password matches: %v", i, ok)
			return
		}
		e.Do("PATCH", "/api/v1/users/"+id, map[string]any{"password": "mallory-pass-1"}, admin)
		time.Sleep(50 * time.Millisecond)
	}
}

// R13: a sign-in that checked the old password before an admin's reset and
// started its family after the reset's cascade survives the reset.
func TestReviewLoginRacesPasswordReset(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.Postgres(t), nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	u := e.Do("POST", "/api/v1/users", map[string]any{"name": "Mallory", "email": "mallory@example.com", "password": "mallory-pass-1", "role": "agent"}, admin)
	want(t, "create user", u, 201)
	id := fmt.Sprint(int(u.Body["id"].(float64)))
	var mu sync.Mutex
	var toks []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := e.Do("POST", "/api/v1/auth/token", map[string]any{"email": "mallory@example.com", "password": "mallory-pass-1"})
				if r.Status == 200 {
					mu.Lock()
					toks = append(toks, r.Str("token"))
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	want(t, "reset password", e.Do("PATCH", "/api/v1/users/"+id, map[string]any{"password": "admin-chosen-1"}, admin), 200)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	live := 0
	for _, tok := range toks {
		if e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(tok)).Status == 200 {
			live++
		}
	}
	if live > 0 {
		t.Errorf("FINDING: %d of %d sign-ins made with the old password survive the admin's password reset", live, len(toks))
	}
}

// R14: the cookie path's sibling rule keeps a stolen visitor refresh token
// alive as a second line for as long as the owner uses the cookie: each
// cookie visit retires the thief's token with grace, and the thief's next
// presentation within grace gets its successor as a sibling. Reuse is
// never detected.
func TestReviewCookieSiblingKeepsThiefAlive(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_REFRESH_GRACE": "2s"})
	w := newCeilWorld(t, e)
	v := w.visitor(t)
	cookie := "Cookie: " + cookieOf(v)
	thief := v.Str("refresh_token")
	for i := 0; i < 5; i++ {
		own := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token"}, "Origin: "+shop, cookie)
		want(t, "owner's cookie visit", own, 200)
		if c := cookieOf(own); c != "" {
			cookie = "Cookie: " + c
		}
		time.Sleep(500 * time.Millisecond)
		r := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "grant_type": "refresh_token", "refresh_token": thief}, "Origin: "+shop)
		if r.Status != 200 {
			t.Logf("round %d: thief refused %d %s", i, r.Status, r.Str("message"))
			return
		}
		thief = r.Str("refresh_token")
		if e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(own.Str("access_token"))).Status != 200 {
			t.Fatalf("round %d: owner's token revoked", i)
		}
	}
	t.Errorf("FINDING: 5 rounds: the thief's line and the owner's run side by side (two live refresh tokens per family), reuse never detected")
}

// R15: one visitor cookie per browser for every client: any site with a
// client of its own (any organization) replaced it with a cross-site POST,
// and the visitor's session at the other site's widget was lost. Fixed:
// each client has a cookie of its own name (cookieName).
func TestReviewCookieClobberedByAnotherTenant(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCeilWorld(t, e)
	v := w.visitor(t)
	cookie := "Cookie: " + cookieOf(v)
	rival := apptest.Bearer(otherTenant(t, e))
	const evil = "https://evil.example.net"
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "evil widget", "client_type": "public", "redirect_uris": []string{evil + "/cb"}, "allowed_origins": []string{evil}, "dpop": "optional"}, rival)
	if cl.Status != 201 {
		t.Skipf("rival cannot register a client: %d %s", cl.Status, cl.Raw)
	}
	// evil.example.net's page: fetch(..., {credentials: "include"}) with the victim's cookie
	r := e.Do("POST", "/customer/token", map[string]any{"client_id": cl.Str("client_id"), "response_type": "token"}, "Origin: "+evil, cookie, "Content-Type: text/plain")
	want(t, "evil widget", r, 200)
	// The browser's jar after that visit: a cookie of the same name would
	// have been replaced; the evil widget's has a name of its own.
	jar := map[string]string{}
	for _, c := range []string{cookieOf(v), cookieOf(r)} {
		name, _, _ := strings.Cut(c, "=")
		jar[name] = c
	}
	if len(jar) != 2 {
		t.Fatalf("the two widgets' cookies share a name: %v", jar)
	}
	var sent []string
	for _, c := range jar {
		sent = append(sent, c)
	}
	back := e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token"}, "Origin: "+shop, "Cookie: "+strings.Join(sent, "; "))
	if back.Str("entity_id") != v.Str("entity_id") {
		t.Errorf("FINDING: after a visit to another tenant's site the shop's widget no longer knows the visitor (entity %q, was %q)", back.Str("entity_id"), v.Str("entity_id"))
	}
}

// R3b: the thief refreshes twice (grace passes between). Only the last
// spent token is kept (working tree: Rotate's dropSpent; HEAD: the purge
// after the grace window), so the owner's stale token is "unknown".
func TestReviewTwoRotationsDisarmReuseDetection(t *testing.T) {
	reviewOnly(t)
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_REFRESH_GRACE": "1s"})
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	stolen := login.Str("refreshToken")
	rt := stolen
	for i := 0; i < 2; i++ {
		r := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": rt, "clientId": apptest.AdminEmail})
		want(t, "thief refresh", r, 200)
		rt = r.Str("refreshToken")
		time.Sleep(1100 * time.Millisecond)
	}
	owner := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": stolen, "clientId": apptest.AdminEmail})
	t.Logf("owner presents its token: %d %s", owner.Status, owner.Str("message"))
	next := e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": rt, "clientId": apptest.AdminEmail})
	if next.Status == 200 {
		t.Errorf("FINDING: no reuse detected: the thief's line still refreshes after the owner presented the stolen token")
	}
}

// reviewOnly skips the security review's reproductions unless
// CHATAUTH_REVIEW=1: each one fails (t.Errorf "FINDING: ...") while its
// finding stands, so they stay out of the default suite until fixed.
func reviewOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("CHATAUTH_REVIEW") != "1" {
		t.Skip("security review reproduction; run with CHATAUTH_REVIEW=1")
	}
}
