package agentauth

import (
	"sync"
	"time"
)

// Throttle counts failed sign-ins per key (an account, a client IP) in a
// fixed window and locks a key that reaches its limit until the window
// ends. It lives in process memory: across several processes each keeps
// its own count, which only multiplies an attacker's budget by the number
// of processes.
type Throttle struct {
	Window time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	fails int
	start time.Time
}

// maxEntries bounds memory under a spray of distinct keys.
const maxEntries = 100_000

// NewThrottle returns a throttle with a window.
func NewThrottle(window time.Duration) *Throttle {
	return &Throttle{Window: window, Now: time.Now, entries: map[string]*throttleEntry{}}
}

// Blocked returns how long key must wait, or 0, given its limit.
func (t *Throttle) Blocked(key string, limit int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[key]
	if !ok {
		return 0
	}
	now := t.Now()
	end := e.start.Add(t.Window)
	if !now.Before(end) {
		delete(t.entries, key)
		return 0
	}
	if e.fails < limit {
		return 0
	}
	return end.Sub(now)
}

// Fail counts a failure for each key.
func (t *Throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	if len(t.entries) >= maxEntries {
		t.sweep(now)
	}
	for _, k := range keys {
		e, ok := t.entries[k]
		if !ok || !now.Before(e.start.Add(t.Window)) {
			e = &throttleEntry{start: now}
			t.entries[k] = e
		}
		e.fails++
	}
}

// Reset forgets key (after a successful sign-in).
func (t *Throttle) Reset(key string) {
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

func (t *Throttle) sweep(now time.Time) {
	for k, e := range t.entries {
		if !now.Before(e.start.Add(t.Window)) {
			delete(t.entries, k)
		}
	}
	// Still full: a spray of fresh keys. Forget arbitrary ones rather than
	// grow without bound; the per-account limit still holds for the rest.
	for k := range t.entries {
		if len(t.entries) < maxEntries/2 {
			break
		}
		delete(t.entries, k)
	}
}
