package httpapi_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"chatauth/backend/apptest"
	"chatauth/backend/domain"
	"chatauth/backend/httpapi"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

var seq atomic.Int64

func uniq(s string) string { return fmt.Sprintf("%s%d", s, seq.Add(1)) }

// createBody is a valid create body per resource.
func createBody(res shared.Resource) map[string]any {
	switch res {
	case shared.Contact:
		return map[string]any{"name": "Ann", "email": uniq("ann") + "@example.com"}
	case shared.Conversation:
		return map[string]any{}
	case shared.Message:
		return map[string]any{"content": "hello", "message_type": "outgoing"}
	case shared.KnowledgeItem:
		return map[string]any{"title": "Returns", "body": "Within 30 days."}
	case shared.User:
		return map[string]any{"name": "U", "email": uniq("user") + "@example.com", "password": "password-123", "role": "agent"}
	default:
		return map[string]any{"name": uniq("thing")}
	}
}

func updateBody(res shared.Resource) map[string]any {
	switch res {
	case shared.Conversation:
		return map[string]any{"status": "resolved"}
	case shared.Message:
		return map[string]any{"content": "edited"}
	case shared.KnowledgeItem:
		return map[string]any{"title": "Edited"}
	default:
		return map[string]any{"name": "Edited"}
	}
}

// world is an organization with an admin, an agent and a bot signed in.
type world struct {
	e      *apptest.Env
	org    int64
	tokens map[shared.Role]string
	ids    map[shared.Role]int64
}

func newWorld(t *testing.T, e *apptest.Env) *world {
	t.Helper()
	w := &world{e: e, tokens: map[shared.Role]string{}, ids: map[shared.Role]int64{}}
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	w.tokens[shared.RoleAdmin] = login.Str("token")
	w.org = int64(login.Body["user"].(map[string]any)["account_id"].(float64))
	w.ids[shared.RoleAdmin] = int64(login.Body["user"].(map[string]any)["id"].(float64))
	for _, r := range []shared.Role{shared.RoleAgent, shared.RoleBot} {
		email := uniq(r.String()) + "@example.com"
		u := e.Do("POST", "/api/v1/users", map[string]any{"name": r.String(), "email": email, "password": "password-123", "role": r.String()}, apptest.Bearer(w.tokens[shared.RoleAdmin]))
		expect(t, u, 201, "")
		w.ids[r] = int64(u.Body["id"].(float64))
		w.tokens[r] = e.Login(email, "password-123").Str("token")
	}
	return w
}

// fixture creates, as admin, a fresh object that route's :id can name.
func (w *world) fixture(t *testing.T, rt httpapi.Route) string {
	t.Helper()
	admin := apptest.Bearer(w.tokens[shared.RoleAdmin])
	if strings.Contains(rt.Path, "/agent_bots") {
		r := w.e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": "Bot"}, admin)
		if r.Status != 201 {
			t.Fatalf("bot fixture: %d %s", r.Status, r.Raw)
		}
		return strconv.Itoa(int(r.Body["id"].(float64)))
	}
	if strings.Contains(rt.Path, "/oauth/clients") {
		r := w.e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "App", "client_type": "confidential", "redirect_uris": []string{"https://app.example.com/cb"}}, admin)
		if r.Status != 201 {
			t.Fatalf("client fixture: %d %s", r.Status, r.Raw)
		}
		return r.Str("client_id")
	}
	path := "/api/v1/" + map[shared.Resource]string{
		shared.Organization: "organizations", shared.Group: "groups", shared.User: "users", shared.Conversation: "conversations",
		shared.Contact: "contacts", shared.KnowledgeItem: "knowledge_items", shared.Form: "forms", shared.Service: "services",
	}[rt.Resource]
	res := rt.Resource
	if res == shared.Message {
		if strings.Contains(rt.Path, "/conversations/:id/messages") {
			res, path = shared.Conversation, "/api/v1/conversations"
		} else {
			conv := w.e.Do("POST", "/api/v1/conversations", map[string]any{}, admin)
			path = "/api/v1/conversations/" + strconv.Itoa(int(conv.Body["id"].(float64))) + "/messages"
		}
	}
	r := w.e.Do("POST", path, createBody(res), admin)
	if r.Status != 201 {
		t.Fatalf("fixture %s: %d %s", path, r.Status, r.Raw)
	}
	return strconv.Itoa(int(r.Body["id"].(float64)))
}

// body is a valid body for a route.
func body(rt httpapi.Route) any {
	switch {
	case strings.HasSuffix(rt.Path, "/oauth/clients") && rt.Method == "POST":
		return map[string]any{"name": "App", "client_type": "public", "redirect_uris": []string{"https://app.example.com/cb"}}
	case strings.HasSuffix(rt.Path, "/identity_keys") && rt.Method == "POST":
		return map[string]any{"alg": "HS256"}
	case strings.Contains(rt.Path, "/oauth/clients/:id") && (rt.Method == "PUT" || rt.Method == "PATCH"):
		return map[string]any{"name": "Renamed"}
	case strings.Contains(rt.Path, "/oauth/clients"):
		return nil
	case strings.HasSuffix(rt.Path, "/agent_bots") && rt.Method == "POST":
		return map[string]any{"name": "Bot"}
	case strings.HasSuffix(rt.Path, "/personal_access_tokens") && rt.Method == "POST":
		return map[string]any{"name": "ci", "scopes": []string{"read"}}
	case strings.Contains(rt.Path, "/agent_bots"), strings.Contains(rt.Path, "/audit_events"), strings.Contains(rt.Path, "/personal_access_tokens"):
		return nil
	case rt.Action == shared.Create:
		return createBody(rt.Resource)
	case rt.Action == shared.Update:
		return updateBody(rt.Resource)
	}
	return nil
}

func (w *world) request(t *testing.T, rt httpapi.Route, role shared.Role, id string) apptest.Response {
	t.Helper()
	path := strings.ReplaceAll(rt.Path, ":account_id", strconv.FormatInt(w.org, 10))
	path = strings.ReplaceAll(path, ":id", id)
	if strings.Contains(path, ":kid") {
		k := w.e.Do("POST", "/api/v1/oauth/clients/"+id+"/identity_keys", map[string]any{"alg": "HS256"}, apptest.Bearer(w.tokens[shared.RoleAdmin]))
		if k.Status != 201 {
			t.Fatalf("identity key fixture: %d %s", k.Status, k.Raw)
		}
		path = strings.ReplaceAll(path, ":kid", k.Str("kid"))
	}
	return w.e.Do(rt.Method, path, body(rt), apptest.Bearer(w.tokens[role]))
}

// TestMatrixOverRoutes walks every protected route of the agent API for
// every agent-side role and checks the answer against shared.Matrix: the
// matrix and the route table are the only sources, so a new route or a
// new rule is tested here without being listed again.
func TestMatrixOverRoutes(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newWorld(t, e)
		covered := map[[2]uint8]bool{}
		for _, rt := range e.App.Server.Routes() {
			if rt.Family != "agent" {
				continue
			}
			covered[[2]uint8{uint8(rt.Resource), uint8(rt.Action)}] = true
			if res, act := declared(rt); res != rt.Resource || act != rt.Action {
				t.Errorf("%s %s declares %s %s; its method and path say %s %s", rt.Method, rt.Path, rt.Action, rt.Resource, act, res)
			}
			if strings.Contains(rt.Path, "/personal_access_tokens/:id") {
				continue // one's own tokens only: TestPersonalAccessTokens
			}
			for _, role := range []shared.Role{shared.RoleAgent, shared.RoleBot, shared.RoleAdmin} {
				var id string
				if strings.Contains(rt.Path, ":id") {
					id = w.fixture(t, rt)
				}
				r := w.request(t, rt, role, id)
				want := shared.Allowed(role, rt.Resource, rt.Action)
				switch {
				case want && (r.Status < 200 || r.Status > 299):
					t.Errorf("%s %s as %s: %d %s; matrix allows it", rt.Method, rt.Path, role, r.Status, r.Raw)
				case !want && r.Status != 403:
					t.Errorf("%s %s as %s: %d %s; matrix forbids it", rt.Method, rt.Path, role, r.Status, r.Raw)
				case !want && !strings.Contains(r.Str("message"), shared.MinRole(rt.Resource, rt.Action).String()):
					t.Errorf("%s %s as %s: 403 message does not name the role: %s", rt.Method, rt.Path, role, r.Raw)
				}
			}
		}
		for _, rule := range shared.Matrix {
			if rule.Resource != shared.Self && !covered[[2]uint8{uint8(rule.Resource), uint8(rule.Action)}] {
				t.Errorf("no route for %s %s", rule.Action, rule.Resource)
			}
		}
		// The self rows: everyone fetches and renames themselves.
		for _, role := range []shared.Role{shared.RoleAgent, shared.RoleBot} {
			self := "/api/v1/users/" + strconv.FormatInt(w.ids[role], 10)
			expect(t, e.Do("GET", self, nil, apptest.Bearer(w.tokens[role])), 200, "")
			expect(t, e.Do("PATCH", self, map[string]any{"name": "Me"}, apptest.Bearer(w.tokens[role])), 200, "")
			expect(t, e.Do("PATCH", self, map[string]any{"role": "admin"}, apptest.Bearer(w.tokens[role])), 403, "insufficient_scope")
		}
	})
}

// declared derives (resource, action) from a route's method and path, so
// a route registered under the wrong matrix cell is caught.
func declared(rt httpapi.Route) (shared.Resource, shared.Action) {
	if strings.Contains(rt.Path, "/oauth/clients") {
		// Managing an organization's OAuth clients is administering it.
		return shared.Organization, shared.Update
	}
	if strings.Contains(rt.Path, "/agent_bots") || strings.Contains(rt.Path, "/audit_events") {
		return shared.Organization, shared.Update
	}
	if strings.Contains(rt.Path, "/personal_access_tokens") {
		if rt.Method == "GET" {
			return shared.Self, shared.Fetch
		}
		return shared.Self, shared.Update
	}
	if strings.HasSuffix(rt.Path, "/conversations/:id/events") {
		// Watching a conversation is reading it.
		return shared.Conversation, shared.Fetch
	}
	segs := strings.Split(strings.TrimPrefix(rt.Path, "/"), "/")
	last, withID := segs[len(segs)-1], false
	if last == ":id" {
		last, withID = segs[len(segs)-2], true
	}
	res := map[string]shared.Resource{
		"organizations": shared.Organization, "groups": shared.Group, "users": shared.User, "conversations": shared.Conversation,
		"messages": shared.Message, "contacts": shared.Contact, "knowledge_items": shared.KnowledgeItem, "forms": shared.Form, "services": shared.Service,
	}[last]
	var act shared.Action
	switch rt.Method {
	case "GET":
		act = shared.List
		if withID {
			act = shared.Fetch
		}
	case "POST":
		act = shared.Create
	case "PATCH", "PUT":
		act = shared.Update
	case "DELETE":
		act = shared.Delete
	}
	return res, act
}

func TestMissingChatScopeIsNamed(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	u := login.Body["user"].(map[string]any)
	tok, _, err := e.App.Auth.Issuer.Agent(shared.AgentClaims{Subject: fmt.Sprint(u["id"]), Org: 1, Scope: shared.Scope{Role: shared.RoleAdmin, API: shared.ScopeRead | shared.ScopeWrite}}, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(tok))
	expect(t, r, 403, "insufficient_scope")
	if !strings.Contains(r.Str("message"), "chat") || !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Fatalf("missing chat scope: %s %v", r.Raw, r.Header)
	}
	expect(t, e.Do("GET", "/api/v1/contacts", nil, apptest.Bearer(tok)), 200, "")
}

// otherTenant makes a second root organization with its own admin.
func otherTenant(t *testing.T, e *apptest.Env) string {
	t.Helper()
	ctx := context.Background()
	org := &domain.Organization{Name: "Rival"}
	if err := e.App.Store.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	hash, _ := e.App.Auth.HashPassword("rival-password")
	u := &domain.User{OrgID: org.ID, Email: uniq("rival") + "@example.com", Name: "Rival", Role: shared.RoleAdmin, PasswordHash: hash}
	if err := e.App.Store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	return e.Login(u.Email, "rival-password").Str("token")
}

func TestOtherOrganizationsAreInvisible(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newWorld(t, e)
		rival := apptest.Bearer(otherTenant(t, e))
		for _, rt := range e.App.Server.Routes() {
			if !strings.Contains(rt.Path, ":id") || rt.Family != "agent" || strings.Contains(rt.Path, "/personal_access_tokens/") {
				continue
			}
			id := w.fixture(t, rt)
			path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, ":account_id", strconv.FormatInt(w.org, 10)), ":id", id)
			r := e.Do(rt.Method, path, body(rt), rival)
			if r.Status != 404 || r.Str("error") != "not_found" {
				t.Errorf("rival %s %s: %d %s, want 404", rt.Method, path, r.Status, r.Raw)
			}
		}
		// Lists show only one's own tree.
		for _, p := range []string{"/api/v1/conversations", "/api/v1/contacts", "/api/v1/users", "/api/v1/organizations", "/api/v1/groups"} {
			r := e.Do("GET", p, nil, rival)
			expect(t, r, 200, "")
			for _, item := range r.Body["data"].([]any) {
				m := item.(map[string]any)
				if acct, ok := m["account_id"]; ok && int64(acct.(float64)) == w.org {
					t.Errorf("rival sees %s %v", p, m)
				}
				if p == "/api/v1/organizations" && int64(m["id"].(float64)) == w.org {
					t.Errorf("rival sees organization %v", m)
				}
			}
		}
	})
}

func TestChildOrganizations(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newWorld(t, e)
	admin := apptest.Bearer(w.tokens[shared.RoleAdmin])
	child := e.Do("POST", "/api/v1/organizations", map[string]any{"name": "EU branch"}, admin)
	expect(t, child, 201, "")
	childID := int64(child.Body["id"].(float64))
	if int64(child.Body["parent_id"].(float64)) != w.org {
		t.Fatalf("parent: %s", child.Raw)
	}
	u := e.Do("POST", "/api/v1/users", map[string]any{"name": "C", "email": "child-admin@example.com", "password": "password-123", "role": "admin", "account_id": childID}, admin)
	expect(t, u, 201, "")
	childAdmin := apptest.Bearer(e.Login("child-admin@example.com", "password-123").Str("token"))
	// The parent admin is admin in the child; the child admin cannot see up.
	conv := e.Do("POST", "/api/v1/conversations", map[string]any{}, childAdmin)
	expect(t, conv, 201, "")
	expect(t, e.Do("GET", "/api/v1/conversations/"+strconv.Itoa(int(conv.Body["id"].(float64))), nil, admin), 200, "")
	parentConv := e.Do("POST", "/api/v1/conversations", map[string]any{}, admin)
	expect(t, e.Do("GET", "/api/v1/conversations/"+strconv.Itoa(int(parentConv.Body["id"].(float64))), nil, childAdmin), 404, "not_found")
	orgs := e.Do("GET", "/api/v1/organizations", nil, admin)
	if len(orgs.Body["data"].([]any)) != 2 {
		t.Fatalf("parent lists its tree: %s", orgs.Raw)
	}
	expect(t, e.Do("POST", "/api/v1/users", map[string]any{"name": "X", "email": "x@example.com", "password": "password-123", "role": "agent", "account_id": w.org}, childAdmin), 400, "invalid_request")
	// An organization with users or data cannot be deleted: nothing is lost.
	expect(t, e.Do("DELETE", "/api/v1/organizations/"+strconv.FormatInt(childID, 10), nil, admin), 409, "conflict")
	expect(t, e.Do("DELETE", "/api/v1/organizations/"+strconv.FormatInt(w.org, 10), nil, admin), 400, "invalid_request")
}

func TestChatBadInputAndCascade(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newWorld(t, e)
		admin := apptest.Bearer(w.tokens[shared.RoleAdmin])
		tests := []struct {
			method, path string
			body         any
			status       int
			mention      string
		}{
			{"GET", "/api/v1/contacts/abc", nil, 400, "id"},
			{"GET", "/api/v1/contacts/-1", nil, 400, "id"},
			{"GET", "/api/v1/contacts/0", nil, 400, "id"},
			{"GET", "/api/v1/contacts/999999", nil, 404, "contact 999999"},
			{"POST", "/api/v1/contacts", map[string]any{"name": "A", "nickname": "x"}, 400, "nickname"},
			{"POST", "/api/v1/contacts", map[string]any{"name": 5}, 400, "name"},
			{"POST", "/api/v1/contacts", map[string]any{"email": "a@b.c"}, 400, "name"},
			{"POST", "/api/v1/contacts", map[string]any{"name": "A", "email": "not-an-email"}, 400, "email"},
			{"POST", "/api/v1/contacts", map[string]any{"name": strings.Repeat("x", 201)}, 400, "name"},
			{"POST", "/api/v1/contacts", `[]`, 400, "object"},
			{"POST", "/api/v1/contacts", `null`, 400, "object"},
			{"POST", "/api/v1/conversations", map[string]any{"status": "closed"}, 400, "status"},
			{"POST", "/api/v1/conversations", map[string]any{"contact_id": "7"}, 400, "contact_id"},
			{"POST", "/api/v1/conversations", map[string]any{"contact_id": 999999}, 400, "contact_id"},
			{"POST", "/api/v1/conversations", map[string]any{"customer_id": "x"}, 400, "customer_id"},
			{"POST", "/api/v1/knowledge_items", map[string]any{"title": "t", "body": strings.Repeat("x", 50001)}, 400, "body"},
			{"GET", "/api/v1/contacts?limit=0", nil, 400, "limit"},
			{"GET", "/api/v1/contacts?limit=1000", nil, 400, "limit"},
			{"GET", "/api/v1/contacts?cursor=!!", nil, 400, "cursor"},
			{"POST", "/api/v1/users", map[string]any{"name": "A", "email": "a@example.com", "password": "password-123", "role": "guest"}, 400, "role"},
			{"POST", "/api/v1/users", map[string]any{"name": "A", "email": "a@example.com", "password": "short", "role": "agent"}, 400, "password"},
			{"POST", "/api/v1/users", map[string]any{"name": "A", "email": apptest.AdminEmail, "password": "password-123", "role": "agent"}, 409, "email"},
			{"GET", "/api/v1/accounts/999/conversations", nil, 404, "account"},
		}
		for _, tt := range tests {
			r := e.Do(tt.method, tt.path, tt.body, admin)
			if r.Status != tt.status || !strings.Contains(r.Str("message"), tt.mention) {
				t.Errorf("%s %s %v: %d %s; want %d naming %q", tt.method, tt.path, tt.body, r.Status, r.Raw, tt.status, tt.mention)
			}
		}
		// Passwords never come back.
		if r := e.Do("GET", "/api/v1/users", nil, admin); strings.Contains(strings.ToLower(string(r.Raw)), "password") {
			t.Fatalf("user list shows a password field: %s", r.Raw)
		}

		// Deleting a conversation deletes its messages.
		conv := e.Do("POST", "/api/v1/conversations", map[string]any{}, admin)
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		msg := e.Do("POST", "/api/v1/accounts/"+strconv.FormatInt(w.org, 10)+"/conversations/"+cid+"/messages", map[string]any{"content": "Bot message", "message_type": "outgoing"}, admin)
		expect(t, msg, 201, "")
		if msg.Str("message_type") != "outgoing" || msg.Str("sender_type") != "user" {
			t.Fatalf("message: %s", msg.Raw)
		}
		got := e.Do("GET", "/api/v1/conversations/"+cid, nil, admin)
		if len(got.Body["messages"].([]any)) != 1 || got.Str("status") != "open" {
			t.Fatalf("conversation with messages: %s", got.Raw)
		}
		mid := strconv.Itoa(int(msg.Body["id"].(float64)))
		expect(t, e.Do("DELETE", "/api/v1/conversations/"+cid, nil, admin), 204, "")
		expect(t, e.Do("GET", "/api/v1/conversations/"+cid, nil, admin), 404, "not_found")
		expect(t, e.Do("GET", "/api/v1/messages/"+mid, nil, admin), 404, "not_found")
	})
}

func TestPagination(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	for range 7 {
		expect(t, e.Do("POST", "/api/v1/groups", createBody(shared.Group), admin), 201, "")
	}
	seen := map[float64]bool{}
	cur, pages := "", 0
	for {
		r := e.Do("GET", "/api/v1/groups?limit=3&cursor="+cur, nil, admin)
		expect(t, r, 200, "")
		pages++
		for _, it := range r.Body["data"].([]any) {
			seen[it.(map[string]any)["id"].(float64)] = true
		}
		if cur = r.Str("next_cursor"); cur == "" {
			break
		}
	}
	if len(seen) != 7 || pages != 3 {
		t.Fatalf("saw %d groups in %d pages", len(seen), pages)
	}
}
