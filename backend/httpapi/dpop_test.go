package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"chatauth/backend/apptest"
	"chatauth/backend/dpop/dpoptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// A DPoP key as a browser holds it (dpoptest.Key). The lower-case fields
// are the names this package's tests have always used.
type dpopKey struct {
	dpoptest.Key
	priv *ecdsa.PrivateKey
	jwk  map[string]any
	jkt  string
}

func newDPoPKey(t *testing.T) dpopKey {
	t.Helper()
	k := dpoptest.NewKey(t)
	return dpopKey{Key: k, priv: k.Private.(*ecdsa.PrivateKey), jwk: k.JWK, jkt: k.JKT}
}

const issuer = "http://chatauth.test" // apptest's CHATAUTH_ISSUER: what htu names

// proof signs a DPoP proof for method and path; tok, when set, is named by
// ath; edit changes the header or claims before signing.
func (k dpopKey) proof(t *testing.T, method, path, tok, nonce string, edit func(h, c map[string]any)) string {
	t.Helper()
	return k.Sign(t, dpoptest.Proof{Method: method, URL: issuer + path, AccessToken: tok, Nonce: nonce, Edit: edit})
}

// boundVisitor gets a DPoP-bound visitor token the way the SDK does: the
// first proof is answered use_dpop_nonce with the nonce, the retry signs it.
func boundVisitor(t *testing.T, w *customerWorld, k dpopKey) (apptest.Response, string) {
	t.Helper()
	first := w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", "", nil))
	want(t, "first proof without a nonce", first, 400, "use_dpop_nonce")
	nonce := first.Header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("use_dpop_nonce without a DPoP-Nonce header")
	}
	r := w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", nonce, nil))
	expect(t, r, 200, "")
	if r.Str("token_type") != "DPoP" {
		t.Fatalf("bound answer: %s", r.Raw)
	}
	if jkt := dpoptest.BoundTo(t, r.Str("access_token")); jkt != k.jkt {
		t.Fatalf("cnf.jkt = %q, want %s", jkt, k.jkt)
	}
	return r, r.Header.Get("DPoP-Nonce")
}

func TestDPoPVisitorTokens(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, nonce := boundVisitor(t, w, k)
		tok := v.Str("access_token")
		me := func(proof string, scheme ...string) apptest.Response {
			s := "DPoP"
			if len(scheme) > 0 {
				s = scheme[0]
			}
			h := []string{"Authorization: " + s + " " + tok}
			if proof != "" {
				h = append(h, "DPoP: "+proof)
			}
			return e.Do("GET", "/customer/api/v1/me", nil, h...)
		}
		expect(t, me(k.proof(t, "GET", "/customer/api/v1/me", tok, "", nil)), 200, "")

		// Lifted out of the page: as a bearer token, or with another key.
		r := me("", "Bearer")
		want(t, "bound token as bearer", r, 401, "invalid_token")
		if !strings.Contains(r.Str("message"), "bound to a DPoP key") || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "DPoP ") {
			t.Fatalf("bearer refusal: %s %q", r.Raw, r.Header.Get("WWW-Authenticate"))
		}
		thief := newDPoPKey(t)
		r = me(thief.proof(t, "GET", "/customer/api/v1/me", tok, "", nil))
		want(t, "another key's proof", r, 401, "invalid_dpop_proof")
		if !strings.Contains(r.Str("message"), "another key") {
			t.Fatalf("another key: %s", r.Raw)
		}

		// Every check of RFC 9449, section 4.3, each with its own refusal.
		path := "/customer/api/v1/me"
		replayed := k.proof(t, "GET", path, tok, "", nil)
		expect(t, me(replayed), 200, "")
		cases := []struct{ name, proof, says string }{
			{"no proof", "", "missing"},
			{"not a JWT", "nope", "not a JWT"},
			{"typ", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { h["typ"] = "JWT" }), `typ must be "dpop+jwt"`},
			{"no jwk", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { delete(h, "jwk") }), "no jwk header"},
			{"private jwk", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) {
				h["jwk"] = dpoptest.JWKMap(t, jose.JSONWebKey{Key: k.priv})
			}), "private key"},
			{"signed by another key", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { h["jwk"] = thief.jwk }), "signature does not verify"},
			{"htm", k.proof(t, "POST", path, tok, "", nil), "htm"},
			{"htu", k.proof(t, "GET", "/customer/api/v1/conversations", tok, "", nil), "htu"},
			{"old iat", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { c["iat"] = time.Now().Add(-10 * time.Minute).Unix() }), "more than 5 minutes old"},
			{"future iat", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() }), "in the future"},
			{"no iat", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { delete(c, "iat") }), "iat: required"},
			{"no jti", k.proof(t, "GET", path, tok, "", func(h, c map[string]any) { delete(c, "jti") }), "jti: required"},
			{"no ath", k.proof(t, "GET", path, "", "", nil), "ath"},
			{"ath of another token", k.proof(t, "GET", path, "another token", "", nil), "ath"},
			{"replayed jti", replayed, "jti already used"},
		}
		for _, c := range cases {
			r := me(c.proof)
			want(t, c.name, r, 401, "invalid_dpop_proof")
			if !strings.Contains(r.Str("message"), c.says) || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
				t.Errorf("%s: %s %q, want it to say %q", c.name, r.Raw, r.Header.Get("WWW-Authenticate"), c.says)
			}
		}
		// An HMAC "proof" (no key to possess) and alg none are refused by
		// the explicit algorithm list.
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"jti": "h", "htm": "GET", "htu": issuer + path, "iat": time.Now().Unix()})
		hs.Header["typ"], hs.Header["jwk"] = "dpop+jwt", k.jwk
		hsProof, _ := hs.SignedString([]byte("secret"))
		r = me(hsProof)
		want(t, "HS256 proof", r, 401, "invalid_dpop_proof")
		if !strings.Contains(r.Str("message"), "not accepted") {
			t.Fatalf("HS256: %s", r.Raw)
		}
		req, _ := http.NewRequest("GET", e.Srv.URL+path, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Add("DPoP", k.proof(t, "GET", path, tok, "", nil))
		req.Header.Add("DPoP", k.proof(t, "GET", path, tok, "", nil))
		two, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		two.Body.Close()
		if two.StatusCode != 401 || !strings.Contains(two.Header.Get("WWW-Authenticate"), "more than one") {
			t.Fatalf("two DPoP headers: %d %q", two.StatusCode, two.Header.Get("WWW-Authenticate"))
		}

		// The stream takes the same proof (the SDK reads it with fetch).
		ev := e.Do("GET", "/customer/api/v1/conversations/999999/events", nil, "Authorization: Bearer "+tok)
		want(t, "bound stream as bearer", ev, 401, "invalid_token")

		// The refresh token is bound too: refused without a proof or with
		// another key's, taken with the key's (and still bound after).
		refresh := func(proof string) apptest.Response {
			h := []string{}
			if proof != "" {
				h = append(h, "DPoP: "+proof)
			}
			return w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": v.Str("refresh_token")}, h...)
		}
		want(t, "bound refresh without a proof", refresh(""), 400, "invalid_dpop_proof")
		want(t, "bound refresh with another key", refresh(thief.proof(t, "POST", "/customer/token", "", nonce, nil)), 400, "invalid_dpop_proof")
		r = refresh(k.proof(t, "POST", "/customer/token", "", nonce, nil))
		expect(t, r, 200, "")
		if r.Str("token_type") != "DPoP" {
			t.Fatalf("refreshed answer: %s", r.Raw)
		}
		// A wrong nonce is answered with the right one.
		r = w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", "stale", nil))
		want(t, "stale nonce", r, 400, "use_dpop_nonce")
		if r.Header.Get("DPoP-Nonce") == "" {
			t.Fatal("no DPoP-Nonce with use_dpop_nonce")
		}
		// An unbound token under the DPoP scheme is refused as well.
		plain := w.visitorToken(map[string]any{"response_type": "token"})
		want(t, "unbound token as DPoP", e.Do("GET", path, nil, "Authorization: DPoP "+plain.Str("access_token"), "DPoP: "+k.proof(t, "GET", path, plain.Str("access_token"), "", nil)), 401, "invalid_token")
		expect(t, e.Do("GET", path, nil, apptest.Bearer(plain.Str("access_token"))), 200, "")
	})
}

// TestDPoPRequiredClient: a client that requires DPoP issues only bound
// tokens, refuses the unbound ones it issued before, and its redirect
// flow (which cannot carry a proof) answers with an error redirect.
func TestDPoPRequiredClient(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		before := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, before, 200, "")
		upd := e.Do("PATCH", "/api/v1/oauth/clients/"+w.client, map[string]any{"dpop": "required"}, w.admin)
		expect(t, upd, 200, "")
		if upd.Body["dpop"] != "required" {
			t.Fatalf("dpop not saved: %s", upd.Raw)
		}
		want(t, "bad policy", e.Do("PATCH", "/api/v1/oauth/clients/"+w.client, map[string]any{"dpop": "sometimes"}, w.admin), 400, "invalid_request")
		r := w.visitorToken(map[string]any{"response_type": "token"})
		want(t, "no proof", r, 400, "invalid_dpop_proof")
		if !strings.Contains(r.Str("message"), "requires DPoP") {
			t.Fatalf("no proof: %s", r.Raw)
		}
		want(t, "unbound token of before", e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(before.Str("access_token"))), 401, "invalid_token")
		// The session of before is kept: its refresh, with a proof, binds it.
		k := newDPoPKey(t)
		nonce := w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", "", nil)).Header.Get("DPoP-Nonce")
		up := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": before.Str("refresh_token")}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", nonce, nil))
		expect(t, up, 200, "")
		if up.Str("entity_id") != before.Str("entity_id") || up.Str("token_type") != "DPoP" {
			t.Fatalf("the old session bound on its refresh: %s", up.Raw)
		}
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noFollow.Get(e.Srv.URL + "/customer/authorize?response_type=token&client_id=" + w.client + "&redirect_uri=" + url.QueryEscape(shop+"/chat") + "&state=s")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); !strings.Contains(loc, "error=access_denied") || !strings.Contains(loc, "DPoP") {
			t.Fatalf("redirect flow of a DPoP client: %d %s", res.StatusCode, loc)
		}
	})
}

// TestDPoPDefaultPolicy: a client registered without "dpop" gets required
// when it is a widget client (public, with allowed_origins: the SDK binds
// every token) and optional otherwise, so stock OAuth clients without
// DPoP keep working; an explicit policy wins either way, and a later
// change of the client keeps the policy it has.
func TestDPoPDefaultPolicy(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
		// call is what the test tries without a proof: "widget" a visitor
		// token at POST /customer/token, "server" client credentials.
		for _, tc := range []struct {
			name, call string
			body       map[string]any
			want       string
		}{
			{"widget client", "widget", map[string]any{"client_type": "public", "allowed_origins": []string{shop}}, "required"},
			{"widget client, explicit optional", "widget", map[string]any{"client_type": "public", "allowed_origins": []string{shop}, "dpop": "optional"}, "optional"},
			{"public client, empty allowed_origins", "", map[string]any{"client_type": "public", "allowed_origins": []string{}, "redirect_uris": []string{redirectURI}}, "optional"},
			{"public OAuth client (SPA, mobile)", "", map[string]any{"client_type": "public", "redirect_uris": []string{redirectURI}}, "optional"},
			{"public OAuth client, explicit required", "", map[string]any{"client_type": "public", "redirect_uris": []string{redirectURI}, "dpop": "required"}, "required"},
			{"confidential client", "server", map[string]any{"client_type": "confidential", "redirect_uris": []string{redirectURI}}, "optional"},
			{"confidential client with allowed_origins", "server", map[string]any{"client_type": "confidential", "allowed_origins": []string{shop}}, "optional"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				tc.body["name"] = tc.name
				cl := e.Do("POST", "/api/v1/oauth/clients", tc.body, admin)
				expect(t, cl, 201, "")
				if cl.Body["dpop"] != tc.want {
					t.Fatalf("dpop %v, want %s: %s", cl.Body["dpop"], tc.want, cl.Raw)
				}
				if got := e.Do("GET", "/api/v1/oauth/clients/"+cl.Str("client_id"), nil, admin); got.Body["dpop"] != tc.want {
					t.Fatalf("stored dpop %v, want %s", got.Body["dpop"], tc.want)
				}
				switch tc.call {
				case "widget":
					w := &customerWorld{e: e, admin: admin, client: cl.Str("client_id")}
					r := w.visitorToken(map[string]any{"response_type": "token"})
					if tc.want == "optional" {
						expect(t, r, 200, "")
						if r.Str("token_type") != "Bearer" {
							t.Fatalf("without a proof: %s", r.Raw)
						}
						return
					}
					want(t, "a widget client's visitor without a proof", r, 400, "invalid_dpop_proof")
					if !strings.Contains(r.Str("message"), "requires DPoP") {
						t.Fatalf("without a proof: %s", r.Raw)
					}
					boundVisitor(t, w, newDPoPKey(t)) // the SDK's way works
				case "server":
					// A server without DPoP keeps getting bearer tokens.
					r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, cl.Str("client_id"), cl.Str("client_secret"))
					expect(t, r, 200, "")
					if r.Str("token_type") != "Bearer" {
						t.Fatalf("client credentials without a proof: %s", r.Raw)
					}
				}
			})
		}

		// Adding allowed_origins later keeps the policy: only a new
		// client gets the widget default.
		spa := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "SPA", "client_type": "public", "redirect_uris": []string{redirectURI}}, admin)
		expect(t, spa, 201, "")
		upd := e.Do("PATCH", "/api/v1/oauth/clients/"+spa.Str("client_id"), map[string]any{"allowed_origins": []string{shop}}, admin)
		expect(t, upd, 200, "")
		if upd.Body["dpop"] != "optional" {
			t.Fatalf("after adding allowed_origins: dpop %v", upd.Body["dpop"])
		}
	})
}

// TestDPoPReplayAcrossProcesses: a proof used at one process is refused
// at another (the jti is remembered in the shared database).
func TestDPoPReplayAcrossProcesses(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	a := apptest.Start(t, dsn, nil)
	b := apptest.Start(t, dsn, nil)
	w := newCustomerWorld(t, a)
	k := newDPoPKey(t)
	v, _ := boundVisitor(t, w, k)
	tok := v.Str("access_token")
	p := k.proof(t, "GET", "/customer/api/v1/me", tok, "", nil)
	expect(t, a.Do("GET", "/customer/api/v1/me", nil, "Authorization: DPoP "+tok, "DPoP: "+p), 200, "")
	r := b.Do("GET", "/customer/api/v1/me", nil, "Authorization: DPoP "+tok, "DPoP: "+p)
	want(t, "the same proof at the other process", r, 401, "invalid_dpop_proof")
	if !strings.Contains(r.Str("message"), "jti already used") {
		t.Fatalf("replay: %s", r.Raw)
	}
	expect(t, b.Do("GET", "/customer/api/v1/me", nil, "Authorization: DPoP "+tok, "DPoP: "+k.proof(t, "GET", "/customer/api/v1/me", tok, "", nil)), 200, "")
}

// dpopTransport adds a proof to every request x/oauth2 sends to the token
// endpoint, retrying once with the server's nonce, as a DPoP-aware SPA
// library does.
type dpopTransport struct {
	t     *testing.T
	k     dpopKey
	nonce string
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, _ := r.GetBody()
	r.Header.Set("DPoP", d.k.proof(d.t, r.Method, r.URL.Path, "", d.nonce, nil))
	res, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || res.StatusCode != 400 || res.Header.Get("DPoP-Nonce") == "" || d.nonce == res.Header.Get("DPoP-Nonce") {
		if res != nil && res.Header.Get("DPoP-Nonce") != "" {
			d.nonce = res.Header.Get("DPoP-Nonce")
		}
		return res, err
	}
	res.Body.Close()
	d.nonce = res.Header.Get("DPoP-Nonce")
	again := r.Clone(r.Context())
	again.Body = body
	again.Header.Set("DPoP", d.k.proof(d.t, r.Method, r.URL.Path, "", d.nonce, nil))
	return http.DefaultTransport.RoundTrip(again)
}

// TestDPoPOAuthPublicClient: x/oauth2 (code + PKCE, refresh) with proofs
// gets bound tokens; the agent API wants their proof, the refresh their
// key; the metadata announces the algorithms.
func TestDPoPOAuthPublicClient(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		meta := e.Do("GET", "/.well-known/oauth-authorization-server", nil)
		if algs, _ := meta.Body["dpop_signing_alg_values_supported"].([]any); len(algs) == 0 || algs[0] != "ES256" {
			t.Fatalf("metadata: %v", meta.Body["dpop_signing_alg_values_supported"])
		}
		k := newDPoPKey(t)
		ctx := context.WithValue(w.ctx, oauth2.HTTPClient, &http.Client{Transport: &dpopTransport{t: t, k: k}})
		conf := w.config(w.public, "", "read", "chat")
		conf.Endpoint.TokenURL = e.Srv.URL + "/oauth/token"
		verifier := oauth2.GenerateVerifier()
		back := newBrowser(t, e).authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "DPoP" {
			t.Fatalf("token_type %q", tok.TokenType)
		}
		path := "/api/v1/conversations"
		want(t, "bound OAuth token as bearer", e.Do("GET", path, nil, apptest.Bearer(tok.AccessToken)), 401, "invalid_token")
		expect(t, e.Do("GET", path, nil, "Authorization: DPoP "+tok.AccessToken, "DPoP: "+k.proof(t, "GET", path, tok.AccessToken, "", nil)), 200, "")
		// Refresh: only with the key.
		plain := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {w.public}})
		want(t, "bound refresh without a proof", plain, 400, "invalid_dpop_proof")
		fresh, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
		if err != nil || fresh.TokenType != "DPoP" {
			t.Fatalf("refresh with the key: %+v %v", fresh, err)
		}
	})
}
