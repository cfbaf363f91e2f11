package httpapi_test

// The second attacker's review of the DPoP support (docs/dpop.md,
// RFC 9449), after the fixes of dpop_review_test.go: each test reproduces
// one finding and fails while it is open.

import (
	"net/url"
	"testing"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// Finding 1. The fix of "sign-out takes a bound session without its key"
// (TestDPoPReviewLogoutByLiftedBoundRefreshToken) covers /customer/logout
// only. /oauth/revoke takes the same lifted token from anyone who names
// the widget's public client_id (published in every page that embeds
// it), without a proof, and ends the victim's bound session; the same
// for a bound OAuth grant of a public client.
func TestDPoPReview2RevokeEndsBoundSessionWithoutKey(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		revoke := func(tok, client string) apptest.Response {
			return e.Do("POST", "/oauth/revoke", url.Values{"token": {tok}, "client_id": {client}}.Encode(), "Content-Type: application/x-www-form-urlencoded")
		}

		// A visitor's bound refresh token, lifted out of IndexedDB.
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, nonce := boundVisitor(t, w, k)
		revoke(v.Str("refresh_token"), w.client)
		if r := rvRefresh(t, w, v.Str("refresh_token"), &k, nonce); r.Status != 200 {
			t.Errorf("/oauth/revoke with the widget's client_id and a lifted bound refresh token, no proof, ended the visitor's session: their refresh is %d %s", r.Status, redact(r.Raw))
		}

		// The bound access token, lifted out of memory.
		v2, _ := boundVisitor(t, w, k)
		revoke(v2.Str("access_token"), w.client)
		if r := rvDo(t, e, k, "GET", "/customer/api/v1/me", v2.Str("access_token"), nil); r.Status != 200 {
			t.Errorf("/oauth/revoke with a lifted bound access token, no proof, ended the visitor's session: /me is %d %s", r.Status, redact(r.Raw))
		}

		// A bound OAuth grant of a public client (an SPA with PKCE + DPoP).
		o := newOAuthWorld(t, e)
		tok := rvCodeGrant(t, o, e)
		kk := newDPoPKey(t)
		bound := rvOAuthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {o.public}}, &kk, "")
		expect(t, bound, 200, "")
		if bound.Str("token_type") != "DPoP" {
			t.Fatalf("bound grant: %s", redact(bound.Raw))
		}
		revoke(bound.Str("refresh_token"), o.public)
		if r := rvOAuthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bound.Str("refresh_token")}, "client_id": {o.public}}, &kk, ""); r.Status != 200 {
			t.Errorf("/oauth/revoke with a lifted bound OAuth refresh token, no proof, ended the app's grant: refresh with the key is %d %s", r.Status, redact(r.Raw))
		}
	})
}

// Finding 2. The fix of "the token debugger answers for a lifted bound
// token" (TestDPoPReviewTokenInfoLiftedBoundToken) covers access tokens
// only: a lifted bound refresh token in the debugger's header is answered
// valid, with the visitor's entity_id, organization, client and expiry
// (and likewise a bound OAuth refresh token), without a proof. The
// credential core does not carry a refresh family's key (Inspector.refresh
// leaves Cnf empty), so tokeninfo.inspect sees it as unbound.
func TestDPoPReview2TokenInfoLiftedBoundRefreshToken(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, _ := boundVisitor(t, w, k)
		r := e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(v.Str("refresh_token")))
		if r.Body["valid"] == true {
			t.Errorf("token/info: a lifted bound visitor refresh token without a proof is valid: subject %v organization %v client %v expires %v",
				r.Body["subject"], r.Body["organization"], r.Body["client_id"], r.Body["expires_at"])
		}
		o := newOAuthWorld(t, e)
		tok := rvCodeGrant(t, o, e)
		bound := rvOAuthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {o.public}}, &k, "")
		expect(t, bound, 200, "")
		r = e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(bound.Str("refresh_token")))
		if r.Body["valid"] == true {
			t.Errorf("token/info: a lifted bound OAuth refresh token without a proof is valid: subject %v scopes %v", r.Body["subject"], r.Body["scopes"])
		}
	})
}

// Finding 3. The fix of "proof ids stored before client authentication"
// (TestDPoPReviewProofStoredBeforeClientAuth) covers /oauth/token only.
// POST /customer/token checks and stores the proof (tokenProof) before it
// looks at the request: a request with an invalid body (an unknown
// refresh token, a wrong response_type) stores a dpop_jtis row each time,
// from a stranger who needs nothing but a widget's public client_id and
// the public nonce, unthrottled (the new-visitor limit comes later), and
// kept until the next purge (up to 10 minutes after its 6). Fixed:
// malformed requests are refused before the proof; well-formed refused
// ones keep their proof id (a later review showed a forgotten one replays
// with another body: TestReview3RefusedProofReplaysWithAnotherBody) and
// are counted per client IP.
func TestDPoPReview2CustomerTokenStoresProofOfRefusedRequest(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCustomerWorld(t, e)
	count := func() int {
		var n int
		if err := e.App.Store.SQL().QueryRow("SELECT COUNT(*) FROM dpop_jtis").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	k := newDPoPKey(t)
	nonce := rvNonce(t, w, k)
	send := func(body map[string]any) apptest.Response {
		return w.visitorToken(body, "DPoP: "+newDPoPKey(t).proof(t, "POST", "/customer/token", "", nonce, nil))
	}
	// A malformed request is refused before its proof is looked at.
	was := count()
	for range 5 {
		if r := send(map[string]any{"response_type": "nope"}); r.Status != 400 {
			t.Fatalf("malformed: %d %s", r.Status, r.Raw)
		}
	}
	if n := count(); n != was {
		t.Fatalf("5 malformed requests stored %d proof ids", n-was)
	}
	// A well-formed one that is refused keeps its proof id (a proof does
	// not sign the body: forgotten, it would be taken again with
	// another), but one address gets to store only so many.
	const perMinute = 60 // httpapi.refusedProofsPerMinute
	limited := 0
	for range perMinute + 10 {
		r := send(map[string]any{"grant_type": "refresh_token", "refresh_token": "ccr_" + uniq("nosuchtoken")})
		switch r.Status {
		case 401, 400:
		case 429:
			limited++
		default:
			t.Fatalf("unknown refresh token: %d %s", r.Status, r.Raw)
		}
	}
	if n := count() - was; n > perMinute || limited < 10 {
		t.Fatalf("%d refused requests stored %d proof ids (%d throttled); want at most %d", perMinute+10, n, limited, perMinute)
	}
}
