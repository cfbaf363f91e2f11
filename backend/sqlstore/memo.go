package sqlstore

import (
	"sync"
	"time"
)

// memoTTL bounds how stale a memoized read can be in a process that did
// not make the change itself: the same one-second window that token
// revocation promises between processes. A change made through this
// process clears the memo at once.
const memoTTL = time.Second

// memoMax bounds a memo's size; when full it starts over, which is cheap
// and keeps an attacker who sends random ids from growing it.
const memoMax = 10000

// memo caches hot reads that change rarely (OAuth clients, organization
// tree membership) for at most memoTTL. Every client-credentials,
// introspection and widget request reads them, and on SQLite each read
// was a third of the request's cost.
type memo[K comparable, V any] struct {
	mu  sync.Mutex
	m   map[K]memoEntry[V]
	gen uint64 // bumped by clear, so a read that raced a change is not stored
}

type memoEntry[V any] struct {
	v   V
	exp time.Time
}

// get returns the cached value and the generation to pass to put.
func (c *memo[K, V]) get(k K, now time.Time) (V, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false, c.gen
	}
	return e.v, true, c.gen
}

// put stores v unless the memo was cleared since get returned gen.
func (c *memo[K, V]) put(k K, v V, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= memoMax {
		c.m = make(map[K]memoEntry[V])
	}
	c.m[k] = memoEntry[V]{v: v, exp: now.Add(memoTTL)}
}

func (c *memo[K, V]) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.m = nil
}
