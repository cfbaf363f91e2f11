package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/web/browsertest"
)

// TestWidgetShowsOnlyTheVisitorsOwnWordsAsTheirs: the widget renders a
// message as the visitor's ("You: ") only when it is incoming and from the
// customer. An incoming message from anyone else (an agent wrote one
// before the server refused them) is shown as the other side's.
func TestWidgetShowsOnlyTheVisitorsOwnWordsAsTheirs(t *testing.T) {
	e, _ := browsertest.Serve(t, sqlstoretest.SQLite(t), nil, "127.0.0.1", nil)
	if r := e.Do("GET", "/web/dist/chatauth.js", nil); r.Status != 200 {
		t.Skip("the SDK bundle is not built; run ./build.sh first")
	}
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	if r := e.Do("PATCH", "/api/v1/oauth/clients/"+e.App.Server.DemoClientID, map[string]any{"allowed_origins": []string{e.Srv.URL}}, admin); r.Status != 200 {
		t.Fatalf("allow origins: %s", r.Raw)
	}
	visitor, cancel := browsertest.Start(t, chromedp.WindowSize(1100, 760))
	defer cancel()
	if err := chromedp.Do(visitor, chromedp.Navigate(e.Srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, visitor, `!!window.chatauthWidget && !!document.querySelector("chatauth-widget")`, "the widget")
	browsertest.Eval[bool](t, visitor, shadow(`root.querySelector(".bubble").click(), true`))
	browsertest.Eval[bool](t, visitor, shadow(`(() => { const ta = root.querySelector("textarea"); ta.value = "Where is my parcel?";
		ta.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true })); return true; })()`))
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li.incoming")].some(li => li.textContent.includes("parcel") && li.getAttribute("aria-label").startsWith("You: "))`), "the visitor's own message")

	list := e.Do("GET", "/api/v1/conversations", nil, admin)
	convs, _ := list.Body["data"].([]any)
	if len(convs) != 1 {
		t.Fatalf("conversations: %s", list.Raw)
	}
	conv := convs[0].(map[string]any)
	cid, org := int64(conv["id"].(float64)), int64(conv["account_id"].(float64))
	// An incoming message by an agent, as the server stored them before it
	// refused them; written straight to the store.
	messages := sqlstore.Table{Name: "messages", Columns: []sqlstore.Column{
		{Name: "conversation_id", Kind: sqlstore.ColRef}, {Name: "content"}, {Name: "message_type"},
		{Name: "private", Kind: sqlstore.ColInt}, {Name: "sender_type"}, {Name: "sender_id"},
	}}
	if _, err := e.App.Store.InsertObject(context.Background(), messages, org, map[string]any{
		"conversation_id": &cid, "content": "I no longer want my order, refund me", "message_type": "incoming",
		"private": int64(0), "sender_type": "user", "sender_id": "1",
	}); err != nil {
		t.Fatal(err)
	}
	// Written behind the API's back: wake the conversation's streams as
	// the API does after storing a message.
	e.App.Server.Hub.Notify(cid)
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li")].some(li => li.textContent.includes("refund"))`), "the agent's incoming message")
	mine := browsertest.Eval[bool](t, visitor, shadow(`[...root.querySelectorAll("li")].some(li => li.textContent.includes("refund") && (li.classList.contains("incoming") || li.getAttribute("aria-label").startsWith("You: ")))`))
	if mine {
		t.Fatal("an agent's incoming message is shown as the visitor's own words")
	}
	waitJS(t, visitor, shadow(`[...root.querySelectorAll("li.outgoing")].some(li => li.textContent.includes("refund") && li.getAttribute("aria-label").startsWith("Agent: "))`), "the agent's message shown as the agent's")
}
