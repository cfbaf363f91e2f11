package sdk

import (
	"strings"
	"sync"
	"testing"
)

// memKV is sessionStorage for tests: it outlives the Nonce (a reload).
type memKV struct {
	mu   sync.Mutex
	m    map[string]string
	sets int
}

func (k *memKV) Get(key string) string { k.mu.Lock(); defer k.mu.Unlock(); return k.m[key] }
func (k *memKV) Set(key, v string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[string]string{}
	}
	k.m[key] = v
	k.sets++
}

// nonceServer is a token endpoint that requires its current nonce (RFC
// 9449, section 8) and sends it with every answer.
type nonceServer struct {
	current string
	signed  []string // the nonce of each request, in order
}

func (s *nonceServer) do(nonce string) (int, string, string, error) {
	s.signed = append(s.signed, nonce)
	if nonce != s.current {
		return 400, CodeUseDPoPNonce, s.current, nil
	}
	return 200, "", s.current, nil
}

func TestNonceSurvivesReload(t *testing.T) {
	t.Parallel()
	kv := &memKV{}
	srv := &nonceServer{current: "n1"}

	// The first page load pays the one use_dpop_nonce round trip.
	if err := NewNonce(kv, testIssuer).Send(srv.do); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(srv.signed, ","); got != ",n1" {
		t.Fatalf("first load signed %q, want \",n1\"", got)
	}

	// A reload: a new Nonce over the same storage signs n1 at once.
	srv.signed = nil
	reloaded := NewNonce(kv, testIssuer)
	if err := reloaded.Send(srv.do); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(srv.signed, ","); got != "n1" {
		t.Fatalf("after a reload signed %q, want \"n1\" in one request", got)
	}
	if kv.sets != 1 {
		t.Fatalf("%d writes of an unchanged nonce", kv.sets)
	}

	// The server moved on: the stale nonce costs the one retry, and the
	// new one is kept for the next load.
	srv.current, srv.signed = "n2", nil
	if err := reloaded.Send(srv.do); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(srv.signed, ","); got != "n1,n2" {
		t.Fatalf("stale nonce: signed %q, want \"n1,n2\"", got)
	}
	srv.signed = nil
	if err := NewNonce(kv, testIssuer).Send(srv.do); err != nil || strings.Join(srv.signed, ",") != "n2" {
		t.Fatalf("after the stale one: signed %q, %v", srv.signed, err)
	}
}

func TestNonceRetriesOnce(t *testing.T) {
	t.Parallel()
	// A server that wants a new nonce every time: one retry, then its
	// answer stands.
	calls := 0
	var status int
	err := NewNonce(nil, testIssuer).Send(func(nonce string) (int, string, string, error) {
		calls++
		status = 400
		return status, CodeUseDPoPNonce, "n" + itoa(calls), nil
	})
	if err != nil || calls != 2 || status != 400 {
		t.Fatalf("calls %d, err %v", calls, err)
	}

	// No answer at all: the error, no retry.
	calls = 0
	err = NewNonce(nil, testIssuer).Send(func(string) (int, string, string, error) {
		calls++
		return 0, "", "", errorf(CodeNetwork, "offline")
	})
	if !IsCode(err, CodeNetwork) || calls != 1 {
		t.Fatalf("calls %d, err %v", calls, err)
	}

	// Any other refusal is not sent again.
	calls = 0
	NewNonce(nil, testIssuer).Send(func(string) (int, string, string, error) {
		calls++
		return 400, CodeInvalidDPoPProof, "n1", nil
	})
	if calls != 1 {
		t.Fatalf("invalid_dpop_proof sent %d times", calls)
	}
}

func TestNoncePerServer(t *testing.T) {
	t.Parallel()
	kv := &memKV{}
	NewNonce(kv, "https://chat.example.com").Set("a")
	NewNonce(kv, "https://other.example.com").Set("b")
	for server, want := range map[string]string{
		"https://chat.example.com":      "a",
		"https://other.example.com":     "b",
		"https://chat.example.com:8443": "",
		"http://chat.example.com":       "",
	} {
		if got := NewNonce(kv, server).Get(); got != want {
			t.Errorf("nonce of %s = %q, want %q", server, got, want)
		}
	}
	// An answer without a nonce keeps the one we have.
	n := NewNonce(kv, "https://chat.example.com")
	n.Set("")
	if n.Get() != "a" {
		t.Fatal("an empty nonce replaced the stored one")
	}
	// Junk in storage is not signed.
	kv.Set("chatauth_dpop_nonce:https://junk.example.com", strings.Repeat("x", maxNonce+1))
	if got := NewNonce(kv, "https://junk.example.com").Get(); got != "" {
		t.Fatalf("an oversized stored nonce was used: %d bytes", len(got))
	}
}
