package httpapi_test

// The attacker's review of identified visitors (docs/identity.md): each
// test reproduces one finding, fixed since, and keeps it fixed.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apptest"
	"chatauth/backend/identity"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

// RI1: a site user id (sub) names one visitor per organization, whichever
// widget client's key signed it. Two sites of one organization (two widget
// clients, two keys, two user databases) with overlapping user ids share
// one visitor: user "1" of site B reads user "1" of site A's history, and
// whoever holds site B's key (a less guarded microsite) is every
// identified visitor of site A.
func TestReviewIdentitySubSharedAcrossClients(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	a, aKey := identifiedWorld(t, e) // site A: the shop
	b, bKey := identifiedWorld(t, e) // site B: another site of the same organization
	_ = b
	alice := aKey.login(aKey.sign(t, "1", map[string]any{"name": "Alice (site A)", "email": "alice@a.example"}))
	expect(t, alice, 200, "")
	conv := e.Do("POST", "/customer/api/v1/conversations", map[string]any{"subject": "my invoice"}, apptest.Bearer(alice.Str("access_token")))
	expect(t, conv, 201, "")
	convID := strconv.Itoa(int(conv.Body["id"].(float64)))
	expect(t, e.Do("POST", "/customer/api/v1/conversations/"+convID+"/messages", map[string]any{"content": "my card ends 4242"}, apptest.Bearer(alice.Str("access_token"))), 201, "")

	// Site B's user "1" (someone else entirely), signed with site B's own key.
	bob := bKey.login(bKey.sign(t, "1", map[string]any{"name": "Bob (site B)"}))
	expect(t, bob, 200, "")
	got := e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(bob.Str("access_token")))
	if bob.Str("entity_id") == alice.Str("entity_id") || got.Status == 200 {
		t.Errorf("client %s's key signed in as client %s's visitor (same entity_id %v); reading A's conversation: %d %.200s",
			b.client, a.client, bob.Str("entity_id") == alice.Str("entity_id"), got.Status, got.Raw)
	}
	// …and B's token rewrote what agents see of A's visitor.
	ag := e.Do("GET", "/api/v1/conversations/"+convID, nil, a.admin)
	if cust, _ := ag.Body["customer"].(map[string]any); cust["name"] != "Alice (site A)" {
		t.Errorf("site B's identity token renamed site A's visitor: %v", ag.Body["customer"])
	}
}

// hookStore runs after once, right after the token's jti was spent: the
// moment between verification (the key was read) and the session start.
type hookStore struct {
	identity.Store
	once  sync.Once
	after func()
}

func (h *hookStore) UseJTI(ctx context.Context, clientID, jti string, exp time.Time) error {
	err := h.Store.UseJTI(ctx, clientID, jti, exp)
	h.once.Do(h.after)
	return err
}

// RI2: deleting an identity key (a leaked key: docs/identity.md §4 says
// delete it at once) does not reliably end the sessions it signs. A
// sign-in that verified with the key just before the delete starts its
// session (parent identity:<client>:<kid>) just after the delete revoked
// that parent's families, so it lives on, refreshable forever. Whoever
// holds the leaked key only has to keep signing in while the admin
// deletes it.
func TestReviewIdentityKeyDeleteRacesSignIn(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, leaked := identifiedWorld(t, e)
		v := e.App.Server.Identity
		deleted := 0
		v.Store = &hookStore{Store: v.Store, after: func() {
			// The admin's DELETE lands here, and completes.
			deleted = e.Do("DELETE", "/api/v1/oauth/clients/"+w.client+"/identity_keys/"+leaked.kid, nil, w.admin).Status
		}}
		in := leaked.login(leaked.sign(t, "victim", nil))
		if deleted != 204 {
			t.Fatalf("the key was not deleted: %d", deleted)
		}
		if in.Status != 200 {
			t.Skipf("the racing sign-in was refused (%d %s): fixed", in.Status, in.Raw)
		}
		time.Sleep(600 * time.Millisecond) // past every poll interval
		me := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(in.Str("access_token")))
		ref := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": in.Str("refresh_token")})
		if me.Status == 200 || ref.Status == 200 {
			t.Errorf("a session signed by an identity key outlives the key's deletion: /me %d, refresh %d (idf %v)",
				me.Status, ref.Status, claimsOf(t, ref.Str("access_token"))["idf"])
		}
	})
}

// RI3: the jwks_uri cache answers its last fetch error, not the key set it
// holds, for 30 s after a failed fetch, and fetches with the request's
// context. So an anonymous caller who sends any identity token naming the
// client once the cached set is older than 10 minutes, and hangs up while
// chatauth fetches, makes every identified sign-in of that client fail
// for the next 30 s; repeated, it keeps a site's users out of the chat.
// (A single 5xx or slow answer of the site does the same.)
func TestReviewIdentityJWKSAbortedFetchLocksOutSite(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := map[string]any{"keys": []any{jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "rsa-1", Use: "sig"}}}
	var stall atomic.Bool
	stalled := make(chan struct{}, 1)
	jwks := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if stall.Load() {
			select {
			case <-r.Context().Done(): // chatauth gave up: its caller hung up
			case <-time.After(5 * time.Second):
			}
			stalled <- struct{}{}
			return
		}
		json.NewEncoder(rw).Encode(set)
	}))
	defer jwks.Close()
	j := e.App.Server.Identity.JWKS
	j.Client = jwks.Client()
	var skew atomic.Int64
	j.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }

	w := newCustomerWorld(t, e)
	expect(t, e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"jwks_uri": jwks.URL + "/jwks"}, w.admin), 201, "")
	s := site{w: w, kid: "rsa-1", priv: rk, method: jwt.SigningMethodRS256}
	expect(t, s.login(s.sign(t, "user-1", nil)), 200, "")

	skew.Store(int64(11 * time.Minute)) // the cached set is past its 10 minutes
	stall.Store(true)
	// The attacker: any token for the client (here a garbage one with a
	// made-up kid), and hangs up after 300 ms.
	junk := site{w: w, kid: "made-up", secret: "x", method: jwt.SigningMethodHS256}
	body, _ := json.Marshal(map[string]any{"client_id": w.client, "response_type": "token", "identity_token": junk.sign(t, "x", nil)})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "POST", e.Srv.URL+"/customer/token", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
	cancel()
	select {
	case <-stalled:
	case <-time.After(6 * time.Second):
		t.Fatal("chatauth did not fetch the key set")
	}
	stall.Store(false)
	time.Sleep(100 * time.Millisecond)

	// A real user of the site, a moment later: the site is up and the set
	// chatauth holds has the key.
	r := s.login(s.sign(t, "user-1", nil))
	if r.Status != 200 {
		t.Errorf("one aborted request locks the site's users out: %d %s", r.Status, r.Raw)
	}
}

// RI4: the SSRF guard of jwks_uri fetches treats NAT64 (64:ff9b::/96),
// IPv4-compatible (::a.b.c.d) and 6to4 (2002::/16) addresses, 0.0.0.0/8
// and 198.18.0.0/15 as public: on an IPv6-only host behind NAT64 (the
// usual cloud setup), https://[64:ff9b::a00:5]/ is 10.0.0.5.
func TestReviewIdentityJWKSEmbeddedIPv4NotRefused(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCustomerWorld(t, e)
	for _, host := range []string{"[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[::127.0.0.1]", "[2002:7f00:1::1]", "0.1.2.3", "198.18.0.1"} {
		r := e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"jwks_uri": "https://" + host + ":9/jwks"}, w.admin)
		if !strings.Contains(r.Str("message"), "not a public address") {
			t.Errorf("jwks_uri host %s was dialed (not refused as non-public): %d %s", host, r.Status, r.Str("message"))
		}
	}
}

// RI6: an identity token's name may hold NUL (JSON "\u0000"): PostgreSQL
// refuses it in customers.name and the sign-in answers 500 (after its jti
// was spent). Every other text field of the token is checked for NUL.
func TestReviewIdentityNameNULIs500(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		_, s := identifiedWorld(t, e)
		// First sign-in (CreateCustomer), then a second one (UpdateCustomer).
		for _, sub := range []string{"nul-new", "nul-new"} {
			r := s.login(s.sign(t, sub, map[string]any{"name": "Ada\x00Lovelace"}))
			if r.Status >= 500 {
				t.Errorf("identity token with NUL in name: %d %s", r.Status, r.Raw)
			}
		}
		expect(t, s.login(s.sign(t, "nul-new", nil)), 200, "")
		r := s.login(s.sign(t, "nul-old", nil))
		expect(t, r, 200, "")
		r = s.login(s.sign(t, "nul-old", map[string]any{"name": "\x00"}))
		if r.Status >= 500 {
			t.Errorf("identity token with NUL in name (known visitor): %d %s", r.Status, r.Raw)
		}
	})
}

// RI7: anyone who knows the public client_id learns the client's key ids,
// its jwks_uri and chatauth's network error while fetching it, from the
// refusal of any made-up token (docs/security.md I4: strangers learn
// nothing about a credential). Harmless kids today, but the HS256 kid is
// also the handle the signer's config pairs with the secret.
func TestReviewIdentityRefusalListsKeys(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w, s := identifiedWorld(t, e)
	stranger := site{w: w, kid: "guess", secret: "x", method: jwt.SigningMethodHS256}
	r := stranger.login(stranger.sign(t, "u", nil))
	want(t, "made-up kid", r, 401, shared.ErrInvalidIdentity)
	if strings.Contains(r.Str("message"), s.kid) {
		t.Errorf("an unauthenticated refusal lists the client's identity keys: %s", r.Str("message"))
	}
	stranger.kid = ""
	r = stranger.login(stranger.sign(t, "u", nil))
	if strings.Contains(r.Str("message"), s.kid) {
		t.Errorf("an unauthenticated refusal lists the client's identity keys: %s", r.Str("message"))
	}
}

// RI8: POST /customer/logout looks up any refresh_token it is sent, and a
// wrong one is never counted (docs/security.md I5: every secret guess is
// throttled; the token debugger counts wrong ccr_ guesses per IP). The
// same holds for the refresh_token beside an identity_token, which is
// looked up and silently ignored when wrong.
func TestReviewIdentityLogoutGuessesNotThrottled(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	last := 0
	for i := 0; i < 60; i++ {
		last = e.Do("POST", "/customer/logout", map[string]any{"refresh_token": "ccr_" + strings.Repeat("A", 40) + strconv.Itoa(i)}).Status
	}
	if last != 429 {
		t.Errorf("60 wrong refresh tokens at /customer/logout from one address, the last answered %d (not 429)", last)
	}
}

// RI9: a spent anonymous refresh token presented beside an identity token
// is ignored, not treated as reuse (docs/security.md I3: a spent token
// presented again ends the line). A thief who tries to merge a stolen,
// already-rotated token into their own identified account leaves the
// victim's session (and the thief's live copy, if any) running.
func TestReviewIdentityMergeSpentTokenIsNotReuse(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"})
	w, s := identifiedWorld(t, e)
	victim := w.visitorToken(map[string]any{"response_type": "token"})
	expect(t, victim, 200, "")
	spent := victim.Str("refresh_token")
	next := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": spent})
	expect(t, next, 200, "")
	time.Sleep(10 * time.Millisecond)
	thief := w.visitorToken(map[string]any{"response_type": "token", "identity_token": s.sign(t, "thief", nil), "refresh_token": spent})
	expect(t, thief, 200, "")
	time.Sleep(600 * time.Millisecond)
	if r := e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(next.Str("access_token"))); r.Status == 200 {
		t.Errorf("a spent refresh token presented with an identity token did not end its family (the family's current token still works)")
	}
}

// RI10: a key removed from a jwks_uri set (the site's answer to a leak,
// docs/identity.md section 4: "do the same inside your key set") keeps
// every session it started: those sessions' parent is the jwks_uri record
// (identity:<client>:set_…), not the set's key, and nothing revokes them
// when a fetch no longer holds the key. Only deleting the whole jwks_uri
// record, which logs out every user of the site, ends them.
func TestReviewIdentityJWKSRemovedKeyKeepsSessions(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	leaked, _ := rsa.GenerateKey(rand.Reader, 2048)
	fresh, _ := rsa.GenerateKey(rand.Reader, 2048)
	var mu sync.Mutex
	set := map[string]any{"keys": []any{jose.JSONWebKey{Key: &leaked.PublicKey, KeyID: "leaked", Use: "sig"}}}
	jwks := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		json.NewEncoder(rw).Encode(set)
	}))
	defer jwks.Close()
	e.App.Server.Identity.JWKS.Client = jwks.Client()
	w := newCustomerWorld(t, e)
	expect(t, e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"jwks_uri": jwks.URL + "/jwks"}, w.admin), 201, "")
	attacker := site{w: w, kid: "leaked", priv: leaked, method: jwt.SigningMethodRS256}
	stolen := attacker.login(attacker.sign(t, "ceo", nil))
	expect(t, stolen, 200, "")

	// The site rotates the leaked key out of its set; chatauth fetches the
	// new set (a token names the new kid).
	mu.Lock()
	set = map[string]any{"keys": []any{jose.JSONWebKey{Key: &fresh.PublicKey, KeyID: "fresh", Use: "sig"}}}
	mu.Unlock()
	site2 := site{w: w, kid: "fresh", priv: fresh, method: jwt.SigningMethodRS256}
	expect(t, site2.login(site2.sign(t, "ceo", nil)), 200, "")
	want(t, "the leaked key, after the rotation", attacker.login(attacker.sign(t, "ceo", nil)), 401, shared.ErrInvalidIdentity)

	time.Sleep(600 * time.Millisecond)
	if r := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": stolen.Str("refresh_token")}); r.Status == 200 {
		t.Errorf("the session a removed jwks key signed goes on (refresh %d, idf %v)", r.Status, claimsOf(t, r.Str("access_token"))["idf"])
	}
}

// RI11: the merge takes the cookie's session as proof of the anonymous
// visitor when it is merely not revoked: past its hard end (a vouched
// visitor whose voucher expired) it still moves that visitor's open
// conversations into whoever signs in. The cookie path itself refuses
// such a session (customerauth.Continue, docs/security.md I1: "the cookie
// of a vouched answer is worth no more than the voucher").
func TestReviewIdentityMergeByExpiredVouchedCookie(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w, s := identifiedWorld(t, e)
	// A visitor the site's backend vouched for with a short-lived PAT.
	first := w.visitorToken(map[string]any{"response_type": "token"})
	expect(t, first, 200, "")
	entity := first.Str("entity_id")
	pat := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "vouch", "scopes": []string{"read", "write", "chat"}, "expires_in": 2}, w.admin)
	expect(t, pat, 201, "")
	v := w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}, basic(1, pat.Str("token")))
	expect(t, v, 200, "")
	conv := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(v.Str("access_token")))
	expect(t, conv, 201, "")
	convID := strconv.Itoa(int(conv.Body["id"].(float64)))
	expect(t, e.Do("POST", "/customer/api/v1/conversations/"+convID+"/messages", map[string]any{"content": "vouched visitor's words"}, apptest.Bearer(v.Str("access_token"))), 201, "")
	// Its first, anonymous session ends (signed out): only the vouched one is left.
	expect(t, e.Do("POST", "/customer/logout", map[string]any{"refresh_token": first.Str("refresh_token")}), 204, "")

	time.Sleep(2500 * time.Millisecond) // the PAT, and so the vouched session, is over
	cookie := "Cookie: " + cookieOf(v)
	cont := w.visitorToken(map[string]any{"response_type": "token", "entity_id": entity}, cookie)
	want(t, "the vouched cookie after its voucher expired", cont, 404, "not_found")

	in := s.login(s.sign(t, "someone", nil), cookie)
	expect(t, in, 200, "")
	if got := e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(in.Str("access_token"))); got.Status == 200 {
		t.Errorf("the cookie of an expired vouched session moved that visitor's conversation into an identified visitor: %.160s", got.Raw)
	}
}
