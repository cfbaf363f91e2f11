package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// flakyRP is a back-channel logout endpoint that answers 503 to its
// first fails requests, then 200, and hands over what it accepted.
type flakyRP struct {
	mu       sync.Mutex
	fails    int
	attempts int
	got      chan url.Values
}

func (f *flakyRP) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	f.mu.Lock()
	f.attempts++
	fail := f.attempts <= f.fails
	f.mu.Unlock()
	if fail {
		rw.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.got <- r.PostForm
	rw.WriteHeader(http.StatusOK)
}

func (f *flakyRP) Attempts() int { f.mu.Lock(); defer f.mu.Unlock(); return f.attempts }

// TestOIDCBackchannelOnSignOutEverywhere: a browser sign-in ended by
// something else than end_session (here sign-out everywhere, through the
// revocation cascade's hook) ends the openid grants made in it and sends
// the back-channel logout, which go-oidc verifies; the delivery is
// retried past two failures.
func TestOIDCBackchannelOnSignOutEverywhere(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_BACKCHANNEL_PRIVATE": "true"})
	w := newOIDCWorld(t, e)
	e.App.OAuth.Backchannel.Backoff = 10 * time.Millisecond
	rp := &flakyRP{fails: 2, got: make(chan url.Values, 4)}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	r := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Flaky RP", "client_type": "public", "redirect_uris": []string{redirectURI},
		"scopes": []string{"read"}, "backchannel_logout_uri": srv.URL + "/bc"}, w.admin)
	expect(t, r, 201, "")
	id := r.Str("client_id")

	b := newBrowser(t, e)
	conf := w.conf(id, oidc.ScopeOpenID, "read")
	tok, idt, _ := w.login(b, conf, "n")
	sid := idClaimsOf(t, idt).SID
	// A grant without openid made in the same sign-in stays: it is not
	// OpenID Connect's to end.
	plain := w.conf(w.public, "read")
	v := oauth2.GenerateVerifier()
	back := b.authorize(w.local(plain.AuthCodeURL("p", oauth2.S256ChallengeOption(v))))
	ptok, err := plain.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}

	expect(t, e.Do("POST", "/api/v1/auth/logout_all", nil, w.admin), 204, "")

	select {
	case form := <-rp.got:
		lt := form.Get("logout_token")
		ver, err := w.provider.Verifier(&oidc.Config{ClientID: id}).Verify(w.ctx, lt)
		if err != nil {
			t.Fatalf("logout token: %v", err)
		}
		var c struct {
			SID    string                    `json:"sid"`
			Events map[string]map[string]any `json:"events"`
		}
		ver.Claims(&c)
		if c.SID != sid || ver.Subject != idt.Subject || c.Events["http://schemas.openid.net/event/backchannel-logout"] == nil {
			t.Fatalf("logout claims: %+v sub=%s", c, ver.Subject)
		}
		if jwtHeader(t, lt)["typ"] != "logout+jwt" {
			t.Fatalf("typ: %v", jwtHeader(t, lt))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no back-channel logout after %d attempts", rp.Attempts())
	}
	e.App.OAuth.Backchannel.Wait()
	if n := rp.Attempts(); n != 3 {
		t.Fatalf("%d attempts, want 3 (two failures, then delivered)", n)
	}
	// The openid grant ended with the sign-in; the other one did not.
	if _, err := conf.TokenSource(w.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
		t.Fatal("refresh of the openid grant after sign-out everywhere worked")
	}
	expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil, "Authorization: Bearer "+tok.AccessToken), 401, "invalid_token")
	if _, err := plain.TokenSource(w.ctx, &oauth2.Token{RefreshToken: ptok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err != nil {
		t.Fatalf("the grant without openid ended too: %v", err)
	}
	// The browser is signed out: prompt=none says so.
	v = oauth2.GenerateVerifier()
	if p := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))); !strings.Contains(p.location, "error=login_required") {
		t.Fatalf("still signed in: %d %s", p.status, p.location)
	}
	// The world's own RP had no grant in that sign-in: it heard nothing.
	select {
	case f := <-w.logouts:
		t.Fatalf("logout sent to a client without a grant in the session: %v", f)
	default:
	}
}
