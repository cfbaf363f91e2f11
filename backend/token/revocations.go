package token

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Revocations is the in-memory set of revoked sessions (refresh families)
// that verifiers consult on every request without a database read. A
// process adds its own revocations at once and polls the store for other
// processes' every interval, so a revocation anywhere is honoured
// everywhere within one poll.
type Revocations struct {
	mu  sync.RWMutex
	set map[string]time.Time // sid → when we learned of it
}

// NewRevocations returns an empty set.
func NewRevocations() *Revocations { return &Revocations{set: map[string]time.Time{}} }

// Add marks sessions revoked.
func (r *Revocations) Add(ids ...string) {
	now := time.Now()
	r.mu.Lock()
	for _, id := range ids {
		if _, ok := r.set[id]; !ok {
			r.set[id] = now
		}
	}
	r.mu.Unlock()
}

// Revoked reports whether sid was revoked. A client-credentials session
// "cc_<client>.<epoch>.<token>" is also revoked with its epoch
// "cc_<client>.<epoch>", which ends every token the client minted in it.
func (r *Revocations) Revoked(sid string) bool {
	r.mu.RLock()
	_, ok := r.set[sid]
	if !ok && strings.HasPrefix(sid, "cc_") {
		if i := strings.LastIndexByte(sid, '.'); i > 0 {
			_, ok = r.set[sid[:i]]
		}
	}
	r.mu.RUnlock()
	return ok
}

// RevocationSource is the store query the poller needs.
type RevocationSource interface {
	RevokedSince(ctx context.Context, sinceMS int64) ([]string, int64, error)
}

// Poll keeps the set in step with the store until ctx ends. Entries older
// than keep (the longest access-token lifetime) are dropped: every access
// token of such a session has expired, and refresh tokens are checked in
// the database anyway.
func (r *Revocations) Poll(ctx context.Context, src RevocationSource, every, keep time.Duration, log *slog.Logger) {
	since := time.Now().Add(-keep).UnixMilli()
	load := func() {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// Re-read a small overlap: two revocations in the same millisecond
		// on two processes must both be seen.
		ids, latest, err := src.RevokedSince(qctx, max(0, since-1000))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("revocation poll failed; will retry", "err", err)
			}
			return
		}
		r.Add(ids...)
		since = latest
	}
	load()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			load()
			r.prune(keep)
		}
	}
}

func (r *Revocations) prune(keep time.Duration) {
	cutoff := time.Now().Add(-keep - time.Minute)
	r.mu.Lock()
	for id, at := range r.set {
		if at.Before(cutoff) {
			delete(r.set, id)
		}
	}
	r.mu.Unlock()
}
