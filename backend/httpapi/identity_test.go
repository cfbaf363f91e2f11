package httpapi_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

// The identity tokens here are signed the way a site's backend signs
// them, with golang-jwt (docs/identity.md shows the same in Go, Node and
// Python), never with chatauth's own token code.

// site is a site with an identity key registered on a widget client.
type site struct {
	w      *customerWorld
	kid    string
	secret string // HS256
	priv   any    // ES256/EdDSA/RS256 private key
	method jwt.SigningMethod
}

func (w *customerWorld) hsKey(t *testing.T) site {
	t.Helper()
	r := w.e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"alg": "HS256"}, w.admin)
	expect(t, r, 201, "")
	if r.Str("kid") == "" || !strings.HasPrefix(r.Str("secret"), "ids_") || r.Str("alg") != "HS256" {
		t.Fatalf("HS256 key: %s", r.Raw)
	}
	return site{w: w, kid: r.Str("kid"), secret: r.Str("secret"), method: jwt.SigningMethodHS256}
}

// jwkKey registers the public half of priv as a JWK.
func (w *customerWorld) jwkKey(t *testing.T, priv any, pub any, kid string, method jwt.SigningMethod) site {
	t.Helper()
	j := jose.JSONWebKey{Key: pub, KeyID: kid}
	raw, err := j.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	r := w.e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"jwk": json.RawMessage(raw)}, w.admin)
	expect(t, r, 201, "")
	if r.Str("alg") != method.Alg() || r.Body["secret"] != nil {
		t.Fatalf("JWK key: %s", r.Raw)
	}
	return site{w: w, kid: r.Str("kid"), priv: priv, method: method}
}

// sign makes an identity token for sub, with claims overriding the
// defaults (a nil value removes a claim).
func (s site) sign(t *testing.T, sub string, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"sub": sub, "aud": s.w.client, "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": uniq("jti-")}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	tok := jwt.NewWithClaims(s.method, claims)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	var key any = s.priv
	if s.secret != "" {
		key = []byte(s.secret)
	}
	out, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (s site) login(tok string, headers ...string) apptest.Response {
	return s.w.visitorToken(map[string]any{"response_type": "token", "identity_token": tok}, headers...)
}

// claimsOf reads a customer access token's payload (the test trusts it:
// the server just issued it).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func TestIdentityKeyKinds(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)

		// HS256: the secret chatauth made.
		w := newCustomerWorld(t, e)
		hs := w.hsKey(t)
		a := hs.login(hs.sign(t, "user-1", map[string]any{"name": "Ada", "email": "ada@example.com", "email_verified": true}))
		expect(t, a, 200, "")
		if a.Body["identified"] != true || claimsOf(t, a.Str("access_token"))["idf"] != true {
			t.Fatalf("identified answer: %s", a.Raw)
		}
		list := e.Do("GET", "/api/v1/oauth/clients/"+w.client+"/identity_keys", nil, w.admin)
		expect(t, list, 200, "")
		if strings.Contains(string(list.Raw), hs.secret) || strings.Contains(string(list.Raw), "secret\":") {
			t.Fatalf("the key list shows the secret: %s", list.Raw)
		}

		// ES256 and EdDSA: the site's own key, registered as a JWK.
		w2 := newCustomerWorld(t, e)
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		es := w2.jwkKey(t, ec, &ec.PublicKey, "site-es-1", jwt.SigningMethodES256)
		expect(t, es.login(es.sign(t, "user-1", nil)), 200, "")
		w3 := newCustomerWorld(t, e)
		edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
		ed := w3.jwkKey(t, edPriv, edPub, "", jwt.SigningMethodEdDSA)
		if ed.kid == "" {
			t.Fatal("a JWK without kid gets its thumbprint as kid")
		}
		expect(t, ed.login(ed.sign(t, "user-1", nil)), 200, "")

		// A private JWK, a small RSA key, an EC key of another curve: refused.
		w4 := newCustomerWorld(t, e)
		privJWK, _ := jose.JSONWebKey{Key: ec, KeyID: "oops"}.MarshalJSON()
		want(t, "private jwk", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"jwk": json.RawMessage(privJWK)}, w4.admin), 400, "invalid_request")
		small, _ := rsa.GenerateKey(rand.Reader, 1024)
		smallJWK, _ := jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small"}.MarshalJSON()
		want(t, "1024-bit RSA", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"jwk": json.RawMessage(smallJWK)}, w4.admin), 400, "invalid_request")
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		p384JWK, _ := jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p384"}.MarshalJSON()
		want(t, "P-384", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"jwk": json.RawMessage(p384JWK)}, w4.admin), 400, "invalid_request")
		want(t, "two kinds at once", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"alg": "HS256", "jwks_uri": "https://site.example/jwks"}, w4.admin), 400, "invalid_request")
		want(t, "RS256 generated", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"alg": "RS256"}, w4.admin), 400, "invalid_request")
		want(t, "http jwks_uri", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"jwks_uri": "http://site.example/jwks"}, w4.admin), 400, "invalid_request")
		// The default fetcher refuses loopback and private addresses.
		want(t, "loopback jwks_uri", e.Do("POST", "/api/v1/oauth/clients/"+w4.client+"/identity_keys", map[string]any{"jwks_uri": "https://127.0.0.1:1/jwks"}, w4.admin), 400, "invalid_request")

		// RS256 from the site's key set (jwks_uri), fetched over https.
		rk, _ := rsa.GenerateKey(rand.Reader, 2048)
		set := map[string]any{"keys": []any{jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "rsa-1", Use: "sig"}}}
		jwks := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { json.NewEncoder(rw).Encode(set) }))
		defer jwks.Close()
		e.App.Server.Identity.JWKS.Client = jwks.Client()
		w5 := newCustomerWorld(t, e)
		r := e.Do("POST", "/api/v1/oauth/clients/"+w5.client+"/identity_keys", map[string]any{"jwks_uri": jwks.URL + "/jwks"}, w5.admin)
		expect(t, r, 201, "")
		rs := site{w: w5, kid: "rsa-1", priv: rk, method: jwt.SigningMethodRS256}
		expect(t, rs.login(rs.sign(t, "user-1", nil)), 200, "")
		// The site rotates within its set: a new kid is fetched on sight.
		rk2, _ := rsa.GenerateKey(rand.Reader, 2048)
		set = map[string]any{"keys": []any{jose.JSONWebKey{Key: &rk2.PublicKey, KeyID: "rsa-2", Use: "sig"}}}
		rs2 := site{w: w5, kid: "rsa-2", priv: rk2, method: jwt.SigningMethodRS256}
		expect(t, rs2.login(rs2.sign(t, "user-1", nil)), 200, "")

		// Only a first-party sign-in adds keys.
		pat := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "p", "scopes": []string{"admin", "write"}}, w.admin)
		expect(t, pat, 201, "")
		want(t, "PAT adds a key", e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"alg": "HS256"}, basic(1, pat.Str("token"))), 403, "sign_in_required")

		// Audit events for each.
		audit := e.Do("GET", "/api/v1/audit_events", nil, w.admin)
		if !strings.Contains(string(audit.Raw), "identity_key.created") {
			t.Fatalf("no identity_key.created audit event: %.400s", audit.Raw)
		}
	})
}

func TestIdentityKeyRotation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		old := w.hsKey(t)
		first := old.login(old.sign(t, "user-7", nil))
		expect(t, first, 200, "")

		// A second key: both verify, each by its kid; without a kid the
		// token is refused, since it could be either.
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		next := w.jwkKey(t, ec, &ec.PublicKey, "next", jwt.SigningMethodES256)
		a := next.login(next.sign(t, "user-7", nil))
		expect(t, a, 200, "")
		if a.Str("entity_id") != first.Str("entity_id") {
			t.Fatal("the same site user under the next key is another visitor")
		}
		expect(t, old.login(old.sign(t, "user-7", nil)), 200, "")
		noKid := old
		noKid.kid = ""
		r := noKid.login(noKid.sign(t, "user-7", nil))
		want(t, "no kid with two keys", r, 401, shared.ErrInvalidIdentity)
		if !strings.Contains(r.Str("message"), "kid") {
			t.Fatalf("no-kid refusal: %s", r.Raw)
		}
		// A third key is refused: rotate by deleting first.
		want(t, "third key", e.Do("POST", "/api/v1/oauth/clients/"+w.client+"/identity_keys", map[string]any{"alg": "HS256"}, w.admin), 409, "conflict")

		// Deleting the old key ends the sessions its tokens started (on
		// every process: the revocation set), and its tokens are refused;
		// the next key's sessions go on.
		expect(t, e.Do("DELETE", "/api/v1/oauth/clients/"+w.client+"/identity_keys/"+old.kid, nil, w.admin), 204, "")
		want(t, "session of the deleted key", e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(first.Str("access_token"))), 401, "invalid_token")
		want(t, "refresh of the deleted key's session", w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": first.Str("refresh_token")}), 401, "invalid_token")
		expect(t, e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(a.Str("access_token"))), 200, "")
		want(t, "token of the deleted key", old.login(old.sign(t, "user-7", nil)), 401, shared.ErrInvalidIdentity)
		expect(t, next.login(next.sign(t, "user-7", nil)), 200, "")
		want(t, "delete twice", e.Do("DELETE", "/api/v1/oauth/clients/"+w.client+"/identity_keys/"+old.kid, nil, w.admin), 404, "not_found")
		audit := e.Do("GET", "/api/v1/audit_events", nil, w.admin)
		if !strings.Contains(string(audit.Raw), "identity_key.revoked") {
			t.Fatalf("no identity_key.revoked audit event: %.400s", audit.Raw)
		}
	})
}

func TestIdentityTokenRefusals(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		stray := site{w: w, kid: "k", secret: "ids_unregistered", method: jwt.SigningMethodHS256}
		r := stray.login(stray.sign(t, "u", nil))
		want(t, "client without keys", r, 401, shared.ErrInvalidIdentity)
		if !strings.Contains(r.Str("message"), "has no identity keys") {
			t.Errorf("client without keys: %s", r.Raw)
		}
		hs := w.hsKey(t)
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		es := w.jwkKey(t, ec, &ec.PublicKey, "es", jwt.SigningMethodES256)
		now := time.Now()
		replayed := hs.sign(t, "u", map[string]any{"jti": "once"})
		expect(t, hs.login(replayed), 200, "")
		wrongSecret := hs
		wrongSecret.secret = "ids_not-the-secret"
		hsAsES := hs
		hsAsES.kid = es.kid // an HMAC over the public key: the classic confusion
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"`+hs.kid+`"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u","aud":"`+w.client+`","iat":`+strconv.FormatInt(now.Unix(), 10)+`,"exp":`+strconv.FormatInt(now.Add(time.Minute).Unix(), 10)+`,"jti":"n"}`)) + "."
		unknown := hs
		unknown.kid = "nope"
		cases := []struct {
			name, tok, code, says string
		}{
			{"not a JWT", "not-a-jwt", shared.ErrInvalidIdentity, "not a JWT"},
			{"alg none", none, shared.ErrInvalidIdentity, "never accepted"},
			{"unknown kid", unknown.sign(t, "u", nil), shared.ErrInvalidIdentity, `unknown kid "nope"`},
			{"HS256 under an ES256 key", hsAsES.sign(t, "u", nil), shared.ErrInvalidIdentity, `signed with "HS256" but key "es" is ES256`},
			{"wrong secret", wrongSecret.sign(t, "u", nil), shared.ErrInvalidIdentity, "signature does not verify"},
			{"expired", hs.sign(t, "u", map[string]any{"iat": now.Add(-9 * time.Minute).Unix(), "exp": now.Add(-4 * time.Minute).Unix()}), shared.ErrIdentityExpired, "expired 4 min ago"},
			{"too long", hs.sign(t, "u", map[string]any{"exp": now.Add(25 * time.Minute).Unix()}), shared.ErrInvalidIdentity, "exp is 25 min after iat; at most 10 min"},
			{"from the future", hs.sign(t, "u", map[string]any{"iat": now.Add(5 * time.Minute).Unix(), "exp": now.Add(9 * time.Minute).Unix()}), shared.ErrInvalidIdentity, "iat is in the future"},
			{"no exp", hs.sign(t, "u", map[string]any{"exp": nil}), shared.ErrInvalidIdentity, "exp: required"},
			{"no iat", hs.sign(t, "u", map[string]any{"iat": nil}), shared.ErrInvalidIdentity, "iat: required"},
			{"another aud", hs.sign(t, "u", map[string]any{"aud": "someone-else"}), shared.ErrInvalidIdentity, "aud is not this client_id"},
			{"no sub", hs.sign(t, "", nil), shared.ErrInvalidIdentity, "sub: required"},
			{"long sub", hs.sign(t, strings.Repeat("x", 256), nil), shared.ErrInvalidIdentity, "sub: longer than 255 bytes"},
			{"no jti", hs.sign(t, "u", map[string]any{"jti": nil}), shared.ErrInvalidIdentity, "jti: required"},
			{"jti used", replayed, shared.ErrInvalidIdentity, `jti "once" already used`},
			{"bad email", hs.sign(t, "u", map[string]any{"email": "not an email"}), shared.ErrInvalidIdentity, "email: not an email address"},
		}
		for _, c := range cases {
			r := hs.login(c.tok)
			want(t, c.name, r, 401, c.code)
			if !strings.Contains(r.Str("message"), c.says) {
				t.Errorf("%s: message %q does not say %q", c.name, r.Str("message"), c.says)
			}
		}
		// A 255-byte sub is fine.
		expect(t, hs.login(hs.sign(t, strings.Repeat("x", 255), nil)), 200, "")
		// With entity_id or grant_type beside it: a clear 400.
		want(t, "identity_token with entity_id", w.visitorToken(map[string]any{"response_type": "token", "identity_token": hs.sign(t, "u", nil), "entity_id": "x"}), 400, "invalid_request")

		// Bad signatures are guesses at the key: throttled per address
		// (and client), answered 429 with Retry-After.
		var last apptest.Response
		for i := 0; i < 12; i++ {
			last = hs.login(wrongSecret.sign(t, "u", nil))
		}
		want(t, "guessing the key", last, 429, "too_many_requests")
		if last.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	})
}

// identifiedWorld: one widget client with an HS256 identity key.
func identifiedWorld(t *testing.T, e *apptest.Env) (*customerWorld, site) {
	w := newCustomerWorld(t, e)
	return w, w.hsKey(t)
}

func TestIdentifiedVisitorIsOneVisitorEverywhere(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, s := identifiedWorld(t, e)
		laptop := s.login(s.sign(t, "user-42", map[string]any{"name": "Grace", "email": "grace@example.com", "email_verified": true}))
		expect(t, laptop, 200, "")
		phone := s.login(s.sign(t, "user-42", nil))
		expect(t, phone, 200, "")
		if laptop.Str("entity_id") != phone.Str("entity_id") || laptop.Str("access_token") == phone.Str("access_token") {
			t.Fatalf("two devices of one site user: %s / %s", laptop.Str("entity_id"), phone.Str("entity_id"))
		}
		// A reload in the same browser (its cookie) continues that session.
		again := s.login(s.sign(t, "user-42", nil), "Cookie: "+cookieOf(laptop))
		expect(t, again, 200, "")
		if claimsOf(t, again.Str("access_token"))["sid"] != claimsOf(t, laptop.Str("access_token"))["sid"] {
			t.Fatal("the same browser's identified session was not continued")
		}

		// What the visitor sees of themselves, and what agents see.
		conv := e.Do("POST", "/customer/api/v1/conversations", map[string]any{"subject": "order"}, apptest.Bearer(laptop.Str("access_token")))
		expect(t, conv, 201, "")
		convID := strconv.Itoa(int(conv.Body["id"].(float64)))
		expect(t, e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(phone.Str("access_token"))), 200, "")
		ag := e.Do("GET", "/api/v1/conversations/"+convID, nil, w.admin)
		expect(t, ag, 200, "")
		cust, _ := ag.Body["customer"].(map[string]any)
		if cust["identified"] != true || cust["external_id"] != "user-42" || cust["name"] != "Grace" || cust["email"] != "grace@example.com" || cust["email_verified"] != true {
			t.Fatalf("agent view of an identified visitor: %v", ag.Body["customer"])
		}
		anon := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(anon.Str("access_token"))), 201, "")
		list := e.Do("GET", "/api/v1/conversations", nil, w.admin)
		expect(t, list, 200, "")
		seen := map[bool]bool{}
		for _, c := range list.Body["data"].([]any) {
			if m, ok := c.(map[string]any)["customer"].(map[string]any); ok {
				seen[m["identified"].(bool)] = true
			}
		}
		if !seen[true] || !seen[false] {
			t.Fatalf("agents' list shows identified and anonymous visitors: %.500s", list.Raw)
		}
		// The site's word on name and email stands.
		want(t, "identified visitor renames", e.Do("PATCH", "/customer/api/v1/me", map[string]any{"name": "Mallory"}, apptest.Bearer(laptop.Str("access_token"))), 403, "forbidden")

		// Never by email: another site user with the same email is another visitor.
		other := s.login(s.sign(t, "user-43", map[string]any{"email": "grace@example.com"}))
		expect(t, other, 200, "")
		if other.Str("entity_id") == laptop.Str("entity_id") {
			t.Fatal("two site users with one email became one visitor")
		}
		want(t, "another user's conversation", e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(other.Str("access_token"))), 404, "not_found")
	})
}

func TestIdentifiedMerging(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, s := identifiedWorld(t, e)

		// An anonymous visitor starts a chat, then signs in on the site:
		// the open conversation comes along (proven by the cookie), and the
		// anonymous session ends.
		anon := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, anon, 200, "")
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(anon.Str("access_token")))
		expect(t, conv, 201, "")
		convID := strconv.Itoa(int(conv.Body["id"].(float64)))
		expect(t, e.Do("POST", "/customer/api/v1/conversations/"+convID+"/messages", map[string]any{"content": "hello before sign-in"}, apptest.Bearer(anon.Str("access_token"))), 201, "")
		in := s.login(s.sign(t, "user-1", nil), "Cookie: "+cookieOf(anon))
		expect(t, in, 200, "")
		if in.Str("entity_id") == anon.Str("entity_id") {
			t.Fatal("the identified visitor took the anonymous entity_id")
		}
		got := e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(in.Str("access_token")))
		expect(t, got, 200, "")
		if !strings.Contains(string(got.Raw), "hello before sign-in") {
			t.Fatalf("the anonymous conversation did not come along: %s", got.Raw)
		}
		want(t, "the anonymous session after the merge", e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(anon.Str("access_token"))), 401, "invalid_token")

		// The same through the refresh token (no cookie: third-party
		// cookies blocked).
		anon2 := w.visitorToken(map[string]any{"response_type": "token"})
		conv2 := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(anon2.Str("access_token")))
		conv2ID := strconv.Itoa(int(conv2.Body["id"].(float64)))
		in2 := w.visitorToken(map[string]any{"response_type": "token", "identity_token": s.sign(t, "user-1", nil), "refresh_token": anon2.Str("refresh_token")})
		expect(t, in2, 200, "")
		expect(t, e.Do("GET", "/customer/api/v1/conversations/"+conv2ID, nil, apptest.Bearer(in2.Str("access_token"))), 200, "")

		// The other direction: the identified history is never shown to an
		// anonymous session. The identified browser's cookie alone (the site
		// signed its user out) is a new anonymous visitor.
		after := w.visitorToken(map[string]any{"response_type": "token"}, "Cookie: "+cookieOf(in))
		expect(t, after, 200, "")
		if after.Str("entity_id") == in.Str("entity_id") || claimsOf(t, after.Str("access_token"))["idf"] != nil {
			t.Fatal("the identified session's cookie alone gave the identified visitor")
		}
		want(t, "anonymous after sign-out reads the identified chat", e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(after.Str("access_token"))), 404, "not_found")
		// …not with entity_id and the cookie,
		want(t, "entity_id of an identified visitor", w.visitorToken(map[string]any{"response_type": "token", "entity_id": in.Str("entity_id")}, "Cookie: "+cookieOf(after)), 403, "forbidden")
		// …not by an agent's vouching,
		want(t, "vouching for an identified visitor", w.visitorToken(map[string]any{"response_type": "token", "entity_id": in.Str("entity_id")}, w.admin), 403, "forbidden")
		// …and an anonymous visit merged into another site user takes
		// nothing of this one: user-2 signing in with user-1's refresh
		// token or cookie gets user-2, and user-1's chats stay.
		two := w.visitorToken(map[string]any{"response_type": "token", "identity_token": s.sign(t, "user-2", nil), "refresh_token": in2.Str("refresh_token")}, "Cookie: "+cookieOf(in))
		expect(t, two, 200, "")
		if two.Str("entity_id") == in.Str("entity_id") {
			t.Fatal("user-2 became user-1")
		}
		want(t, "user-2 reads user-1's chat", e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(two.Str("access_token"))), 404, "not_found")
		expect(t, e.Do("GET", "/customer/api/v1/conversations/"+convID, nil, apptest.Bearer(in2.Str("access_token"))), 200, "")
		expect(t, e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(in2.Str("access_token"))), 200, "")

		// The old vouching still works for anonymous visitors, under the
		// credential rules: an agent who may write messages.
		v := w.visitorToken(map[string]any{"response_type": "token", "entity_id": after.Str("entity_id")}, w.admin)
		expect(t, v, 200, "")
		pat := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "ro", "scopes": []string{"read"}}, w.admin)
		want(t, "vouching with a read-only PAT", w.visitorToken(map[string]any{"response_type": "token", "entity_id": after.Str("entity_id")}, basic(1, pat.Str("token"))), 403, "insufficient_scope")
	})
}

func TestCustomerLogout(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, s := identifiedWorld(t, e)
		in := s.login(s.sign(t, "user-1", nil))
		expect(t, in, 200, "")
		out := e.Do("POST", "/customer/logout", map[string]any{"client_id": w.client}, apptest.Bearer(in.Str("access_token")), "Origin: "+shop, "Cookie: "+cookieOf(in))
		expect(t, out, 204, "")
		if !strings.Contains(out.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("logout does not clear the cookie: %q", out.Header.Get("Set-Cookie"))
		}
		want(t, "token after logout", e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(in.Str("access_token"))), 401, "invalid_token")
		want(t, "refresh after logout", w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": in.Str("refresh_token")}), 401, "invalid_token")
		// By refresh token alone, for an anonymous visitor, twice.
		anon := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, e.Do("POST", "/customer/logout", map[string]any{"refresh_token": anon.Str("refresh_token")}), 204, "")
		expect(t, e.Do("POST", "/customer/logout", map[string]any{"refresh_token": anon.Str("refresh_token")}), 204, "")
		want(t, "anonymous token after logout", e.Do("GET", "/customer/api/v1/me", nil, apptest.Bearer(anon.Str("access_token"))), 401, "invalid_token")
		want(t, "logout without anything", e.Do("POST", "/customer/logout", nil), 401, "invalid_token")
	})
}

// TestIdentityRequired walks every customer route with an anonymous
// visitor of a client that requires identified ones, and switches the
// requirement on under open sessions.
func TestIdentityRequired(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w, s := identifiedWorld(t, e)
		anon := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, anon, 200, "")
		conv := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(anon.Str("access_token")))
		expect(t, conv, 201, "")
		convID := strconv.Itoa(int(conv.Body["id"].(float64)))
		in := s.login(s.sign(t, "user-1", nil))
		inConv := e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(in.Str("access_token")))
		inConvID := strconv.Itoa(int(inConv.Body["id"].(float64)))

		// An open anonymous stream, before the switch.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", e.Srv.URL+"/customer/api/v1/conversations/"+convID+"/events?access_token="+anon.Str("access_token"), nil)
		stream, err := http.DefaultClient.Do(req)
		if err != nil || stream.StatusCode != 200 {
			t.Fatalf("anonymous stream: %v %v", err, stream)
		}
		defer stream.Body.Close()

		// First as a token minted just before the switch reached this
		// process would be (the flag set without the cascade): every route
		// refuses it on the flag alone.
		flag := func(on bool) {
			cl, err := e.App.Store.Client(context.Background(), w.client)
			if err != nil {
				t.Fatal(err)
			}
			cl.IdentityRequired = on
			if err := e.App.Store.UpdateClient(context.Background(), &cl); err != nil {
				t.Fatal(err)
			}
		}
		flag(true)
		bearer := apptest.Bearer(anon.Str("access_token"))
		ids := map[string]string{":id": convID}
		walked := 0
		for _, rt := range e.App.Server.Routes() {
			if rt.Family != "customer" {
				continue
			}
			path := rt.Path
			for k, v := range ids {
				path = strings.ReplaceAll(path, k, v)
			}
			var body any
			switch {
			case strings.HasSuffix(rt.Path, "/messages"):
				body = map[string]any{"content": "hi"}
			case strings.HasSuffix(rt.Path, "/conversations"):
				body = map[string]any{"subject": "hi"}
			case rt.Method == "PATCH":
				body = map[string]any{}
			}
			want(t, "anonymous "+rt.Method+" "+rt.Path, e.Do(rt.Method, path, body, bearer), 403, shared.ErrIdentityRequired)
			// The identified visitor goes on, on the same routes.
			ipath := strings.ReplaceAll(rt.Path, ":id", inConvID)
			if !strings.HasSuffix(rt.Path, "/events") {
				if r := e.Do(rt.Method, ipath, body, apptest.Bearer(in.Str("access_token"))); r.Status >= 400 {
					t.Errorf("identified %s %s: %d %s", rt.Method, rt.Path, r.Status, r.Raw)
				}
			}
			walked++
		}
		if walked < 6 {
			t.Fatalf("walked %d customer routes", walked)
		}

		// Switched on through the API, the requirement ends the anonymous
		// sessions: the open stream ends with an event the SDK understands.
		flag(false)
		upd := e.Do("PATCH", "/api/v1/oauth/clients/"+w.client, map[string]any{"identity_required": true}, w.admin)
		expect(t, upd, 200, "")
		if upd.Body["identity_required"] != true {
			t.Fatalf("identity_required not saved: %s", upd.Raw)
		}
		sc := bufio.NewScanner(stream.Body)
		ended := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: end") {
				ended = true
				break
			}
		}
		if !ended {
			t.Fatal("the anonymous stream did not end when identity became required")
		}
		want(t, "anonymous token after the switch", e.Do("GET", "/customer/api/v1/me", nil, bearer), 401, "invalid_token")
		// The token endpoint: a new visitor, the cookie, the refresh token,
		// vouching: all refused with identity_required.
		want(t, "new visitor", w.visitorToken(map[string]any{"response_type": "token"}), 403, shared.ErrIdentityRequired)
		want(t, "cookie", w.visitorToken(map[string]any{"response_type": "token"}, "Cookie: "+cookieOf(anon)), 403, shared.ErrIdentityRequired)
		want(t, "refresh of the ended anonymous session", w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": anon.Str("refresh_token")}), 403, shared.ErrIdentityRequired)
		want(t, "vouching", w.visitorToken(map[string]any{"response_type": "token", "entity_id": anon.Str("entity_id")}, w.admin), 403, shared.ErrIdentityRequired)
		expect(t, w.visitorToken(map[string]any{"grant_type": "refresh_token", "refresh_token": in.Str("refresh_token")}), 200, "")
		expect(t, s.login(s.sign(t, "user-1", nil)), 200, "")
		// The redirect flow has no identity token: an error redirect.
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := noFollow.Get(e.Srv.URL + "/customer/authorize?response_type=token&client_id=" + w.client + "&redirect_uri=" + url.QueryEscape(shop+"/chat") + "&state=s")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, _ := url.Parse(res.Header.Get("Location"))
		frag, _ := url.ParseQuery(loc.EscapedFragment())
		if res.StatusCode/100 != 3 || frag.Get("error") != "access_denied" || !strings.Contains(frag.Get("error_description"), shared.ErrIdentityRequired) {
			t.Fatalf("authorize with identity required: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
	})
}
