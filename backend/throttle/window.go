package throttle

import (
	"sync"
	"time"
)

// Window counts events per key in a fixed window in process memory, for
// limits that are about load rather than guesses (new visitors per IP):
// across several processes each keeps its own count. Secret guesses are
// counted by Guard, in the database.
type Window struct {
	Window time.Duration
	Now    func() time.Time

	mu      sync.Mutex
	entries map[string]*windowEntry
}

type windowEntry struct {
	fails int
	start time.Time
}

// NewWindow returns a counter with a window.
func NewWindow(window time.Duration) *Window {
	return &Window{Window: window, Now: time.Now, entries: map[string]*windowEntry{}}
}

// Blocked returns how long key must wait, or 0, given its limit.
func (t *Window) Blocked(key string, limit int) time.Duration {
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

// Fail counts an event for each key.
func (t *Window) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.Now()
	if len(t.entries) >= maxEntries {
		t.sweep(now)
	}
	for _, k := range keys {
		e, ok := t.entries[k]
		if !ok || !now.Before(e.start.Add(t.Window)) {
			e = &windowEntry{start: now}
			t.entries[k] = e
		}
		e.fails++
	}
}

// Reset forgets key.
func (t *Window) Reset(key string) {
	t.mu.Lock()
	delete(t.entries, key)
	t.mu.Unlock()
}

func (t *Window) sweep(now time.Time) {
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
