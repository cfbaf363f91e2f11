package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

// fixture is a verifier over a real SQLite store with one widget client
// holding an HS256 key and an ES256 JWK.
type fixture struct {
	v      *Verifier
	client domain.Client
	secret string
	hsKID  string
	ec     *ecdsa.PrivateKey
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	ctx := context.Background()
	db := sqlstoretest.Open(tb, sqlstoretest.SQLite(tb))
	org := &domain.Organization{Name: "Shop"}
	if err := db.CreateOrganization(ctx, org); err != nil {
		tb.Fatal(err)
	}
	client := domain.Client{ID: "widget", OrgID: org.ID, Name: "Widget", Type: "public", Scopes: "read write chat"}
	if err := db.CreateClient(ctx, &client); err != nil {
		tb.Fatal(err)
	}
	v := &Verifier{Store: db, Sealer: token.NewSealer(token.NewSecret("fuzz-secret-0123456789-0123456789-abcdef")), JWKS: NewJWKS(false, time.Now), Now: time.Now}
	hs, secret, err := v.NewKey(ctx, CreateRequest{Alg: HS256}, client)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateIdentityKey(ctx, &hs, MaxKeys); err != nil {
		tb.Fatal(err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "es"}.MarshalJSON()
	es, _, err := v.NewKey(ctx, CreateRequest{JWK: pub}, client)
	if err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateIdentityKey(ctx, &es, MaxKeys); err != nil {
		tb.Fatal(err)
	}
	return fixture{v: v, client: client, secret: secret, hsKID: hs.KID, ec: ec}
}

func (f fixture) sign(tb testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzVerify: whatever a browser sends as identity_token, the verifier
// answers an identity refusal (or accepts a real token), never an
// internal error and never a panic.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	now := time.Now()
	good := jwt.MapClaims{"sub": "u", "aud": "widget", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "jti": "seed"}
	f.Add(fx.sign(f, jwt.SigningMethodHS256, fx.hsKID, []byte(fx.secret), good))
	f.Add(fx.sign(f, jwt.SigningMethodES256, "es", fx.ec, good))
	f.Add(fx.sign(f, jwt.SigningMethodHS256, "es", []byte("public key as secret"), good))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.")
	f.Add("a.b.c")
	f.Add("")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6WzFdfQ.e30.AAAA")
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := fx.v.Verify(context.Background(), fx.client, raw)
		if err == nil {
			return
		}
		ae, ok := apierr.As(err)
		if !ok || (ae.Code != shared.ErrInvalidIdentity && ae.Code != shared.ErrIdentityExpired) {
			t.Fatalf("Verify(%q): %v", raw, err)
		}
	})
}

// FuzzParseSet: a site's key set, as fetched, never panics the parser.
func FuzzParseSet(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(map[string]any{"keys": []any{jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "a", Use: "sig"}}})
	f.Add(set)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA","kid":"s"},{"kty":"EC","crv":"P-256","kid":"x"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := parseSet(body)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		for _, k := range keys {
			if !k.IsPublic() || k.KeyID == "" {
				t.Fatalf("accepted %+v", k)
			}
		}
	})
}

// TestJWKSFetchesAreBounded: tokens naming made-up kids cannot make
// chatauth fetch a site's key set more than once per 30 s, a new kid
// the site published is fetched on first sight, and while the site is
// down the set fetched before still verifies.
func TestJWKSFetchesAreBounded(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var fetches atomic.Int32
	var down atomic.Bool
	kids := []string{"one"}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "down", 503)
			return
		}
		var keys []any
		for _, k := range kids {
			keys = append(keys, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: k})
		}
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	j := &JWKS{Client: srv.Client(), Now: func() time.Time { return now }}
	ctx := context.Background()
	if _, err := j.keys(ctx, srv.URL, "", true); err != nil {
		t.Fatal(err)
	}
	kids = append(kids, "two")
	if k, err := j.keys(ctx, srv.URL, "two", false); err != nil || !hasKID(k, "two") {
		t.Fatalf("a newly published kid: %v %v", k, err)
	}
	before := fetches.Load()
	for i := 0; i < 50; i++ {
		j.keys(ctx, srv.URL, "made-up", false)
	}
	if n := fetches.Load() - before; n > 1 {
		t.Fatalf("50 made-up kids cost %d fetches, want at most 1", n)
	}
	now = now.Add(jwksTTL + time.Second)
	down.Store(true)
	if k, err := j.keys(ctx, srv.URL, "one", false); err != nil || !hasKID(k, "one") {
		t.Fatalf("site down: the set we had should hold: %v %v", k, err)
	}
	// A set we never had, from a site that is down: a clear error.
	if _, err := j.keys(ctx, srv.URL+"/other", "", false); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("unreachable set: %v", err)
	}
}
