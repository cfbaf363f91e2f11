package web_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/dpop/dpoptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// The shop's page (127.0.0.1) with the SDK of chatauth (localhost): two
// sites, as in the other SDK tests. Besides the app's own calls, it has
// what a script that runs in the page (an XSS, an extension) could do:
// read the refresh token out of IndexedDB and look at the DPoP key.
const dpopPage = `<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { init } from "SERVER/web/dist/chatauth.js";
window.got = { messages: [], opens: 0, errors: [] };
try {
  window.auth = await init({ serverUrl: "SERVER", clientId: "CLIENT" });
  window.token = await auth.getToken();
  window.ready = true;
} catch (e) { window.initError = e.code + ": " + e.message; }
window.call = async (method, path, body) => {
  const r = await auth.fetch(path, { method, headers: { "Content-Type": "application/json" }, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => null) };
};
window.follow = (id) => {
  window.stream = auth.events("/customer/api/v1/conversations/" + id + "/events", { lastEventId: 0,
    onOpen: () => got.opens++,
    onMessage: (ev) => got.messages.push(JSON.parse(ev.data).content),
    onError: (e) => got.errors.push(e.code + " " + e.status + " " + e.retrying) });
  return true;
};
const kv = () => new Promise((resolve, reject) => {
  const r = indexedDB.open("chatauth");
  r.onsuccess = () => {
    const all = {}, c = r.result.transaction("kv").objectStore("kv").openCursor();
    c.onsuccess = () => { const cur = c.result; if (!cur) return resolve(all); all[cur.key] = cur.value; cur.continue(); };
    c.onerror = () => reject(c.error);
  };
  r.onerror = () => reject(r.error);
});
window.liftRefresh = async () => (await kv())["refresh:SERVER:CLIENT"].token;
// The stored DPoP keys: the public half, and whether the private one can
// be read (it must not).
window.dpopKeys = async () => {
  const out = [];
  for (const [name, pair] of Object.entries(await kv())) {
    if (!name.startsWith("dpop:")) continue;
    const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
    const readable = await crypto.subtle.exportKey("jwk", pair.privateKey).then(() => true, () => false);
    out.push({ name, jwk: { kty, crv, x, y }, extractable: pair.privateKey.extractable, readable });
  }
  return out;
};
</script>`

// wireLog records the browser's requests to the customer endpoints, as
// the server received them, and how they were answered.
type wireLog struct {
	mu   sync.Mutex
	reqs []*wireRequest
}

type wireRequest struct {
	Method, Path, Origin string
	Proofs               int    // DPoP headers
	Scheme               string // of the Authorization header
	Status               int
	Body                 []byte // of an answer of 400 or more
}

func (l *wireLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || !strings.HasPrefix(r.URL.Path, "/customer/") || r.Header.Get("Origin") == "" {
			h.ServeHTTP(w, r)
			return
		}
		scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		req := &wireRequest{Method: r.Method, Path: r.URL.Path, Origin: r.Header.Get("Origin"), Proofs: len(r.Header.Values("DPoP")), Scheme: scheme}
		l.mu.Lock()
		l.reqs = append(l.reqs, req)
		l.mu.Unlock()
		h.ServeHTTP(&wireWriter{ResponseWriter: w, log: l, req: req}, r)
	})
}

// snapshot copies the log.
func (l *wireLog) snapshot() []wireRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]wireRequest, len(l.reqs))
	for i, r := range l.reqs {
		out[i] = *r
	}
	return out
}

// nonceAsks counts the token requests answered use_dpop_nonce.
func (l *wireLog) nonceAsks() int {
	n := 0
	for _, r := range l.snapshot() {
		if r.Path == "/customer/token" && r.Status == 400 && bytes.Contains(r.Body, []byte(`"use_dpop_nonce"`)) {
			n++
		}
	}
	return n
}

// wireWriter keeps the status and the start of an error's body; it
// flushes and hijacks, so the event stream streams through it.
type wireWriter struct {
	http.ResponseWriter
	log *wireLog
	req *wireRequest
}

func (w *wireWriter) WriteHeader(code int) {
	w.log.mu.Lock()
	w.req.Status = code
	w.log.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

func (w *wireWriter) Write(b []byte) (int, error) {
	w.log.mu.Lock()
	if w.req.Status == 0 {
		w.req.Status = http.StatusOK
	}
	if w.req.Status >= 400 && len(w.req.Body) < 512 {
		w.req.Body = append(w.req.Body, b[:min(len(b), 512)]...)
	}
	w.log.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

func (w *wireWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

// Hijack hands the connection to the hub, which writes the event
// stream's head itself: the stream is open, an answer of 200.
func (w *wireWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.log.mu.Lock()
		w.req.Status = http.StatusOK
		w.log.mu.Unlock()
	}
	return conn, brw, err
}

func (w *wireWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type dpopEnv struct {
	e      *apptest.Env
	server string // chatauth as the browser reaches it: its issuer
	site   string // the shop's origin
	page   string
	client string
	admin  string
	wire   *wireLog
}

func startDPoPEnv(t *testing.T, extra map[string]string) *dpopEnv {
	t.Helper()
	return startPageEnv(t, dpopPage, extra, nil)
}

// startPageEnv starts chatauth (on localhost, with the settings of
// extra), serves page as the shop's site (on 127.0.0.1, SERVER and CLIENT
// replaced), and registers the shop's widget client with its origin and
// the fields of client besides.
func startPageEnv(t *testing.T, page string, extra map[string]string, client map[string]any) *dpopEnv {
	t.Helper()
	wire := &wireLog{}
	e, server := browsertest.Serve(t, sqlstoretest.SQLite(t), extra, "localhost", wire.wrap)
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(strings.NewReplacer("SERVER", server, "CLIENT", r.URL.Query().Get("client")).Replace(page)))
	}))
	t.Cleanup(site.Close)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	body := map[string]any{"name": "Shop widget", "client_type": "public", "allowed_origins": []string{site.URL}}
	maps.Copy(body, client)
	cl := e.Do("POST", "/api/v1/oauth/clients", body, admin)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	return &dpopEnv{e: e, server: server, site: site.URL, page: site.URL + "/?client=" + cl.Str("client_id"), client: cl.Str("client_id"), admin: admin, wire: wire}
}

// checkWire fails the test unless every request the page made to the
// customer endpoints carried exactly one DPoP proof, and every one with
// an access token sent it under the DPoP scheme.
func (env *dpopEnv) checkWire(t *testing.T) {
	t.Helper()
	for _, r := range env.wire.snapshot() {
		if r.Origin != env.site {
			continue
		}
		if r.Proofs != 1 || (r.Path != "/customer/token" && r.Scheme != "DPoP") {
			t.Errorf("%s %s went with %d DPoP proofs and Authorization %q (answered %d)", r.Method, r.Path, r.Proofs, r.Scheme, r.Status)
		}
	}
}

type dpopToken struct {
	AccessToken string `json:"accessToken"`
	TokenType   string `json:"tokenType"`
	EntityID    string `json:"entityId"`
}

type storedKey struct {
	Name        string         `json:"name"`
	JWK         map[string]any `json:"jwk"`
	Extractable bool           `json:"extractable"`
	Readable    bool           `json:"readable"`
}

// followNewConversation starts a conversation from the page and follows
// its event stream; it returns the conversation's id once the stream is
// open.
func followNewConversation(t *testing.T, ctx context.Context) int64 {
	t.Helper()
	conv := browsertest.Await[pageAnswer](t, ctx, `call("POST", "/customer/api/v1/conversations", {})`)
	if conv.Status != 201 {
		t.Fatalf("start conversation: %+v", conv)
	}
	id := int64(conv.Body["id"].(float64))
	browsertest.Eval[bool](t, ctx, fmt.Sprintf(`follow(%d)`, id))
	waitJS(t, ctx, `got.opens === 1`, "the event stream")
	return id
}

func refused(t *testing.T, what string, r apptest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.Str("error") != code {
		t.Fatalf("%s: %d %s, want %d %s", what, r.Status, r.Raw, status, code)
	}
}

// The SDK in Chromium gets a DPoP-bound visitor token, calls the customer
// API and follows the event stream with it. A refresh token and an access
// token lifted out of the page are worthless outside it, while the page
// goes on working. The server's nonce costs one retry per page load; the
// key outlives reloads, and a logout replaces it.
func TestDPoPInChromium(t *testing.T) {
	env := startDPoPEnv(t, nil)
	ctx, cancel := browsertest.Start(t)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(env.page)); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctx)

	tok := browsertest.Eval[dpopToken](t, ctx, `window.token`)
	jkt := dpoptest.BoundTo(t, tok.AccessToken)
	if tok.TokenType != "DPoP" || jkt == "" {
		t.Fatalf("token type %q, cnf.jkt %q: not bound", tok.TokenType, jkt)
	}
	keys := browsertest.Await[[]storedKey](t, ctx, `dpopKeys()`)
	if len(keys) != 1 || keys[0].Extractable || keys[0].Readable {
		t.Fatalf("stored DPoP keys: %+v; want one, not extractable", keys)
	}
	if tp := dpoptest.Thumbprint(t, keys[0].JWK); tp != jkt {
		t.Fatalf("the token is bound to %s, the key in IndexedDB is %s", jkt, tp)
	}
	if n := env.wire.nonceAsks(); n != 1 {
		t.Fatalf("the first page load was asked for the nonce %d times, want 1", n)
	}

	// The customer API and the event stream, with the bound token.
	if r := browsertest.Await[pageAnswer](t, ctx, `call("GET", "/customer/api/v1/me")`); r.Status != 200 {
		t.Fatalf("GET /me: %+v", r)
	}
	id := followNewConversation(t, ctx)
	if r := env.e.Do("POST", fmt.Sprintf("/api/v1/conversations/%d/messages", id), map[string]any{"content": "Hello from the agent", "message_type": "outgoing"}, env.admin); r.Status != 201 {
		t.Fatalf("agent reply: %d %s", r.Status, r.Raw)
	}
	waitJS(t, ctx, `got.messages.includes("Hello from the agent")`, "the agent's reply over the stream")

	// A script in the page lifts both tokens; they are useless outside.
	refresh := browsertest.Await[string](t, ctx, `liftRefresh()`)
	access := browsertest.Await[dpopToken](t, ctx, `auth.getToken()`).AccessToken
	if refresh == "" || access != tok.AccessToken {
		t.Fatalf("lifted refresh %q, access %q", refresh, access)
	}
	thief := dpoptest.NewKey(t) // a key of the attacker's own, outside the browser
	me := env.server + "/customer/api/v1/me"
	refused(t, "the access token as Bearer", env.e.Do("GET", "/customer/api/v1/me", nil, "Authorization: Bearer "+access), 401, "invalid_token")
	refused(t, "the access token with another key's proof", env.e.Do("GET", "/customer/api/v1/me", nil,
		"Authorization: DPoP "+access, "DPoP: "+thief.Sign(t, dpoptest.Proof{Method: "GET", URL: me, AccessToken: access})), 401, "invalid_dpop_proof")
	refused(t, "the access token on the stream with another key's proof", env.e.Do("GET", fmt.Sprintf("/customer/api/v1/conversations/%d/events", id), nil,
		"Authorization: DPoP "+access, "DPoP: "+thief.Sign(t, dpoptest.Proof{Method: "GET", URL: fmt.Sprintf("%s/customer/api/v1/conversations/%d/events", env.server, id), AccessToken: access})), 401, "invalid_dpop_proof")
	grant := map[string]any{"client_id": env.client, "grant_type": "refresh_token", "refresh_token": refresh}
	refused(t, "the refresh token without a proof", env.e.Do("POST", "/customer/token", grant), 400, "invalid_dpop_proof")
	// A careful thief signs the server's nonce too.
	r := env.e.Do("POST", "/customer/token", grant, "DPoP: "+thief.Sign(t, dpoptest.Proof{Method: "POST", URL: env.server + "/customer/token"}))
	if r.Status == 400 && r.Str("error") == "use_dpop_nonce" {
		r = env.e.Do("POST", "/customer/token", grant, "DPoP: "+thief.Sign(t, dpoptest.Proof{Method: "POST", URL: env.server + "/customer/token", Nonce: r.Header.Get("DPoP-Nonce")}))
	}
	refused(t, "the refresh token with another key's proof", r, 400, "invalid_dpop_proof")

	// The page goes on: its next call, and a refresh with that very
	// refresh token, which the refusals did not spend.
	if r := browsertest.Await[pageAnswer](t, ctx, `call("GET", "/customer/api/v1/me")`); r.Status != 200 {
		t.Fatalf("the page's next call: %+v", r)
	}
	before := browsertest.Eval[int](t, ctx, `auth.refreshCount()`)
	browsertest.Eval[bool](t, ctx, `auth.invalidate(), true`)
	if r := browsertest.Await[pageAnswer](t, ctx, `call("GET", "/customer/api/v1/me")`); r.Status != 200 {
		t.Fatalf("the page's call after a refresh: %+v", r)
	}
	again := browsertest.Await[dpopToken](t, ctx, `auth.getToken()`)
	if browsertest.Eval[int](t, ctx, `auth.refreshCount()`) != before+1 || again.EntityID != tok.EntityID || dpoptest.BoundTo(t, again.AccessToken) != jkt {
		t.Fatalf("after the refresh: %+v (was %+v), %d refreshes (was %d)", again, tok, browsertest.Eval[int](t, ctx, `auth.refreshCount()`), before)
	}
	if n := env.wire.nonceAsks(); n != 1 {
		t.Fatalf("the refresh was asked for the nonce (%d in all): the SDK should have signed the one it had", n)
	}

	// A reload: the same key, the same visitor, and no nonce round trip:
	// the nonce the last answer gave is kept in sessionStorage.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitReady(t, ctx)
	reloaded := browsertest.Eval[dpopToken](t, ctx, `window.token`)
	if dpoptest.BoundTo(t, reloaded.AccessToken) != jkt || reloaded.EntityID != tok.EntityID {
		t.Fatalf("after a reload: %+v bound to %s; before: %s bound to %s", reloaded, dpoptest.BoundTo(t, reloaded.AccessToken), tok.EntityID, jkt)
	}
	if n := env.wire.nonceAsks(); n != 1 {
		t.Fatalf("two page loads were asked for the nonce %d times, want 1: the reload should sign with the nonce it kept", n)
	}

	// Logout goes with a proof too, and replaces the key: the next visitor
	// of this browser is not linked to this one by its key.
	browsertest.Await[bool](t, ctx, `auth.logout().then(() => true)`)
	next := browsertest.Await[dpopToken](t, ctx, `auth.getToken()`)
	if njkt := dpoptest.BoundTo(t, next.AccessToken); njkt == "" || njkt == jkt || next.EntityID == tok.EntityID {
		t.Fatalf("after logout: %+v bound to %q; before: %s bound to %s", next, njkt, tok.EntityID, jkt)
	}
	if keys := browsertest.Await[[]storedKey](t, ctx, `dpopKeys()`); len(keys) != 1 || dpoptest.Thumbprint(t, keys[0].JWK) != dpoptest.BoundTo(t, next.AccessToken) {
		t.Fatalf("stored keys after logout: %+v", keys)
	}
	logouts := 0
	for _, r := range env.wire.snapshot() {
		if r.Path == "/customer/logout" && r.Status == 204 {
			logouts++
		}
	}
	if logouts != 1 {
		t.Fatalf("%d logouts answered 204: %+v", logouts, env.wire.snapshot())
	}
	env.checkWire(t)
}

// Three tabs opened at once share one key (every token bound to the same
// cnf.jkt, one key in IndexedDB) and still make about one refresh per
// token lifetime between them; the event stream, ended by the server when
// its token expires, comes back with a fresh token and a fresh proof.
func TestDPoPTabsShareOneKeyInChromium(t *testing.T) {
	env := startDPoPEnv(t, map[string]string{"CHATAUTH_CUSTOMER_TTL": "6s"})
	ctx, cancel := browsertest.Start(t)
	defer cancel()
	// The first tab exists before the others are made from it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	tabs := []context.Context{ctx}
	for range 2 {
		tab, cancelTab := chromedp.NewContext(ctx)
		defer cancelTab()
		tabs = append(tabs, tab)
	}
	// At once: the first token requests of the three race for the key.
	var wg sync.WaitGroup
	errs := make([]error, len(tabs))
	for i, tab := range tabs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = chromedp.Do(tab, chromedp.Navigate(env.page)) }()
	}
	wg.Wait()
	for i, tab := range tabs {
		if errs[i] != nil {
			t.Fatalf("tab %d: %v", i, errs[i])
		}
		waitReady(t, tab)
	}
	jkt := dpoptest.BoundTo(t, browsertest.Eval[dpopToken](t, ctx, `window.token`).AccessToken)
	bound := func(when string) {
		t.Helper()
		for i, tab := range tabs {
			tok := browsertest.Await[dpopToken](t, tab, `auth.getToken()`)
			if got := dpoptest.BoundTo(t, tok.AccessToken); tok.TokenType != "DPoP" || got != jkt {
				t.Fatalf("%s, tab %d's token is %s bound to %q, tab 0's key is %s", when, i, tok.TokenType, got, jkt)
			}
		}
	}
	bound("at first")
	if keys := browsertest.Await[[]storedKey](t, ctx, `dpopKeys()`); len(keys) != 1 || dpoptest.Thumbprint(t, keys[0].JWK) != jkt {
		t.Fatalf("stored DPoP keys: %+v", keys)
	}
	if n := env.wire.nonceAsks(); n < 1 || n > len(tabs) {
		t.Fatalf("three page loads were asked for the nonce %d times", n)
	}

	id := followNewConversation(t, ctx)

	count := func() int {
		total := 0
		for _, tab := range tabs {
			total += browsertest.Eval[int](t, tab, `auth.refreshCount()`)
		}
		return total
	}
	before := count()
	time.Sleep(12 * time.Second) // two 6 s lifetimes; one tab refreshes every ~3 s
	after := count()
	t.Logf("refreshes by 3 tabs over 12 s: %d; nonce round trips: %d", after-before, env.wire.nonceAsks())
	if after-before > 6 {
		t.Fatalf("3 tabs made %d refreshes in 12 s; one tab alone makes about 4", after-before)
	}
	bound("12 s later")
	// A tab that got its first token from another one signs the nonce
	// for the first time at its first refresh: still once per page load.
	if n := env.wire.nonceAsks(); n > len(tabs) {
		t.Fatalf("%d nonce round trips for %d page loads", n, len(tabs))
	}

	// The stream's token expired twice over: the server ended it, and the
	// SDK came back, after the last message seen.
	if opens := browsertest.Eval[int](t, ctx, `got.opens`); opens < 2 {
		t.Fatalf("the stream opened %d times in 12 s of 6 s tokens; errors %v", opens, browsertest.Eval[[]string](t, ctx, `got.errors`))
	}
	if r := env.e.Do("POST", fmt.Sprintf("/api/v1/conversations/%d/messages", id), map[string]any{"content": "Still there?", "message_type": "outgoing"}, env.admin); r.Status != 201 {
		t.Fatalf("agent reply: %d %s", r.Status, r.Raw)
	}
	waitJS(t, ctx, `got.messages.includes("Still there?")`, "the reply over the reconnected stream")
	if msgs := browsertest.Eval[[]string](t, ctx, `got.messages`); slices.Index(msgs, "Still there?") != len(msgs)-1 || len(msgs) != 1 {
		t.Fatalf("messages over the stream: %q", msgs)
	}
	streams := 0
	for _, r := range env.wire.snapshot() {
		if strings.HasSuffix(r.Path, "/events") && r.Status == 200 {
			streams++
		}
	}
	if streams < 2 {
		t.Fatalf("%d stream connections answered 200", streams)
	}
	env.checkWire(t)
}

// A browser without WebCrypto (or without IndexedDB) cannot keep a DPoP
// key: init rejects with dpop_unavailable instead of falling back to
// bearer tokens, and an app that passes dpop: false gets bearer tokens,
// as before DPoP. The page takes away what the query names (?hide=subtle
// or indexedDB): a page on another name than 127.0.0.1 or localhost over
// plain http would lack crypto.subtle for real, but the server accepts
// plain-http origins only on those two.
const bareBrowserPage = `<!doctype html><meta charset="utf-8"><title>shop</title>
<script type="module">
import { init } from "SERVER/web/dist/chatauth.js";
const hide = new URLSearchParams(location.search).get("hide");
if (hide === "subtle") Object.defineProperty(Crypto.prototype, "subtle", { get: () => undefined });
if (hide === "indexedDB") Object.defineProperty(window, "indexedDB", { get: () => undefined });
window.result = { subtle: !!globalThis.crypto?.subtle, indexedDB: !!globalThis.indexedDB };
try { await init({ serverUrl: "SERVER", clientId: "CLIENT" }); result.defaultInit = "ok"; } catch (e) { result.defaultInit = e.code; }
if (hide === "subtle") {
  try {
    window.auth = await init({ serverUrl: "SERVER", clientId: "CLIENT", dpop: false });
    result.token = await auth.getToken();
    result.me = (await auth.fetch("/customer/api/v1/me")).status;
  } catch (e) { result.error = e.code + ": " + e.message; }
}
window.ready = true;
</script>`

type bareResult struct {
	Subtle      bool      `json:"subtle"`
	IndexedDB   bool      `json:"indexedDB"`
	DefaultInit string    `json:"defaultInit"`
	Token       dpopToken `json:"token"`
	Me          int       `json:"me"`
	Error       string    `json:"error"`
}

func TestDPoPUnavailableInChromium(t *testing.T) {
	// dpop: false gets bearer tokens only from a client that keeps DPoP
	// optional; a new widget client requires it unless told otherwise.
	env := startPageEnv(t, bareBrowserPage, nil, map[string]any{"dpop": "optional"})
	e, wire := env.e, env.wire
	ctx, cancel := browsertest.Start(t)
	defer cancel()
	load := func(hide string) bareResult {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(env.page+"&hide="+hide)); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, `window.ready === true`, "the page without "+hide)
		return browsertest.Eval[bareResult](t, ctx, `window.result`)
	}

	got := load("indexedDB")
	if got.IndexedDB || got.DefaultInit != "dpop_unavailable" {
		t.Fatalf("without IndexedDB: %+v, want dpop_unavailable", got)
	}
	got = load("subtle")
	if got.Subtle || got.DefaultInit != "dpop_unavailable" {
		t.Fatalf("without WebCrypto: %+v, want dpop_unavailable", got)
	}
	if got.Error != "" || got.Token.TokenType != "Bearer" || dpoptest.BoundTo(t, got.Token.AccessToken) != "" || got.Me != 200 {
		t.Fatalf("with dpop: false: %+v", got)
	}
	reqs := wire.snapshot()
	if len(reqs) < 2 {
		t.Fatalf("the server saw %d requests of the page", len(reqs))
	}
	for _, r := range reqs {
		if r.Proofs != 0 || (r.Path != "/customer/token" && r.Scheme != "Bearer") {
			t.Errorf("with dpop: false, %s %s went with %d proofs and Authorization %q", r.Method, r.Path, r.Proofs, r.Scheme)
		}
	}
	if r := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(got.Token.AccessToken)); r.Status != 200 {
		t.Fatalf("the bearer token from Go: %d %s", r.Status, r.Raw)
	}
}
