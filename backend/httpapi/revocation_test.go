package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
)

// The revocation cascade (backend/credential/revoke.go) end to end: for
// every event that must end credentials, fresh credentials of every kind
// derived from a user or a client are presented after the event, and each
// must be refused within a second (at once on the process that handled
// the event) or, when the event must not end it, keep working.

// The derived credential kinds.
const (
	revSignin         = "signin_access"  // the sign-in the user acts through (logout, own password change)
	revSigninRefresh  = "signin_refresh" //   and its refresh token
	revSignin2        = "signin2_access" // another sign-in of the same user
	revSignin2Refresh = "signin2_refresh"
	revOAuth          = "oauth_access" // authorization-code grant of the confidential client "app"
	revOAuthRefresh   = "oauth_refresh"
	revImplicit       = "implicit"    // implicit grant of the public client "widget"
	revAPIToken       = "api_token"   // the user's API token (cat_)
	revPAT            = "pat"         // a personal access token (cap_)
	revCC             = "cc"          // client-credentials token of "app"
	revVisitor        = "visitor"     // visitor token of "widget"
	revAppVisitor     = "app_visitor" // visitor token minted through "app"
)

var (
	revUserKinds   = []string{revSignin, revSigninRefresh, revSignin2, revSignin2Refresh, revOAuth, revOAuthRefresh, revImplicit, revAPIToken, revPAT}
	revClientKinds = []string{revCC, revVisitor, revAppVisitor}
	revSessions    = []string{revSignin, revSigninRefresh, revSignin2, revSignin2Refresh, revOAuth, revOAuthRefresh, revImplicit}
	revAppTokens   = []string{revOAuth, revOAuthRefresh, revCC, revAppVisitor}
)

// revSpends marks kinds whose check spends the credential (a refresh):
// one that works after the event has already minted a new access token,
// so it fails the cell at once instead of being polled again.
var revSpends = map[string]bool{revSigninRefresh: true, revSignin2Refresh: true, revOAuthRefresh: true}

const revPassword = "password-123"

// revWorld is one app with its admin and platform credentials.
type revWorld struct {
	e     *apptest.Env
	admin string // Authorization header of the admin's sign-in
	plat  string // api_access_token header of a platform token ("" when off)
	org   int64
}

func newRevWorld(t *testing.T, e *apptest.Env, platform bool) *revWorld {
	t.Helper()
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	w := &revWorld{e: e, admin: apptest.Bearer(login.Str("token")), org: int64(login.Body["user"].(map[string]any)["account_id"].(float64))}
	if platform {
		secret, hash := token.NewOpaque(token.PrefixPlatform)
		if err := e.App.Store.CreateCredential(context.Background(), &domain.Credential{Kind: "platform", Name: "revocation test", Hash: hash}); err != nil {
			t.Fatal(err)
		}
		w.plat = "api_access_token: " + secret
	}
	return w
}

// revCreds are the credentials derived from one target user and two
// clients.
type revCreds struct {
	org      int64
	userID   string
	email    string
	password string

	signin, signinRefresh   string
	signin2, signin2Refresh string
	oauth, oauthRefresh     string
	implicit                string
	apiToken                string
	pat                     string
	cc                      string
	visitor                 string
	appVisitor              string

	app, appSecret string // the confidential client
	appPublic      bool   // app was made public: it authenticates by id alone
	widget         string // the public client
}

// revAuthorize runs the browser side of /oauth/authorize as email.
func revAuthorize(t *testing.T, b *browser, authURL, email, password string) *url.URL {
	t.Helper()
	p := b.get(authURL)
	if p.status == 200 && strings.Contains(p.body, `value="login"`) {
		p = b.submit(p, map[string]string{"action": "login", "email": email, "password": password})
	}
	if p.status == 200 && strings.Contains(p.body, `value="approve"`) {
		p = b.submit(p, map[string]string{"action": "approve"})
	}
	if p.status != 302 && p.status != 303 {
		t.Fatalf("authorize ended at %d: %s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// revForm posts a form to e, with the client's Basic credentials when
// secret is set (postForm, without a *testing.T to fail).
func revForm(e *apptest.Env, path string, form url.Values, id, secret string) apptest.Response {
	headers := []string{"Content-Type: application/x-www-form-urlencoded"}
	if secret != "" {
		req, _ := http.NewRequest("POST", "/", nil)
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
		headers = append(headers, "Authorization: "+req.Header.Get("Authorization"))
	} else {
		form.Set("client_id", id)
	}
	return e.Do("POST", path, form.Encode(), headers...)
}

// revSetup makes a target user of role and fresh credentials of every
// kind, all issued by e, and checks that each works.
func (w *revWorld) revSetup(t *testing.T, role string) *revCreds {
	t.Helper()
	e := w.e
	c := &revCreds{org: w.org, email: uniq("target") + "@example.com", password: revPassword}
	u := e.Do("POST", "/api/v1/users", map[string]any{"name": "Target", "email": c.email, "password": c.password, "role": role}, w.admin)
	expect(t, u, 201, "")
	c.userID = strconv.Itoa(int(u.Body["id"].(float64)))

	app := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "App", "client_type": "confidential", "redirect_uris": []string{redirectURI},
		"scopes": []string{"read", "write", "chat"}, "allowed_origins": []string{shop}}, w.admin)
	expect(t, app, 201, "")
	c.app, c.appSecret = app.Str("client_id"), app.Str("client_secret")
	widget := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Widget", "client_type": "public", "redirect_uris": []string{redirectURI},
		"allowed_origins": []string{shop}, "dpop": "optional"}, w.admin)
	expect(t, widget, 201, "")
	c.widget = widget.Str("client_id")

	l1, l2 := e.Login(c.email, c.password), e.Login(c.email, c.password)
	c.signin, c.signinRefresh = l1.Str("token"), l1.Str("refreshToken")
	c.signin2, c.signin2Refresh = l2.Str("token"), l2.Str("refreshToken")

	// An authorization-code grant of app (no PKCE: confidential).
	b := newBrowser(t, e)
	q := url.Values{"response_type": {"code"}, "client_id": {c.app}, "redirect_uri": {redirectURI}, "scope": {"read write chat"}, "state": {"s"}}
	back := revAuthorize(t, b, "/oauth/authorize?"+q.Encode(), c.email, c.password)
	code := back.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", back)
	}
	tok := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}, c.app, c.appSecret)
	expect(t, tok, 200, "")
	c.oauth, c.oauthRefresh = tok.Str("access_token"), tok.Str("refresh_token")

	// An implicit grant of widget, in the same browser session.
	q = url.Values{"response_type": {"token"}, "client_id": {c.widget}, "redirect_uri": {redirectURI}, "scope": {"read write chat"}, "state": {"s"}}
	back = revAuthorize(t, b, "/oauth/authorize?"+q.Encode(), c.email, c.password)
	frag, _ := url.ParseQuery(back.Fragment)
	if c.implicit = frag.Get("access_token"); c.implicit == "" {
		t.Fatalf("no implicit token: %s", back)
	}

	// The user's API token and a personal access token (from sign-in 2).
	r := e.Do("POST", "/api/v1/profile/reset_access_token", nil, apptest.Bearer(c.signin2))
	expect(t, r, 200, "")
	c.apiToken = r.Str("access_token")
	r = e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "revocation", "scopes": []string{"read", "write", "chat"}}, apptest.Bearer(c.signin2))
	expect(t, r, 201, "")
	c.pat = r.Str("token")

	// Client credentials of app, and visitors of widget and of app.
	r = postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, c.app, c.appSecret)
	expect(t, r, 200, "")
	c.cc = r.Str("access_token")
	for _, v := range []struct {
		client string
		dst    *string
	}{{c.widget, &c.visitor}, {c.app, &c.appVisitor}} {
		r = e.Do("POST", "/customer/token", map[string]any{"client_id": v.client, "response_type": "token"}, "Origin: "+shop)
		expect(t, r, 200, "")
		*v.dst = r.Str("access_token")
	}

	for _, k := range append(append([]string(nil), revUserKinds...), revClientKinds...) {
		if res, r := c.present(e, k); res != revWorked {
			t.Fatalf("%s does not work before the event: %d %s", k, r.Status, r.Raw)
		}
	}
	if role == "admin" {
		// The long-lived credentials act as admin now (so that a demotion
		// shows in them).
		for _, k := range []string{revAPIToken, revPAT} {
			expect(t, e.Do("GET", "/api/v1/oauth/clients", nil, c.auth(k)), 200, "")
		}
	}
	return c
}

type revResult int

const (
	revWorked revResult = iota
	revRefused
	revOther
)

// auth is the header that presents an access-type credential of kind.
func (c *revCreds) auth(kind string) string {
	switch kind {
	case revSignin:
		return apptest.Bearer(c.signin)
	case revSignin2:
		return apptest.Bearer(c.signin2)
	case revOAuth:
		return apptest.Bearer(c.oauth)
	case revImplicit:
		return apptest.Bearer(c.implicit)
	case revAPIToken:
		return "api_access_token: " + c.apiToken
	case revPAT:
		return basic(c.org, c.pat)
	case revCC:
		return apptest.Bearer(c.cc)
	case revVisitor:
		return apptest.Bearer(c.visitor)
	case revAppVisitor:
		return apptest.Bearer(c.appVisitor)
	}
	panic("unknown kind " + kind)
}

// present makes a request that needs the credential of kind on e. A
// refresh that works rotates: the successor replaces the spent token.
func (c *revCreds) present(e *apptest.Env, kind string) (revResult, apptest.Response) {
	var r apptest.Response
	switch kind {
	case revSigninRefresh, revSignin2Refresh:
		rt := &c.signinRefresh
		if kind == revSignin2Refresh {
			rt = &c.signin2Refresh
		}
		r = e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": *rt, "clientId": c.email})
		switch {
		case r.Status == 200 && r.Str("refreshToken") != "":
			*rt = r.Str("refreshToken")
			return revWorked, r
		case r.Status == 401 && r.Str("error") == "invalid_token":
			return revRefused, r
		}
		return revOther, r
	case revOAuthRefresh:
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {c.oauthRefresh}}
		secret := c.appSecret
		if c.appPublic {
			secret = ""
		}
		r = revForm(e, "/oauth/token", form, c.app, secret)
		switch {
		case r.Status == 200 && r.Str("refresh_token") != "":
			c.oauthRefresh = r.Str("refresh_token")
			return revWorked, r
		case r.Status == 400 && r.Str("error") == "invalid_grant", r.Status == 401 && r.Str("error") == "invalid_client":
			return revRefused, r
		}
		return revOther, r
	case revCC:
		r = e.Do("GET", "/api/v1/contacts", nil, c.auth(kind))
	case revVisitor, revAppVisitor:
		r = e.Do("GET", "/customer/api/v1/me", nil, c.auth(kind))
	default:
		// The profile re-reads the user, so a deleted user's token fails
		// there whatever the revocation set says; the contact list trusts
		// the credential alone. Both must agree.
		r = e.Do("GET", "/api/v1/profile", nil, c.auth(kind))
		r2 := e.Do("GET", "/api/v1/contacts", nil, c.auth(kind))
		if (r.Status == 200) != (r2.Status == 200) {
			return revOther, apptest.Response{Status: r2.Status, Raw: []byte(fmt.Sprintf("profile %d %s; contacts %d %s", r.Status, r.Raw, r2.Status, r2.Raw))}
		}
		if r.Status == 401 && (r2.Status != 401 || r2.Str("error") != "invalid_token") {
			return revOther, r2
		}
	}
	switch {
	case r.Status == 200:
		return revWorked, r
	case r.Status == 401 && r.Str("error") == "invalid_token":
		return revRefused, r
	}
	return revOther, r
}

// revEvent is one revocation event: what it targets, what it ends.
type revEvent struct {
	name string
	role string // the target user's role when created
	// client events also carry client-credentials and visitor tokens
	client bool
	ends   []string
	// demotes: the surviving long-lived credentials must act with a role
	// below admin afterwards.
	demotes bool
	do      func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds)
}

func (ev revEvent) kinds() []string {
	ks := append([]string(nil), revUserKinds...)
	if ev.client {
		ks = append(ks, revClientKinds...)
	}
	return ks
}

func (ev revEvent) ended(kind string) bool { return revContains(ev.ends, kind) }

func revEvents() []revEvent {
	all := revUserKinds
	except := func(keep ...string) []string {
		var out []string
		for _, k := range revSessions {
			if !revContains(keep, k) {
				out = append(out, k)
			}
		}
		return out
	}
	return []revEvent{
		{name: "delete_user", role: "agent", ends: all, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("DELETE", "/api/v1/users/"+c.userID, nil, w.admin), 204, "")
		}},
		{name: "role_change", role: "admin", ends: revSessions, demotes: true, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("PATCH", "/api/v1/users/"+c.userID, map[string]any{"role": "agent"}, w.admin), 200, "")
		}},
		{name: "password_change", role: "agent", ends: revSessions, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("PATCH", "/api/v1/users/"+c.userID, map[string]any{"password": "changed-by-admin-1"}, w.admin), 200, "")
		}},
		{name: "platform_role_change", role: "admin", ends: revSessions, demotes: true, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("PATCH", "/platform/api/v1/users/"+c.userID, map[string]any{"role": "bot"}, w.plat), 200, "")
		}},
		{name: "platform_delete_user", role: "agent", ends: all, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("DELETE", "/platform/api/v1/users/"+c.userID, nil, w.plat), 204, "")
		}},
		{name: "own_password_change", role: "agent", ends: except(revSignin, revSigninRefresh), do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("PATCH", "/api/v1/profile", map[string]any{"password": "changed-by-self-1", "current_password": c.password}, apptest.Bearer(c.signin)), 200, "")
		}},
		{name: "oauth_revoke", role: "agent", client: true, ends: []string{revOAuth, revOAuthRefresh}, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, postForm(t, e, "/oauth/revoke", url.Values{"token": {c.oauthRefresh}, "token_type_hint": {"refresh_token"}}, c.app, c.appSecret), 200, "")
		}},
		{name: "delete_client", role: "agent", client: true, ends: revAppTokens, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("DELETE", "/api/v1/oauth/clients/"+c.app, nil, w.admin), 204, "")
		}},
		{name: "client_public", role: "agent", client: true, ends: revAppTokens, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			r := e.Do("PUT", "/api/v1/oauth/clients/"+c.app, map[string]any{"client_type": "public"}, w.admin)
			expect(t, r, 200, "")
			if r.Str("client_type") != "public" {
				t.Fatalf("PUT to public: %s", r.Raw)
			}
			c.appPublic = true
		}},
		{name: "reset_secret", role: "agent", client: true, ends: revAppTokens, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			r := e.Do("POST", "/api/v1/oauth/clients/"+c.app+"/reset_secret", nil, w.admin)
			expect(t, r, 200, "")
			if r.Str("client_secret") == "" || r.Str("client_secret") == c.appSecret {
				t.Fatalf("reset_secret: %s", r.Raw)
			}
			c.appSecret = r.Str("client_secret")
		}},
		{name: "delete_widget", role: "agent", client: true, ends: []string{revImplicit, revVisitor}, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			expect(t, e.Do("DELETE", "/api/v1/oauth/clients/"+c.widget, nil, w.admin), 204, "")
		}},
		{name: "logout", role: "agent", ends: []string{revSignin, revSigninRefresh}, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			r := e.Do("POST", "/api/v1/auth/logout", nil, apptest.Bearer(c.signin))
			if r.Status != 204 {
				t.Fatalf("logout: %d %s", r.Status, r.Raw)
			}
		}},
		{name: "logout_all", role: "agent", ends: []string{revSignin, revSigninRefresh, revSignin2, revSignin2Refresh}, do: func(t *testing.T, w *revWorld, e *apptest.Env, c *revCreds) {
			r := e.Do("POST", "/api/v1/auth/logout_all", nil, apptest.Bearer(c.signin))
			if r.Status != 204 {
				t.Fatalf("logout_all: %d %s", r.Status, r.Raw)
			}
		}},
	}
}

func revContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// revPoll presents kind every 50 ms until it is refused or limit passes,
// and returns how long that took and whether the first attempt was
// refused. A spending check that works fails at once.
func revPoll(t *testing.T, e *apptest.Env, c *revCreds, kind string, limit time.Duration) (took time.Duration, first, ok bool) {
	t.Helper()
	start := time.Now()
	var last apptest.Response
	for attempt := 1; ; attempt++ {
		res, r := c.present(e, kind)
		took = time.Since(start)
		switch {
		case res == revRefused:
			return took, attempt == 1, true
		case res == revWorked && revSpends[kind]:
			t.Errorf("%s still works after the event (and minted a new access token): %d %s", kind, r.Status, r.Raw)
			return took, false, false
		case res == revOther:
			last = r
		}
		if took > limit {
			if last.Status != 0 {
				t.Errorf("%s: not refused within %v; an unexpected answer was %d %s", kind, limit, last.Status, last.Raw)
			} else {
				t.Errorf("%s: still works %v after the event: %d %s", kind, limit, r.Status, r.Raw)
			}
			return took, false, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRevocationCascade: revocation events × derived credential kinds,
// on one process: what an event ends is refused at once, what it must
// not end keeps working.
func TestRevocationCascade(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_PLATFORM": "true", "CHATAUTH_REFRESH_GRACE": "1ms"})
		w := newRevWorld(t, e, true)
		cells := 0
		for _, ev := range revEvents() {
			t.Run(ev.name, func(t *testing.T) {
				c := w.revSetup(t, ev.role)
				ev.do(t, w, e, c)
				done := time.Now()
				var ends, keeps []string
				for _, k := range ev.kinds() {
					if ev.ended(k) {
						ends = append(ends, k)
					} else {
						keeps = append(keeps, k)
					}
				}
				for _, k := range ends {
					cells++
					t.Run(k, func(t *testing.T) {
						took, first, ok := revPoll(t, e, c, k, time.Second)
						if ok && !first {
							// The cascade adds to this process's revocation set
							// before it answers; waiting means it did not.
							t.Errorf("%s refused only after %v on the process that handled the event; want at once", k, took)
						}
					})
				}
				// What survives must still work after a poll of the
				// revocation set has passed.
				time.Sleep(time.Until(done.Add(600 * time.Millisecond)))
				for _, k := range keeps {
					cells++
					t.Run(k, func(t *testing.T) {
						if res, r := c.present(e, k); res != revWorked {
							t.Fatalf("%s must survive %s: %d %s", k, ev.name, r.Status, r.Raw)
						}
						if ev.demotes && (k == revAPIToken || k == revPAT) {
							// It acts with the lower role now.
							r := e.Do("GET", "/api/v1/oauth/clients", nil, c.auth(k))
							if r.Status != 403 || r.Str("error") != "insufficient_scope" {
								t.Fatalf("%s of a demoted user still acts as admin: %d %s", k, r.Status, r.Raw)
							}
							if p := e.Do("GET", "/api/v1/profile", nil, c.auth(k)); p.Str("role") == "admin" {
								t.Fatalf("%s: profile still says admin: %s", k, p.Raw)
							}
						}
					})
				}
			})
		}
		t.Logf("%d cells", cells)
	})
}

// TestRevocationAcrossProcesses: two processes on one PostgreSQL; an
// event handled by A ends the derived tokens presented to B, which has
// verified (and cached) them before, within one second.
func TestRevocationAcrossProcesses(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	extra := map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"}
	a := apptest.Start(t, dsn, extra)
	b := apptest.Start(t, dsn, extra)
	w := newRevWorld(t, a, false)
	subset := map[string]bool{"delete_user": true, "role_change": true, "delete_client": true, "reset_secret": true, "logout": true}
	var report []string
	for _, ev := range revEvents() {
		if !subset[ev.name] {
			continue
		}
		t.Run(ev.name, func(t *testing.T) {
			c := w.revSetup(t, ev.role)
			// B verifies every credential first, so its caches hold them.
			for _, k := range ev.kinds() {
				if res, r := c.present(b, k); res != revWorked {
					t.Fatalf("%s issued by A does not work on B: %d %s", k, r.Status, r.Raw)
				}
			}
			ev.do(t, w, a, c)
			start := time.Now()
			// Poll every ended kind on B together, every 50 ms.
			delays := map[string]time.Duration{}
			failed, last := map[string]string{}, map[string]string{}
			for len(delays)+len(failed) < len(ev.ends) && time.Since(start) <= time.Second {
				for _, k := range ev.ends {
					if _, ok := delays[k]; ok {
						continue
					}
					if _, ok := failed[k]; ok {
						continue
					}
					res, r := c.present(b, k)
					switch {
					case res == revRefused:
						delays[k] = time.Since(start)
					case res == revWorked && revSpends[k]:
						failed[k] = fmt.Sprintf("still works on B after the event: %d %s", r.Status, r.Raw)
					case res == revOther:
						// e.g. a deleted user's token: the profile already
						// fails, the contact list not until B's poll.
						last[k] = fmt.Sprintf("%d %s", r.Status, r.Raw)
					}
				}
				if len(delays)+len(failed) < len(ev.ends) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			for _, k := range ev.ends {
				t.Run(k, func(t *testing.T) {
					if msg, ok := failed[k]; ok {
						t.Fatalf("%s: %s", k, msg)
					}
					d, ok := delays[k]
					if !ok {
						t.Fatalf("%s: B still accepts it %v after %s on A (last unexpected answer: %s)", k, time.Since(start).Round(time.Millisecond), ev.name, last[k])
					}
					t.Logf("%s refused by B %v after %s on A", k, d.Round(time.Millisecond), ev.name)
					report = append(report, fmt.Sprintf("%s/%s %v", ev.name, k, d.Round(time.Millisecond)))
				})
			}
			// What the event must not end still works on B after a poll.
			time.Sleep(time.Until(start.Add(time.Second)))
			for _, k := range ev.kinds() {
				if ev.ended(k) {
					continue
				}
				if res, r := c.present(b, k); res != revWorked {
					t.Errorf("%s must survive %s on A, but B refuses it: %d %s", k, ev.name, r.Status, r.Raw)
				}
			}
		})
	}
	sort.Strings(report)
	t.Logf("delays across processes:\n%s", strings.Join(report, "\n"))
}
