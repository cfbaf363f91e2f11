package web_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// consoleSignIn opens the console of e in a new browser and signs in as
// the admin.
func consoleSignIn(t *testing.T, e *apptest.Env) context.Context {
	t.Helper()
	ctx, cancel := browsertest.Start(t)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.Srv.URL+"/console"),
		chromedp.WaitVisible("#email"),
		chromedp.SendKeys("#email", apptest.AdminEmail),
		chromedp.SendKeys("#password", apptest.AdminPassword),
		chromedp.Click("#signin-form button"),
		chromedp.WaitVisible("nav"),
	); err != nil {
		t.Fatalf("console sign-in: %v", err)
	}
	return ctx
}

func TestConsoleCredentialPages(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	ctx := consoleSignIn(t, e)
	if err := chromedp.Do(ctx,
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

// consoleClient is what the server stored of an OAuth client, as GET
// /api/v1/oauth/clients/{id} answers.
type consoleClient struct {
	PostLogout  []string
	Backchannel string
	IDTokenAlg  string
	DPoP        string
}

func storedClient(t *testing.T, e *apptest.Env, admin, id string) consoleClient {
	t.Helper()
	r := e.Do("GET", "/api/v1/oauth/clients/"+id, nil, admin)
	if r.Status != 200 {
		t.Fatalf("GET client %s: %d %s", id, r.Status, r.Raw)
	}
	c := consoleClient{Backchannel: r.Str("backchannel_logout_uri"), IDTokenAlg: r.Str("id_token_signed_response_alg"), DPoP: r.Str("dpop")}
	uris, _ := r.Body["post_logout_redirect_uris"].([]any)
	c.PostLogout = []string{}
	for _, u := range uris {
		c.PostLogout = append(c.PostLogout, u.(string))
	}
	return c
}

// TestConsoleOpenIDClientFields: the client form of the console creates
// and edits a client's OpenID Connect and DPoP fields (what the server
// stores is what was typed), and a value the server refuses is shown
// under the form with the field it names, the field marked, nothing
// saved.
func TestConsoleOpenIDClientFields(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	ctx := consoleSignIn(t, e)
	save := func(what string, fields ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, append(fields, chromedp.Click(`#client-form button[type="submit"]`))...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	const name = "OIDC app"
	row := fmt.Sprintf(`[...document.querySelectorAll("#client-rows tr")].find((tr) => tr.cells[0].textContent === %q)`, name)

	// Create, with every field filled. A public client with allowed
	// origins is a widget client, whose default policy may change: the
	// test names its dpop.
	if err := chromedp.Do(ctx, chromedp.Click(`a[data-view="clients"]`), chromedp.WaitVisible("#client-form")); err != nil {
		t.Fatal(err)
	}
	save("create",
		chromedp.SendKeys("#client-name", name),
		chromedp.SetValue("#client-type", "public"),
		chromedp.SetValue("#client-redirects", "https://app.example.com/callback"),
		chromedp.SetValue("#client-origins", "https://app.example.com"),
		chromedp.SetValue("#client-post-logout", "https://app.example.com/bye\nhttp://localhost:3000/bye"),
		chromedp.SendKeys("#client-backchannel", "https://app.example.com/backchannel"),
		chromedp.SetValue("#client-id-alg", "EdDSA"),
		chromedp.SetValue("#client-dpop", "required"),
	)
	waitJS(t, ctx, row+` !== undefined`, "the new client in the list")
	id := browsertest.Eval[string](t, ctx, row+`.cells[1].textContent`)
	created := consoleClient{PostLogout: []string{"https://app.example.com/bye", "http://localhost:3000/bye"}, Backchannel: "https://app.example.com/backchannel", IDTokenAlg: "EdDSA", DPoP: "required"}
	if got := storedClient(t, e, admin, id); !reflect.DeepEqual(got, created) {
		t.Fatalf("created client %s stored %+v, want %+v", id, got, created)
	}
	if dpop := browsertest.Eval[string](t, ctx, row+`.cells[5].textContent`); dpop != "required" {
		t.Fatalf("the list shows dpop %q", dpop)
	}

	// Edit: the form shows what is stored; the changes are saved.
	edit := func() {
		t.Helper()
		browsertest.Eval[bool](t, ctx, row+`.querySelector("button").click(), true`)
		waitJS(t, ctx, `document.querySelector("#client-id").value === `+fmt.Sprintf("%q", id), "the client in the form")
	}
	edit()
	type form struct {
		PostLogout, Backchannel, IDTokenAlg, DPoP string
	}
	shown := browsertest.Eval[form](t, ctx, `({ PostLogout: document.querySelector("#client-post-logout").value, Backchannel: document.querySelector("#client-backchannel").value,
		IDTokenAlg: document.querySelector("#client-id-alg").value, DPoP: document.querySelector("#client-dpop").value })`)
	if want := (form{"https://app.example.com/bye\nhttp://localhost:3000/bye", created.Backchannel, "EdDSA", "required"}); shown != want {
		t.Fatalf("the edit form shows %+v, want %+v", shown, want)
	}
	save("edit",
		chromedp.SetValue("#client-post-logout", "https://app.example.com/signed-out"),
		chromedp.SetValue("#client-backchannel", "http://127.0.0.1:9000/backchannel"),
		chromedp.SetValue("#client-id-alg", "RS256"),
		chromedp.SetValue("#client-dpop", "optional"),
	)
	waitJS(t, ctx, `document.querySelector("#flash").textContent === "Client saved."`, "the saved edit")
	edited := consoleClient{PostLogout: []string{"https://app.example.com/signed-out"}, Backchannel: "http://127.0.0.1:9000/backchannel", IDTokenAlg: "RS256", DPoP: "optional"}
	if got := storedClient(t, e, admin, id); !reflect.DeepEqual(got, edited) {
		t.Fatalf("edited client stored %+v, want %+v", got, edited)
	}
	waitJS(t, ctx, row+`.cells[5].textContent === "optional"`, "the edited dpop in the list")

	// Refused values: the server's message, naming the field, stands
	// under the form; the field is marked; the client is unchanged.
	for _, tc := range []struct {
		name, field, value, says string
	}{
		{"a fragment", "#client-post-logout", "https://app.example.com/ok\nhttps://app.example.com/bye#top", "post_logout_redirect_uris[1]: must not contain a fragment"},
		{"plain http off loopback", "#client-backchannel", "http://app.example.com/backchannel", "backchannel_logout_uri: must use https"},
	} {
		edit()
		save(tc.name, chromedp.SetValue(tc.field, tc.value))
		waitJS(t, ctx, `!document.querySelector("#client-error").hidden`, "the refusal of "+tc.name)
		msg := browsertest.Eval[string](t, ctx, `document.querySelector("#client-error").textContent`)
		if !strings.Contains(msg, tc.says) {
			t.Errorf("%s: the page says %q, want %q", tc.name, msg, tc.says)
		}
		if inv := browsertest.Eval[string](t, ctx, `document.querySelector("`+tc.field+`").getAttribute("aria-invalid")`); inv != "true" {
			t.Errorf("%s: %s is not marked invalid (aria-invalid %q)", tc.name, tc.field, inv)
		}
		if flash := browsertest.Eval[string](t, ctx, `document.querySelector("#flash").textContent`); !strings.Contains(flash, tc.says) {
			t.Errorf("%s: the flash says %q", tc.name, flash)
		}
		if got := storedClient(t, e, admin, id); !reflect.DeepEqual(got, edited) {
			t.Fatalf("%s: the refused edit changed the client: %+v", tc.name, got)
		}
	}
	// Cancel clears the refusal and the mark.
	if err := chromedp.Do(ctx, chromedp.Click("#client-cancel")); err != nil {
		t.Fatal(err)
	}
	if browsertest.Eval[bool](t, ctx, `!document.querySelector("#client-error").hidden || document.querySelector("[aria-invalid]") !== null`) {
		t.Fatal("the refusal outlived Cancel")
	}
}
