package httpapi_test

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

const redirectURI = "https://app.example.com/callback"

// browser is a person at a web browser: a cookie jar, and redirects left
// for the test to look at.
type browser struct {
	t *testing.T
	c *http.Client
	e *apptest.Env
}

func newBrowser(t *testing.T, e *apptest.Env) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status   int
	body     string
	location string
}

func (b *browser) get(u string) page {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.e.Srv.URL + u
	}
	res, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(b.t, res)
}

func read(t *testing.T, res *http.Response) page {
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, body: string(raw), location: res.Header.Get("Location")}
}

var (
	hidden     = regexp.MustCompile(`type="hidden" name="([^"]+)" value="([^"]*)"`)
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
)

// submit posts the form on p with extra fields, as a browser would.
func (b *browser) submit(p page, fields map[string]string) page {
	b.t.Helper()
	form := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(p.body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	if form.Get("csrf_token") == "" {
		b.t.Fatalf("no form on page: %d %s", p.status, p.body)
	}
	for k, v := range fields {
		form.Set(k, v)
	}
	action := "/oauth/authorize"
	if m := formAction.FindStringSubmatch(p.body); m != nil {
		action = html.UnescapeString(m[1])
	}
	res, err := b.c.PostForm(b.e.Srv.URL+action, form)
	if err != nil {
		b.t.Fatal(err)
	}
	return read(b.t, res)
}

// authorize runs the whole browser side: sign in, approve, and return the
// redirect the application receives.
func (b *browser) authorize(authURL string) *url.URL {
	b.t.Helper()
	p := b.get(authURL)
	if p.status == 200 && strings.Contains(p.body, `value="login"`) {
		p = b.submit(p, map[string]string{"action": "login", "email": apptest.AdminEmail, "password": apptest.AdminPassword})
	}
	if p.status == 200 && strings.Contains(p.body, `value="approve"`) {
		p = b.submit(p, map[string]string{"action": "approve"})
	}
	if p.status != 302 && p.status != 303 {
		b.t.Fatalf("authorize ended at %d: %s", p.status, p.body)
	}
	u, err := url.Parse(p.location)
	if err != nil {
		b.t.Fatal(err)
	}
	return u
}

type oauthWorld struct {
	e            *apptest.Env
	admin        string
	public       string
	confidential string
	secret       string
	ctx          context.Context
}

func newOAuthWorld(t *testing.T, e *apptest.Env) *oauthWorld {
	w := &oauthWorld{e: e, admin: apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))}
	pub := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Widget SPA", "client_type": "public", "redirect_uris": []string{redirectURI}, "scopes": []string{"read", "write", "chat"}, "allowed_origins": []string{"https://app.example.com"}, "dpop": "optional"}, w.admin)
	expect(t, pub, 201, "")
	if _, ok := pub.Body["client_secret"]; ok {
		t.Fatal("public client got a secret")
	}
	conf := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Reporting", "company": "Acme", "client_type": "confidential", "redirect_uris": []string{redirectURI, redirectURI + "2"}, "scopes": []string{"read", "chat"}}, w.admin)
	expect(t, conf, 201, "")
	w.public, w.confidential, w.secret = pub.Str("client_id"), conf.Str("client_id"), conf.Str("client_secret")
	if !strings.HasPrefix(w.secret, "cas_") {
		t.Fatalf("secret: %s", conf.Raw)
	}
	if list := e.Do("GET", "/api/v1/oauth/clients", nil, w.admin); strings.Contains(string(list.Raw), w.secret) {
		t.Fatal("client list shows the secret")
	}
	w.ctx = context.WithValue(context.Background(), oauth2.HTTPClient, e.Srv.Client())
	return w
}

func (w *oauthWorld) config(id, secret string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: redirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: w.e.Srv.URL + "/oauth/authorize", TokenURL: w.e.Srv.URL + "/oauth/token"}}
}

func oauthErr(t *testing.T, err error, code string) *oauth2.RetrieveError {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
	return re
}

// TestOAuthCodeFlowWithXOAuth2: golang.org/x/oauth2, unmodified, as the
// client for code + PKCE and refresh; a cookie-jar browser for the pages.
func TestOAuthCodeFlowWithXOAuth2(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		b := newBrowser(t, e)
		conf := w.config(w.public, "", "read", "chat")
		verifier := oauth2.GenerateVerifier()
		back := b.authorize(conf.AuthCodeURL("xyz", oauth2.S256ChallengeOption(verifier)))
		if back.Query().Get("state") != "xyz" || back.Query().Get("code") == "" || back.Scheme+"://"+back.Host+back.Path != redirectURI {
			t.Fatalf("redirect: %s", back)
		}
		tok, err := conf.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.Extra("scope") != "admin read chat" {
			t.Fatalf("token: %+v scope=%v", tok, tok.Extra("scope"))
		}
		api := conf.Client(w.ctx, tok)
		res, err := api.Get(e.Srv.URL + "/api/v1/conversations")
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("API with OAuth token: %v %v", err, res.Status)
		}
		res.Body.Close()
		// read+chat only: writing is refused, naming the scope.
		r := e.Do("POST", "/api/v1/contacts", map[string]any{"name": "x"}, apptest.Bearer(tok.AccessToken))
		expect(t, r, 403, "insufficient_scope")
		if !strings.Contains(r.Str("message"), "write") {
			t.Fatalf("message should name write: %s", r.Raw)
		}

		// Refresh through x/oauth2's token source.
		expired := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
		fresh, err := conf.TokenSource(w.ctx, expired).Token()
		if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
			t.Fatalf("refresh: %+v %v", fresh, err)
		}

		// Consent is remembered: the second authorization goes straight back.
		p := b.get(conf.AuthCodeURL("again", oauth2.S256ChallengeOption(verifier)))
		if p.status != 302 || !strings.Contains(p.location, "code=") {
			t.Fatalf("remembered consent: %d %s", p.status, p.body)
		}
		// prompt=none without a session: login_required, by redirect.
		p = newBrowser(t, e).get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "none")))
		if p.status != 302 || !strings.Contains(p.location, "error=login_required") || !strings.Contains(p.location, "state=s") {
			t.Fatalf("prompt=none: %d %s", p.status, p.location)
		}
	})
}

func TestOAuthClientCredentialsAndConfidentialCode(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOAuthWorld(t, e)
	cc := clientcredentials.Config{ClientID: w.confidential, ClientSecret: w.secret, TokenURL: e.Srv.URL + "/oauth/token", Scopes: []string{"read"}}
	tok, err := cc.Token(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" || tok.Extra("scope") != "bot read" {
		t.Fatalf("client credentials: %+v %v", tok, tok.Extra("scope"))
	}
	expect(t, e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(tok.AccessToken)), 200, "")
	// Both client authentication styles work.
	cc.AuthStyle = oauth2.AuthStyleInParams
	if _, err := cc.Token(w.ctx); err != nil {
		t.Fatal(err)
	}
	// A confidential client's code flow (no PKCE) with Basic auth.
	conf := w.config(w.confidential, w.secret, "read")
	b := newBrowser(t, e)
	back := b.authorize(conf.AuthCodeURL("st"))
	if _, err := conf.Exchange(w.ctx, back.Query().Get("code")); err != nil {
		t.Fatal(err)
	}
}

func postForm(t *testing.T, e *apptest.Env, path string, form url.Values, basic ...string) apptest.Response {
	t.Helper()
	headers := []string{"Content-Type: application/x-www-form-urlencoded"}
	if len(basic) == 2 {
		req, _ := http.NewRequest("POST", "/", nil)
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
		headers = append(headers, "Authorization: "+req.Header.Get("Authorization"))
	}
	return e.Do("POST", path, form.Encode(), headers...)
}

// Every applicable error of RFC 6749 §4.1.2.1, §4.2.2.1 and §5.2.
func TestOAuthErrors(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_CODE_TTL": "1s"})
	w := newOAuthWorld(t, e)
	pub := w.config(w.public, "", "read")
	verifier := oauth2.GenerateVerifier()
	b := newBrowser(t, e)
	code := func() string {
		return b.authorize(pub.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))).Query().Get("code")
	}

	t.Run("code reuse revokes what it produced", func(t *testing.T) {
		c := code()
		tok, err := pub.Exchange(w.ctx, c, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		_, err = pub.Exchange(w.ctx, c, oauth2.VerifierOption(verifier))
		oauthErr(t, err, "invalid_grant")
		expect(t, e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(tok.AccessToken)), 401, "invalid_token")
		_, err = pub.TokenSource(w.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
		oauthErr(t, err, "invalid_grant")
	})
	t.Run("PKCE mismatch", func(t *testing.T) {
		_, err := pub.Exchange(w.ctx, code(), oauth2.VerifierOption(oauth2.GenerateVerifier()))
		oauthErr(t, err, "invalid_grant")
	})
	t.Run("PKCE missing", func(t *testing.T) {
		_, err := pub.Exchange(w.ctx, code())
		oauthErr(t, err, "invalid_grant")
	})
	t.Run("redirect_uri mismatch at the token endpoint", func(t *testing.T) {
		other := *pub
		other.RedirectURL = redirectURI + "/"
		_, err := other.Exchange(w.ctx, code(), oauth2.VerifierOption(verifier))
		oauthErr(t, err, "invalid_grant")
	})
	t.Run("expired code says so", func(t *testing.T) {
		c := code()
		time.Sleep(1100 * time.Millisecond)
		_, err := pub.Exchange(w.ctx, c, oauth2.VerifierOption(verifier))
		re := oauthErr(t, err, "invalid_grant")
		if !strings.Contains(re.ErrorDescription, "expired") || !strings.Contains(re.ErrorDescription, "1s") {
			t.Fatalf("description: %s", re.ErrorDescription)
		}
	})
	t.Run("public client asking for client credentials", func(t *testing.T) {
		_, err := (&clientcredentials.Config{ClientID: w.public, TokenURL: pub.Endpoint.TokenURL}).Token(w.ctx)
		oauthErr(t, err, "unauthorized_client")
	})
	t.Run("bad client secret", func(t *testing.T) {
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}}, w.confidential, "cas_wrong")
		if r.Status != 401 || r.Str("error") != "invalid_client" || !strings.Contains(r.Header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("%d %s %v", r.Status, r.Raw, r.Header)
		}
		if strings.Contains(string(r.Raw), "cas_wrong") {
			t.Fatal("secret echoed")
		}
	})
	t.Run("unknown client at the token endpoint", func(t *testing.T) {
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}})
		if r.Status != 401 || !strings.Contains(r.Str("error_description"), `"nope"`) {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("unknown scope names it", func(t *testing.T) {
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read delete"}}, w.confidential, w.secret)
		if r.Str("error") != "invalid_scope" || !strings.Contains(r.Str("error_description"), `"delete"`) {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
		back := b.authorize(w.config(w.public, "", "read", "telepathy").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		if back.Query().Get("error") != "invalid_scope" || !strings.Contains(back.Query().Get("error_description"), "telepathy") || back.Query().Get("state") != "s" {
			t.Fatalf("authorize invalid_scope: %s", back)
		}
	})
	t.Run("scope wider than the client's", func(t *testing.T) {
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"write"}}, w.confidential, w.secret)
		if r.Str("error") != "invalid_scope" {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
	})
	t.Run("unsupported grant and missing grant", func(t *testing.T) {
		r := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"password"}}, w.confidential, w.secret)
		if r.Status != 400 || r.Str("error") != "unsupported_grant_type" {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
		r = postForm(t, e, "/oauth/token", url.Values{}, w.confidential, w.secret)
		if r.Str("error") != "invalid_request" {
			t.Fatalf("%d %s", r.Status, r.Raw)
		}
		r = e.Do("POST", "/oauth/token", `{"grant_type":"client_credentials"}`)
		if r.Str("error") != "invalid_request" || !strings.Contains(r.Str("error_description"), "form-encoded") {
			t.Fatalf("JSON body: %d %s", r.Status, r.Raw)
		}
	})
	t.Run("confidential client asking for response_type=token", func(t *testing.T) {
		p := b.get("/oauth/authorize?response_type=token&client_id=" + w.confidential + "&redirect_uri=" + url.QueryEscape(redirectURI) + "&state=q")
		u, _ := url.Parse(p.location)
		frag, _ := url.ParseQuery(u.Fragment)
		if p.status != 302 || frag.Get("error") != "unauthorized_client" || frag.Get("state") != "q" {
			t.Fatalf("%d %s", p.status, p.location)
		}
	})
	t.Run("unsupported response_type", func(t *testing.T) {
		p := b.get("/oauth/authorize?response_type=id_token&client_id=" + w.public + "&state=q")
		if p.status != 302 || !strings.Contains(p.location, "error=unsupported_response_type") {
			t.Fatalf("%d %s", p.status, p.location)
		}
	})
	t.Run("public client without PKCE", func(t *testing.T) {
		p := b.get("/oauth/authorize?response_type=code&client_id=" + w.public)
		if p.status != 302 || !strings.Contains(p.location, "error=invalid_request") {
			t.Fatalf("%d %s", p.status, p.location)
		}
	})
	t.Run("redirect_uri problems show a page and never redirect", func(t *testing.T) {
		for _, q := range []string{
			"response_type=code&client_id=" + w.public + "&redirect_uri=" + url.QueryEscape(redirectURI+"/"),
			"response_type=code&client_id=" + w.public + "&redirect_uri=" + url.QueryEscape("https://evil.example.com/callback"),
			"response_type=code&client_id=" + w.confidential, // two registered, none given
			"response_type=code&client_id=nope&redirect_uri=" + url.QueryEscape(redirectURI),
			"response_type=code",
		} {
			p := b.get("/oauth/authorize?" + q)
			if p.status != 400 || p.location != "" || !strings.Contains(p.body, "<h1>") {
				t.Errorf("%s: %d location=%q", q, p.status, p.location)
			}
		}
		p := b.get("/oauth/authorize?response_type=code&client_id=nope")
		if !strings.Contains(p.body, "nope") {
			t.Errorf("unknown client page should name the client_id: %s", p.body)
		}
	})
	t.Run("deny", func(t *testing.T) {
		fresh := newBrowser(t, e)
		p := fresh.get(pub.AuthCodeURL("d", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("prompt", "consent")))
		p = fresh.submit(p, map[string]string{"action": "login", "email": apptest.AdminEmail, "password": apptest.AdminPassword})
		p = fresh.submit(p, map[string]string{"action": "deny"})
		if p.status != 303 || !strings.Contains(p.location, "error=access_denied") {
			t.Fatalf("%d %s", p.status, p.location)
		}
	})
	t.Run("wrong password on the sign-in page", func(t *testing.T) {
		fresh := newBrowser(t, e)
		p := fresh.get(pub.AuthCodeURL("d", oauth2.S256ChallengeOption(verifier)))
		p = fresh.submit(p, map[string]string{"action": "login", "email": apptest.AdminEmail, "password": "wrong-password"})
		if p.status != 401 || !strings.Contains(p.body, "email or password is wrong") {
			t.Fatalf("%d %s", p.status, p.body)
		}
	})
	t.Run("CSRF token is required", func(t *testing.T) {
		fresh := newBrowser(t, e)
		p := fresh.get(pub.AuthCodeURL("d", oauth2.S256ChallengeOption(verifier)))
		forged := strings.Replace(p.body, `name="csrf_token" value="`, `name="csrf_token" value="x`, 1)
		p = fresh.submit(page{status: 200, body: forged}, map[string]string{"action": "login", "email": apptest.AdminEmail, "password": apptest.AdminPassword})
		if p.status != 403 {
			t.Fatalf("%d %s", p.status, p.body)
		}
	})
}

func TestImplicitGrant(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOAuthWorld(t, e)
	b := newBrowser(t, e)
	back := b.authorize("/oauth/authorize?response_type=token&client_id=" + w.public + "&state=abc&scope=read")
	frag, err := url.ParseQuery(back.Fragment)
	if err != nil || frag.Get("token_type") != "Bearer" || frag.Get("state") != "abc" || frag.Get("expires_in") != "86400" || frag.Get("scope") != "admin read" || back.RawQuery != "" {
		t.Fatalf("implicit redirect: %s", back)
	}
	expect(t, e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(frag.Get("access_token"))), 200, "")
}

func TestIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_ACCESS_TTL": "2s"})
	w := newOAuthWorld(t, e)
	introspect := func(tok string) apptest.Response {
		return postForm(t, e, "/oauth/introspect", url.Values{"token": {tok}}, w.confidential, w.secret)
	}
	cc := clientcredentials.Config{ClientID: w.confidential, ClientSecret: w.secret, TokenURL: e.Srv.URL + "/oauth/token"}
	tok, err := cc.Token(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := introspect(tok.AccessToken)
	if r.Body["active"] != true || r.Str("client_id") != w.confidential || r.Str("token_type") != "Bearer" || r.Str("scope") != "bot read chat" {
		t.Fatalf("active: %s", r.Raw)
	}
	// Revoked: inactive at once, refused at once.
	expect(t, postForm(t, e, "/oauth/revoke", url.Values{"token": {tok.AccessToken}}, w.confidential, w.secret), 200, "")
	if r := introspect(tok.AccessToken); r.Body["active"] != false || len(r.Body) != 1 {
		t.Fatalf("revoked: %s", r.Raw)
	}
	expect(t, e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(tok.AccessToken)), 401, "invalid_token")

	// A refresh token: active; revoking it ends its family.
	conf := w.config(w.confidential, w.secret, "read")
	b := newBrowser(t, e)
	code := b.authorize(conf.AuthCodeURL("s")).Query().Get("code")
	pair, err := conf.Exchange(w.ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	if r := introspect(pair.RefreshToken); r.Body["active"] != true || r.Str("token_type") != "refresh_token" {
		t.Fatalf("refresh active: %s", r.Raw)
	}
	expect(t, postForm(t, e, "/oauth/revoke", url.Values{"token": {pair.RefreshToken}, "token_type_hint": {"refresh_token"}}, w.confidential, w.secret), 200, "")
	if r := introspect(pair.RefreshToken); r.Body["active"] != false {
		t.Fatalf("revoked refresh: %s", r.Raw)
	}
	if r := introspect(pair.AccessToken); r.Body["active"] != false {
		t.Fatalf("access token of a revoked family: %s", r.Raw)
	}
	_, err = conf.TokenSource(w.ctx, &oauth2.Token{RefreshToken: pair.RefreshToken}).Token()
	oauthErr(t, err, "invalid_grant")

	// Expired: inactive.
	tok2, _ := cc.Token(w.ctx)
	time.Sleep(2100 * time.Millisecond)
	if r := introspect(tok2.AccessToken); r.Body["active"] != false {
		t.Fatalf("expired: %s", r.Raw)
	}
	// Garbage and an unauthenticated caller.
	if r := introspect("garbage"); r.Status != 200 || r.Body["active"] != false {
		t.Fatalf("garbage: %s", r.Raw)
	}
	if r := postForm(t, e, "/oauth/introspect", url.Values{"token": {tok2.AccessToken}}); r.Status != 401 {
		t.Fatalf("unauthenticated introspection: %d", r.Status)
	}
}

func TestOAuthMetadata(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	r := e.Do("GET", "/.well-known/oauth-authorization-server", nil)
	if r.Str("issuer") != "http://chatauth.test" || r.Str("token_endpoint") != "http://chatauth.test/oauth/token" || !strings.Contains(string(r.Raw), "S256") {
		t.Fatalf("%s", r.Raw)
	}
}

func TestClientRegistry(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOAuthWorld(t, e)
	for _, bad := range []map[string]any{
		{"name": "x", "client_type": "public", "redirect_uris": []string{"http://example.com/cb"}},
		{"name": "x", "client_type": "public", "redirect_uris": []string{"https://example.com/cb#frag"}},
		{"name": "x", "client_type": "public", "redirect_uris": []string{"/relative"}},
		{"name": "x", "client_type": "public", "allowed_origins": []string{"*"}},
		{"name": "x", "client_type": "public", "allowed_origins": []string{"https://example.com/path"}},
		{"name": "x", "client_type": "sometimes"},
		{"name": "x", "client_type": "public", "scopes": []string{"read", "sudo"}},
		{"client_type": "public"},
	} {
		expect(t, e.Do("POST", "/api/v1/oauth/clients", bad, w.admin), 400, "invalid_request")
	}
	// Switching a public client to confidential issues a secret, once.
	r := e.Do("PUT", "/api/v1/oauth/clients/"+w.public, map[string]any{"client_type": "confidential"}, w.admin)
	expect(t, r, 200, "")
	if !strings.HasPrefix(r.Str("client_secret"), "cas_") {
		t.Fatalf("switch: %s", r.Raw)
	}
	if g := e.Do("GET", "/api/v1/oauth/clients/"+w.public, nil, w.admin); g.Str("client_secret") != "" {
		t.Fatal("secret shown again")
	}
	expect(t, e.Do("DELETE", "/api/v1/oauth/clients/"+w.public, nil, w.admin), 204, "")
	expect(t, e.Do("GET", "/api/v1/oauth/clients/"+w.public, nil, w.admin), 404, "not_found")
}

// TestOAuthFormBodies: the token endpoints read the form body alone; a
// body that is not form encoding, or too large, is invalid_request with a
// description that does not repeat the body (it may hold a secret), and
// parameters in the query string are ignored.
func TestOAuthFormBodies(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOAuthWorld(t, e)
	ct := "Content-Type: application/x-www-form-urlencoded"
	for name, body := range map[string]string{
		"bad escape":          "grant_type=client_credentials&client_id=" + w.confidential + "&client_secret=s3cr%zzet",
		"semicolon separator": "grant_type=client_credentials;client_secret=s3cr3t-value",
		"too large":           "grant_type=client_credentials&client_secret=s3cr3t-value&pad=" + strings.Repeat("x", 70<<10),
	} {
		res := e.Do("POST", "/oauth/token", body, ct)
		switch {
		case name == "too large":
			// Refused before any handler reads it, naming the limit.
			if res.Status != 413 || !strings.Contains(res.Str("message"), "64 KB") {
				t.Errorf("%s: %d %s", name, res.Status, res.Raw)
			}
		case res.Status != 400 || res.Str("error") != "invalid_request" || res.Str("error_description") == "":
			t.Errorf("%s: %d %s", name, res.Status, res.Raw)
		}
		if strings.Contains(string(res.Raw), "s3cr") {
			t.Errorf("%s: the answer repeats the body: %s", name, res.Raw)
		}
	}
	// client_secret in the query string does not authenticate anybody.
	res := e.Do("POST", "/oauth/token?client_secret="+url.QueryEscape(w.secret), "grant_type=client_credentials&client_id="+url.QueryEscape(w.confidential), ct)
	if res.Status != 401 || res.Str("error") != "invalid_client" {
		t.Fatalf("secret in the query: %d %s", res.Status, res.Raw)
	}
	// A good body still works, and its answer is the RFC 6749 shape.
	res = postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {w.confidential}, "client_secret": {w.secret}})
	if res.Status != 200 || res.Str("token_type") != "Bearer" || res.Str("access_token") == "" || res.Body["expires_in"] == nil {
		t.Fatalf("client credentials: %d %s", res.Status, res.Raw)
	}
	if got := res.Header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("Content-Type %q", got)
	}
}
