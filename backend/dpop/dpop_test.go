package dpop

import (
	"context"
	"errors"
	"testing"
	"time"

	"chatauth/backend/dpop/dpoptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

func checker(tb testing.TB) *Checker {
	return &Checker{Replay: sqlstoretest.Open(tb, sqlstoretest.SQLite(tb)), NonceKey: []byte("k"), RequireNonce: true, Now: time.Now}
}

// FuzzCheck: whatever arrives in a DPoP header is refused with one of
// RFC 9449's errors (or accepted when it is a real proof), never a panic
// or another kind of error.
func FuzzCheck(f *testing.F) {
	c := checker(f)
	f.Add(dpoptest.NewKey(f).Sign(f, dpoptest.Proof{JTI: "a", Method: "POST", URL: "https://chat.example/customer/token", Nonce: c.Nonce()}))
	f.Add(dpoptest.NewKey(f).Sign(f, dpoptest.Proof{JTI: "b", Method: "GET", URL: "https://chat.example/x"}))
	f.Add("eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6Im5vbmUifQ.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := c.Check(context.Background(), Request{Proofs: []string{raw}, Method: "POST", URL: "https://chat.example/customer/token", Nonce: true})
		var de *Error
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("Check(%q): %v", raw, err)
		}
	})
}

func TestNonces(t *testing.T) {
	c := checker(t)
	at := time.Unix(1_800_000_000, 0)
	n := c.nonceAt(at)
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{at, true}, {at.Add(nonceSlot), true}, {at.Add(2 * nonceSlot), false}, {at.Add(-nonceSlot), false}} {
		if got := c.nonceOK(n, tc.at); got != tc.want {
			t.Errorf("nonce of %v at %v: %v, want %v", at, tc.at, got, tc.want)
		}
	}
	other := &Checker{NonceKey: []byte("other")}
	if c.nonceOK(other.nonceAt(at), at) {
		t.Error("a nonce under another key was taken")
	}
}

func TestSameTarget(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"https://Chat.Example:443/customer/token", "https://chat.example/customer/token", true},
		{"https://chat.example/customer/token?x=1#f", "https://chat.example/customer/token", true},
		{"http://chat.example:80/a", "http://chat.example/a", true},
		{"https://chat.example/customer/token/", "https://chat.example/customer/token", false},
		{"https://evil.example/customer/token", "https://chat.example/customer/token", false},
		{"http://chat.example/customer/token", "https://chat.example/customer/token", false},
		{"/customer/token", "https://chat.example/customer/token", false},
	} {
		if got := sameTarget(tc.a, tc.b); got != tc.want {
			t.Errorf("sameTarget(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}
