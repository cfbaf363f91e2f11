package httpapi_test

// The third attacker's review of the DPoP support (docs/dpop.md,
// RFC 9449), after dpop_review2_test.go's fixes: each test reproduced
// one finding and failed while it was open; both are fixed.

import (
	"strconv"
	"testing"
	"time"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// Finding 1. customerToken forgets the jti of every refused request
// (Checker.Forget), but a DPoP proof signs only htm, htu, iat (and the
// nonce), never the body. So a proof the victim's browser sent in a
// request that was refused for a body reason (a stale identity token, a
// refresh token from storage that no longer works, the new-visitor limit)
// is accepted again, for 5 minutes, with ANY other body. A thief who has
// that one proof and the victim's lifted bound refresh token (both out of
// a proxy log, say) signs in as their own site user with the victim's
// refresh token beside it: the proof proves the victim's key, so
// customerauth.adopt moves the victim's bound anonymous session into the
// thief's identified visitor, which the thief then opens with a key of
// their own. Before the Forget, the victim's refused request spent the jti.
func TestReview3RefusedProofReplaysWithAnotherBody(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, s := identifiedWorld(t, e)
		k := newDPoPKey(t)
		v, nonce := boundVisitor(t, w, k)
		tok := v.Str("access_token")
		conv := rvDo(t, e, k, "POST", "/customer/api/v1/conversations", tok, map[string]any{"subject": "refund"})
		expect(t, conv, 201, "")
		id := strconv.Itoa(int(conv.Body["id"].(float64)))
		expect(t, rvDo(t, e, k, "POST", "/customer/api/v1/conversations/"+id+"/messages", tok, map[string]any{"content": "my card ends 4242"}), 201, "")

		// The victim's browser signs in on the site, with an identity token
		// that has just expired: refused after the proof was checked.
		proof := k.proof(t, "POST", "/customer/token", "", nonce, nil)
		stale := s.sign(t, "victim", map[string]any{"iat": time.Now().Add(-10 * time.Minute).Unix(), "exp": time.Now().Add(-time.Minute).Unix()})
		refused := w.visitorToken(map[string]any{"response_type": "token", "identity_token": stale}, "DPoP: "+proof)
		if refused.Status < 400 {
			t.Fatalf("the stale identity token was accepted: %d %s", refused.Status, redact(refused.Raw))
		}

		// The thief replays that very proof with another body.
		replay := w.visitorToken(map[string]any{"response_type": "token", "identity_token": s.sign(t, "mallory", nil), "refresh_token": v.Str("refresh_token")}, "DPoP: "+proof)
		if replay.Status == 200 {
			t.Errorf("a proof the server had already checked (its request refused) was accepted again with another body: %s", redact(replay.Raw))
		}
		// ... and opens the adopted conversation as their own site user.
		mine := s.login(s.sign(t, "mallory", nil))
		expect(t, mine, 200, "")
		if got := e.Do("GET", "/customer/api/v1/conversations/"+id, nil, apptest.Bearer(mine.Str("access_token"))); got.Status == 200 {
			t.Errorf("the replayed proof carried the victim's bound conversation into the thief's account: %s", redact(got.Raw))
		}
	})
}

// Finding 2. The token debugger still tells a thief whether a lifted
// bound refresh token is live, and when its owner last used it: a live
// one is answered "this token is bound to a DPoP key", the same token once
// its owner has refreshed "already used N seconds ago", once revoked
// "revoked ... (reason)", an unknown one "unknown refresh token". The
// binding is only looked at for a token that works (Inspector.refresh
// returns *Invalid, without the family's key, for the others), so the
// rule of tokeninfo.inspect ("lifted out of the page, it is worth
// nothing, not even an answer that it is live") holds for none of them.
func TestReview3TokenInfoTellsLiftedBoundTokenIsLive(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, nonce := boundVisitor(t, w, k)
		rt := v.Str("refresh_token")
		ask := func() string {
			r := e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(rt))
			if r.Body["valid"] == true {
				t.Fatalf("a lifted bound refresh token is valid without a proof: %s", redact(r.Raw))
			}
			reason, _ := r.Body["reason"].(string)
			return reason
		}
		live := ask()
		expect(t, rvRefresh(t, w, rt, &k, nonce), 200, "")
		spent := ask()
		if live != spent {
			t.Errorf("without the key, the debugger tells a live bound refresh token (%q) from a spent one (%q)", live, spent)
		}
	})
}
