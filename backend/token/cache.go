package token

import (
	"sync"
	"time"
)

// verified caches successful verifications so a token seen before costs a
// map lookup instead of an Ed25519 verification (~50 µs). It is keyed by
// the whole token string, bounded, and an entry never outlives the
// token's exp. Revocation is not cached: the caller checks the in-memory
// revocation set on every hit, so a revoked session is refused at once.
type verified[T any] struct {
	mu      sync.RWMutex
	entries map[string]cachedClaims[T]
	max     int
}

type cachedClaims[T any] struct {
	claims T
	exp    int64 // Unix seconds
}

func newVerified[T any](max int) *verified[T] {
	return &verified[T]{entries: make(map[string]cachedClaims[T], 1024), max: max}
}

func (v *verified[T]) get(raw string, now time.Time) (T, bool) {
	v.mu.RLock()
	e, ok := v.entries[raw]
	v.mu.RUnlock()
	if !ok || now.Unix() >= e.exp {
		var zero T
		return zero, false
	}
	return e.claims, true
}

func (v *verified[T]) put(raw string, c T, exp int64, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.entries) >= v.max {
		// Full: drop the expired, then (a flood of distinct tokens) an
		// arbitrary half. Map iteration order is random enough.
		n := now.Unix()
		for k, e := range v.entries {
			if n >= e.exp {
				delete(v.entries, k)
			}
		}
		for k := range v.entries {
			if len(v.entries) < v.max/2 {
				break
			}
			delete(v.entries, k)
		}
	}
	v.entries[raw] = cachedClaims[T]{claims: c, exp: exp}
}

// cacheSize bounds each verifier's cache: about 10 MB at its largest.
const cacheSize = 20_000
