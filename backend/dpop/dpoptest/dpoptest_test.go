package dpoptest_test

import (
	"context"
	"testing"
	"time"

	"chatauth/backend/dpop"
	"chatauth/backend/dpop/dpoptest"
)

type replay struct{}

func (replay) UseDPoPJTI(context.Context, string, string, time.Time) error { return nil }

// TestSignedProofsPass: what the helpers sign is what the server's
// checker accepts, bound to the key's JKT, for both kinds of key.
func TestSignedProofsPass(t *testing.T) {
	t.Parallel()
	c := &dpop.Checker{Replay: replay{}, NonceKey: []byte("k"), RequireNonce: true, Now: time.Now}
	for _, tc := range []struct {
		name string
		key  dpoptest.Key
	}{{"ES256", dpoptest.NewKey(t)}, {"RS256", dpoptest.NewRSAKey(t, 2048)}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := dpoptest.Thumbprint(t, tc.key.JWK); got != tc.key.JKT {
				t.Fatalf("Thumbprint(JWK) = %s, JKT = %s", got, tc.key.JKT)
			}
			const u = "https://chat.example/customer/api/v1/me"
			p := tc.key.Sign(t, dpoptest.Proof{Method: "GET", URL: u, AccessToken: "tok", Nonce: c.Nonce()})
			got, err := c.Check(context.Background(), dpop.Request{Proofs: []string{p}, Method: "GET", URL: u, AccessToken: "tok", JKT: tc.key.JKT, Nonce: true})
			if err != nil || got.JKT != tc.key.JKT {
				t.Fatalf("Check: %+v %v", got, err)
			}
			edited := tc.key.Sign(t, dpoptest.Proof{Method: "GET", URL: u, AccessToken: "tok", Edit: func(h, c map[string]any) { delete(c, "ath") }})
			if _, err := c.Check(context.Background(), dpop.Request{Proofs: []string{edited}, Method: "GET", URL: u, AccessToken: "tok"}); err == nil {
				t.Fatal("a proof whose Edit removed ath passed")
			}
		})
	}
}
