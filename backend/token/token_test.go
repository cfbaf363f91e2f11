package token_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

const issuer = "http://chat.test"

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

type fixture struct {
	db       *sqlstore.DB
	keys     *token.Keys
	iss      *token.Issuer
	agent    *token.AgentVerifier
	customer *token.CustomerVerifier
	clock    *clock
	revoked  *token.Revocations
}

func newFixture(t testing.TB, dsn string) *fixture {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{db: db, clock: &clock{time.Now()}, revoked: token.NewRevocations()}
	f.load(t, "a-secret-of-at-least-32-characters!!")
	return f
}

func (f *fixture) load(t testing.TB, secret string) {
	t.Helper()
	keys, err := token.LoadKeys(context.Background(), f.db, token.NewSealer(token.NewSecret(secret)), f.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	f.keys = keys
	f.iss = token.NewIssuer(keys, issuer)
	f.agent = token.NewAgentVerifier(keys, issuer, f.revoked.Revoked)
	f.customer = token.NewCustomerVerifier(keys, issuer, f.revoked.Revoked)
}

func agentClaims() shared.AgentClaims {
	return shared.AgentClaims{Subject: "7", Org: 1, Scope: shared.Scope{Role: shared.RoleAgent, API: shared.FirstParty}, Session: "s1"}
}

func mustAgent(t testing.TB, f *fixture) string {
	t.Helper()
	tok, _, err := f.iss.Agent(agentClaims(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstoretest.SQLite(t))
	tok := mustAgent(t, f)
	c, err := f.agent.Verify(tok)
	if err != nil || c.Subject != "7" || c.Scope.Role != shared.RoleAgent || c.Org != 1 {
		t.Fatalf("verify: %+v %v", c, err)
	}
	ct, _, err := f.iss.Customer(shared.CustomerClaims{Subject: "ent-1", Org: 1, ClientID: "cl"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cc, err := f.customer.Verify(ct); err != nil || cc.Subject != "ent-1" {
		t.Fatalf("customer verify: %+v %v", cc, err)
	}
	// The header is RFC 9068's.
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	var h map[string]any
	json.Unmarshal(hdr, &h)
	if h["typ"] != "at+jwt" || h["alg"] != "EdDSA" || h["kid"] == "" {
		t.Fatalf("header %v", h)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstoretest.SQLite(t))
	good := mustAgent(t, f)
	parts := strings.Split(good, ".")
	customerTok, _, _ := f.iss.Customer(shared.CustomerClaims{Subject: "e", Org: 1, ClientID: "c"}, time.Hour)

	// HS256 signed with the public key bytes: the classic key-confusion attack.
	var pub []byte
	var set struct{ Keys []struct{ Kid, X string } }
	json.Unmarshal(f.keys.JWKS(), &set)
	for _, k := range set.Keys {
		if strings.HasPrefix(k.Kid, "agent-") {
			pub, _ = base64.RawURLEncoding.DecodeString(k.X)
		}
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "sub": "7", "aud": shared.AudienceAgent, "exp": time.Now().Add(time.Hour).Unix(), "scope": "admin read write chat", "org": 1})
	hs.Header["kid"] = set.Keys[0].Kid
	hs.Header["typ"] = "at+jwt"
	hsTok, _ := hs.SignedString(pub)

	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": issuer, "sub": "7", "aud": shared.AudienceAgent, "exp": time.Now().Add(time.Hour).Unix(), "scope": "admin"})
	none.Header["kid"] = set.Keys[0].Kid
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)

	// A token signed by a key we never had, with our kid.
	_, foreign, _ := ed25519.GenerateKey(nil)
	fk := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": issuer, "sub": "7", "aud": shared.AudienceAgent, "exp": time.Now().Add(time.Hour).Unix(), "scope": "admin"})
	fk.Header["kid"] = "agent-unknown"
	fk.Header["typ"] = "at+jwt"
	unknownKid, _ := fk.SignedString(foreign)

	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+issuer+`","sub":"1","aud":["chatauth:agent"],"exp":9999999999,"scope":"admin read write chat","org":1}`)) + "." + parts[2]

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", token.ErrMalformed},
		{"garbage", "abc", token.ErrMalformed},
		{"tampered payload", tampered, token.ErrBadSignature},
		{"alg none", noneTok, token.ErrMalformed},
		{"HS256 with public key", hsTok, token.ErrMalformed},
		{"unknown kid", unknownKid, token.ErrBadSignature},
		{"customer token on agent verifier", customerTok, token.ErrWrongFamily},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.agent.Verify(tt.tok)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := f.customer.Verify(good); !errors.Is(err, token.ErrWrongFamily) || !strings.Contains(err.Error(), "agent token") {
		t.Fatalf("agent token on customer verifier: %v", err)
	}
}

func TestExpiryAndRevocation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstoretest.SQLite(t))
	tok := mustAgent(t, f)
	f.clock.t = f.clock.t.Add(4 * time.Hour)
	_, err := f.agent.Verify(tok)
	var ve *token.VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, token.ErrExpired) || !strings.Contains(ve.Reason, "3h ago") {
		t.Fatalf("expired: %v", err)
	}
	f.clock.t = time.Now()
	tok = mustAgent(t, f)
	f.revoked.Add("s1")
	if _, err := f.agent.Verify(tok); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}

func TestRestartAndRotation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn)
		old := mustAgent(t, f)
		// Restart: the same database and secret verify earlier tokens.
		f.load(t, "a-secret-of-at-least-32-characters!!")
		if _, err := f.agent.Verify(old); err != nil {
			t.Fatalf("after restart: %v", err)
		}
		kidOf := func(tok string) string {
			p, _, _ := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
			return p.Header["kid"].(string)
		}
		oldKid := kidOf(old)
		newKid, signsFrom, err := f.keys.Rotate(context.Background(), token.FamilyAgent, time.Hour, 24*time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(f.keys.JWKS()), newKid) || !strings.Contains(string(f.keys.JWKS()), oldKid) {
			t.Fatalf("JWKS must show both keys: %s", f.keys.JWKS())
		}
		if k := kidOf(mustAgent(t, f)); k != oldKid {
			t.Fatalf("new key signed before its publish delay: %s", k)
		}
		f.clock.t = signsFrom.Add(time.Second)
		next := mustAgent(t, f)
		if k := kidOf(next); k != newKid {
			t.Fatalf("after the delay, kid = %s, want %s", k, newKid)
		}
		// A second process (fresh Keys on the same store) sees the rotation.
		f2 := &fixture{db: f.db, clock: f.clock, revoked: f.revoked}
		f2.load(t, "a-secret-of-at-least-32-characters!!")
		if _, err := f2.agent.Verify(next); err != nil {
			t.Fatalf("other process: %v", err)
		}
		// The old key still verifies its tokens until they have expired.
		f.clock.t = signsFrom.Add(-time.Minute)
		if _, err := f.agent.Verify(old); err != nil {
			t.Fatalf("old token after rotation: %v", err)
		}
	})
}

func TestWrongSecret(t *testing.T) {
	t.Parallel()
	dsn := sqlstoretest.SQLite(t)
	f := newFixture(t, dsn)
	_, err := token.LoadKeys(context.Background(), f.db, token.NewSealer(token.NewSecret("another-secret-of-at-least-32-chars")), time.Now)
	if !errors.Is(err, token.ErrWrongSecret) {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretFile(t *testing.T) {
	t.Parallel()
	p := t.TempDir() + "/sub/chatauth.secret"
	s1, created, err := token.LoadOrCreateSecretFile(p)
	if err != nil || !created {
		t.Fatal(err)
	}
	s2, created, err := token.LoadOrCreateSecretFile(p)
	if err != nil || created {
		t.Fatal(err)
	}
	if string(s1.Derive("x", 16)) != string(s2.Derive("x", 16)) {
		t.Fatal("secret changed between loads")
	}
}

// FuzzVerify: whatever arrives in an Authorization header, the verifiers
// refuse it with a VerifyError and never panic.
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, sqlstoretest.SQLite(f))
	good := mustAgent(f, fx)
	f.Add(good)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(`eyJhbGciOiJFZERTQSIsImtpZCI6W119.e30.x`)
	f.Add(strings.Repeat(".", 3000))
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := fx.agent.Verify(raw)
		if raw == good {
			return
		}
		var ve *token.VerifyError
		if err == nil || !errors.As(err, &ve) {
			t.Fatalf("Verify(%q) = %v", raw, err)
		}
		if _, err := fx.customer.Verify(raw); err == nil {
			t.Fatalf("customer verifier accepted %q", raw)
		}
	})
}

func BenchmarkIssueAgent(b *testing.B) {
	f := newFixture(b, sqlstoretest.SQLite(b))
	c := agentClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.iss.Agent(c, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyAgent(b *testing.B) {
	f := newFixture(b, sqlstoretest.SQLite(b))
	tok := mustAgent(b, f)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.agent.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// The cache never serves a token past its expiry or after its session is
// revoked.
func TestVerifyCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t, sqlstoretest.SQLite(t))
	tok, _, err := f.iss.Agent(agentClaims(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second is a cache hit
		if _, err := f.agent.Verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.t = f.clock.t.Add(2 * time.Minute)
	if _, err := f.agent.Verify(tok); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("expired token from cache: %v", err)
	}
	f.clock.t = time.Now()
	tok2, _, _ := f.iss.Agent(agentClaims(), time.Minute)
	f.agent.Verify(tok2)
	f.revoked.Add("s1")
	if _, err := f.agent.Verify(tok2); !errors.Is(err, token.ErrRevoked) {
		t.Fatalf("revoked token from cache: %v", err)
	}
}
