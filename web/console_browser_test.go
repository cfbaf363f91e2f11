package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

func TestConsoleCredentialPages(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	ctx, cancel := browsertest.Start(t)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.Srv.URL+"/console"),
		chromedp.WaitVisible("#email"),
		chromedp.SendKeys("#email", apptest.AdminEmail),
		chromedp.SendKeys("#password", apptest.AdminPassword),
		chromedp.Click("#signin-form button"),
		chromedp.WaitVisible("nav"),
		chromedp.Click(`a[data-view="tokens"]`),
		chromedp.SendKeys("#pat-name", "ci"),
		chromedp.Click("#pat-form button"),
		chromedp.WaitVisible("#pat-box"),
		chromedp.SendKeys("#bot-name", "Triage"),
		chromedp.Click("#bot-form button"),
		chromedp.WaitVisible("#bot-box"),
	); err != nil {
		t.Fatalf("tokens page: %v", err)
	}
	pat := browsertest.Eval[string](t, ctx, `document.querySelector("#pat-secret").textContent`)
	bot := browsertest.Eval[string](t, ctx, `document.querySelector("#bot-secret").textContent`)
	if len(pat) < 40 || pat[:4] != "cap_" || bot[:4] != "cab_" {
		t.Fatalf("secrets shown: %q %q", pat, bot)
	}
	waitJS(t, ctx, `document.querySelectorAll("#pat-rows tr").length === 1 && document.querySelectorAll("#bot-rows tr").length === 1`, "the token and bot lists")
	if browsertest.Eval[bool](t, ctx, `document.querySelector("#pat-rows").textContent.includes("cap_")`) {
		t.Fatal("the list shows a secret")
	}
	// The debugger: paste a JWT; decoded locally, judged by the server.
	tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	if err := chromedp.Do(ctx, chromedp.Click(`a[data-view="debugger"]`), chromedp.SendKeys("#debug-token", tok), chromedp.Click("#debug-go")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `document.querySelector("#debug-verdict").textContent.includes('"valid": true') && document.querySelector("#debug-decoded").textContent.includes('"typ": "at+jwt"')`, "the debugger's verdict")
	if err := chromedp.Do(ctx, chromedp.Click(`a[data-view="audit"]`)); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, `document.querySelector("#audit-rows").textContent.includes("credential.created")`, "the audit log")
}
