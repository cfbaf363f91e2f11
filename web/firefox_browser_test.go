package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// The Firefox tests run the SDK and the widget in Debian's Firefox ESR
// under strict tracking protection (total cookie protection), driven over
// WebDriver BiDi by puppeteer-core: the Go test starts chatauth and the
// site exactly as the Chromium tests do, runs `node firefox/NAME.mjs`
// with their URLs, and judges the JSON it reports (one Firefox per
// script; see firefox/lib.mjs). They run when CHATAUTH_FIREFOX names the
// browser:
//
//	source scripts/firefox.sh && CHATAUTH_FIREFOX=$(ensure_firefox) go test -run Firefox ./web/

// firefoxTools are what the scripts need: the browser, node, and the
// folder holding puppeteer-core.
type firefoxTools struct{ firefox, node, puppeteer string }

var (
	puppeteerOnce sync.Once
	puppeteerDir  string
	puppeteerErr  error
)

// needFirefox skips unless CHATAUTH_FIREFOX is set; once it is, anything
// missing is a failure under CHATAUTH_REQUIRE_BROWSER=1 and a skip
// otherwise. puppeteer-core comes from CHATAUTH_PUPPETEER or from
// scripts/firefox.sh's ensure_puppeteer (an npm install into a cache
// folder on the first run, nothing after that).
func needFirefox(t *testing.T) firefoxTools {
	t.Helper()
	ff := os.Getenv("CHATAUTH_FIREFOX")
	if ff == "" {
		t.Skip("CHATAUTH_FIREFOX is not set; source scripts/firefox.sh && CHATAUTH_FIREFOX=$(ensure_firefox) runs these tests")
	}
	cannot := func(why string) {
		t.Helper()
		if os.Getenv("CHATAUTH_REQUIRE_BROWSER") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	if _, err := exec.LookPath(ff); err != nil {
		cannot(fmt.Sprintf("CHATAUTH_FIREFOX=%s: %v", ff, err))
	}
	node, err := exec.LookPath("node")
	if err != nil {
		cannot("node is not installed (scripts/browser.sh ensure_node)")
	}
	puppeteerOnce.Do(func() { puppeteerDir, puppeteerErr = ensurePuppeteer() })
	if puppeteerErr != nil {
		cannot(puppeteerErr.Error())
	}
	return firefoxTools{firefox: ff, node: node, puppeteer: puppeteerDir}
}

func ensurePuppeteer() (string, error) {
	if d := os.Getenv("CHATAUTH_PUPPETEER"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "node_modules", "puppeteer-core", "package.json")); err == nil {
			return d, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", `source ../scripts/firefox.sh && ensure_puppeteer`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/firefox.sh ensure_puppeteer: %v\n%s", err, stderr.Bytes())
	}
	return strings.TrimSpace(string(out)), nil
}

// firefoxReport is what a script prints: the browser's version and, per
// part, its facts, its time, and the exception that ended it.
type firefoxReport struct {
	Browser  string                     `json:"browser"`
	LaunchMS int                        `json:"launchMs"`
	Error    string                     `json:"error"`
	Parts    map[string]json.RawMessage `json:"parts"`
}

type partTime struct {
	MS      int      `json:"ms"`
	Error   string   `json:"error"`
	Console []string `json:"console"`
}

// runFirefox runs firefox/NAME.mjs with input and returns its report;
// a script that cannot launch Firefox or report fails the test.
func runFirefox(t *testing.T, tools firefoxTools, name string, input any) firefoxReport {
	t.Helper()
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tools.node, name+".mjs", string(in))
	cmd.Dir = "firefox"
	cmd.Env = append(os.Environ(), "CHATAUTH_FIREFOX="+tools.firefox, "CHATAUTH_PUPPETEER="+tools.puppeteer)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var rep firefoxReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("node firefox/%s.mjs: %v; no report (%v)\nstdout:\n%s\nstderr:\n%s", name, runErr, err, stdout.Bytes(), lastBytes(stderr.String(), 4000))
	}
	if rep.Error != "" {
		t.Fatalf("node firefox/%s.mjs: %s\nstderr:\n%s", name, rep.Error, lastBytes(stderr.String(), 4000))
	}
	t.Logf("%s in %.1f s (Firefox launch %.1f s)", rep.Browser, time.Since(start).Seconds(), float64(rep.LaunchMS)/1000)
	return rep
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// firefoxPart runs check on the part's facts as a subtest named after it; an
// exception in the script fails it with the script's message.
func firefoxPart[T any](t *testing.T, rep firefoxReport, name string, check func(t *testing.T, facts T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		raw, ok := rep.Parts[name]
		if !ok {
			t.Fatalf("the script reported no part %q", name)
		}
		var pt partTime
		json.Unmarshal(raw, &pt)
		t.Logf("%.1f s in Firefox", float64(pt.MS)/1000)
		if pt.Error != "" {
			t.Fatalf("in Firefox: %s\nthe pages' consoles:\n%s", pt.Error, strings.Join(pt.Console, "\n"))
		}
		var facts T
		if err := json.Unmarshal(raw, &facts); err != nil {
			t.Fatalf("part %s: %v\n%s", name, err, raw)
		}
		check(t, facts)
	})
}

// newPageClient registers another public client for the SDK page's
// origin and returns the page's URL for it.
func newPageClient(t *testing.T, env *sdkEnv, name string) string {
	t.Helper()
	u, err := url.Parse(env.page)
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host
	admin := apptest.Bearer(env.e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	cl := env.e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": name, "client_type": "public", "allowed_origins": []string{origin}}, admin)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	return origin + "/?client=" + cl.Str("client_id")
}

type ffToken struct {
	AccessToken string  `json:"accessToken"`
	TokenType   string  `json:"tokenType"`
	EntityID    string  `json:"entityId"`
	Identified  bool    `json:"identified"`
	ExpiresInMS float64 `json:"expiresInMs"`
}

type ffAnswer struct {
	Status int            `json:"status"`
	Body   map[string]any `json:"body"`
}

type ffRequest struct {
	Method     string `json:"method"`
	Path       string `json:"path"`
	AuthScheme string `json:"authScheme"`
	DPoPProof  bool   `json:"dpopProof"`
}

type ffTokenAnswer struct {
	Status    int    `json:"status"`
	TokenType string `json:"tokenType"`
	Error     string `json:"error"`     // the answer's error code
	BodyError string `json:"bodyError"` // why the body could not be read
}

// The SDK on a site of its own (127.0.0.1) with chatauth on another
// (localhost), in one Firefox with cookieBehavior 5: the first token,
// partitioned third-party state, a reload, DPoP when the SDK sends
// proofs, then at once three token lifetimes of silent refresh, three
// tabs sharing one refresh, and three tabs without Web Locks or
// BroadcastChannel.
func TestFirefoxSDK(t *testing.T) {
	t.Parallel()
	tools := needFirefox(t)
	env := startSDKEnv(t) // CHATAUTH_CUSTOMER_TTL=6s
	rep := runFirefox(t, tools, "sdk", map[string]string{
		"page":         env.page,
		"tabsPage":     newPageClient(t, env, "Shop widget, tabs"),
		"fallbackPage": newPageClient(t, env, "Shop widget, no Web Locks"),
		"server":       env.server,
	})

	var first ffToken
	firefoxPart(t, rep, "two sites", func(t *testing.T, f struct {
		Token ffToken
		Me    ffAnswer
		APIs  struct {
			Locks            string
			BroadcastChannel string
			Secure           bool
		}
		SiteCookie string
		ThirdParty struct {
			Storage string
			Cookie  bool
		}
		FirstParty struct{ Storage, Cookie bool }
		Requests   []ffRequest
	}) {
		first = f.Token
		t.Logf("token %s for %s, expires in %.1f s; Web Locks %s, BroadcastChannel %s", f.Token.TokenType, f.Token.EntityID, f.Token.ExpiresInMS/1000, f.APIs.Locks, f.APIs.BroadcastChannel)
		if f.Token.EntityID == "" || f.Token.AccessToken == "" || f.Token.ExpiresInMS < 1000 {
			t.Fatalf("first token: %+v", f.Token)
		}
		if f.Me.Status != 200 || f.Me.Body["entity_id"] != f.Token.EntityID {
			t.Fatalf("GET /customer/api/v1/me through auth.fetch: %+v", f.Me)
		}
		if !slices.ContainsFunc(f.Requests, func(r ffRequest) bool { return r.Method == "POST" && r.Path == "/customer/token" }) {
			t.Fatalf("no POST /customer/token among %+v", f.Requests)
		}
		// Total cookie protection is in force: what a chatauth frame
		// stores inside the site stays in the site's partition.
		// A frame of chatauth keeps state (cookieBehavior 1 or 4 would
		// refuse it or keep it unpartitioned), in the site's partition.
		if f.ThirdParty.Storage == "" || !f.ThirdParty.Cookie {
			t.Fatalf("the chatauth frame inside the site could not keep state: %+v", f.ThirdParty)
		}
		if f.FirstParty.Storage || f.FirstParty.Cookie {
			t.Fatalf("chatauth as a top-level page sees what its frame inside the site stored (storage %v, cookie %v): third-party state is not partitioned, cookieBehavior 5 is not in effect", f.FirstParty.Storage, f.FirstParty.Cookie)
		}
		if strings.Contains(f.SiteCookie, "chatauth") {
			t.Fatalf("the site sees a chatauth cookie: %q", f.SiteCookie)
		}
	})

	var reloaded ffToken
	firefoxPart(t, rep, "reload", func(t *testing.T, f struct {
		Before, After ffToken
		Me            ffAnswer
	}) {
		reloaded = f.After
		if f.After.EntityID != f.Before.EntityID || f.After.AccessToken == f.Before.AccessToken {
			t.Fatalf("after the reload: %s (token new: %v); before: %s", f.After.EntityID, f.After.AccessToken != f.Before.AccessToken, f.Before.EntityID)
		}
		if f.Me.Status != 200 || f.Me.Body["entity_id"] != f.Before.EntityID {
			t.Fatalf("/me after the reload: %+v", f.Me)
		}
	})

	// 7. DPoP bound tokens: token_type DPoP and the customer API works.
	firefoxPart(t, rep, "dpop", func(t *testing.T, f struct {
		TokenType     string
		AccessToken   string
		Answers       []ffTokenAnswer
		TokenRequests []ffRequest
		Me            ffAnswer
		MeRequests    []ffRequest
	}) {
		if f.TokenType != "DPoP" {
			proofs := slices.ContainsFunc(f.TokenRequests, func(r ffRequest) bool { return r.DPoPProof })
			t.Skipf("DPoP bound tokens: the SDK's token_type is %q and its POST /customer/token carried a DPoP proof: %v (answers %+v); this runs once the SDK sends proofs (docs/dpop.md)", f.TokenType, proofs, f.Answers)
		}
		for _, r := range f.TokenRequests {
			if !r.DPoPProof {
				t.Fatalf("a POST /customer/token without a DPoP proof: %+v", f.TokenRequests)
			}
		}
		for _, a := range f.Answers {
			if a.Status == 200 && a.TokenType != "" && a.TokenType != "DPoP" {
				t.Fatalf("POST /customer/token answered token_type %q", a.TokenType)
			}
		}
		if f.Me.Status != 200 || f.Me.Body["entity_id"] != reloaded.EntityID {
			t.Fatalf("/me with the DPoP token: %+v", f.Me)
		}
		if len(f.MeRequests) == 0 || !slices.ContainsFunc(f.MeRequests, func(r ffRequest) bool { return r.AuthScheme == "DPoP" && r.DPoPProof }) {
			t.Fatalf("auth.fetch did not send Authorization: DPoP with a proof: %+v", f.MeRequests)
		}
		t.Logf("%d POST /customer/token, each with a DPoP proof, answered token_type %+v; auth.fetch sent %+v", len(f.TokenRequests), f.Answers, f.MeRequests)
		// Lifted out of Firefox, the token is refused without the key.
		if r := env.e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(f.AccessToken)); r.Status != 401 {
			t.Fatalf("the bound token as a bearer: %d %s", r.Status, r.Raw)
		}
		if r := env.e.Do("GET", "/customer/api/v1/me", nil, "Authorization: DPoP "+f.AccessToken); r.Status != 401 {
			t.Fatalf("the bound token without a proof: %d %s", r.Status, r.Raw)
		}
	})

	firefoxPart(t, rep, "silent refresh", func(t *testing.T, f struct {
		Stats      stats
		Visibility string
	}) {
		st := f.Stats
		t.Logf("fetches=%d 401s=%d token changes=%d entities=%v errors=%v (tab %s)", st.Fetches, st.Unauthorized, st.Changes, st.Entities, st.Errors, f.Visibility)
		if st.Unauthorized != 0 || len(st.Errors) != 0 {
			t.Fatalf("%d 401s and errors %v", st.Unauthorized, st.Errors)
		}
		if st.Fetches < 50 || st.Changes < 3 {
			t.Fatalf("fetches=%d changes=%d: want ≥50 fetches and ≥2 refreshes after the first token", st.Fetches, st.Changes)
		}
		if len(st.Entities) != 1 || st.Entities[0] != first.EntityID {
			t.Fatalf("the visitor changed across refreshes: %v (first token's %s)", st.Entities, first.EntityID)
		}
	})

	firefoxPart(t, rep, "tabs", func(t *testing.T, f struct {
		Refreshes  int
		Before     []int
		After      []int
		APIs       struct{ Locks, BroadcastChannel string }
		Visibility []string
		HasToken   []bool
		Entities   []string
	}) {
		t.Logf("refreshes by 3 tabs over 12 s: %d (per tab %v → %v; %v); Web Locks %s, BroadcastChannel %s", f.Refreshes, f.Before, f.After, f.Visibility, f.APIs.Locks, f.APIs.BroadcastChannel)
		if f.Refreshes > 6 {
			t.Fatalf("3 tabs made %d refreshes in 12 s; one tab alone makes about 4", f.Refreshes)
		}
		if slices.Contains(f.HasToken, false) {
			t.Fatalf("a tab has no token: %v", f.HasToken)
		}
		if len(slices.Compact(slices.Clone(f.Entities))) != 1 {
			t.Fatalf("the tabs are different visitors: %v", f.Entities)
		}
	})

	// Without the two APIs (older Safari) each tab works alone: more
	// refreshes, the same visitor, no 401.
	firefoxPart(t, rep, "tabs without locks", func(t *testing.T, f struct {
		APIs     struct{ Locks, BroadcastChannel string }
		Before   []int
		After    []int
		Stats    []stats
		HasToken []bool
		Entities []string
	}) {
		if f.APIs.Locks != "undefined" || f.APIs.BroadcastChannel != "undefined" {
			t.Fatalf("the page still has navigator.locks (%s) or BroadcastChannel (%s)", f.APIs.Locks, f.APIs.BroadcastChannel)
		}
		for i, st := range f.Stats {
			t.Logf("tab %d: refreshes %d → %d, fetches=%d 401s=%d changes=%d entities=%v errors=%v", i, f.Before[i], f.After[i], st.Fetches, st.Unauthorized, st.Changes, st.Entities, st.Errors)
		}
		for i, st := range f.Stats {
			if st.Unauthorized != 0 || len(st.Errors) != 0 {
				t.Errorf("tab %d: %d 401s and errors %v", i, st.Unauthorized, st.Errors)
			}
			if f.After[i] <= f.Before[i] {
				t.Errorf("tab %d made no refresh of its own in 12 s (%d → %d)", i, f.Before[i], f.After[i])
			}
			if !f.HasToken[i] {
				t.Errorf("tab %d has no token", i)
			}
		}
		if len(slices.Compact(slices.Clone(f.Entities))) != 1 {
			t.Errorf("the tabs ended as different visitors: %v", f.Entities)
		}
	})
}

const firefoxWidgetPage = `<!doctype html><meta charset="utf-8"><title>shop</title><p>shop</p>
<script src="SERVER/web/widget.js" data-client-id="CLIENT" async></script>`

// The widget on a site of its own, chatauth on another: the visitor
// writes, an agent answers through the agent API, the widget shows the
// answer without a reload, and a reload brings the conversation back.
func TestFirefoxWidget(t *testing.T) {
	t.Parallel()
	tools := needFirefox(t)
	// chatauth on localhost, its issuer that URL (DPoP proofs name it).
	e, server := browsertest.Serve(t, sqlstoretest.SQLite(t), nil, "localhost", nil)
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	var client string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(strings.NewReplacer("SERVER", server, "CLIENT", client).Replace(firefoxWidgetPage)))
	}))
	defer site.Close()
	agent := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Shop widget", "client_type": "public", "allowed_origins": []string{site.URL}}, agent)
	if cl.Status != 201 {
		t.Fatalf("client: %s", cl.Raw)
	}
	client = cl.Str("client_id")
	const question, answer = "Hallo! Do you roast on Fridays?", "Every Friday at 6 — come by for a taste."
	shot := filepath.Join(os.TempDir(), "chatauth-artifacts", "firefox-widget.png")
	if d := os.Getenv("CHATAUTH_SCREENSHOTS"); d != "" {
		shot = filepath.Join(d, "firefox-widget.png")
	}
	os.MkdirAll(filepath.Dir(shot), 0o755)
	rep := runFirefox(t, tools, "widget", map[string]string{
		"page": site.URL + "/", "clientId": client, "api": e.Srv.URL, "agent": strings.TrimPrefix(agent, "Authorization: "),
		"question": question, "answer": answer, "screenshot": shot,
	})

	var conversation string
	firefoxPart(t, rep, "conversation", func(t *testing.T, f struct {
		Conversation string
		ReplyMS      int `json:"replyMs"`
		Messages     []string
		Status       string
		Console      []string
	}) {
		conversation = f.Conversation
		for _, line := range f.Console {
			t.Logf("widget console: %s", line)
		}
		t.Logf("the agent's reply showed %d ms after it was sent; widget status %q; screenshot %s", f.ReplyMS, f.Status, shot)
		want := []string{"incoming: " + question, "outgoing: " + answer}
		if !slices.Equal(f.Messages, want) {
			t.Fatalf("the widget shows %q, want %q (console %q)", f.Messages, want, f.Console)
		}
		// On the agent's side: the conversation holds both, the first
		// from the visitor.
		r := e.Do("GET", "/api/v1/conversations/"+f.Conversation, nil, agent)
		msgs, _ := r.Body["messages"].([]any)
		if r.Status != 200 || len(msgs) != 2 {
			t.Fatalf("the agent's view: %d %s", r.Status, r.Raw)
		}
		if m, _ := msgs[0].(map[string]any); m["sender_type"] != "customer" || m["content"] != question {
			t.Fatalf("the visitor's message as the agent sees it: %v", m)
		}
	})
	firefoxPart(t, rep, "reload", func(t *testing.T, f struct {
		Conversation string
		Messages     []string
	}) {
		if f.Conversation != conversation || len(f.Messages) != 2 {
			t.Fatalf("after the reload: conversation %s (was %s), messages %q", f.Conversation, conversation, f.Messages)
		}
	})
}

// An identified visitor (identity_browser_test.go's site, which signs
// identity tokens for its users): the SDK's token is the site user's, and
// a second profile signed in as the same user is the same visitor.
func TestFirefoxIdentifiedVisitor(t *testing.T) {
	t.Parallel()
	tools := needFirefox(t)
	env := startIdentityEnv(t)
	client := env.client(t, false)
	const text = "Order 2002 came without the grinder"
	rep := runFirefox(t, tools, "identity", map[string]string{
		"login": env.site.login("user-42", env.site.srv.URL+"/?client="+client), "text": text,
	})

	var first ffToken
	var conversation float64
	firefoxPart(t, rep, "signed in", func(t *testing.T, f struct {
		Token         ffToken
		Conversation  float64
		MessageStatus int
		Me            ffAnswer
	}) {
		first, conversation = f.Token, f.Conversation
		if !f.Token.Identified || f.Token.EntityID == "" || f.MessageStatus != 201 {
			t.Fatalf("token %+v, message %d", f.Token, f.MessageStatus)
		}
		if f.Me.Status != 200 || f.Me.Body["external_id"] != "user-42" || f.Me.Body["entity_id"] != f.Token.EntityID {
			t.Fatalf("/me: %+v", f.Me)
		}
		r := env.e.Do("GET", fmt.Sprintf("/api/v1/conversations/%d", int64(f.Conversation)), nil, env.admin)
		cust, _ := r.Body["customer"].(map[string]any)
		if cust["identified"] != true || cust["external_id"] != "user-42" || cust["entity_id"] != f.Token.EntityID || cust["email_verified"] != true {
			t.Fatalf("the agent's view of the visitor: %s", r.Raw)
		}
	})
	firefoxPart(t, rep, "second profile", func(t *testing.T, f struct {
		Token    ffToken
		Status   int
		Messages []string
	}) {
		if !f.Token.Identified || f.Token.EntityID != first.EntityID || f.Token.AccessToken == first.AccessToken {
			t.Fatalf("second profile: %+v; first: %+v", f.Token, first)
		}
		if f.Status != 200 || !slices.Contains(f.Messages, text) {
			t.Fatalf("the second profile's view of conversation %v: %d %q", conversation, f.Status, f.Messages)
		}
		if n := env.site.calls.Load(); n != 2 {
			t.Fatalf("the site signed %d identity tokens for two sign-ins", n)
		}
	})
}

// TestFirefoxFirstTokenTiming is TestSDKFirstTokenTiming in Firefox ESR:
// the same page, server and figure (window.firstTokenMs), over 5 fresh
// Firefoxes, each with a fresh profile and the suite's prefs (strict
// tracking protection, cookieBehavior 5). It runs under ./build.sh bench
// (CHATAUTH_BENCH=1), not in the test suite.
func TestFirefoxFirstTokenTiming(t *testing.T) {
	if os.Getenv("CHATAUTH_BENCH") != "1" {
		t.Skip("a measurement; ./build.sh bench runs it")
	}
	tools := needFirefox(t)
	env := startSDKEnv(t)
	var runs []float64
	var browser string
	for range 5 {
		rep := runFirefox(t, tools, "bench", map[string]string{"page": env.page})
		browser = rep.Browser
		var f struct {
			partTime
			FirstTokenMS float64 `json:"firstTokenMs"`
			TokenType    string  `json:"tokenType"`
		}
		if err := json.Unmarshal(rep.Parts["first token"], &f); err != nil {
			t.Fatalf("first token: %v", err)
		}
		if f.Error != "" {
			t.Fatalf("in Firefox: %s\nthe pages' consoles:\n%s", f.Error, strings.Join(f.Console, "\n"))
		}
		// The Chromium figure is of a DPoP-bound first token too.
		if f.TokenType != "DPoP" {
			t.Fatalf("the first token is %q, want DPoP as in Chromium", f.TokenType)
		}
		runs = append(runs, f.FirstTokenMS)
	}
	t.Logf("first token in %s: %s", browser, medianOf5(runs))
}
