package httpapi_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

// TestIdentityJWKSRemovedKeyEndsSessionsOnEveryProcess: a key the site
// removes from its jwks_uri set ends the sessions it signed in, though
// the process that finds the set changed never held the old one
// (docs/security.md, I2). Process A signs a visitor in with k1; the site
// serves an empty set for a moment (a misconfigured server), which
// process C fetches: nothing ends. The site then rotates to k2 only;
// process B, which never fetched the set, signs someone in with k2, and
// the k1 session stops refreshing on A and on B within a second.
func TestIdentityJWKSRemovedKeyEndsSessionsOnEveryProcess(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		extra := map[string]string{"CHATAUTH_IDENTITY_PRIVATE_JWKS": "true"}
		a := apptest.Start(t, dsn, extra)
		b := apptest.Start(t, dsn, extra)
		c := apptest.Start(t, dsn, extra)

		k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		var mu sync.Mutex
		body := func(keys ...jose.JSONWebKey) []byte {
			raw, _ := json.Marshal(map[string]any{"keys": keys})
			return raw
		}
		serving := body(jose.JSONWebKey{Key: &k1.PublicKey, KeyID: "k1", Use: "sig"})
		serve := func(raw []byte) {
			mu.Lock()
			serving = raw
			mu.Unlock()
		}
		jwks := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			rw.Header().Set("Content-Type", "application/json")
			rw.Write(serving)
		}))
		defer jwks.Close()
		for _, e := range []*apptest.Env{a, b, c} {
			e.App.Server.Identity.JWKS.Client = jwks.Client()
		}

		wa := newCustomerWorld(t, a)
		expect(t, a.Do("POST", "/api/v1/oauth/clients/"+wa.client+"/identity_keys", map[string]any{"jwks_uri": jwks.URL + "/jwks"}, wa.admin), 201, "")
		on := func(e *apptest.Env) *customerWorld { return &customerWorld{e: e, admin: wa.admin, client: wa.client} }
		old := site{w: on(a), kid: "k1", priv: k1, method: jwt.SigningMethodES256}
		in := old.login(old.sign(t, "ada", nil))
		expect(t, in, 200, "")
		rt := in.Str("refresh_token")
		refresh := func(e *apptest.Env) int {
			r := on(e).visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": rt})
			if r.Status == 200 {
				rt = r.Str("refresh_token")
			}
			return r.Status
		}

		// An empty set is not a fetch: C, which never had the set, refuses
		// the sign-in and ends nothing.
		serve(body())
		fresh := site{w: on(c), kid: "k2", priv: k2, method: jwt.SigningMethodES256}
		want(t, "a k2 sign-in while the site serves an empty set", fresh.login(fresh.sign(t, "grace", nil)), 401, shared.ErrInvalidIdentity)
		time.Sleep(600 * time.Millisecond) // past every poll interval
		if s := refresh(b); s != 200 {
			t.Fatalf("the k1 session ended on an empty set: refresh %d", s)
		}

		// The site rotates to k2 only. B has never fetched the set.
		serve(body(jose.JSONWebKey{Key: &k2.PublicKey, KeyID: "k2", Use: "sig"}))
		fresh.w = on(b)
		signedIn := fresh.login(fresh.sign(t, "grace", nil))
		expect(t, signedIn, 200, "")
		took := eventually(t, time.Second+200*time.Millisecond, "the k1 session ends on A", func() bool {
			return a.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(in.Str("access_token"))).Status == 401
		})
		t.Logf("removal found by B reached A in %v", took)
		for name, e := range map[string]*apptest.Env{"A": a, "B": b} {
			if s := refresh(e); s == 200 {
				t.Errorf("the session k1 signed in still refreshes on %s after the site removed k1", name)
			}
		}
		// The k2 session is untouched.
		rt = signedIn.Str("refresh_token")
		if s := refresh(a); s != 200 {
			t.Errorf("the k2 session: refresh %d", s)
		}
	})
}
