package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// shadow evaluates expr with `root` bound to the widget's shadow root.
func shadow(expr string) string {
	return `(() => { const root = window.chatauthWidget.element.shadowRoot; return (` + expr + `); })()`
}

func waitJS(t *testing.T, ctx context.Context, expr string, what string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// screenshot writes a PNG to CHATAUTH_SCREENSHOTS (docs/ when refreshing
// the README's pictures) or to the test artifacts folder.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CHATAUTH_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "chatauth-artifacts")
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

const hostilePage = `<!doctype html><title>hostile</title>
<style>
* { display: none !important; font-size: 48px !important; color: lime !important; all: unset !important; }
html, body { display: block !important; background: #222 !important; }
chatauth-widget, div, button, section { display: none !important; visibility: hidden !important; opacity: 0 !important; }
</style>
<p>hostile page</p>
<script src="SERVER/web/widget.js" data-client-id="CLIENT" async></script>`

func TestWidgetAndConsole(t *testing.T) {
	e, _ := browsertest.Serve(t, sqlstoretest.SQLite(t), nil, "127.0.0.1", nil)
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	hostile := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(strings.NewReplacer("SERVER", e.Srv.URL, "CLIENT", e.App.Server.DemoClientID).Replace(hostilePage)))
	}))
	defer hostile.Close()
	// The demo client is made for the configured issuer; allow this test's
	// loopback origins too.
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	if r := e.Do("PATCH", "/api/v1/oauth/clients/"+e.App.Server.DemoClientID, map[string]any{"allowed_origins": []string{e.Srv.URL, hostile.URL}}, admin); r.Status != 200 {
		t.Fatalf("allow origins: %s", r.Raw)
	}

	visitor, cancel := browsertest.Start(t, chromedp.WindowSize(1100, 760))
	defer cancel()
	if err := chromedp.Do(visitor, chromedp.Navigate(e.Srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget && !!document.querySelector("chatauth-widget")`, "the widget")

	// The visitor opens the widget and writes, with the keyboard.
	browsertest.Eval[bool](t, visitor, shadow(`root.querySelector(".bubble").click(), true`))
	waitJS(t, visitor, shadow(`!root.querySelector(".panel").hidden && root.activeElement === root.querySelector("textarea")`), "the open panel with focus in the composer")
	browsertest.Eval[bool](t, visitor, shadow(`(() => { const ta = root.querySelector("textarea"); ta.value = "Hi! Is the Huila good for espresso?";
		ta.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true })); return true; })()`))
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li.incoming")].some(li => li.textContent.includes("Huila"))`), "the visitor's message")
	if label := browsertest.Eval[string](t, visitor, shadow(`root.querySelector(".bubble").getAttribute("aria-label")`)); label != "Close chat" {
		t.Fatalf("bubble label while open: %q", label)
	}

	// An agent answers in the console.
	agent, cancelAgent := chromedp.NewContext(visitor)
	defer cancelAgent()
	if err := chromedp.Do(agent, chromedp.Navigate(e.Srv.URL+"/console"),
		chromedp.WaitVisible("#email"),
		chromedp.SendKeys("#email", apptest.AdminEmail),
		chromedp.SendKeys("#password", apptest.AdminPassword),
		chromedp.Click("#signin-form button"),
		chromedp.WaitVisible("#conv-list button"),
		chromedp.Click("#conv-list button"),
	); err != nil {
		t.Fatalf("console: %v", err)
	}
	waitJS(t, agent, `[...document.querySelectorAll("#messages li")].some(li => li.textContent.includes("Huila"))`, "the visitor's message in the console")
	if err := chromedp.Do(agent, chromedp.SendKeys("#reply", "Yes — it makes a sweet, chocolatey shot. Grind fine!"), chromedp.Click("#reply-form button")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, agent, `[...document.querySelectorAll("#messages li.outgoing")].some(li => li.textContent.includes("chocolatey"))`, "the reply in the console")

	// The visitor sees the reply without reloading.
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li.outgoing")].some(li => li.textContent.includes("chocolatey"))`), "the agent's reply in the widget")
	screenshot(t, visitor, "widget.png")
	screenshot(t, agent, "console.png")

	// Escape closes; a reply while closed shows the unread badge.
	browsertest.Eval[bool](t, visitor, shadow(`root.querySelector("textarea").dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true })), true`))
	waitJS(t, visitor, shadow(`root.querySelector(".panel").hidden`), "Escape to close the panel")
	if err := chromedp.Do(agent, chromedp.SendKeys("#reply", "Anything else?"), chromedp.Click("#reply-form button")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, shadow(`!root.querySelector(".badge").hidden && root.querySelector(".badge").textContent === "1"`), "the unread badge")

	// A reload keeps the conversation (same visitor, same messages).
	if err := chromedp.Do(visitor, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget`, "the widget after reload")
	waitJS(t, visitor, shadow(`root.querySelectorAll("li.incoming, li.outgoing").length >= 3`), "the conversation after reload")

	// A page with aggressive global CSS cannot hide or restyle the widget.
	if err := chromedp.Do(visitor, chromedp.Navigate(hostile.URL)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget`, "the widget on the hostile page")
	ok := browsertest.Eval[bool](t, visitor, shadow(`(() => { const b = root.querySelector(".bubble").getBoundingClientRect();
		const cs = getComputedStyle(root.querySelector(".bubble"));
		return b.width === 60 && b.height === 60 && cs.display !== "none" && cs.visibility === "visible" && cs.backgroundColor === "rgb(37, 99, 235)"; })()`))
	if !ok {
		t.Fatal("the hostile page's CSS broke the widget")
	}
	browsertest.Eval[bool](t, visitor, shadow(`root.querySelector(".bubble").click(), true`))
	waitJS(t, visitor, shadow(`getComputedStyle(root.querySelector("textarea")).fontSize === "15px"`), "the widget's own font size")

	// 360 px wide: the panel fits the screen.
	if err := chromedp.Do(visitor, chromedp.EmulateViewport(360, 640), chromedp.Navigate(e.Srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget`, "the widget at 360 px")
	browsertest.Eval[bool](t, visitor, shadow(`root.querySelector(".bubble").click(), true`))
	if !browsertest.Eval[bool](t, visitor, shadow(`(() => { const r = root.querySelector(".panel").getBoundingClientRect(); return r.left >= 0 && r.right <= 360; })()`)) {
		t.Fatal("the panel overflows a 360 px screen")
	}
}
