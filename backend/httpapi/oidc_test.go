package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
)

// OpenID Connect tests (docs/oidc.md). The stock go-oidc client discovers
// the provider at its issuer, http://chatauth.test (apptest's
// CHATAUTH_ISSUER), through an http.Client whose transport sends that
// host to the test server: discovery's issuer check, the JWKS fetch and
// userinfo all run exactly as they would against a deployment.

const oidcIssuer = "http://chatauth.test"

// toServer sends requests for the oidcIssuer's host to the test server.
type toServer struct{ host string }

func (m toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "chatauth.test" {
		r = r.Clone(r.Context())
		r.URL.Host, r.Host = m.host, m.host
	}
	return http.DefaultTransport.RoundTrip(r)
}

type oidcWorld struct {
	*oauthWorld
	t        *testing.T
	ctx      context.Context
	provider *oidc.Provider
	rp       string // a public client registered for OpenID Connect
	logouts  chan url.Values
}

const postLogout = "https://app.example.com/signed-out"

func newOIDCWorld(t *testing.T, e *apptest.Env) *oidcWorld {
	t.Helper()
	w := &oidcWorld{oauthWorld: newOAuthWorld(t, e), t: t, logouts: make(chan url.Values, 10)}
	rpLogout := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.logouts <- r.PostForm
		rw.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rpLogout.Close)
	r := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "RP", "client_type": "public", "redirect_uris": []string{redirectURI},
		"scopes": []string{"read", "chat"}, "post_logout_redirect_uris": []string{postLogout}, "backchannel_logout_uri": rpLogout.URL + "/backchannel"}, w.admin)
	expect(t, r, 201, "")
	if r.Str("id_token_signed_response_alg") != "RS256" || r.Str("backchannel_logout_uri") != rpLogout.URL+"/backchannel" {
		t.Fatalf("client: %s", r.Raw)
	}
	w.rp = r.Str("client_id")
	w.ctx = oidc.ClientContext(context.Background(), &http.Client{Transport: toServer{strings.TrimPrefix(e.Srv.URL, "http://")}})
	var err error
	if w.provider, err = oidc.NewProvider(w.ctx, oidcIssuer); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *oidcWorld) conf(id string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, RedirectURL: redirectURI, Endpoint: w.provider.Endpoint(), Scopes: scopes}
}

// local is an authorize URL of the oidcIssuer, for the test browser.
func (w *oidcWorld) local(u string) string { return strings.Replace(u, oidcIssuer, w.e.Srv.URL, 1) }

// login runs the code flow for conf and returns the token and its
// verified ID token.
func (w *oidcWorld) login(b *browser, conf *oauth2.Config, nonce string, algs ...string) (*oauth2.Token, *oidc.IDToken, string) {
	w.t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := b.authorize(w.local(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))))
	if back.Query().Get("iss") != oidcIssuer || back.Query().Get("state") != "st" {
		w.t.Fatalf("redirect lacks iss or state (RFC 9207): %s", back)
	}
	tok, err := conf.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		w.t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		w.t.Fatalf("no id_token: %+v", tok)
	}
	idt, err := w.provider.Verifier(&oidc.Config{ClientID: conf.ClientID, SupportedSigningAlgs: algs}).Verify(w.ctx, raw)
	if err != nil {
		w.t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	if idt.Nonce != nonce {
		w.t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		w.t.Fatalf("at_hash: %v", err)
	}
	return tok, idt, raw
}

type idClaims struct {
	Iss           string   `json:"iss"`
	Sub           string   `json:"sub"`
	Aud           any      `json:"aud"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	AuthTime      int64    `json:"auth_time"`
	Nonce         string   `json:"nonce"`
	AtHash        string   `json:"at_hash"`
	AMR           []string `json:"amr"`
	ACR           string   `json:"acr"`
	AZP           string   `json:"azp"`
	SID           string   `json:"sid"`
	Name          *string  `json:"name"`
	UpdatedAt     *int64   `json:"updated_at"`
	Email         *string  `json:"email"`
	EmailVerified *bool    `json:"email_verified"`
	Chatauth      *struct {
		Org  int64  `json:"org"`
		Role string `json:"role"`
	} `json:"chatauth"`
}

func idClaimsOf(t *testing.T, idt *oidc.IDToken) idClaims {
	t.Helper()
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOIDCDiscovery: one document at both well-known addresses, with
// what OpenID Connect Discovery 1.0 §3 requires.
func TestOIDCDiscovery(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	oidcDoc := e.Do("GET", "/.well-known/openid-configuration", nil)
	oauthDoc := e.Do("GET", "/.well-known/oauth-authorization-server", nil)
	if !reflect.DeepEqual(oidcDoc.Body, oauthDoc.Body) {
		t.Fatalf("the two documents differ:\n%s\n%s", oidcDoc.Raw, oauthDoc.Raw)
	}
	for k, want := range map[string]any{
		"issuer": oidcIssuer, "userinfo_endpoint": oidcIssuer + "/oauth/userinfo", "end_session_endpoint": oidcIssuer + "/oauth/end_session",
		"jwks_uri": oidcIssuer + "/.well-known/jwks.json", "authorization_endpoint": oidcIssuer + "/oauth/authorize", "token_endpoint": oidcIssuer + "/oauth/token",
		"id_token_signing_alg_values_supported": []any{"RS256", "EdDSA"}, "subject_types_supported": []any{"public"},
		"authorization_response_iss_parameter_supported": true, "backchannel_logout_supported": true, "request_uri_parameter_supported": false,
		"code_challenge_methods_supported": []any{"S256"}, "response_types_supported": []any{"code", "token"},
	} {
		if !reflect.DeepEqual(oidcDoc.Body[k], want) {
			t.Errorf("%s = %v, want %v", k, oidcDoc.Body[k], want)
		}
	}
	for _, k := range []string{"claims_supported", "scopes_supported", "grant_types_supported", "token_endpoint_auth_methods_supported", "dpop_signing_alg_values_supported"} {
		if _, ok := oidcDoc.Body[k]; !ok {
			t.Errorf("%s missing", k)
		}
	}
	if s := string(oidcDoc.Raw); !strings.Contains(s, `"openid"`) || !strings.Contains(s, `"email_verified"`) {
		t.Errorf("scopes or claims incomplete: %s", s)
	}
	// The JWKS has the RSA ID-token key beside the Ed25519 ones.
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	json.Unmarshal(e.Do("GET", "/.well-known/jwks.json", nil).Raw, &set)
	algs := map[string]int{}
	for _, k := range set.Keys {
		algs[k["kty"]+"/"+k["alg"]]++
		if k["kid"] == "" || k["use"] != "sig" {
			t.Errorf("key without kid or use: %v", k)
		}
		if k["kty"] == "RSA" && (k["n"] == "" || k["e"] != "AQAB") {
			t.Errorf("RSA key: %v", k)
		}
	}
	if algs["RSA/RS256"] != 1 || algs["OKP/EdDSA"] != 3 {
		t.Fatalf("JWKS: %v", algs)
	}
}

// TestOIDCCodeFlowWithGoOIDC: discovery, code + PKCE + nonce through
// x/oauth2, the ID token verified by go-oidc against the JWKS, each
// claim, userinfo, refresh, on SQLite and PostgreSQL.
func TestOIDCCodeFlowWithGoOIDC(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		b := newBrowser(t, e)
		before := time.Now().Unix()
		conf := w.conf(w.rp, oidc.ScopeOpenID, "profile", "email", "read")
		tok, idt, _ := w.login(b, conf, "n-0S6_WzA2Mj")
		c := idClaimsOf(t, idt)
		me := e.Do("GET", "/api/v1/profile", nil, w.admin)
		uid := strings.TrimSuffix(strings.TrimSuffix(string(mustJSON(me.Body["id"])), "\n"), ".0")
		switch {
		case c.Iss != oidcIssuer, c.Sub != uid, !reflect.DeepEqual(idt.Audience, []string{w.rp}), c.AZP != w.rp:
			t.Fatalf("iss/sub/aud/azp: %+v (user %s)", c, uid)
		case c.AuthTime < before-1 || c.AuthTime > time.Now().Unix(), c.Iat < c.AuthTime, c.Exp <= c.Iat:
			t.Fatalf("auth_time/iat/exp: %+v", c)
		case !reflect.DeepEqual(c.AMR, []string{"pwd"}), c.ACR != "urn:chatauth:pwd", c.SID == "", c.AtHash == "":
			t.Fatalf("amr/acr/sid/at_hash: %+v", c)
		case c.Name == nil || *c.Name != "Administrator", c.UpdatedAt == nil:
			t.Fatalf("profile claims: %+v", c)
		case c.Email == nil || *c.Email != apptest.AdminEmail, c.EmailVerified == nil || *c.EmailVerified:
			t.Fatalf("email claims (chatauth does not verify addresses): %+v", c)
		case c.Chatauth == nil || c.Chatauth.Role != "admin" || c.Chatauth.Org == 0:
			t.Fatalf("chatauth claim: %+v", c.Chatauth)
		}
		// The API scopes were separated from the OIDC ones.
		if tok.Extra("scope") != "admin read" {
			t.Fatalf("scope %v", tok.Extra("scope"))
		}

		// userinfo through go-oidc.
		info, err := w.provider.UserInfo(w.ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			t.Fatal(err)
		}
		var ic idClaims
		info.Claims(&ic)
		if info.Subject != uid || info.Email != apptest.AdminEmail || ic.Name == nil || ic.Chatauth == nil {
			t.Fatalf("userinfo: %+v %+v", info, ic)
		}
		// POST works too; errors follow RFC 6750.
		res := e.Do("POST", "/oauth/userinfo", nil, "Authorization: Bearer "+tok.AccessToken)
		expectUserinfo(t, res, 200, "")
		expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil), 401, "")
		expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil, "Authorization: Bearer garbage"), 401, "invalid_token")
		expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil, w.admin), 403, "insufficient_scope")
		// A grant without openid: no ID token, and userinfo refuses it.
		plain := w.conf(w.rp, "read")
		v := oauth2.GenerateVerifier()
		back := b.authorize(w.local(plain.AuthCodeURL("p", oauth2.S256ChallengeOption(v))))
		ptok, err := plain.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil || ptok.Extra("id_token") != nil {
			t.Fatalf("plain OAuth grant: %v %v", err, ptok.Extra("id_token"))
		}
		expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil, "Authorization: Bearer "+ptok.AccessToken), 403, "insufficient_scope")

		// Refresh answers a new ID token: same sub and auth_time, no nonce.
		fresh, err := conf.TokenSource(w.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := fresh.Extra("id_token").(string)
		idt2, err := w.provider.Verifier(&oidc.Config{ClientID: w.rp}).Verify(w.ctx, raw)
		if err != nil {
			t.Fatalf("refreshed ID token: %v", err)
		}
		c2 := idClaimsOf(t, idt2)
		if c2.Sub != c.Sub || c2.AuthTime != c.AuthTime || c2.Nonce != "" || c2.SID != c.SID {
			t.Fatalf("refreshed claims: %+v vs %+v", c2, c)
		}
		if err := idt2.VerifyAccessToken(fresh.AccessToken); err != nil {
			t.Fatal(err)
		}
		// An ID token is not an access token.
		if r := e.Do("GET", "/api/v1/conversations", nil, "Authorization: Bearer "+raw); r.Status != 401 {
			t.Fatalf("ID token accepted as an access token: %d %s", r.Status, r.Raw)
		}
	})
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

func expectUserinfo(t *testing.T, r apptest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && r.Str("error") != code) {
		t.Fatalf("userinfo: %d %s, want %d %s", r.Status, r.Raw, status, code)
	}
	if status >= 400 {
		h := r.Header.Get("WWW-Authenticate")
		if !strings.HasPrefix(h, "Bearer") || (code != "" && !strings.Contains(h, `error="`+code+`"`)) {
			t.Fatalf("WWW-Authenticate %q", h)
		}
	}
}

// TestOIDCPrompt: prompt, max_age and login_hint (OIDC Core §3.1.2.1,
// §3.1.2.6), every error by redirect with iss and state.
func TestOIDCPrompt(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	v := oauth2.GenerateVerifier()
	at := func(b *browser, opts ...oauth2.AuthCodeOption) page {
		return b.get(w.local(conf.AuthCodeURL("s", append(opts, oauth2.S256ChallengeOption(v))...)))
	}
	p := func(k, v string) oauth2.AuthCodeOption { return oauth2.SetAuthURLParam(k, v) }
	redirectErr := func(pg page, code string) {
		t.Helper()
		u, _ := url.Parse(pg.location)
		if pg.status != 302 || u.Query().Get("error") != code || u.Query().Get("iss") != oidcIssuer || u.Query().Get("state") != "s" {
			t.Fatalf("want %s by redirect with iss and state: %d %s %s", code, pg.status, pg.location, pg.body)
		}
	}
	fresh := newBrowser(t, e)
	redirectErr(at(fresh, p("prompt", "none")), "login_required")
	redirectErr(at(fresh, p("prompt", "select_account")), "account_selection_required")
	redirectErr(at(fresh, p("prompt", "none login")), "invalid_request")
	redirectErr(at(fresh, p("prompt", "sometimes")), "invalid_request")
	redirectErr(at(fresh, p("max_age", "-1")), "invalid_request")
	// login_hint prefills the email.
	if pg := at(fresh, p("login_hint", "someone@example.com")); !strings.Contains(pg.body, `value="someone@example.com"`) {
		t.Fatalf("login_hint: %s", pg.body)
	}

	b := newBrowser(t, e)
	w.login(b, conf, "n1")
	// Signed in and consented: prompt=none answers a code.
	if pg := at(b, p("prompt", "none")); pg.status != 302 || !strings.Contains(pg.location, "code=") {
		t.Fatalf("prompt=none with a session: %d %s", pg.status, pg.location)
	}
	// More claims than consented: consent_required.
	redirectErr(at(b, p("prompt", "none"), p("scope", "openid email read")), "consent_required")
	// prompt=consent asks again; prompt=login and max_age=0 sign in again.
	if pg := at(b, p("prompt", "consent")); !strings.Contains(pg.body, `value="approve"`) {
		t.Fatalf("prompt=consent: %d %s", pg.status, pg.body)
	}
	if pg := at(b, p("prompt", "login")); !strings.Contains(pg.body, `value="login"`) {
		t.Fatalf("prompt=login: %d %s", pg.status, pg.body)
	}
	if pg := at(b, p("max_age", "0")); !strings.Contains(pg.body, `value="login"`) {
		t.Fatalf("max_age=0: %d %s", pg.status, pg.body)
	}
	redirectErr(at(b, p("prompt", "none"), p("max_age", "0")), "login_required")
	// A generous max_age keeps the session; the ID token has auth_time.
	_, idt, _ := w.login(b, w.conf(w.rp, oidc.ScopeOpenID, "read"), "n2")
	if c := idClaimsOf(t, idt); c.AuthTime == 0 {
		t.Fatal("no auth_time")
	}
	if pg := at(b, p("max_age", "3600")); pg.status != 302 || !strings.Contains(pg.location, "code=") {
		t.Fatalf("max_age=3600: %d %s", pg.status, pg.location)
	}
	// Consent page names the claims asked.
	if pg := at(b, p("scope", "openid profile email read")); !strings.Contains(pg.body, "email address") || !strings.Contains(pg.body, "your name") {
		t.Fatalf("consent lists no claims: %s", pg.body)
	}
	// RFC 9207 in implicit answers too (fragment).
	imp := &oauth2.Config{ClientID: w.public, RedirectURL: redirectURI, Endpoint: w.provider.Endpoint(), Scopes: []string{"read"}}
	u := b.authorize(w.local(imp.AuthCodeURL("i", p("response_type", "token"))))
	if frag, _ := url.ParseQuery(u.Fragment); frag.Get("iss") != oidcIssuer || frag.Get("access_token") == "" {
		t.Fatalf("implicit: %s", u)
	}
}

// TestOIDCKeys: an EdDSA client gets EdDSA ID tokens from its own key
// family; a rotated RS256 key keeps verifying for a client that cached
// the JWKS, and the new key verifies once it signs.
func TestOIDCKeys(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	r := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Ed", "client_type": "public", "redirect_uris": []string{redirectURI}, "id_token_signed_response_alg": "EdDSA"}, w.admin)
	expect(t, r, 201, "")
	b := newBrowser(t, e)
	_, _, raw := w.login(b, w.conf(r.Str("client_id"), oidc.ScopeOpenID, "read"), "ed", oidc.EdDSA)
	if hdr := jwtHeader(t, raw); hdr["alg"] != "EdDSA" || !strings.HasPrefix(hdr["kid"], "id_token_eddsa-") {
		t.Fatalf("EdDSA header: %v", hdr)
	}

	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	_, _, before := w.login(b, conf, "a")
	verifier := w.provider.Verifier(&oidc.Config{ClientID: w.rp}) // caches the JWKS
	if _, err := verifier.Verify(w.ctx, before); err != nil {
		t.Fatal(err)
	}
	kid, _, err := e.App.Keys.Rotate(context.Background(), token.FamilyIDToken, 0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, _, after := w.login(b, conf, "b")
	if jwtHeader(t, after)["kid"] != kid || jwtHeader(t, before)["kid"] == kid {
		t.Fatalf("rotation: %v %v %s", jwtHeader(t, before), jwtHeader(t, after), kid)
	}
	for name, raw := range map[string]string{"before": before, "after": after} {
		if _, err := verifier.Verify(w.ctx, raw); err != nil {
			t.Fatalf("%s the rotation: %v", name, err)
		}
	}
	// A client that fetches the JWKS only after the rotation still
	// verifies the token signed before it: the old key stays published.
	late, err := oidc.NewProvider(w.ctx, oidcIssuer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Verifier(&oidc.Config{ClientID: w.rp}).Verify(w.ctx, before); err != nil {
		t.Fatalf("before the rotation, fresh JWKS: %v", err)
	}
	jwks := string(e.Do("GET", "/.well-known/jwks.json", nil).Raw)
	if !strings.Contains(jwks, jwtHeader(t, before)["kid"]) || !strings.Contains(jwks, kid) {
		t.Fatalf("JWKS after the rotation lacks a key: %s", jwks)
	}
	// The old key's ID token is still a valid id_token_hint.
	if _, err := e.App.OAuth.Issuer.VerifyIDTokenHint(before, time.Hour); err != nil {
		t.Fatalf("hint signed before the rotation: %v", err)
	}
	// An access token's key never signs an ID token, nor the other way.
	if hdr := jwtHeader(t, before); hdr["alg"] != "RS256" || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
}

func jwtHeader(t *testing.T, raw string) map[string]string {
	t.Helper()
	var h map[string]string
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64URL(seg)
	if err != nil || json.Unmarshal(b, &h) != nil {
		t.Fatalf("header of %q", raw)
	}
	return h
}

// TestOIDCLogout: RP-initiated logout ends the browser sign-in and the
// grants made in it, sends the browser to the registered URI with state,
// and posts a back-channel logout token that go-oidc verifies.
func TestOIDCLogout(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_BACKCHANNEL_PRIVATE": "true"})
		w := newOIDCWorld(t, e)
		b := newBrowser(t, e)
		conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
		tok, idt, raw := w.login(b, conf, "n")
		sid := idClaimsOf(t, idt).SID

		// Refused: a hint that is not ours, an unregistered URI.
		if pg := b.get("/oauth/end_session?id_token_hint=a.b.c"); pg.status != 400 || !strings.Contains(pg.body, "id_token_hint") {
			t.Fatalf("bad hint: %d %s", pg.status, pg.body)
		}
		if pg := b.get("/oauth/end_session?id_token_hint=" + raw + "&post_logout_redirect_uri=" + url.QueryEscape("https://evil.example/")); pg.status != 400 || !strings.Contains(pg.body, "post_logout_redirect_uri") {
			t.Fatalf("unregistered URI: %d %s", pg.status, pg.body)
		}
		if pg := b.get("/oauth/end_session?post_logout_redirect_uri=" + url.QueryEscape(postLogout)); pg.status != 400 {
			t.Fatalf("URI with no client: %d %s", pg.status, pg.body)
		}
		// Without a hint the person confirms first.
		if pg := b.get("/oauth/end_session?client_id=" + w.rp); pg.status != 200 || !strings.Contains(pg.body, `value="logout"`) {
			t.Fatalf("no confirmation: %d %s", pg.status, pg.body)
		}
		// Nothing ended so far.
		if _, err := w.provider.UserInfo(w.ctx, oauth2.StaticTokenSource(tok)); err != nil {
			t.Fatal(err)
		}

		pg := b.get("/oauth/end_session?id_token_hint=" + raw + "&post_logout_redirect_uri=" + url.QueryEscape(postLogout) + "&state=bye")
		if pg.status != 302 || pg.location != postLogout+"?state=bye" {
			t.Fatalf("end_session: %d %s %s", pg.status, pg.location, pg.body)
		}
		// The grant's tokens ended (I2, I6), and the browser is signed out.
		if _, err := conf.TokenSource(w.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
			t.Fatal("refresh after logout worked")
		}
		expectUserinfo(t, e.Do("GET", "/oauth/userinfo", nil, "Authorization: Bearer "+tok.AccessToken), 401, "invalid_token")
		v := oauth2.GenerateVerifier()
		if p := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none")))); !strings.Contains(p.location, "error=login_required") {
			t.Fatalf("still signed in: %d %s", p.status, p.location)
		}
		// The back-channel logout token.
		select {
		case form := <-w.logouts:
			lt := form.Get("logout_token")
			ver, err := w.provider.Verifier(&oidc.Config{ClientID: w.rp}).Verify(w.ctx, lt)
			if err != nil {
				t.Fatalf("logout token: %v", err)
			}
			var c struct {
				SID    string                    `json:"sid"`
				JTI    string                    `json:"jti"`
				Events map[string]map[string]any `json:"events"`
				Nonce  *string                   `json:"nonce"`
			}
			ver.Claims(&c)
			if c.SID != sid || ver.Subject != idt.Subject || c.JTI == "" || c.Nonce != nil || c.Events["http://schemas.openid.net/event/backchannel-logout"] == nil {
				t.Fatalf("logout claims: %+v sub=%s", c, ver.Subject)
			}
			if jwtHeader(t, lt)["typ"] != "logout+jwt" {
				t.Fatalf("typ: %v", jwtHeader(t, lt))
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no back-channel logout")
		}
		// Without a redirect: the signed-out page.
		if pg := newBrowser(t, e).get("/oauth/end_session"); pg.status != 200 || !strings.Contains(pg.body, "signed out") {
			t.Fatalf("signed-out page: %d %s", pg.status, pg.body)
		}
	})
}

// TestOIDCClientFields: the OpenID Connect registration fields, each
// error naming its field.
func TestOIDCClientFields(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOAuthWorld(t, e)
	for field, bad := range map[string]map[string]any{
		"post_logout_redirect_uris[0]": {"post_logout_redirect_uris": []string{"http://example.com/out"}},
		"backchannel_logout_uri":       {"backchannel_logout_uri": "http://rp.example.com/bc"},
		"id_token_signed_response_alg": {"id_token_signed_response_alg": "none"},
	} {
		bad["name"], bad["client_type"] = "x", "public"
		r := e.Do("POST", "/api/v1/oauth/clients", bad, w.admin)
		expect(t, r, 400, "invalid_request")
		if !strings.Contains(r.Str("message"), field) {
			t.Errorf("%s: %s", field, r.Raw)
		}
	}
	r := e.Do("PATCH", "/api/v1/oauth/clients/"+w.public, map[string]any{"post_logout_redirect_uris": []string{postLogout}, "backchannel_logout_uri": "http://127.0.0.1:9/bc", "id_token_signed_response_alg": "EdDSA"}, w.admin)
	expect(t, r, 200, "")
	g := e.Do("GET", "/api/v1/oauth/clients/"+w.public, nil, w.admin)
	if g.Str("id_token_signed_response_alg") != "EdDSA" || g.Str("backchannel_logout_uri") != "http://127.0.0.1:9/bc" || !strings.Contains(string(g.Raw), postLogout) {
		t.Fatalf("client: %s", g.Raw)
	}
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// signInUser creates a user and signs them in, in a browser of their own,
// for conf: the browser and the tokens (the ID token's aud is conf's
// client).
func signInUser(t *testing.T, w *oidcWorld, e *apptest.Env, conf *oauth2.Config, name, email string) (*browser, *oauth2.Token) {
	t.Helper()
	expect(t, e.Do("POST", "/api/v1/users", map[string]any{"name": name, "email": email, "password": "password-123", "role": "agent"}, w.admin), 201, "")
	b := newBrowser(t, e)
	v := oauth2.GenerateVerifier()
	pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v))))
	pg = b.submit(pg, map[string]string{"action": "login", "email": email, "password": "password-123"})
	if strings.Contains(pg.body, `value="approve"`) {
		pg = b.submit(pg, map[string]string{"action": "approve"})
	}
	u, _ := url.Parse(pg.location)
	tok, err := conf.Exchange(w.ctx, u.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatalf("%v (%d %s)", err, pg.status, pg.body)
	}
	return b, tok
}

// TestOIDCHints: id_token_hint at authorize and at end_session names a
// user; it grants nothing and signs nobody out on its own.
func TestOIDCHints(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	// Bea's ID token, from her own browser.
	bb, tokB := signInUser(t, w, e, conf, "Bea", "bea@example.com")
	hintB := tokB.Extra("id_token").(string)
	// The admin in browser ba.
	ba := newBrowser(t, e)
	tokA, _, hintA := w.login(ba, conf, "a")
	none := func(hint string) page {
		v := oauth2.GenerateVerifier()
		return ba.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hint))))
	}
	if pg := none(hintA); !strings.Contains(pg.location, "code=") {
		t.Fatalf("prompt=none with the signed-in user's own hint: %d %s", pg.status, pg.location)
	}
	if pg := none(hintB); !strings.Contains(pg.location, "error=login_required") || !strings.Contains(pg.location, "id_token_hint") {
		t.Fatalf("prompt=none with another user's hint: %d %s", pg.status, pg.location)
	}
	if pg := none("a.b.c"); !strings.Contains(pg.location, "error=invalid_request") || !strings.Contains(pg.location, "id_token_hint") {
		t.Fatalf("a hint that is not ours: %d %s", pg.status, pg.location)
	}
	// Without prompt=none, another user's hint asks for a sign-in.
	v := oauth2.GenerateVerifier()
	if pg := ba.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("id_token_hint", hintB)))); !strings.Contains(pg.body, `value="login"`) {
		t.Fatalf("another user's hint did not ask for a sign-in: %d %s", pg.status, pg.location)
	}

	// end_session in ba with Bea's hint: the admin is asked, and nothing
	// ends until they confirm; Bea's browser is never touched.
	lo := ba.get("/oauth/end_session?id_token_hint=" + hintB)
	if lo.status != 200 || !strings.Contains(lo.body, `value="logout"`) {
		t.Fatalf("another user's hint did not ask: %d %s", lo.status, lo.body)
	}
	if !rvSignedIn(t, w, ba, conf) || !rvSignedIn(t, w, bb, conf) {
		t.Fatal("a hint alone signed somebody out")
	}
	if r := ba.submit(lo, map[string]string{"action": "logout"}); r.status != 200 || !strings.Contains(r.body, "signed out") {
		t.Fatalf("confirmed logout: %d %s", r.status, r.body)
	}
	if rvSignedIn(t, w, ba, conf) || rvRefreshWorks(w, conf, tokA) {
		t.Fatal("the confirmed logout left the admin signed in")
	}
	if !rvSignedIn(t, w, bb, conf) || !rvRefreshWorks(w, conf, tokB) {
		t.Fatal("the admin's logout signed Bea out")
	}
}

// TestOIDCSignInAgainKeepsOneSession: the same user signing in again in
// one browser keeps its session id; another user signing in ends the
// first one's sign-in and grants.
func TestOIDCSignInAgainKeepsOneSession(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	b := newBrowser(t, e)
	tok1, idt1, _ := w.login(b, conf, "n1")
	v := oauth2.GenerateVerifier()
	back := b.authorize(w.local(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("n2"), oauth2.SetAuthURLParam("prompt", "login"))))
	tok2, err := conf.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	c2 := rvClaims(t, tok2.Extra("id_token").(string))
	if c2.SID != idClaimsOf(t, idt1).SID || c2.AuthTime < idClaimsOf(t, idt1).AuthTime {
		t.Fatalf("sign-in again: sid %s→%s, auth_time %d→%d", idClaimsOf(t, idt1).SID, c2.SID, idClaimsOf(t, idt1).AuthTime, c2.AuthTime)
	}
	// Another user at the same browser.
	expect(t, e.Do("POST", "/api/v1/users", map[string]any{"name": "Cy", "email": "cy@example.com", "password": "password-123", "role": "agent"}, w.admin), 201, "")
	v = oauth2.GenerateVerifier()
	pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "login"))))
	pg = b.submit(pg, map[string]string{"action": "login", "email": "cy@example.com", "password": "password-123"})
	if !strings.Contains(pg.body, `value="approve"`) && !strings.Contains(pg.location, "code=") {
		t.Fatalf("Cy's sign-in: %d %s", pg.status, pg.body)
	}
	if rvRefreshWorks(w, conf, tok1) || rvRefreshWorks(w, conf, tok2) {
		t.Fatal("the first user's grants outlived another user's sign-in at the same browser")
	}
}
