package httpapi_test

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

// The minting ceiling (the credential core's I1): a credential never
// creates one with more than it holds. Only a first-party sign-in's access
// token mints long-lived credentials; a vouched visitor's session ends no
// later than the credential that vouched for it.

// secretish matches the secrets this server issues, so failure messages
// can show an answer without the credential it may carry.
var secretish = regexp.MustCompile(`\b(ca[prtbsc]|ccr|cpl)_[A-Za-z0-9_-]+|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`)

// redact shows an answer body with every secret cut to its prefix.
func redact(raw []byte) string {
	return secretish.ReplaceAllStringFunc(string(raw), func(s string) string {
		if strings.HasPrefix(s, "eyJ") {
			return "eyJ…"
		}
		i := strings.IndexByte(s, '_')
		return s[:i+1] + "…"
	})
}

// want fails unless r has status and, when codes are given, one of them
// as its error code; the body is shown redacted.
func want(t *testing.T, what string, r apptest.Response, status int, codes ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: got %d %s, want %d %v", what, r.Status, redact(r.Raw), status, codes)
	}
	if len(codes) == 0 {
		return
	}
	for _, c := range codes {
		if r.Str("error") == c {
			return
		}
	}
	t.Fatalf("%s: got %d %s, want error %v", what, r.Status, redact(r.Raw), codes)
}

// ceilWorld is an organization with the clients the credential kinds
// come from: a confidential client (read write chat) for the code and
// client-credentials grants, a public client for the implicit grant, and
// a widget with one visitor.
type ceilWorld struct {
	e      *apptest.Env
	b      *browser
	org    int64
	conf   string
	secret string
	pub    string
	widget string
	entity string
}

func newCeilWorld(t *testing.T, e *apptest.Env) *ceilWorld {
	t.Helper()
	w := &ceilWorld{e: e, b: newBrowser(t, e)}
	login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
	w.org = int64(login.Body["user"].(map[string]any)["account_id"].(float64))
	admin := apptest.Bearer(login.Str("token"))
	conf := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Integration", "client_type": "confidential", "redirect_uris": []string{redirectURI}, "scopes": []string{"read", "write", "chat"}}, admin)
	want(t, "confidential client", conf, 201)
	w.conf, w.secret = conf.Str("client_id"), conf.Str("client_secret")
	pub := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "SPA", "client_type": "public", "redirect_uris": []string{redirectURI}, "scopes": []string{"read", "write", "chat"}}, admin)
	want(t, "public client", pub, 201)
	w.pub = pub.Str("client_id")
	widget := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Widget", "client_type": "public", "redirect_uris": []string{shop + "/chat"}, "allowed_origins": []string{shop}, "dpop": "optional"}, admin)
	want(t, "widget client", widget, 201)
	w.widget = widget.Str("client_id")
	v := w.visitor(t)
	w.entity = v.Str("entity_id")
	return w
}

// signIn is a fresh first-party sign-in of the admin, as a header.
func (w *ceilWorld) signIn(t *testing.T) string {
	t.Helper()
	return apptest.Bearer(w.e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
}

// visitor is a new visitor of the widget.
func (w *ceilWorld) visitor(t *testing.T) apptest.Response {
	t.Helper()
	r := w.e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token"}, "Origin: "+shop)
	want(t, "new visitor", r, 200)
	return r
}

// vouch asks for the token of visitor entity on the word of cred.
func (w *ceilWorld) vouch(entity, cred string) apptest.Response {
	return w.e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "response_type": "token", "entity_id": entity}, "Origin: "+shop, cred)
}

// authorize runs /oauth/authorize in the admin's browser and returns
// where the application was sent.
func (w *ceilWorld) authorize(t *testing.T, query string) *url.URL {
	t.Helper()
	w.b.t = t
	back := w.b.authorize("/oauth/authorize?" + query)
	if back.Query().Get("error") != "" {
		t.Fatalf("authorize: %s: %s", back.Query().Get("error"), back.Query().Get("error_description"))
	}
	return back
}

// code is an authorization-code grant of the confidential client for
// scope: its access and refresh tokens.
func (w *ceilWorld) code(t *testing.T, scope string) (access, refresh string) {
	t.Helper()
	back := w.authorize(t, "response_type=code&client_id="+url.QueryEscape(w.conf)+"&redirect_uri="+url.QueryEscape(redirectURI)+"&scope="+url.QueryEscape(scope)+"&state=st")
	r := postForm(t, w.e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirectURI}}, w.conf, w.secret)
	want(t, "code exchange", r, 200)
	return r.Str("access_token"), r.Str("refresh_token")
}

// implicit is an implicit grant of the public client.
func (w *ceilWorld) implicit(t *testing.T) string {
	t.Helper()
	back := w.authorize(t, "response_type=token&client_id="+url.QueryEscape(w.pub)+"&redirect_uri="+url.QueryEscape(redirectURI)+"&state=st")
	frag, err := url.ParseQuery(back.Fragment)
	if err != nil || frag.Get("access_token") == "" {
		t.Fatalf("implicit grant: no access token in the fragment")
	}
	return frag.Get("access_token")
}

// clientCredentials is a client-credentials token of client for scope.
func (w *ceilWorld) clientCredentials(t *testing.T, client, secret, scope string) string {
	t.Helper()
	r := postForm(t, w.e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, client, secret)
	want(t, "client credentials", r, 200)
	return r.Str("access_token")
}

// pat creates a personal access token from a fresh sign-in; expiresIn 0
// leaves the expiry out.
func (w *ceilWorld) pat(t *testing.T, scopes []string, expiresIn int) string {
	t.Helper()
	body := map[string]any{"name": uniq("pat"), "scopes": scopes}
	if expiresIn > 0 {
		body["expires_in"] = expiresIn
	}
	r := w.e.Do("POST", "/api/v1/personal_access_tokens", body, w.signIn(t))
	want(t, "personal access token", r, 201)
	return r.Str("token")
}

// apiToken resets the admin's user API token from a fresh sign-in.
func (w *ceilWorld) apiToken(t *testing.T) string {
	t.Helper()
	r := w.e.Do("POST", "/api/v1/profile/reset_access_token", nil, w.signIn(t))
	want(t, "user API token", r, 200)
	return r.Str("access_token")
}

// bot creates an agent bot from a fresh sign-in: its id and token.
func (w *ceilWorld) bot(t *testing.T) (string, string) {
	t.Helper()
	r := w.e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": uniq("bot")}, w.signIn(t))
	want(t, "agent bot", r, 201)
	return strconv.Itoa(int(r.Body["id"].(float64))), r.Str("access_token")
}

// client registers a client from a fresh sign-in: its id and secret.
func (w *ceilWorld) client(t *testing.T, typ string) (string, string) {
	t.Helper()
	r := w.e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": uniq("client"), "client_type": typ, "redirect_uris": []string{redirectURI}, "scopes": []string{"read"}}, w.signIn(t))
	want(t, typ+" client", r, 201)
	return r.Str("client_id"), r.Str("client_secret")
}

// count is the length of the list at path, seen by a fresh sign-in.
func (w *ceilWorld) count(t *testing.T, path string) int {
	t.Helper()
	r := w.e.Do("GET", path, nil, w.signIn(t))
	want(t, "GET "+path, r, 200)
	return len(r.Body["data"].([]any))
}

// works reports whether cred authenticates on the agent API.
func (w *ceilWorld) works(cred string) bool {
	return w.e.Do("GET", "/api/v1/contacts", nil, cred).Status == 200
}

// secretWorks reports whether a client secret still authenticates.
func (w *ceilWorld) secretWorks(t *testing.T, client, secret string) bool {
	t.Helper()
	return postForm(t, w.e, "/oauth/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, client, secret).Status == 200
}

// holder is a credential as the table presents it.
type holder struct {
	header string
	// refresh is the sign-in's own refresh token (session only).
	refresh string
}

// credKind is one kind of credential of the table.
type credKind struct {
	name string
	// scope is what the credential acts with.
	scope shared.Scope
	// session: a first-party sign-in's access token.
	session bool
	// agent: of the agent family (accepted on /api/v1).
	agent bool
	// user: acts for a user (has a profile and personal tokens).
	user bool
	// delegated: an OAuth app's token, granted by a user's consent.
	delegated bool
	// life bounds the credential's remaining life, in seconds.
	life int64
	get  func(t *testing.T, w *ceilWorld) holder
}

func mustScope(s string) shared.Scope {
	sc, err := shared.ParseScope(s)
	if err != nil {
		panic(err)
	}
	return sc
}

// accessTTL is the agent access-token lifetime of the table's app.
const accessTTL = 30

const customerTTL = 86400

func credKinds() []credKind {
	bearer := func(f func(t *testing.T, w *ceilWorld) string) func(t *testing.T, w *ceilWorld) holder {
		return func(t *testing.T, w *ceilWorld) holder { return holder{header: apptest.Bearer(f(t, w))} }
	}
	personal := func(scopes ...string) func(t *testing.T, w *ceilWorld) holder {
		return func(t *testing.T, w *ceilWorld) holder { return holder{header: basic(w.org, w.pat(t, scopes, 3600))} }
	}
	return []credKind{
		{name: "session", scope: mustScope("admin read write chat"), session: true, agent: true, user: true, life: accessTTL,
			get: func(t *testing.T, w *ceilWorld) holder {
				l := w.e.Login(apptest.AdminEmail, apptest.AdminPassword)
				return holder{header: apptest.Bearer(l.Str("token")), refresh: l.Str("refreshToken")}
			}},
		{name: "oauth code write", delegated: true, scope: mustScope("admin write"), agent: true, user: true, life: accessTTL,
			get: bearer(func(t *testing.T, w *ceilWorld) string { a, _ := w.code(t, "write"); return a })},
		{name: "oauth code admin read write chat", delegated: true, scope: mustScope("admin read write chat"), agent: true, user: true, life: accessTTL,
			get: bearer(func(t *testing.T, w *ceilWorld) string { a, _ := w.code(t, "admin read write chat"); return a })},
		{name: "implicit", delegated: true, scope: mustScope("admin read write chat"), agent: true, user: true, life: accessTTL,
			get: bearer(func(t *testing.T, w *ceilWorld) string { return w.implicit(t) })},
		{name: "client credentials read", scope: mustScope("bot read"), agent: true, life: accessTTL,
			get: bearer(func(t *testing.T, w *ceilWorld) string { return w.clientCredentials(t, w.conf, w.secret, "read") })},
		{name: "api", scope: mustScope("admin read write chat"), agent: true, user: true, life: customerTTL,
			get: func(t *testing.T, w *ceilWorld) holder { return holder{header: "api_access_token: " + w.apiToken(t)} }},
		{name: "personal", scope: mustScope("agent write"), agent: true, user: true, life: 3600, get: personal("agent", "write")},
		{name: "personal read", scope: mustScope("admin read"), agent: true, user: true, life: 3600, get: personal("read")},
		{name: "personal admin", scope: mustScope("admin read write chat"), agent: true, user: true, life: 3600, get: personal("admin", "read", "write", "chat")},
		{name: "bot", scope: mustScope("bot read write chat"), agent: true, life: customerTTL,
			get: func(t *testing.T, w *ceilWorld) holder {
				_, tok := w.bot(t)
				return holder{header: "api_access_token: " + tok}
			}},
		{name: "customer", scope: mustScope("guest read write chat"), life: customerTTL,
			get: func(t *testing.T, w *ceilWorld) holder {
				return holder{header: apptest.Bearer(w.visitor(t).Str("access_token"))}
			}},
	}
}

// mintEndpoint is one endpoint that mints a credential.
type mintEndpoint struct {
	name string
	// res, act: what the permission matrix is asked (for vouching, the
	// right to write messages, which the ceiling requires).
	res shared.Resource
	act shared.Action
	// refresh: GET auth/token, which only the sign-in's own access token
	// may use; its refusal is 401.
	refresh bool
	// notUser is the refusal a caller that is no user may get instead of
	// sign_in_required (it has no profile or personal tokens).
	notUserStatus int
	notUserCode   string
	// try sends the request as h and returns the answer, a check of an
	// answer that minted (allowed) and a check that a refusal minted
	// nothing (refused).
	try func(t *testing.T, w *ceilWorld, k credKind, h holder) (r apptest.Response, allowed func(t *testing.T), refused func(t *testing.T))
}

func mintEndpoints() []mintEndpoint {
	return []mintEndpoint{
		{name: "POST personal_access_tokens", res: shared.Self, act: shared.Update, notUserStatus: 403, notUserCode: "forbidden",
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				// Ask for no more than the holder has: the refusal is the
				// ceiling's, not the scope check's.
				scopes := k.scope.Words()
				if k.session {
					scopes = []string{"agent", "read"}
				}
				before := w.count(t, "/api/v1/personal_access_tokens")
				r := w.e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": uniq("minted"), "scopes": scopes, "expires_in": 600}, h.header)
				return r, func(t *testing.T) {
						want(t, "create", r, 201)
						if got := strings.Join(toStrings(r.Body["scopes"]), " "); got != "agent read" || r.Body["expires_at"] == nil {
							t.Fatalf("a PAT asked for agent read, 600 s: scopes %q expires_at %v", got, r.Body["expires_at"])
						}
						if !w.works(basic(w.org, r.Str("token"))) {
							t.Fatal("the new personal access token does not work")
						}
					}, func(t *testing.T) {
						if n := w.count(t, "/api/v1/personal_access_tokens"); n != before {
							t.Fatalf("personal access tokens: %d before, %d after a refusal", before, n)
						}
					}
			}},
		{name: "POST profile/reset_access_token", res: shared.Self, act: shared.Update, notUserStatus: 404, notUserCode: "not_found",
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				ref := h.header
				if k.name != "api" {
					ref = "api_access_token: " + w.apiToken(t)
				}
				r := w.e.Do("POST", "/api/v1/profile/reset_access_token", nil, h.header)
				return r, func(t *testing.T) {
						want(t, "reset", r, 200)
						if !strings.HasPrefix(r.Str("access_token"), "cat_") || !w.works("api_access_token: "+r.Str("access_token")) {
							t.Fatal("the new user API token does not work")
						}
						if w.works(ref) {
							t.Fatal("the previous user API token still works after a reset")
						}
					}, func(t *testing.T) {
						if !w.works(ref) {
							t.Fatal("a refused reset ended the user API token")
						}
					}
			}},
		{name: "POST agent_bots", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				before := w.count(t, "/api/v1/agent_bots")
				r := w.e.Do("POST", "/api/v1/agent_bots", map[string]any{"name": uniq("minted")}, h.header)
				return r, func(t *testing.T) {
						want(t, "create", r, 201)
						if !strings.HasPrefix(r.Str("access_token"), "cab_") || !w.works("api_access_token: "+r.Str("access_token")) {
							t.Fatal("the new bot token does not work")
						}
					}, func(t *testing.T) {
						if n := w.count(t, "/api/v1/agent_bots"); n != before {
							t.Fatalf("agent bots: %d before, %d after a refusal", before, n)
						}
					}
			}},
		{name: "POST agent_bots/{id}/reset_access_token", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				id, old := w.bot(t)
				r := w.e.Do("POST", "/api/v1/agent_bots/"+id+"/reset_access_token", nil, h.header)
				return r, func(t *testing.T) {
						want(t, "reset", r, 200)
						if !w.works("api_access_token: " + r.Str("access_token")) {
							t.Fatal("the new bot token does not work")
						}
						if w.works("api_access_token: " + old) {
							t.Fatal("the previous bot token still works after a reset")
						}
					}, func(t *testing.T) {
						if !w.works("api_access_token: " + old) {
							t.Fatal("a refused reset ended the bot token")
						}
					}
			}},
		{name: "POST oauth/clients", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				before := w.count(t, "/api/v1/oauth/clients")
				r := w.e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": uniq("minted"), "client_type": "confidential", "redirect_uris": []string{redirectURI}, "scopes": []string{"read"}}, h.header)
				return r, func(t *testing.T) {
						want(t, "create", r, 201)
						if !strings.HasPrefix(r.Str("client_secret"), "cas_") || !w.secretWorks(t, r.Str("client_id"), r.Str("client_secret")) {
							t.Fatal("the new client secret does not work")
						}
					}, func(t *testing.T) {
						if n := w.count(t, "/api/v1/oauth/clients"); n != before {
							t.Fatalf("OAuth clients: %d before, %d after a refusal", before, n)
						}
					}
			}},
		{name: "POST oauth/clients/{id}/identity_keys", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				id, _ := w.client(t, "public")
				path := "/api/v1/oauth/clients/" + id + "/identity_keys"
				r := w.e.Do("POST", path, map[string]any{"alg": "HS256"}, h.header)
				return r, func(t *testing.T) {
						want(t, "create", r, 201)
						if !strings.HasPrefix(r.Str("secret"), "ids_") || w.count(t, path) != 1 {
							t.Fatalf("identity key: %s", r.Raw)
						}
					}, func(t *testing.T) {
						if n := w.count(t, path); n != 0 {
							t.Fatalf("identity keys: %d after a refusal", n)
						}
					}
			}},
		{name: "POST oauth/clients/{id}/reset_secret", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				id, old := w.client(t, "confidential")
				r := w.e.Do("POST", "/api/v1/oauth/clients/"+id+"/reset_secret", nil, h.header)
				return r, func(t *testing.T) {
						want(t, "reset", r, 200)
						if !w.secretWorks(t, id, r.Str("client_secret")) {
							t.Fatal("the new client secret does not work")
						}
						if w.secretWorks(t, id, old) {
							t.Fatal("the previous client secret still works after a reset")
						}
					}, func(t *testing.T) {
						if !w.secretWorks(t, id, old) {
							t.Fatal("a refused reset ended the client secret")
						}
					}
			}},
		{name: "PUT oauth/clients/{id} confidential", res: shared.Organization, act: shared.Update,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				id, _ := w.client(t, "public")
				r := w.e.Do("PUT", "/api/v1/oauth/clients/"+id, map[string]any{"client_type": "confidential"}, h.header)
				return r, func(t *testing.T) {
						want(t, "update", r, 200)
						if !w.secretWorks(t, id, r.Str("client_secret")) {
							t.Fatal("the secret of the client made confidential does not work")
						}
					}, func(t *testing.T) {
						if r.Str("client_secret") != "" {
							t.Fatal("a refused update carries a client secret")
						}
						g := w.e.Do("GET", "/api/v1/oauth/clients/"+id, nil, w.signIn(t))
						if g.Str("client_type") != "public" {
							t.Fatalf("after a refused update the client is %q", g.Str("client_type"))
						}
					}
			}},
		{name: "POST customer/token entity_id", res: shared.Message, act: shared.Create,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				r := w.vouch(w.entity, h.header)
				return r, func(t *testing.T) {
						want(t, "vouch", r, 200)
						if r.Str("entity_id") != w.entity {
							t.Fatalf("vouched for %q, got entity %q", w.entity, r.Str("entity_id"))
						}
						if got := int64(r.Body["expires_in"].(float64)); got > k.life || got <= 0 {
							t.Fatalf("the visitor's token lives %d s; the vouching credential, at most %d s", got, k.life)
						}
						expect(t, w.e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(r.Str("access_token"))), 200, "")
						// Its refresh does not outlive the vouching credential either.
						again := w.e.Do("POST", "/customer/token", map[string]any{"client_id": w.widget, "grant_type": "refresh_token", "refresh_token": r.Str("refresh_token")}, "Origin: "+shop)
						want(t, "refresh the vouched visitor", again, 200)
						if got := int64(again.Body["expires_in"].(float64)); got > k.life {
							t.Fatalf("the refreshed visitor's token lives %d s; the vouching credential, at most %d s", got, k.life)
						}
					}, func(t *testing.T) {
						if r.Str("access_token") != "" || r.Str("refresh_token") != "" {
							t.Fatal("a refused vouch carries a token")
						}
					}
			}},
		{name: "GET auth/token?refreshToken", refresh: true,
			try: func(t *testing.T, w *ceilWorld, k credKind, h holder) (apptest.Response, func(*testing.T), func(*testing.T)) {
				rt := h.refresh
				if rt == "" {
					// Another sign-in's refresh token: the caller may hold
					// it, but not the access token of its sign-in.
					rt = w.e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("refreshToken")
				}
				r := w.e.Do("GET", "/api/v1/auth/token?refreshToken="+url.QueryEscape(rt), nil, h.header)
				return r, func(t *testing.T) {
						want(t, "refresh", r, 200)
						if next := r.Str("refreshToken"); !strings.HasPrefix(next, "car_") || next == rt || !w.works(apptest.Bearer(r.Str("token"))) {
							t.Fatal("refresh before expiry: no working new pair")
						}
					}, func(t *testing.T) {
						// A refused refresh spends nothing.
						r := w.e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": rt, "clientId": apptest.AdminEmail})
						want(t, "the refresh token after a refused refresh", r, 200)
					}
			}},
	}
}

// outcome is what a cell expects: allowed, or refused with one of the
// answers in refusals.
type outcome struct {
	allowed  bool
	refusals []refusal
}

// refusal is a status and an error code.
type refusal struct {
	status int
	code   string
}

func (o outcome) String() string {
	var s []string
	for _, r := range o.refusals {
		s = append(s, strconv.Itoa(r.status)+" "+r.code)
	}
	return strings.Join(s, " or ")
}

func refused(rs ...refusal) outcome { return outcome{refusals: rs} }

var (
	signInRequired = refusal{403, "sign_in_required"}
	invalidToken   = refusal{401, "invalid_token"}
)

// expected is the ceiling's rule for kind k at endpoint ep.
func expected(k credKind, ep mintEndpoint) outcome {
	switch {
	case !k.agent:
		return refused(invalidToken)
	case ep.refresh && k.session:
		return outcome{allowed: true}
	case ep.refresh:
		return refused(invalidToken, signInRequired)
	case ep.res == shared.Message && k.delegated:
		// An OAuth app never speaks for visitors: the consent a user gave
		// it names no such right.
		return refused(refusal{403, "forbidden"})
	case !k.scope.Allows(ep.res, ep.act):
		// The permission matrix refuses first.
		return refused(refusal{403, "insufficient_scope"})
	case ep.res == shared.Message:
		// Vouching needs the rights to write messages, nothing more.
		return outcome{allowed: true}
	case k.session:
		return outcome{allowed: true}
	case !k.user && ep.notUserCode != "":
		return refused(signInRequired, refusal{ep.notUserStatus, ep.notUserCode})
	}
	return refused(signInRequired)
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestMintingCeiling: every credential kind at every endpoint that mints
// a credential.
func TestMintingCeiling(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_ACCESS_TTL": strconv.Itoa(accessTTL) + "s"})
		w := newCeilWorld(t, e)
		cells := 0
		for _, k := range credKinds() {
			for _, ep := range mintEndpoints() {
				cells++
				exp := expected(k, ep)
				t.Run(k.name+"/"+ep.name, func(t *testing.T) {
					h := k.get(t, w)
					r, allowed, nothingMinted := ep.try(t, w, k, h)
					if exp.allowed {
						allowed(t)
						return
					}
					if r.Status/100 == 2 {
						t.Errorf("%s minted a credential: %d, want %v", k.name, r.Status, exp)
					} else {
						match := false
						for _, want := range exp.refusals {
							match = match || (r.Status == want.status && r.Str("error") == want.code)
						}
						if !match {
							t.Errorf("got %d %s, want %v", r.Status, redact(r.Raw), exp)
						}
						if r.Str("message") == "" {
							t.Errorf("a refusal without a message: %s", redact(r.Raw))
						}
					}
					nothingMinted(t)
				})
			}
		}
		if cells != 110 {
			t.Fatalf("the table has %d cells, want 11 kinds × 10 endpoints", cells)
		}

		t.Run("session/POST personal_access_tokens beyond the holder", func(t *testing.T) {
			admin := w.signIn(t)
			email := uniq("agent") + "@example.com"
			want(t, "agent user", e.Do("POST", "/api/v1/users", map[string]any{"name": "Agent", "email": email, "password": "password-123", "role": "agent"}, admin), 201)
			agent := apptest.Bearer(e.Login(email, "password-123").Str("token"))
			r := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "mine", "scopes": []string{"agent", "read", "write", "chat"}}, agent)
			want(t, "a PAT within the agent's sign-in", r, 201)
			if got := strings.Join(toStrings(r.Body["scopes"]), " "); got != "agent read write chat" {
				t.Fatalf("scopes %q", got)
			}
			r = e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "more", "scopes": []string{"admin", "read"}}, agent)
			if r.Status != 400 && r.Status != 403 {
				t.Fatalf("a PAT above the holder's role: %d %s", r.Status, redact(r.Raw))
			}
		})
		t.Run("session/GET auth/token with another sign-in's refresh token", func(t *testing.T) {
			other := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("refreshToken")
			want(t, "refresh with another sign-in's token", e.Do("GET", "/api/v1/auth/token?refreshToken="+url.QueryEscape(other), nil, w.signIn(t)), 401, "invalid_token")
			want(t, "the other sign-in's refresh token", e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": other, "clientId": apptest.AdminEmail}), 200)
		})
	})
}

// TestFinding1DerivedCredentialsCannotMintLongLivedOnes: a personal
// access token with scopes agent write and a 1 h expiry cannot create a
// personal access token (let alone one with admin and no expiry) nor
// reset the user API token; an OAuth access token granted write cannot
// either. After its grant is revoked and its client deleted, nothing it
// could have minted exists.
func TestFinding1DerivedCredentialsCannotMintLongLivedOnes(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCeilWorld(t, e)
		admin := w.signIn(t)
		api := "api_access_token: " + w.apiToken(t)
		p := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "integration", "scopes": []string{"agent", "write"}, "expires_in": 3600}, admin)
		want(t, "PAT agent write 1 h", p, 201)
		patID := strconv.Itoa(int(p.Body["id"].(float64)))
		pat := basic(w.org, p.Str("token"))

		// minted collects whatever a refused request minted anyway.
		var minted []string
		attack := func(t *testing.T, who, cred string) {
			for _, body := range []map[string]any{
				{"name": "again", "scopes": []string{"agent", "write"}, "expires_in": 600},
				{"name": "forever", "scopes": []string{"admin", "read", "write", "chat"}},
			} {
				r := e.Do("POST", "/api/v1/personal_access_tokens", body, cred)
				if r.Status/100 == 2 {
					minted = append(minted, basic(w.org, r.Str("token")))
					t.Errorf("%s created a personal access token %v: %d", who, body["scopes"], r.Status)
					continue
				}
				if r.Status != 403 || (r.Str("error") != "sign_in_required" && r.Str("error") != "insufficient_scope") {
					t.Errorf("%s creating a PAT %v: %d %s, want 403 sign_in_required", who, body["scopes"], r.Status, redact(r.Raw))
				}
			}
			r := e.Do("POST", "/api/v1/profile/reset_access_token", nil, cred)
			if r.Status/100 == 2 {
				minted = append(minted, "api_access_token: "+r.Str("access_token"))
				t.Errorf("%s reset the user API token: %d", who, r.Status)
			} else if r.Status != 403 || r.Str("error") != "sign_in_required" {
				t.Errorf("%s resetting the user API token: %d %s, want 403 sign_in_required", who, r.Status, redact(r.Raw))
			}
		}
		attack(t, "a personal access token (agent write, 1 h)", pat)
		access, refresh := w.code(t, "write")
		oauthTok := apptest.Bearer(access)
		// write alone reads nothing: a live token is refused 403, a dead one 401.
		want(t, "the OAuth token (write)", e.Do("GET", "/api/v1/profile", nil, oauthTok), 403, "insufficient_scope")
		attack(t, "an OAuth access token (write)", oauthTok)

		// The grant ends, then its client, then the personal token.
		want(t, "revoke the grant", postForm(t, e, "/oauth/revoke", url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}, w.conf, w.secret), 200)
		want(t, "delete the client", e.Do("DELETE", "/api/v1/oauth/clients/"+w.conf, nil, admin), 204)
		want(t, "delete the PAT", e.Do("DELETE", "/api/v1/personal_access_tokens/"+patID, nil, admin), 204)
		eventually(t, 1500*time.Millisecond, "the revoked OAuth token is refused", func() bool {
			return e.Do("GET", "/api/v1/profile", nil, oauthTok).Status == 401
		})
		want(t, "the deleted PAT", e.Do("GET", "/api/v1/profile", nil, pat), 401, "invalid_token")
		for i, cred := range minted {
			if r := e.Do("GET", "/api/v1/profile", nil, cred); r.Status != 401 {
				t.Errorf("credential %d minted by a derived one outlives its revocation: %d", i, r.Status)
			}
		}
		if n := w.count(t, "/api/v1/personal_access_tokens"); n != 0 {
			t.Errorf("%d personal access tokens exist after the only one made by a sign-in was deleted", n)
		}
		if !w.works(api) {
			t.Error("the user API token made by the sign-in was reset by a derived credential")
		}
	})
}

// TestFinding2ReadOnlyTokenCannotVouchForAVisitor: a client-credentials
// token with scope read cannot obtain a visitor's token by entity_id, so
// it cannot write as that visitor; one that may write messages can.
func TestFinding2ReadOnlyTokenCannotVouchForAVisitor(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCeilWorld(t, e)
		visitor := apptest.Bearer(w.visitor(t).Str("access_token"))
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, visitor)
		want(t, "conversation", conv, 201)
		cid := strconv.Itoa(int(conv.Body["id"].(float64)))
		want(t, "visitor's message", e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Where is my order?"}, visitor), 201)
		me := e.Do("GET", "/customer/api/v1/me", nil, visitor)
		entity := me.Str("entity_id")

		reader := apptest.Bearer(w.clientCredentials(t, w.conf, w.secret, "read"))
		r := w.vouch(entity, reader)
		want(t, "vouching with client credentials scope=read", r, 403, "insufficient_scope", "forbidden")
		if r.Str("access_token") != "" || r.Str("refresh_token") != "" || strings.Contains(r.Header.Get("Set-Cookie"), "chatauth_customer") {
			t.Fatal("a refused vouch handed out the visitor's token or cookie")
		}
		// Nor can it write as the visitor any other way.
		want(t, "the read token on the customer API", e.Do("POST", "/customer/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Refund me"}, reader), 401, "invalid_token")
		want(t, "the read token posting as an agent", e.Do("POST", "/api/v1/conversations/"+cid+"/messages", map[string]any{"content": "Refund me"}, reader), 403, "insufficient_scope")
		got := e.Do("GET", "/customer/api/v1/conversations/"+cid, nil, visitor)
		if msgs, _ := got.Body["messages"].([]any); len(msgs) != 1 || strings.Contains(string(got.Raw), "Refund") {
			t.Fatalf("the visitor's conversation after the refusals: %s", redact(got.Raw))
		}
		// A PAT with scope read cannot vouch either.
		want(t, "vouching with a read PAT", w.vouch(entity, basic(w.org, w.pat(t, []string{"read"}, 3600))), 403, "insufficient_scope")

		// A token that may write messages may vouch.
		writer := apptest.Bearer(w.clientCredentials(t, w.conf, w.secret, "read write chat"))
		ok := w.vouch(entity, writer)
		want(t, "vouching with client credentials scope=read write chat", ok, 200)
		if ok.Str("entity_id") != entity {
			t.Fatalf("vouched for another visitor: %q", ok.Str("entity_id"))
		}
	})
}

// TestFinding3RefreshReplayGetsTheSuccessorNotABranch: a refresh token
// replayed inside the grace window gets the successor already issued,
// not a branch of its own; once the owner rotates that successor, the
// replayed copy is dead, and so is the access token the replay got.
func TestFinding3RefreshReplayGetsTheSuccessorNotABranch(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_REFRESH_GRACE": "1s"})
		refresh := func(rt string) apptest.Response {
			return e.Do("POST", "/api/v1/auth/token", map[string]string{"refreshToken": rt, "clientId": apptest.AdminEmail})
		}
		dead := func(t *testing.T, what, cred string) {
			t.Helper()
			eventually(t, 1500*time.Millisecond, what+" is refused", func() bool {
				return e.Do("GET", "/api/v1/profile", nil, cred).Status == 401
			})
		}
		// race signs in, rotates the first refresh token as the owner,
		// and replays it within the grace window as a second holder.
		race := func(t *testing.T) (r0 string, owner, replay apptest.Response) {
			login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
			r0 = login.Str("refreshToken")
			owner = refresh(r0)
			want(t, "owner's refresh", owner, 200)
			replay = refresh(r0)
			want(t, "replay within grace", replay, 200)
			if replay.Str("refreshToken") != owner.Str("refreshToken") {
				t.Fatal("a replay within grace got a refresh token of its own (a branch), not the successor already issued")
			}
			want(t, "the replay's access token", e.Do("GET", "/api/v1/profile", nil, apptest.Bearer(replay.Str("token"))), 200)
			return r0, owner, replay
		}
		t.Run("the successor presented after the owner rotated it", func(t *testing.T) {
			_, owner, replay := race(t)
			next := e.Do("GET", "/api/v1/auth/token?refreshToken="+url.QueryEscape(owner.Str("refreshToken")), nil, apptest.Bearer(owner.Str("token")))
			want(t, "owner rotates the successor", next, 200)
			time.Sleep(1100 * time.Millisecond) // past the grace of that rotation
			want(t, "the replayed copy of the successor", refresh(replay.Str("refreshToken")), 401, "invalid_token")
			dead(t, "the replay's access token", apptest.Bearer(replay.Str("token")))
			// Reuse ends the sign-in: the owner's newest pair too.
			want(t, "the owner's newest refresh token", refresh(next.Str("refreshToken")), 401, "invalid_token")
			dead(t, "the owner's newest access token", apptest.Bearer(next.Str("token")))
		})
		t.Run("the spent token replayed again after the owner rotated its successor", func(t *testing.T) {
			r0, owner, replay := race(t)
			next := e.Do("GET", "/api/v1/auth/token?refreshToken="+url.QueryEscape(owner.Str("refreshToken")), nil, apptest.Bearer(owner.Str("token")))
			want(t, "owner rotates the successor", next, 200)
			want(t, "the first refresh token replayed again", refresh(r0), 401, "invalid_token")
			dead(t, "the replay's access token", apptest.Bearer(replay.Str("token")))
			dead(t, "the owner's newest access token", apptest.Bearer(next.Str("token")))
		})
	})
}

// TestFinding4CurrentPasswordGuessesAreThrottled: PATCH /api/v1/profile
// with a wrong current_password is throttled like a sign-in: after at
// most 10 wrong guesses from one IP the answer is 429 with Retry-After,
// and while blocked the right password is refused too.
func TestFinding4CurrentPasswordGuessesAreThrottled(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		admin := apptest.Bearer(e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
		change := func(current string) apptest.Response {
			return e.Do("PATCH", "/api/v1/profile", map[string]any{"password": "brand-new-password", "current_password": current}, admin)
		}
		guesses := 0
		var r apptest.Response
		for r = change("guess-0"); r.Status != 429 && guesses < 10; r = change("guess-" + strconv.Itoa(guesses)) {
			want(t, "a wrong current_password", r, 400, "invalid_request")
			guesses++
		}
		if r.Status != 429 {
			t.Fatalf("after %d wrong current_password guesses: %d %s, want 429", guesses, r.Status, redact(r.Raw))
		}
		retry := func(r apptest.Response) {
			t.Helper()
			if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Fatalf("429 with Retry-After %q", r.Header.Get("Retry-After"))
			}
		}
		want(t, "blocked", r, 429, "too_many_requests")
		retry(r)
		right := change(apptest.AdminPassword)
		want(t, "the right current_password while blocked", right, 429, "too_many_requests")
		retry(right)
		// Nothing changed: the old password still signs in.
		e.Login(apptest.AdminEmail, apptest.AdminPassword)
	})
}

// TestFinding6IntrospectionAndTokenInfoTellOnlyTheirOwn: introspection
// is for confidential clients, about their own tokens; the token
// debugger's POST needs a credential and answers only about the caller's
// organization.
func TestFinding6IntrospectionAndTokenInfoTellOnlyTheirOwn(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCeilWorld(t, e)
		login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		first := login.Str("token")
		admin := apptest.Bearer(first)
		other := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Other", "client_type": "confidential", "redirect_uris": []string{redirectURI}, "scopes": []string{"read", "write", "chat"}}, admin)
		want(t, "second confidential client", other, 201)
		otherID, otherSecret := other.Str("client_id"), other.Str("client_secret")
		introspect := func(tok, id, secret string) apptest.Response {
			return postForm(t, e, "/oauth/introspect", url.Values{"token": {tok}}, id, secret)
		}
		active := func(what, tok, id, secret string, wantActive bool) {
			t.Helper()
			r := introspect(tok, id, secret)
			want(t, "introspect "+what, r, 200)
			if r.Body["active"] != wantActive || (!wantActive && len(r.Body) != 1) {
				t.Errorf("introspecting %s: %s, want active %v (and nothing else when inactive)", what, redact(r.Raw), wantActive)
			}
		}

		// A public client proves nothing by its client_id.
		for _, pub := range []string{w.pub, w.widget} {
			r := postForm(t, e, "/oauth/introspect", url.Values{"token": {first}, "client_id": {pub}})
			if !(r.Status == 401 && r.Str("error") == "invalid_client") && !(r.Status == 400 && r.Str("error") == "unauthorized_client") {
				t.Errorf("introspection by a public client: %d %s", r.Status, redact(r.Raw))
			}
			if _, ok := r.Body["active"]; ok {
				t.Errorf("a public client learned about a token: %s", redact(r.Raw))
			}
		}

		// The admin's first-party credentials are nobody's business.
		active("the admin's sign-in token", first, w.conf, w.secret, false)
		active("the admin's refresh token", login.Str("refreshToken"), w.conf, w.secret, false)
		active("the admin's API token", w.apiToken(t), w.conf, w.secret, false)
		active("the admin's personal token", w.pat(t, []string{"read"}, 0), w.conf, w.secret, false)

		// Another client's tokens: inactive to this one, active to their own.
		otherCC := w.clientCredentials(t, otherID, otherSecret, "read")
		active("another client's client-credentials token", otherCC, w.conf, w.secret, false)
		active("its own client-credentials token, to the other client", otherCC, otherID, otherSecret, true)
		w.b.t = t
		back := w.b.authorize("/oauth/authorize?response_type=code&client_id=" + url.QueryEscape(otherID) + "&redirect_uri=" + url.QueryEscape(redirectURI) + "&scope=read&state=s")
		pair := postForm(t, e, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {redirectURI}}, otherID, otherSecret)
		want(t, "the other client's code grant", pair, 200)
		active("another client's access token", pair.Str("access_token"), w.conf, w.secret, false)
		active("another client's refresh token", pair.Str("refresh_token"), w.conf, w.secret, false)
		active("the public client's implicit token", w.implicit(t), w.conf, w.secret, false)
		active("the widget's visitor token", w.visitor(t).Str("access_token"), w.conf, w.secret, false)

		// Its own: active.
		own := w.clientCredentials(t, w.conf, w.secret, "read")
		r := introspect(own, w.conf, w.secret)
		if r.Body["active"] != true || r.Str("client_id") != w.conf || r.Str("token_type") != "Bearer" {
			t.Errorf("its own client-credentials token: %s", redact(r.Raw))
		}
		access, refresh := w.code(t, "read")
		active("its own access token", access, w.conf, w.secret, true)
		if r := introspect(refresh, w.conf, w.secret); r.Body["active"] != true || r.Str("token_type") != "refresh_token" {
			t.Errorf("its own refresh token: %s", redact(r.Raw))
		}

		// The token debugger's POST asks as someone.
		want(t, "POST token/info without credentials", e.Do("POST", "/api/v1/token/info", map[string]any{"token": first}), 401, "invalid_token")
		mine := e.Do("POST", "/api/v1/token/info", map[string]any{"token": first}, w.signIn(t))
		if mine.Body["valid"] != true || mine.Str("type") != "agent" {
			t.Fatalf("POST token/info by its own organization: %s", redact(mine.Raw))
		}
		branch := e.Do("POST", "/api/v1/organizations", map[string]any{"name": "Branch"}, admin)
		want(t, "second organization", branch, 201)
		email := uniq("branch") + "@example.com"
		want(t, "its admin", e.Do("POST", "/api/v1/users", map[string]any{"name": "Branch admin", "email": email, "password": "password-123", "role": "admin", "account_id": int64(branch.Body["id"].(float64))}, admin), 201)
		stranger := apptest.Bearer(e.Login(email, "password-123").Str("token"))
		rival := apptest.Bearer(otherTenant(t, e))
		for who, cred := range map[string]string{"a user of another organization": stranger, "an admin of another root organization": rival} {
			for what, tok := range map[string]string{"sign-in token": first, "refresh token": login.Str("refreshToken"), "client token": own} {
				r := e.Do("POST", "/api/v1/token/info", map[string]any{"token": tok}, cred)
				want(t, who+" asking about a "+what, r, 200)
				if r.Body["valid"] != false || r.Str("subject") != "" || r.Body["organization"] != nil || r.Body["scopes"] != nil || r.Str("type") != "" {
					t.Errorf("%s learned about a live %s of this organization: %s", who, what, redact(r.Raw))
				}
			}
		}
	})
}
