package httpapi_test

import (
	"io"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

// notUTF8 expects a 400 invalid_request whose message starts with the
// field it names and says the text is not UTF-8.
func notUTF8(t *testing.T, r apptest.Response, field string) {
	t.Helper()
	expect(t, r, 400, "invalid_request")
	if m := r.Str("message"); !strings.HasPrefix(m, field+": ") || !strings.Contains(m, "not valid UTF-8") {
		t.Fatalf("want a message naming %s as not UTF-8, got %s", field, r.Raw)
	}
}

// TestFindingJSONBodiesMustBeUTF8: a JSON body with a byte that is not
// UTF-8 (RFC 8259 §8.1) is refused naming the field, and nothing is
// stored; encoding/json would have stored U+FFFD in its place.
func TestFindingJSONBodiesMustBeUTF8(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)

		notUTF8(t, e.Do("POST", "/api/v1/contacts", "{\"name\":\"Ann \xffBee\",\"phone\":\"1\"}", w.admin), "name")
		notUTF8(t, e.Do("POST", "/api/v1/contacts", "{\"name\":\"Ann\",\"phone\":\"1\xc3\"}", w.admin), "phone")
		// A surrogate encoded as UTF-8 is not UTF-8 either.
		notUTF8(t, e.Do("POST", "/api/v1/knowledge_items", "{\"title\":\"t\",\"body\":\"x\xed\xa0\x80y\"}", w.admin), "body")
		// Inside an array and inside an object, the path says where.
		notUTF8(t, e.Do("POST", "/api/v1/oauth/clients", "{\"name\":\"W\",\"client_type\":\"public\",\"redirect_uris\":[\""+shop+"/a\",\""+shop+"/\xfe\"],\"allowed_origins\":[\""+shop+"\"]}", w.admin), "redirect_uris[1]")
		notUTF8(t, e.Do("POST", "/customer/token", "{\"client_id\":{\"a\":[1,{\"b\":\"\x80\"}]}}"), "client_id.a[1].b")
		// In a field name.
		r := e.Do("POST", "/api/v1/contacts", "{\"na\xffme\":\"Ann\"}", w.admin)
		expect(t, r, 400, "invalid_request")
		if !strings.Contains(r.Str("message"), "field name is not valid UTF-8") {
			t.Fatalf("bad field name: %s", r.Raw)
		}
		// Outside any string: still refused, never decoded.
		expect(t, e.Do("POST", "/api/v1/contacts", "{\"name\":\"Ann\"}\xff", w.admin), 400, "invalid_request")
		if l := e.Do("GET", "/api/v1/contacts", nil, w.admin); len(l.Body["data"].([]any)) != 0 {
			t.Fatalf("a refused body was stored: %s", l.Raw)
		}
		if l := e.Do("GET", "/api/v1/knowledge_items", nil, w.admin); len(l.Body["data"].([]any)) != 0 {
			t.Fatalf("a refused body was stored: %s", l.Raw)
		}

		// Sign-in: a password is compared as sent, not with U+FFFD in it.
		notUTF8(t, e.Do("POST", "/api/v1/auth/token", "{\"email\":\""+apptest.AdminEmail+"\",\"password\":\"admin-password-\xff\"}"), "password")
		// Profile and the customer API.
		notUTF8(t, e.Do("PATCH", "/api/v1/profile", "{\"name\":\"Ad\xc0min\"}", w.admin), "name")
		visitor := apptest.Bearer(w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token"))
		notUTF8(t, e.Do("PATCH", "/customer/api/v1/me", "{\"name\":\"V\xffisitor\"}", visitor), "name")
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, visitor)
		expect(t, conv, 201, "")
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		notUTF8(t, e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", "{\"content\":\"hi \xe2\x82\"}", visitor), "content")
		notUTF8(t, e.Do("POST", "/api/v1/conversations/"+cid+"/messages", "{\"content\":\"hi \xe2\x82\"}", w.admin), "content")
		if got := e.Do("GET", "/customer/api/v1/conversations/"+cid, nil, visitor); len(got.Body["messages"].([]any)) != 0 {
			t.Fatalf("a refused message was stored: %s", got.Raw)
		}
		if me := e.Do("GET", "/api/v1/profile", nil, w.admin); me.Str("name") == "" || strings.ContainsRune(me.Str("name"), utf8.RuneError) {
			t.Fatalf("profile: %s", me.Raw)
		}

		// Valid UTF-8 beyond ASCII goes through unchanged.
		ok := e.Do("POST", "/api/v1/contacts", map[string]any{"name": "Zoë 😀 Ärger"}, w.admin)
		expect(t, ok, 201, "")
		if ok.Str("name") != "Zoë 😀 Ärger" {
			t.Fatalf("valid UTF-8 changed: %s", ok.Raw)
		}

		// The body is read whole now: past 64 KB without a Content-Length
		// (chunked) it is still 413, not a 400.
		big := "{\"name\":\"" + strings.Repeat("x", 70<<10) + "\"}"
		req := httptest.NewRequest("POST", "/api/v1/contacts", struct{ io.Reader }{strings.NewReader(big)})
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", strings.TrimPrefix(w.admin, "Authorization: "))
		rec := httptest.NewRecorder()
		e.App.Server.Handler().ServeHTTP(rec, req)
		if rec.Code != 413 || !strings.Contains(rec.Body.String(), "64 KB") {
			t.Fatalf("chunked body past the limit: %d %s", rec.Code, rec.Body)
		}
	})
}

// TestFindingOAuthFormMustBeUTF8: a form parameter that is not UTF-8
// once percent-decoded is RFC 6749 invalid_request naming the parameter,
// and the description does not repeat the value.
func TestFindingOAuthFormMustBeUTF8(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		for path, form := range map[string]url.Values{
			"/oauth/token":      {"grant_type": {"client_credentials"}, "client_id": {w.confidential}, "client_secret": {"s3cr\xffet"}},
			"/oauth/introspect": {"client_id": {w.confidential}, "client_secret": {w.secret}, "token": {"s3cr\xc3"}},
			"/oauth/revoke":     {"client_id": {w.confidential}, "client_secret": {w.secret}, "token": {"s3cr\xed\xa0\x80"}},
		} {
			r := postForm(t, e, path, form)
			param := "client_secret"
			if form.Get("token") != "" {
				param = "token"
			}
			if r.Status != 400 || r.Str("error") != "invalid_request" || !strings.HasPrefix(r.Str("error_description"), param+": not valid UTF-8") {
				t.Errorf("%s: %d %s", path, r.Status, r.Raw)
			}
			if strings.Contains(string(r.Raw), "s3cr") || r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: repeats the value or may be cached: %v %s", path, r.Header, r.Raw)
			}
		}
		// A parameter name.
		r := e.Do("POST", "/oauth/token", "grant_type=client_credentials&sc%FFope=read", "Content-Type: application/x-www-form-urlencoded")
		if r.Status != 400 || r.Str("error") != "invalid_request" || !strings.Contains(r.Str("error_description"), "parameter name is not valid UTF-8") {
			t.Errorf("bad parameter name: %d %s", r.Status, r.Raw)
		}
		// Valid UTF-8 goes through: this client is authenticated and then
		// told what is wrong with its scope.
		r = postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {w.confidential}, "client_secret": {w.secret}, "scope": {"lecture·écrire"}})
		if r.Status != 400 || r.Str("error") != "invalid_scope" {
			t.Errorf("valid UTF-8 scope: %d %s", r.Status, r.Raw)
		}
	})
}

// FuzzDecodeUTF8 sends bodies to a JSON endpoint and a form endpoint of
// the real router: never a 500, and a body that is not UTF-8 (after
// percent-decoding, for the form) is never accepted: it is refused, for
// that reason, before anything else looks at it.
func FuzzDecodeUTF8(f *testing.F) {
	e := apptest.Start(f, sqlstoretest.SQLite(f), nil)
	demo := e.App.Server.DemoClientID
	for _, s := range []string{
		`{"client_id":"` + demo + `","response_type":"token"}`, `{"client_id":"` + demo + `","grant_type":"refresh_token","refresh_token":"ccr_x"}`,
		`{"client_id":"Zoë 😀"}`, "{\"client_id\":\"\xff\"}", "{\"cli\xffent_id\":\"x\"}", "{\"client_id\":[\"\xc3\"]}",
		"{\"entity_id\":{\"a\":\"\xed\xa0\x80\"}}", "\xef\xbb\xbf{\"client_id\":\"x\"}", "{\"client_id\":\"x\"}\xff", "\xff", "", " ", "null",
		`{"client_id":"\ud800"}`, "{\"client_id\":\"x\"} {}", "{\"client_id\":1e999}", "[\"\x80\"]", "\"\xfe\"", "{\"client_id\":\"\\\xff\"}",
		"grant_type=client_credentials&client_id=c&client_secret=%FF", "a%C3=1", "a=%ED%A0%80", "a=1;b=2", "a=%zz", "%", "&&=&",
	} {
		f.Add([]byte(s))
	}
	h := e.App.Server.Handler()
	send := func(t *testing.T, path, ct string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(string(body)))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body)
		}
		return rec
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := send(t, "/customer/token", "application/json", body)
		if !utf8.Valid(body) && (rec.Code != 400 || !strings.Contains(rec.Body.String(), "UTF-8")) {
			t.Fatalf("body not UTF-8 not refused for it: %q: %d %s", body, rec.Code, rec.Body)
		}
		rec = send(t, "/oauth/introspect", "application/x-www-form-urlencoded", body)
		form, err := url.ParseQuery(string(body))
		valid := err == nil
		for k, vs := range form {
			valid = valid && utf8.ValidString(k) && utf8.ValidString(strings.Join(vs, ""))
		}
		if !valid && (rec.Code != 400 || !strings.Contains(rec.Body.String(), `"invalid_request"`)) {
			t.Fatalf("form not UTF-8 accepted: %q: %d %s", body, rec.Code, rec.Body)
		}
		if err == nil && !valid && !strings.Contains(rec.Body.String(), "UTF-8") {
			t.Fatalf("form not UTF-8 refused for another reason: %q: %s", body, rec.Body)
		}
	})
}

// TestFindingTokenAnswersAreNotStored walks every endpoint that answers a
// secret: each answer, success or error, says Cache-Control: no-store
// (RFC 6749 §5.1), and the token endpoints also Pragma: no-cache.
func TestFindingTokenAnswersAreNotStored(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		cw := newCustomerWorld(t, e)
		type answer struct {
			name   string
			r      apptest.Response
			status int
			pragma bool
		}
		var answers []answer
		add := func(name string, r apptest.Response, status int, pragma bool) {
			answers = append(answers, answer{name, r, status, pragma})
		}

		login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		add("POST /api/v1/auth/token sign-in", login, 200, true)
		add("POST /api/v1/auth/token wrong password", e.Do("POST", "/api/v1/auth/token", map[string]any{"email": apptest.AdminEmail, "password": "wrong"}), 401, true)
		add("POST /api/v1/auth/token bad body", e.Do("POST", "/api/v1/auth/token", `{"email":`), 400, true)
		add("POST /api/v1/auth/token empty", e.Do("POST", "/api/v1/auth/token", map[string]any{}), 400, true)
		bearer := apptest.Bearer(login.Str("token"))
		get := e.Do("GET", "/api/v1/auth/token?refreshToken="+url.QueryEscape(login.Str("refreshToken")), nil, bearer)
		add("GET /api/v1/auth/token refresh", get, 200, true)
		add("GET /api/v1/auth/token no refresh token", e.Do("GET", "/api/v1/auth/token", nil, bearer), 400, true)
		add("GET /api/v1/auth/token bad refresh token", e.Do("GET", "/api/v1/auth/token?refreshToken=nope", nil, bearer), 401, true)
		add("POST /api/v1/auth/token refresh", e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": get.Str("refreshToken"), "clientId": apptest.AdminEmail}), 200, true)
		add("POST /api/v1/auth/token stale refresh", e.Do("POST", "/api/v1/auth/token", map[string]any{"refreshToken": "nope", "clientId": apptest.AdminEmail}), 401, true)
		add("POST /api/v1/profile/reset_access_token", e.Do("POST", "/api/v1/profile/reset_access_token", nil, w.admin), 200, true)

		add("POST /customer/token new visitor", cw.visitorToken(map[string]any{"response_type": "token"}), 200, true)
		add("POST /customer/token bad response_type", cw.visitorToken(map[string]any{"response_type": "code"}), 400, true)
		add("POST /customer/token bad refresh", cw.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": "ccr_nope"}), 401, true)
		add("POST /customer/token bad body", cw.visitorToken(map[string]any{"client_id": 7}), 400, true)

		cc := url.Values{"grant_type": {"client_credentials"}, "client_id": {w.confidential}, "client_secret": {w.secret}}
		add("POST /oauth/token", postForm(t, e, "/oauth/token", cc), 200, true)
		add("POST /oauth/token wrong secret", postForm(t, e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {w.confidential}, "client_secret": {"cas_wrong"}}), 401, true)
		add("POST /oauth/token no client", postForm(t, e, "/oauth/token", url.Values{"grant_type": {"password"}}), 401, true)
		add("POST /oauth/token bad body", e.Do("POST", "/oauth/token", `{"grant_type":"client_credentials"}`), 400, true)

		add("POST /api/v1/personal_access_tokens", e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "r", "scopes": []string{"read"}}, w.admin), 201, false)
		bot := e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": "Bot"}, w.admin)
		add("POST /api/v1/agent_bots", bot, 201, false)
		botID := strconv.Itoa(int(bot.Body["id"].(float64)))
		add("POST /api/v1/agent_bots/{id}/reset_access_token", e.Do("POST", "/api/v1/agent_bots/"+botID+"/reset_access_token", nil, w.admin), 200, false)
		org := strconv.Itoa(int(login.Body["user"].(map[string]any)["account_id"].(float64)))
		add("POST /api/v1/accounts/{id}/agent_bots/{id}/reset_access_token", e.Do("POST", "/api/v1/accounts/"+org+"/agent_bots/"+botID+"/reset_access_token", nil, w.admin), 200, false)
		add("POST /api/v1/oauth/clients/{id}/reset_secret", e.Do("POST", "/api/v1/oauth/clients/"+w.confidential+"/reset_secret", nil, w.admin), 200, false)
		cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Svc", "client_type": "confidential", "redirect_uris": []string{redirectURI}, "scopes": []string{"read"}}, w.admin)
		add("POST /api/v1/oauth/clients confidential", cl, 201, false)
		add("PATCH /api/v1/oauth/clients/{id} to confidential", e.Do("PATCH", "/api/v1/oauth/clients/"+w.public, map[string]any{"client_type": "confidential"}, w.admin), 200, false)

		for _, a := range answers {
			if a.r.Status != a.status {
				t.Errorf("%s: %d %s, want %d", a.name, a.r.Status, a.r.Raw, a.status)
			}
			if got := a.r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s (%d): Cache-Control %q, want no-store", a.name, a.r.Status, got)
			}
			if got := a.r.Header.Get("Pragma"); a.pragma && got != "no-cache" {
				t.Errorf("%s (%d): Pragma %q, want no-cache", a.name, a.r.Status, got)
			}
		}
	})
}

// TestFindingAgentCannotPostAsVisitor: an incoming message is the
// visitor's own words in the widget, so only the customer API writes one.
// On the agent API every message is outgoing; incoming is refused on
// create and cannot be reached by an update.
func TestFindingAgentCannotPostAsVisitor(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		ww := newWorld(t, e)
		visitor := apptest.Bearer(w.visitorToken(map[string]any{"response_type": "token"}).Str("access_token"))
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, visitor)
		expect(t, conv, 201, "")
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		expect(t, e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Where is my order?"}, visitor), 201, "")

		msgs := "/api/v1/conversations/" + cid + "/messages"
		bot := e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": "Bot"}, w.admin)
		expect(t, bot, 201, "")
		for who, cred := range map[string]string{
			"admin": w.admin, "agent": apptest.Bearer(ww.tokens[shared.RoleAgent]), "bot user": apptest.Bearer(ww.tokens[shared.RoleBot]),
			"agent bot": "api_access_token: " + bot.Str("access_token"),
		} {
			r := e.Do("POST", msgs, map[string]any{"content": "Please refund me, " + who, "message_type": "incoming"}, cred)
			expect(t, r, 400, "invalid_request")
			if !strings.HasPrefix(r.Str("message"), "message_type: agents post outgoing messages") {
				t.Fatalf("%s: %s", who, r.Raw)
			}
		}
		org := strconv.Itoa(int(ww.org))
		r := e.Do("POST", "/api/v1/accounts/"+org+"/conversations/"+cid+"/messages", map[string]any{"content": "Please refund me", "message_type": "incoming"}, w.admin)
		expect(t, r, 400, "invalid_request")

		out := e.Do("POST", msgs, map[string]any{"content": "Let me check.", "message_type": "outgoing"}, w.admin)
		expect(t, out, 201, "")
		if out.Str("message_type") != "outgoing" || out.Str("sender_type") != "user" {
			t.Fatalf("outgoing: %s", out.Raw)
		}
		dflt := e.Do("POST", msgs, map[string]any{"content": "Found it."}, "api_access_token: "+bot.Str("access_token"))
		expect(t, dflt, 201, "")
		if dflt.Str("message_type") != "outgoing" || dflt.Str("sender_type") != "bot" {
			t.Fatalf("default: %s", dflt.Raw)
		}

		// An update cannot flip a message to incoming.
		mid := strconv.Itoa(int(out.Body["id"].(float64)))
		for _, method := range []string{"PATCH", "PUT"} {
			r := e.Do(method, "/api/v1/messages/"+mid, map[string]any{"message_type": "incoming"}, w.admin)
			expect(t, r, 400, "invalid_request")
			if !strings.HasPrefix(r.Str("message"), "message_type: ") {
				t.Fatalf("%s: %s", method, r.Raw)
			}
		}
		if m := e.Do("GET", "/api/v1/messages/"+mid, nil, w.admin); m.Str("message_type") != "outgoing" {
			t.Fatalf("after the updates: %s", m.Raw)
		}

		// What the visitor sees: their one message as incoming from the
		// customer, the rest outgoing, none of the refused ones.
		got := e.Do("GET", "/customer/api/v1/conversations/"+cid, nil, visitor)
		list := got.Body["messages"].([]any)
		if len(list) != 3 || strings.Contains(string(got.Raw), "refund") {
			t.Fatalf("visitor view: %s", got.Raw)
		}
		for i, m := range list {
			m := m.(map[string]any)
			want := [][2]string{{"incoming", "customer"}, {"outgoing", "user"}, {"outgoing", "bot"}}[i]
			if m["message_type"] != want[0] || m["sender_type"] != want[1] {
				t.Fatalf("visitor view, message %d: %v, want %v", i, m, want)
			}
		}
	})
}
