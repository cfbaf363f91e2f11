package httpapi_test

// The attacker's review of the DPoP support (docs/dpop.md, RFC 9449): each
// test reproduces one finding, fixed since, and keeps it fixed.

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"chatauth/backend/apptest"
	"chatauth/backend/dpop/dpoptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// rvNonce is the server's current nonce, as the SDK learns it.
func rvNonce(t *testing.T, w *customerWorld, k dpopKey) string {
	t.Helper()
	r := w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+k.proof(t, "POST", "/customer/token", "", "", nil))
	n := r.Header.Get("DPoP-Nonce")
	if n == "" {
		t.Fatalf("no DPoP-Nonce: %d %s", r.Status, r.Raw)
	}
	return n
}

// rvRefresh is the SDK's refresh with a proof of k (nil: no proof).
func rvRefresh(t *testing.T, w *customerWorld, rt string, k *dpopKey, nonce string) apptest.Response {
	t.Helper()
	var h []string
	if k != nil {
		h = append(h, "DPoP: "+k.proof(t, "POST", "/customer/token", "", nonce, nil))
	}
	return w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": rt}, h...)
}

// rvDo calls a resource with a bound token and a fresh proof of k.
func rvDo(t *testing.T, e *apptest.Env, k dpopKey, method, path, tok string, body any) apptest.Response {
	t.Helper()
	return e.Do(method, path, body, "Authorization: DPoP "+tok, "DPoP: "+k.proof(t, method, path, tok, "", nil))
}

func rvBasic(id, secret string) string {
	req, _ := http.NewRequest("POST", "/", nil)
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return "Authorization: " + req.Header.Get("Authorization")
}

// rvOAuthToken posts form to /oauth/token with a proof of k (when set),
// retrying once with the server's nonce; auth is an Authorization header
// or "".
func rvOAuthToken(t *testing.T, e *apptest.Env, form url.Values, k *dpopKey, auth string) apptest.Response {
	t.Helper()
	do := func(nonce string) apptest.Response {
		h := []string{"Content-Type: application/x-www-form-urlencoded"}
		if auth != "" {
			h = append(h, auth)
		}
		if k != nil {
			h = append(h, "DPoP: "+k.proof(t, "POST", "/oauth/token", "", nonce, nil))
		}
		return e.Do("POST", "/oauth/token", form.Encode(), h...)
	}
	r := do("")
	if r.Str("error") == "use_dpop_nonce" {
		r = do(r.Header.Get("DPoP-Nonce"))
	}
	return r
}

// rvCodeGrant runs code + PKCE for the public client without a proof: an
// unbound (bearer) grant, as before DPoP or from a client without it.
func rvCodeGrant(t *testing.T, w *oauthWorld, e *apptest.Env) *oauth2.Token {
	t.Helper()
	conf := w.config(w.public, "", "read", "chat")
	verifier := oauth2.GenerateVerifier()
	back := newBrowser(t, e).authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	tok, err := conf.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Finding 1. The identity path's merge takes a lifted BOUND refresh token
// without its key: whoever has a site account (an identity token of their
// own) and the victim's refresh token moves the victim's open
// conversations into their own identified visitor, and ends the victim's
// session (customerauth.adopt ignores fam.JKT).
func TestDPoPReviewMergeTakesBoundSessionWithoutKey(t *testing.T) {
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

		// The thief: the lifted refresh token (no key) and their own site user.
		in := w.visitorToken(map[string]any{"response_type": "token", "identity_token": s.sign(t, "mallory", nil), "refresh_token": v.Str("refresh_token")})
		expect(t, in, 200, "")
		got := e.Do("GET", "/customer/api/v1/conversations/"+id, nil, apptest.Bearer(in.Str("access_token")))
		if got.Status == 200 {
			t.Errorf("a bound refresh token without its key moved the victim's conversation to the thief: %s", redact(got.Raw))
		}
		if r := rvRefresh(t, w, v.Str("refresh_token"), &k, nonce); r.Status != 200 {
			t.Errorf("a keyless presenter ended the victim's bound session: %d %s", r.Status, redact(r.Raw))
		}
	})
}

// Finding 2. Binding an unbound session on its first proof lets the thief
// of an unbound refresh token take the session over for good: the thief's
// refresh binds the family to the thief's key; the victim's next refresh,
// with the spent token, is refused as "another key" BEFORE reuse detection
// (RotateIf runs the check first), so the family is never revoked. Without
// DPoP the same theft ends at the victim's refresh (docs/security.md, I3).
func TestDPoPReviewBindingHijackDefeatsReuseDetection(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_REFRESH_GRACE": "1ms"})
		w := newCustomerWorld(t, e)
		before := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, before, 200, "")
		conv := e.Do("POST", "/customer/api/v1/conversations", map[string]any{"subject": "order"}, apptest.Bearer(before.Str("access_token")))
		expect(t, conv, 201, "")
		id := strconv.Itoa(int(conv.Body["id"].(float64)))
		// The site switches its widget to DPoP; the visitor's session is kept.
		expect(t, e.Do("PATCH", "/api/v1/oauth/clients/"+w.client, map[string]any{"dpop": "required"}, w.admin), 200, "")

		thief, victim := newDPoPKey(t), newDPoPKey(t)
		nonce := rvNonce(t, w, thief)
		stolen := rvRefresh(t, w, before.Str("refresh_token"), &thief, nonce)
		expect(t, stolen, 200, "")
		time.Sleep(20 * time.Millisecond) // past the grace
		// The visitor's SDK, with its own key, refreshes with the token it
		// holds, which the thief spent: that is reuse.
		vr := rvRefresh(t, w, before.Str("refresh_token"), &victim, nonce)
		if vr.Status == 200 {
			t.Fatalf("the spent token was taken: %s", redact(vr.Raw))
		}
		next := rvRefresh(t, w, stolen.Str("refresh_token"), &thief, nonce)
		if next.Status == 200 {
			read := rvDo(t, e, thief, "GET", "/customer/api/v1/conversations/"+id, next.Str("access_token"), nil)
			t.Fatalf("the thief's session survived the victim's reuse of the spent token (victim got %d %s); the thief still reads the conversation: %d",
				vr.Status, vr.Str("error"), read.Status)
		}
	})
}

// Finding 3. BindFamily runs outside the rotation's transaction and bind()
// sets fam.JKT whether or not the UPDATE bound anything: two refreshes of
// one unbound token that race (the grace replay hands both the same
// successor) are answered with access tokens bound to two different keys.
func TestDPoPReviewBindRaceTwoKeys(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		seen := map[string]bool{}
		for round := 0; round < 5 && len(seen) < 2; round++ {
			v := w.visitorToken(map[string]any{"response_type": "token"})
			expect(t, v, 200, "")
			const n = 8
			keys := make([]dpopKey, n)
			for i := range keys {
				keys[i] = newDPoPKey(t)
			}
			nonce := rvNonce(t, w, keys[0])
			proofs := make([]string, n)
			for i := range proofs {
				proofs[i] = keys[i].proof(t, "POST", "/customer/token", "", nonce, nil)
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			seen = map[string]bool{}
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					r := w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": v.Str("refresh_token")}, "DPoP: "+proofs[i])
					if r.Status != 200 {
						return
					}
					cnf, _ := claimsOf(t, r.Str("access_token"))["cnf"].(map[string]any)
					mu.Lock()
					seen[cnf["jkt"].(string)] = true
					mu.Unlock()
				}(i)
			}
			wg.Wait()
		}
		if len(seen) > 1 {
			t.Fatalf("one session's racing refreshes were bound to %d different keys", len(seen))
		}
	})
}

// Finding 4. Downgrade: the implicit grant of /oauth/authorize issues a
// bearer token to a client that requires DPoP (only /customer/authorize
// refuses), and the agent API takes it.
func TestDPoPReviewImplicitGrantOfRequiredClient(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		expect(t, e.Do("PATCH", "/api/v1/oauth/clients/"+w.public, map[string]any{"dpop": "required"}, w.admin), 200, "")
		back := newBrowser(t, e).authorize("/oauth/authorize?response_type=token&client_id=" + url.QueryEscape(w.public) + "&redirect_uri=" + url.QueryEscape(redirectURI) + "&scope=read+chat&state=s")
		frag, _ := url.ParseQuery(back.Fragment)
		if at := frag.Get("access_token"); at != "" {
			r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(at))
			t.Fatalf("a DPoP-required client got an implicit token_type=%s token, and the agent API answered it %d", frag.Get("token_type"), r.Status)
		}
	})
}

// Finding 5. The agent API takes unbound OAuth tokens of a client that
// requires DPoP (authenticateAgent passes clientRequires=false), where the
// customer API refuses them.
func TestDPoPReviewAgentAPIUnboundTokenOfRequiredClient(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		tok := rvCodeGrant(t, w, e)
		expect(t, e.Do("PATCH", "/api/v1/oauth/clients/"+w.public, map[string]any{"dpop": "required"}, w.admin), 200, "")
		r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(tok.AccessToken))
		if r.Status == 200 {
			t.Fatal("the agent API took an unbound token of a client that requires DPoP")
		}
	})
}

// Finding 6. The OAuth refresh of an unbound grant with a proof issues a
// bound access token but leaves the grant unbound (no BindFamily, unlike
// the customer path): its refresh tokens keep working with any key, or
// none, which RFC 9449, section 5 forbids for public clients.
func TestDPoPReviewOAuthRefreshLeavesGrantUnbound(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		tok := rvCodeGrant(t, w, e)
		a, b := newDPoPKey(t), newDPoPKey(t)
		r := rvOAuthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {w.public}}, &a, "")
		expect(t, r, 200, "")
		if r.Str("token_type") != "DPoP" {
			t.Fatalf("refresh with a proof: %s", redact(r.Raw))
		}
		other := rvOAuthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.Str("refresh_token")}, "client_id": {w.public}}, &b, "")
		if other.Status == 200 {
			t.Fatalf("the grant refreshed with key A was refreshed with key B: token_type %s", other.Str("token_type"))
		}
	})
}

// Finding 7. The token debugger answers for a lifted bound token sent as
// Bearer ("whoever sends it holds it" no longer holds), and cannot inspect
// it the right way (Authorization: DPoP with a proof).
func TestDPoPReviewTokenInfoLiftedBoundToken(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, _ := boundVisitor(t, w, k)
		tok := v.Str("access_token")
		r := e.Do("GET", "/api/v1/token/info", nil, apptest.Bearer(tok))
		if r.Body["valid"] == true {
			t.Errorf("token/info: a bound token sent as Bearer without its key is valid, subject %v organization %v", r.Body["subject"], r.Body["organization"])
		}
		r = rvDo(t, e, k, "GET", "/api/v1/token/info", tok, nil)
		if r.Body["valid"] != true {
			t.Errorf("token/info: the bound token with its proof is not understood: %s", redact(r.Raw))
		}
	})
}

// Finding 8. Introspection does not convey the binding (RFC 9449, section
// 6.2: cnf.jkt, token_type DPoP), so a resource server that introspects
// takes a lifted bound token as a bearer token.
func TestDPoPReviewIntrospectionOmitsCnf(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		k := newDPoPKey(t)
		auth := rvBasic(w.confidential, w.secret)
		r := rvOAuthToken(t, e, url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}, &k, auth)
		expect(t, r, 200, "")
		if r.Str("token_type") != "DPoP" {
			t.Fatalf("client credentials with a proof: %s", redact(r.Raw))
		}
		in := e.Do("POST", "/oauth/introspect", url.Values{"token": {r.Str("access_token")}}.Encode(), "Content-Type: application/x-www-form-urlencoded", auth)
		if in.Body["active"] != true {
			t.Fatalf("introspection: %s", redact(in.Raw))
		}
		cnf, _ := in.Body["cnf"].(map[string]any)
		if cnf["jkt"] != k.jkt {
			t.Fatalf("introspection of a DPoP-bound token has no cnf.jkt (token_type %v): %s", in.Body["token_type"], redact(in.Raw))
		}
	})
}

// Finding 9. POST /customer/logout takes a lifted bound refresh token
// without its key and ends the victim's session.
func TestDPoPReviewLogoutByLiftedBoundRefreshToken(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		k := newDPoPKey(t)
		v, nonce := boundVisitor(t, w, k)
		out := e.Do("POST", "/customer/logout", map[string]any{"refresh_token": v.Str("refresh_token")}, "Origin: "+shop)
		r := rvRefresh(t, w, v.Str("refresh_token"), &k, nonce)
		if r.Status != 200 {
			t.Fatalf("a keyless presenter of the bound refresh token signed the visitor out (logout %d); the key's refresh: %d %s", out.Status, r.Status, redact(r.Raw))
		}
	})
}

// Finding 10. /oauth/token has no CORS: a browser public client (the
// RFC 9449 use case docs/dpop.md names) cannot send its DPoP header
// (preflight) nor read DPoP-Nonce.
func TestDPoPReviewOAuthTokenPreflight(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	newOAuthWorld(t, e)
	r := e.Do("OPTIONS", "/oauth/token", nil, "Origin: https://app.example.com", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: dpop")
	if r.Status >= 300 || !strings.Contains(strings.ToLower(r.Header.Get("Access-Control-Allow-Headers")), "dpop") || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("preflight of /oauth/token with a DPoP header: %d allow-origin %q allow-headers %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"), r.Header.Get("Access-Control-Allow-Headers"))
	}
}

// Finding 11. /oauth/token verifies the proof and stores its jti before
// it authenticates the client: any stranger writes dpop_jtis rows at the
// rate it sends requests, with a client_id that does not exist.
func TestDPoPReviewProofStoredBeforeClientAuth(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	count := func() int {
		var n int
		if err := e.App.Store.SQL().QueryRow("SELECT COUNT(*) FROM dpop_jtis").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	was := count()
	for i := 0; i < 5; i++ {
		k := newDPoPKey(t)
		r := rvOAuthToken(t, e, url.Values{"grant_type": {"client_credentials"}, "client_id": {"no-such-client"}, "client_secret": {"x"}}, &k, "")
		if r.Status < 400 {
			t.Fatalf("unknown client: %d", r.Status)
		}
	}
	if n := count(); n > was {
		t.Fatalf("requests of an unknown client stored %d proof ids", n-was)
	}
}

// Finding 12. A bound OAuth token cannot vouch for a visitor: tokenProof
// spends the request's one proof, then authenticateAgent checks the same
// proof again and refuses it as a replay.
func TestDPoPReviewBoundAgentTokenCannotVouch(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOAuthWorld(t, e)
		k := newDPoPKey(t)
		ctx := context.WithValue(w.ctx, oauth2.HTTPClient, &http.Client{Transport: &dpopTransport{t: t, k: k}})
		// Vouching needs the rights to write messages, and a first-party
		// credential: a client-credentials token of the organization's
		// own client. (An OAuth app's token never vouches.)
		cc := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Site backend", "client_type": "confidential", "scopes": []string{"read", "write", "chat"}}, w.admin)
		expect(t, cc, 201, "")
		ccConf := clientcredentials.Config{ClientID: cc.Str("client_id"), ClientSecret: cc.Str("client_secret"), TokenURL: e.Srv.URL + "/oauth/token", Scopes: []string{"read", "write", "chat"}}
		tok, err := ccConf.Token(ctx)
		if err != nil || tok.TokenType != "DPoP" {
			t.Fatalf("bound client-credentials token: %v %v", tok, err)
		}
		conf := w.config(w.public, "", "read", "write", "chat")
		verifier := oauth2.GenerateVerifier()
		back := newBrowser(t, e).authorize(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
		app, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil || app.TokenType != "DPoP" {
			t.Fatalf("bound grant: %v %v", app, err)
		}
		cw := newCustomerWorld(t, e)
		visitor := cw.visitorToken(map[string]any{"response_type": "token"})
		expect(t, visitor, 200, "")
		vouch := func(nonce string) apptest.Response {
			return cw.visitorToken(map[string]any{"response_type": "token", "entity_id": visitor.Str("entity_id")},
				"Authorization: DPoP "+tok.AccessToken, "DPoP: "+k.proof(t, "POST", "/customer/token", tok.AccessToken, nonce, nil))
		}
		r := vouch("")
		if r.Str("error") == "use_dpop_nonce" {
			r = vouch(r.Header.Get("DPoP-Nonce"))
		}
		if r.Status != 200 {
			t.Fatalf("vouching with a bound agent token and its proof: %d %s", r.Status, redact(r.Raw))
		}
		// The OAuth app's token, bound and proven as well, is refused.
		byApp := cw.visitorToken(map[string]any{"response_type": "token", "entity_id": visitor.Str("entity_id")},
			"Authorization: DPoP "+app.AccessToken, "DPoP: "+k.proof(t, "POST", "/customer/token", app.AccessToken, r.Header.Get("DPoP-Nonce"), nil))
		expect(t, byApp, 403, "forbidden")
	})
}

// Finding 13. JOSE rules the proof check misses: a "crit" header naming an
// extension nobody understands is accepted (RFC 7515, section 4.1.11: MUST
// reject); RS256 with a key under 2048 bits is accepted (RFC 7518, section
// 3.3: MUST be 2048 or larger); an RSA jwk carrying the private factors p
// and q passes as "public" (IsPublic looks at d only).
func TestDPoPReviewJOSERules(t *testing.T) {
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newCustomerWorld(t, e)
	k := newDPoPKey(t)
	nonce := rvNonce(t, w, k)
	crit := k.proof(t, "POST", "/customer/token", "", nonce, func(h, c map[string]any) { h["crit"] = []string{"x-unknown"}; h["x-unknown"] = true })
	if r := w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+crit); r.Status == 200 {
		t.Error("a proof with an unknown critical header was accepted")
	}
	rsaProof := func(bits int, withFactors bool) apptest.Response {
		rk := dpoptest.NewRSAKey(t, bits)
		p := dpoptest.Proof{Method: "POST", URL: issuer + "/customer/token", Nonce: nonce}
		if withFactors {
			priv := rk.Private.(*rsa.PrivateKey)
			p.Edit = func(h, c map[string]any) {
				m := maps.Clone(rk.JWK)
				m["p"] = base64.RawURLEncoding.EncodeToString(priv.Primes[0].Bytes())
				m["q"] = base64.RawURLEncoding.EncodeToString(priv.Primes[1].Bytes())
				h["jwk"] = m
			}
		}
		return w.visitorToken(map[string]any{"response_type": "token"}, "DPoP: "+rk.Sign(t, p))
	}
	if r := rsaProof(1024, false); r.Status == 200 {
		t.Error("RS256 with a 1024-bit key was accepted")
	}
	if r := rsaProof(2048, true); r.Status == 200 {
		t.Error("a jwk holding the RSA private factors p and q was accepted as a public key")
	}
}
