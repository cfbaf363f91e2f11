package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

const shop = "https://shop.example.com"

type customerWorld struct {
	e      *apptest.Env
	admin  string
	client string
}

func newCustomerWorld(t *testing.T, e *apptest.Env) *customerWorld {
	t.Helper()
	w := &customerWorld{e: e, admin: apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))}
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Widget", "client_type": "public", "redirect_uris": []string{shop + "/chat"}, "allowed_origins": []string{shop}, "dpop": "optional"}, w.admin)
	expect(t, cl, 201, "")
	w.client = cl.Str("client_id")
	return w
}

// visitorToken calls POST /customer/token as the widget on shop would.
func (w *customerWorld) visitorToken(body map[string]any, headers ...string) apptest.Response {
	if _, ok := body["client_id"]; !ok {
		body["client_id"] = w.client
	}
	return w.e.Do("POST", "/customer/token", body, append([]string{"Origin: " + shop}, headers...)...)
}

func cookieOf(r apptest.Response) string {
	c := r.Header.Get("Set-Cookie")
	name, _, _ := strings.Cut(c, ";")
	return name
}

func TestCustomerTokenCases(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"})
		w := newCustomerWorld(t, e)

		// A new visitor.
		first := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, first, 200, "")
		entity := first.Str("entity_id")
		if entity == "" || first.Str("token_type") != "Bearer" || first.Body["expires_in"].(float64) != 86400 || !strings.HasPrefix(first.Str("refresh_token"), "ccr_") {
			t.Fatalf("new visitor: %s", first.Raw)
		}
		if first.Header.Get("Access-Control-Allow-Origin") != shop || first.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Fatalf("CORS: %v", first.Header)
		}
		set := first.Header.Get("Set-Cookie")
		if !strings.Contains(set, "HttpOnly") || !strings.Contains(set, "SameSite=Lax") || strings.Contains(set, "Secure") {
			t.Fatalf("cookie flags on plain http: %s", set)
		}
		cookie := "Cookie: " + cookieOf(first)

		// A returning visitor: the cookie gives a fresh token, same entity.
		again := w.visitorToken(map[string]any{"response_type": "token"}, cookie)
		if again.Status != 200 || again.Str("entity_id") != entity || again.Str("access_token") == first.Str("access_token") {
			t.Fatalf("returning visitor: %s", again.Raw)
		}
		expect(t, e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(again.Str("access_token"))), 200, "")

		// No cookie (third-party cookies blocked): the refresh token works,
		// rotates, and its reuse is detected.
		// Each answer's refresh_token supersedes the earlier ones: keep the newest.
		r1 := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": again.Str("refresh_token")})
		if r1.Status != 200 || r1.Str("entity_id") != entity {
			t.Fatalf("refresh: %s", r1.Raw)
		}
		time.Sleep(20 * time.Millisecond)
		replay := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": again.Str("refresh_token")})
		expect(t, replay, 401, "invalid_token")
		expect(t, w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": r1.Str("refresh_token")}), 401, "invalid_token")
		expect(t, e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(r1.Str("access_token"))), 401, "invalid_token")

		// entity_id vouched for by an agent of the same organization.
		vouched := w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}, w.admin)
		if vouched.Status != 200 || vouched.Str("entity_id") != entity {
			t.Fatalf("vouched: %s", vouched.Raw)
		}
		expect(t, w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}), 403, "forbidden")
		rival := apptest.Bearer(otherTenant(t, e))
		expect(t, w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}, rival), 403, "forbidden")
		expect(t, w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}, apptest.Bearer(first.Str("access_token"))), 401, "invalid_token")

		// A disallowed origin: 403 and no CORS headers.
		bad := e.Do("POST", "/customer/token", map[string]any{"client_id": w.client, "response_type": "token"}, "Origin: https://evil.example.com")
		expect(t, bad, 403, "forbidden")
		if bad.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("CORS headers on a refused origin: %v", bad.Header)
		}
		// Preflights.
		pre := e.Do("OPTIONS", "/customer/token", nil, "Origin: "+shop, "Access-Control-Request-Method: POST")
		if pre.Status != 204 || pre.Header.Get("Access-Control-Allow-Origin") != shop || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
		}
		if pre := e.Do("OPTIONS", "/customer/api/v1/me", nil, "Origin: https://evil.example.com"); pre.Status != 403 || pre.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("bad preflight: %d %v", pre.Status, pre.Header)
		}
		// Bad requests name the field.
		expect(t, w.visitorToken(map[string]any{"client_id": "nope", "response_type": "token"}), 400, "invalid_client")
		expect(t, w.visitorToken(map[string]any{"response_type": "code"}), 400, "invalid_request")
	})
}

func TestCustomerCookieOnHTTPS(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_ISSUER": "https://chat.example.com"})
	w := newCustomerWorld(t, e)
	r := w.visitorToken(map[string]any{"response_type": "token"})
	set := r.Header.Get("Set-Cookie")
	if r.Status != 200 || !strings.Contains(set, "SameSite=None") || !strings.Contains(set, "Secure") || !strings.Contains(set, "HttpOnly") {
		t.Fatalf("%d cookie %s", r.Status, set)
	}
}

func TestCustomerChat(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		visitor := apptest.Bearer(w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token"))
		other := apptest.Bearer(w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token"))

		conv := e.Do("POST", "/customer/api/v1/conversations", nil, visitor)
		expect(t, conv, 201, "")
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		msg := e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Hi, where is my order?"}, visitor)
		expect(t, msg, 201, "")
		if msg.Str("message_type") != "incoming" || msg.Str("sender_type") != "customer" {
			t.Fatalf("customer message: %s", msg.Raw)
		}
		expect(t, e.Do("PATCH", "/customer/api/v1/me", map[string]any{"name": "Visitor", "email": "v@example.com"}, visitor), 200, "")
		expect(t, e.Do("PATCH", "/customer/api/v1/me", map[string]any{"email": "nope"}, visitor), 400, "invalid_request")

		// Agents see it through the agent API and answer.
		list := e.Do("GET", "/api/v1/conversations", nil, w.admin)
		if !strings.Contains(string(list.Raw), `"customer_id":"`) {
			t.Fatalf("agent list: %s", list.Raw)
		}
		expect(t, e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Let me check."}, w.admin), 201, "")
		expect(t, e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "internal note", "private": true}, w.admin), 201, "")
		got := e.Do("GET", "/customer/api/v1/conversations/"+cid, nil, visitor)
		msgs := got.Body["messages"].([]any)
		if len(msgs) != 2 || msgs[1].(map[string]any)["content"] != "Let me check." || strings.Contains(string(got.Raw), "internal note") {
			t.Fatalf("visitor view: %s", got.Raw)
		}
		// Another visitor cannot see it: 404, not 403.
		expect(t, e.Do("GET", "/customer/api/v1/conversations/"+cid, nil, other), 404, "not_found")
		expect(t, e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "x"}, other), 404, "not_found")
		expect(t, e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": ""}, visitor), 400, "invalid_request")
	})
}

// TestTokenSeparation walks the whole route table: every agent route
// refuses a customer token and every customer route refuses an agent
// token, each with a message naming both token types.
func TestTokenSeparation(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCustomerWorld(t, e)
	customer := apptest.Bearer(w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token"))
	agents, customers := 0, 0
	for _, rt := range e.App.Server.Routes() {
		path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, ":account_id", "1"), ":id", "1")
		var r apptest.Response
		switch rt.Family {
		case "agent":
			agents++
			r = e.Do(rt.Method, path, map[string]any{}, customer)
		case "customer":
			customers++
			r = e.Do(rt.Method, path, map[string]any{}, w.admin)
		default:
			t.Fatalf("route %s %s has no family", rt.Method, rt.Path)
		}
		m := r.Str("message")
		if r.Status != 401 || r.Str("error") != "invalid_token" || !strings.Contains(m, "customer token") || !strings.Contains(m, "agent token") {
			t.Errorf("%s %s with the other family's token: %d %s", rt.Method, rt.Path, r.Status, r.Raw)
		}
	}
	if agents < 50 || customers < 6 {
		t.Fatalf("route table looks short: %d agent, %d customer routes", agents, customers)
	}
}

type sseEvent struct{ id, data string }

// openStream connects to the events endpoint and returns a channel of
// events.
func openStream(t *testing.T, e *apptest.Env, ctx context.Context, path, token, lastID string) <-chan sseEvent {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.Srv.URL+path+"?access_token="+url.QueryEscape(token), nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %v", res.StatusCode, res.Header)
	}
	ch := make(chan sseEvent, 16)
	go func() {
		defer res.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(res.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.data != "":
				ch <- ev
				ev = sseEvent{}
			}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5s")
	}
	return sseEvent{}
}

func TestCustomerEventsStream(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		tok := w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token")
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(tok))
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		path := "/customer/api/v1/conversations/" + cid + "/events"

		ctx, cancel := context.WithCancel(context.Background())
		stream := openStream(t, e, ctx, path, tok, "")
		time.Sleep(100 * time.Millisecond)
		expect(t, e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Hello from an agent"}, w.admin), 201, "")
		ev := next(t, stream)
		var m map[string]any
		json.Unmarshal([]byte(ev.data), &m)
		if m["content"] != "Hello from an agent" || ev.id == "" {
			t.Fatalf("event: %+v", ev)
		}
		// Disconnect; two replies arrive meanwhile; reconnecting with
		// Last-Event-ID loses nothing.
		cancel()
		for _, s := range []string{"second", "third"} {
			expect(t, e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"content": s}, w.admin), 201, "")
		}
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		resumed := openStream(t, e, ctx2, path, tok, ev.id)
		for _, want := range []string{"second", "third"} {
			got := next(t, resumed)
			if !strings.Contains(got.data, `"content":"`+want+`"`) {
				t.Fatalf("resumed event: %+v, want %s", got, want)
			}
		}
		// Another visitor cannot subscribe.
		otherTok := w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token")
		expect(t, e.Do("GET", path+"?access_token="+otherTok, nil), 404, "not_found")
	})
}

func TestCustomerAuthorizeRedirect(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCustomerWorld(t, e)
	b := newBrowser(t, e)
	p := b.get("/customer/authorize?response_type=token&client_id=" + w.client + "&redirect_uri=" + url.QueryEscape(shop+"/chat") + "&state=s1")
	u, _ := url.Parse(p.location)
	frag, _ := url.ParseQuery(u.Fragment)
	if p.status != 302 || frag.Get("access_token") == "" || frag.Get("entity_id") == "" || frag.Get("state") != "s1" || frag.Get("token_type") != "Bearer" {
		t.Fatalf("%d %s", p.status, p.location)
	}
	// The cookie makes the second redirect the same visitor.
	p2 := b.get("/customer/authorize?response_type=token&client_id=" + w.client + "&state=s2")
	u2, _ := url.Parse(p2.location)
	frag2, _ := url.ParseQuery(u2.Fragment)
	if frag2.Get("entity_id") != frag.Get("entity_id") {
		t.Fatalf("second visit: %s", p2.location)
	}
	// RFC 9207: the answer names the server, success and error alike.
	if frag.Get("iss") != "http://chatauth.test" || frag2.Get("iss") != "http://chatauth.test" {
		t.Fatalf("no iss (RFC 9207): %s %s", p.location, p2.location)
	}
	issOf := func(loc string) string {
		u, _ := url.Parse(loc)
		f, _ := url.ParseQuery(u.Fragment)
		if iss := f.Get("iss"); iss != "" {
			return iss
		}
		return u.Query().Get("iss")
	}
	if p := b.get("/customer/authorize?response_type=token&client_id=" + w.client + "&prompt=sometimes&state=e"); !strings.Contains(p.location, "error=") || issOf(p.location) != "http://chatauth.test" {
		t.Fatalf("error redirect without iss: %d %s", p.status, p.location)
	}
	if p := b.get("/customer/authorize?response_type=token&client_id=" + w.client + "&redirect_uri=" + url.QueryEscape("https://evil.example.com/")); p.status != 400 || p.location != "" {
		t.Fatalf("bad redirect_uri: %d %s", p.status, p.location)
	}
	if p := b.get("/customer/authorize?response_type=code&client_id=" + w.client + "&state=x"); !strings.Contains(p.location, "error=unsupported_response_type") || issOf(p.location) != "http://chatauth.test" {
		t.Fatalf("code on the customer flow: %d %s", p.status, p.location)
	}
}
