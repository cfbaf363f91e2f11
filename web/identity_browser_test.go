package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// The site's page: the SDK with identity() asking the site's own
// endpoint, as docs/sdk.md shows it. The site is on 127.0.0.1 and
// chatauth on localhost, two sites, so the visitor cookie never reaches
// chatauth and everything rides on the SDK's refresh token.
const identityPage = `<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { init } from "SERVER/web/dist/chatauth.js";
window.changes = [];
try {
  window.auth = await init({ serverUrl: "SERVER", clientId: "CLIENT", identity: async () => {
    const r = await fetch("/identity?client=CLIENT", { credentials: "same-origin" });
    if (r.status === 204) return null;
    return (await r.json()).identity_token;
  } });
  auth.onTokenChange((t) => changes.push(t && { accessToken: t.accessToken, entityId: t.entityId, identified: t.identified }));
  window.token = await auth.getToken();
  window.ready = true;
} catch (e) { window.initError = e.code + ": " + e.message; }
window.call = async (method, path, body) => {
  const r = await auth.fetch(path, { method, headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
};
</script>`

// The same site with the widget, its identity endpoint answering text.
const identityWidgetPage = `<!doctype html><meta charset="utf-8"><title>shop</title><p>shop</p>
<script src="SERVER/web/widget.js" data-client-id="CLIENT" data-identity-endpoint="ENDPOINT" async></script>`

// identitySite is the site a widget client belongs to: it signs its
// users in with a cookie of its own and answers identity tokens for them,
// signed as a site would, with github.com/golang-jwt/jwt/v5.
type identitySite struct {
	srv    *httptest.Server
	server string // chatauth, as the browser reaches it

	mu    sync.Mutex
	keys  map[string]identityKey // by client_id
	calls atomic.Int64           // identity tokens signed
}

type identityKey struct{ kid, secret string }

type identityEnv struct {
	e     *apptest.Env
	admin string // the admin's Authorization header
	site  *identitySite
}

func startIdentityEnv(t *testing.T) *identityEnv {
	e, server := browsertest.Serve(t, sqlstoretest.SQLite(t), nil, "localhost", nil)
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	site := &identitySite{server: server, keys: map[string]identityKey{}}
	site.srv = httptest.NewServer(site)
	t.Cleanup(site.srv.Close)
	return &identityEnv{e: e, admin: apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")), site: site}
}

// client creates a widget client of the site with an HS256 identity key.
func (env *identityEnv) client(t *testing.T, identityRequired bool) string {
	t.Helper()
	cl := env.e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Shop widget", "client_type": "public",
		"allowed_origins": []string{env.site.srv.URL}, "identity_required": identityRequired}, env.admin)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	id := cl.Str("client_id")
	k := env.e.Do("POST", "/api/v1/oauth/clients/"+id+"/identity_keys", map[string]any{"alg": "HS256"}, env.admin)
	if k.Status != 201 || k.Str("alg") != "HS256" || k.Str("secret") == "" {
		t.Fatalf("identity key: %d %s", k.Status, k.Raw)
	}
	env.site.mu.Lock()
	env.site.keys[id] = identityKey{kid: k.Str("kid"), secret: k.Str("secret")}
	env.site.mu.Unlock()
	return id
}

func (s *identitySite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("client")
	page := func(tmpl string, endpoint string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(strings.NewReplacer("SERVER", s.server, "CLIENT", client, "ENDPOINT", endpoint).Replace(tmpl)))
	}
	switch r.URL.Path {
	case "/":
		page(identityPage, "")
	case "/widget":
		endpoint := "/identity?client=" + client + "&amp;format=text"
		if r.URL.Query().Get("cross") != "" {
			endpoint = s.server + "/identity"
		}
		page(identityWidgetPage, endpoint)
	case "/login":
		// This demo site trusts a cookie naming its user; a real one has
		// its own session.
		http.SetCookie(w, &http.Cookie{Name: "site_user", Value: r.URL.Query().Get("user"), Path: "/", HttpOnly: true})
		http.Redirect(w, r, r.URL.Query().Get("next"), http.StatusFound)
	case "/identity":
		c, err := r.Cookie("site_user")
		if err != nil || c.Value == "" {
			w.WriteHeader(http.StatusNoContent) // nobody signed in on the site
			return
		}
		s.mu.Lock()
		key, ok := s.keys[client]
		s.mu.Unlock()
		if !ok {
			http.Error(w, "no such client", http.StatusNotFound)
			return
		}
		tok, err := signIdentity(key, client, c.Value)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		s.calls.Add(1)
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte(tok))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"identity_token":%q}`, tok)
	default:
		http.NotFound(w, r)
	}
}

// login is the site's sign-in page for user, which then shows next.
func (s *identitySite) login(user, next string) string {
	return s.srv.URL + "/login?user=" + url.QueryEscape(user) + "&next=" + url.QueryEscape(next)
}

// signIdentity signs what a site's backend would for its signed-in user.
func signIdentity(key identityKey, clientID, user string) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": user, "aud": clientID, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": hex.EncodeToString(jti),
		"name": "Ada " + user, "email": user + "@example.com", "email_verified": true,
	})
	t.Header["kid"] = key.kid
	// The HMAC key is the secret string's UTF-8 bytes, as printed.
	return t.SignedString([]byte(key.secret))
}

type pageToken struct {
	AccessToken string `json:"accessToken"`
	EntityID    string `json:"entityId"`
	Identified  bool   `json:"identified"`
}

type pageAnswer struct {
	Status int            `json:"status"`
	Body   map[string]any `json:"body"`
}

// profile starts a browser of its own (its own cookie jar and IndexedDB)
// on the site, signed in there as user unless user is "".
func (env *identityEnv) profile(t *testing.T, clientID, user string) context.Context {
	t.Helper()
	ctx, cancel := browsertest.Start(t)
	t.Cleanup(cancel)
	page := env.site.srv.URL + "/?client=" + clientID
	if user != "" {
		page = env.site.login(user, page)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctx)
	return ctx
}

// Two browsers signed in on the site as user-42 are one visitor: the
// second sees the conversation the first started. A third, not signed
// in, is another visitor and sees nothing of it.
func TestIdentifiedVisitorAcrossBrowsers(t *testing.T) {
	env := startIdentityEnv(t)
	client := env.client(t, false)

	a := env.profile(t, client, "user-42")
	tokA := browsertest.Eval[pageToken](t, a, `window.token`)
	if !tokA.Identified || tokA.EntityID == "" {
		t.Fatalf("profile A's token: %+v", tokA)
	}
	conv := browsertest.Await[pageAnswer](t, a, `call("POST", "/customer/api/v1/conversations", {})`)
	if conv.Status != 201 {
		t.Fatalf("start conversation: %+v", conv)
	}
	id := int64(conv.Body["id"].(float64))
	if msg := browsertest.Await[pageAnswer](t, a, fmt.Sprintf(`call("POST", "/customer/api/v1/conversations/%d/messages", {content: "Order 1001 has not arrived"})`, id)); msg.Status != 201 {
		t.Fatalf("send: %+v", msg)
	}

	b := env.profile(t, client, "user-42")
	tokB := browsertest.Eval[pageToken](t, b, `window.token`)
	if !tokB.Identified || tokB.EntityID != tokA.EntityID || tokB.AccessToken == tokA.AccessToken {
		t.Fatalf("profile B: %+v; profile A: %+v", tokB, tokA)
	}
	seen := browsertest.Await[pageAnswer](t, b, fmt.Sprintf(`call("GET", "/customer/api/v1/conversations/%d")`, id))
	if seen.Status != 200 || !strings.Contains(fmt.Sprint(seen.Body["messages"]), "Order 1001 has not arrived") {
		t.Fatalf("profile B's view of the conversation: %+v", seen)
	}

	c := env.profile(t, client, "")
	tokC := browsertest.Eval[pageToken](t, c, `window.token`)
	if tokC.Identified || tokC.EntityID == "" || tokC.EntityID == tokA.EntityID {
		t.Fatalf("anonymous profile: %+v; user-42: %s", tokC, tokA.EntityID)
	}
	if got := browsertest.Await[pageAnswer](t, c, fmt.Sprintf(`call("GET", "/customer/api/v1/conversations/%d")`, id)); got.Status != 404 {
		t.Fatalf("the anonymous visitor fetched user-42's conversation: %+v", got)
	}
	if got := browsertest.Await[pageAnswer](t, c, fmt.Sprintf(`call("POST", "/customer/api/v1/conversations/%d/messages", {content: "hi"})`, id)); got.Status != 404 {
		t.Fatalf("the anonymous visitor wrote into user-42's conversation: %+v", got)
	}

	// Agents see who the visitor is, as the site said.
	r := env.e.Do("GET", fmt.Sprintf("/api/v1/conversations/%d", id), nil, env.admin)
	cust, _ := r.Body["customer"].(map[string]any)
	if cust["identified"] != true || cust["external_id"] != "user-42" || cust["entity_id"] != tokA.EntityID || cust["email_verified"] != true {
		t.Fatalf("the agent's view of the visitor: %s", r.Raw)
	}
	// Two identified sessions and one anonymous: the site signed one
	// identity token per session, not one per token refresh or tab.
	if n := env.site.calls.Load(); n != 2 {
		t.Fatalf("the site signed %d identity tokens for two sign-ins", n)
	}
}

// logout() in one tab ends the session in every tab of the site: the
// other tab hears of it (onTokenChange(null)), and the server refuses
// the tokens of both from then on.
func TestIdentifiedLogoutSignsOutEveryTab(t *testing.T) {
	env := startIdentityEnv(t)
	client := env.client(t, false)
	tab1 := env.profile(t, client, "user-42")
	tab2, cancel := chromedp.NewContext(tab1)
	defer cancel()
	if err := chromedp.Do(tab2, chromedp.Navigate(env.site.srv.URL+"/?client="+client)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, tab2)
	tok1 := browsertest.Await[pageToken](t, tab1, `auth.getToken()`)
	tok2 := browsertest.Await[pageToken](t, tab2, `auth.getToken()`)
	if !tok2.Identified || tok2.EntityID != tok1.EntityID {
		t.Fatalf("tab 2: %+v; tab 1: %+v", tok2, tok1)
	}
	// The tokens are bound to the tabs' DPoP key, so they are used from the
	// page; the server's own classifier says whether they still live.
	for i, tab := range []context.Context{tab1, tab2} {
		if r := browsertest.Await[pageAnswer](t, tab, `call("GET", "/customer/api/v1/me")`); r.Status != 200 {
			t.Fatalf("tab %d before logout: %+v", i+1, r)
		}
	}
	for _, tok := range []pageToken{tok1, tok2} {
		if _, err := env.e.App.Server.Inspector.CustomerJWT(tok.AccessToken); err != nil {
			t.Fatalf("before logout: %v", err)
		}
	}
	signed := env.site.calls.Load()

	browsertest.Await[bool](t, tab1, `auth.logout().then(() => true)`)
	waitJS(t, tab2, `changes.length > 0 && changes[changes.length - 1] === null && !auth.hasToken()`, "tab 2's onTokenChange(null)")
	if browsertest.Eval[bool](t, tab1, `auth.hasToken()`) {
		t.Fatal("tab 1 kept its token")
	}
	for i, tok := range []pageToken{tok1, tok2} {
		if _, err := env.e.App.Server.Inspector.CustomerJWT(tok.AccessToken); err == nil {
			t.Fatalf("tab %d's token lives on after logout", i+1)
		}
	}
	// The stored refresh token is gone: the next token starts over, with
	// the site (whose user is still signed in there).
	again := browsertest.Await[pageToken](t, tab2, `auth.getToken()`)
	if !again.Identified || again.EntityID != tok1.EntityID || again.AccessToken == tok2.AccessToken || env.site.calls.Load() != signed+1 {
		t.Fatalf("after logout: %+v, %d identity tokens signed (was %d)", again, env.site.calls.Load(), signed)
	}
}

// The widget with data-identity-endpoint: an anonymous visitor who signs
// in on the site keeps their conversation, agents see who they are; a
// client that accepts only identified visitors asks anonymous ones to
// sign in; an endpoint of another origin is refused.
func TestWidgetIdentifiedVisitor(t *testing.T) {
	env := startIdentityEnv(t)
	open := env.client(t, false)
	required := env.client(t, true)
	widgetPage := func(client string) string { return env.site.srv.URL + "/widget?client=" + client }
	login := func(client, user string) string { return env.site.login(user, widgetPage(client)) }
	write := func(ctx context.Context, text string) {
		t.Helper()
		browsertest.Eval[bool](t, ctx, shadow(`root.querySelector(".bubble").click(), true`))
		waitJS(t, ctx, shadow(`!root.querySelector(".panel").hidden && root.querySelector(".signin").hidden`), "the open chat")
		browsertest.Eval[bool](t, ctx, shadow(`(() => { const ta = root.querySelector("textarea"); ta.value = `+"`"+text+"`"+`;
			ta.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true })); return true; })()`))
		waitJS(t, ctx, shadow(`[...root.querySelectorAll("li.incoming")].some(li => li.textContent.includes(`+"`"+text+"`"+`))`), "the message "+text)
	}
	conversationOf := func(ctx context.Context) int64 {
		t.Helper()
		var n int64
		fmt.Sscan(browsertest.Eval[string](t, ctx, `localStorage.getItem("chatauth:conversation:`+open+`") || "0"`), &n)
		return n
	}
	customerOf := func(id int64) map[string]any {
		t.Helper()
		r := env.e.Do("GET", fmt.Sprintf("/api/v1/conversations/%d", id), nil, env.admin)
		cust, _ := r.Body["customer"].(map[string]any)
		return cust
	}

	// An anonymous visitor writes; then signs in on the site.
	visitor, cancel := browsertest.Start(t)
	defer cancel()
	if err := chromedp.Do(visitor, chromedp.Navigate(widgetPage(open))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget`, "the widget")
	write(visitor, "Do you ship to Norway?")
	mine := conversationOf(visitor)
	if cust := customerOf(mine); cust["identified"] != false {
		t.Fatalf("anonymous visitor's conversation: %v", cust)
	}
	if err := chromedp.Do(visitor, chromedp.Navigate(login(open, "user-42"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget`, "the widget after signing in")
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li.incoming")].some(li => li.textContent.includes("Norway"))`), "the conversation, kept across the sign-in")
	if cust := customerOf(mine); cust["identified"] != true || cust["external_id"] != "user-42" {
		t.Fatalf("after signing in, the conversation's visitor: %v", cust)
	}

	// Another browser stays anonymous.
	other, cancelOther := browsertest.Start(t)
	defer cancelOther()
	if err := chromedp.Do(other, chromedp.Navigate(widgetPage(open))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, other, `!!window.chatauthWidget`, "the second browser's widget")
	write(other, "Just browsing")
	theirs := conversationOf(other)

	// The console shows both.
	agent, cancelAgent := chromedp.NewContext(other)
	defer cancelAgent()
	if err := chromedp.Do(agent, chromedp.Navigate(env.e.Srv.URL+"/console"),
		chromedp.WaitVisible("#email"),
		chromedp.SendKeys("#email", apptest.AdminEmail),
		chromedp.SendKeys("#password", apptest.AdminPassword),
		chromedp.Click("#signin-form button"),
		chromedp.WaitVisible("#conv-list button"),
	); err != nil {
		t.Fatalf("console: %v", err)
	}
	openConv := func(id int64) {
		t.Helper()
		waitJS(t, agent, fmt.Sprintf(`(() => { const b = [...document.querySelectorAll("#conv-list button")].find(b => b.textContent.startsWith("#%d ")); b && b.click(); return !!b; })()`, id), "the conversation in the list")
		waitJS(t, agent, fmt.Sprintf(`document.querySelector("#thread-title").textContent === "Conversation #%d" && !document.querySelector("#thread-customer").hidden`, id), "the open conversation")
	}
	openConv(mine)
	waitJS(t, agent, `(() => { const c = document.querySelector("#thread-customer");
		return c.querySelector(".cust-id").textContent === "Site user user-42" && c.querySelector(".cust-name").textContent === "Ada user-42"
			&& c.querySelector(".cust-email").textContent === "user-42@example.com" && c.querySelector(".cust-verified").textContent === "verified"; })()`, "the identified visitor in the console")
	openConv(theirs)
	waitJS(t, agent, `document.querySelector("#thread-customer").textContent === "Anonymous visitor"`, "the anonymous visitor in the console")

	// A client that accepts only identified visitors.
	if err := chromedp.Do(other, chromedp.Navigate(widgetPage(required))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, other, `!!window.chatauthWidget`, "the widget of the identity-only client")
	browsertest.Eval[bool](t, other, shadow(`root.querySelector(".bubble").click(), true`))
	waitJS(t, other, shadow(`!root.querySelector(".signin").hidden && root.querySelector(".signin").textContent === "Please sign in on the site to chat."
		&& getComputedStyle(root.querySelector("form")).display === "none" && getComputedStyle(root.querySelector("ol")).display === "none"`), "the sign-in notice instead of the chat")
	if err := chromedp.Do(other, chromedp.Navigate(login(required, "user-7"))); err != nil {
		t.Fatal(err)
	}
	waitJS(t, other, `!!window.chatauthWidget`, "the identity-only widget after signing in")
	write(other, "Now I am signed in")

	// An identity endpoint on another origin is refused, loudly.
	var refused atomic.Bool
	chromedp.Listen(other, func(ev any) {
		if e, ok := ev.(*runtime.EventConsoleAPICalled); ok && e.Type == runtime.ConsoleAPICalledTypeError {
			for _, a := range e.Args {
				if strings.Contains(string(a.Value), "data-identity-endpoint must be on this site's origin") {
					refused.Store(true)
				}
			}
		}
	})
	if err := chromedp.Do(other, chromedp.Navigate(widgetPage(open)+"&cross=1")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, other, `document.readyState === "complete"`, "the page with a cross-origin endpoint")
	deadline := time.Now().Add(5 * time.Second)
	for !refused.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !refused.Load() || browsertest.Eval[bool](t, other, `!!window.chatauthWidget || !!document.querySelector("chatauth-widget")`) {
		t.Fatalf("a cross-origin identity endpoint was not refused (console error seen: %v)", refused.Load())
	}
}
