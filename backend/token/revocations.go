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
	// Publish, when set, tells other processes of revocations made here.
	// Pushed reports whether revocations arrive pushed (LISTEN/NOTIFY on
	// PostgreSQL, sent by the store in the revoking transaction), in which
	// case Poll reads the store only every pushedPoll.
	Publish func(ids []string)
	Pushed  func() bool
	// OnChange, when set, is told that sessions were just revoked (the
	// event streams end theirs at once).
	OnChange func()
	resync   chan struct{}
}

// Resync makes the poller read the store now (after the push channel
// came back: what it may have missed meanwhile).
func (r *Revocations) Resync() {
	select {
	case r.resync <- struct{}{}:
	default:
	}
}

// NewRevocations returns an empty set.
func NewRevocations() *Revocations {
	return &Revocations{set: map[string]time.Time{}, resync: make(chan struct{}, 1)}
}

// Add marks sessions revoked here and tells the other processes.
func (r *Revocations) Add(ids ...string) {
	r.Learn(ids...)
	if r.Publish != nil && len(ids) > 0 {
		r.Publish(ids)
	}
}

// Learn marks sessions revoked that another process told of (or the
// store listed).
func (r *Revocations) Learn(ids ...string) {
	now := time.Now()
	r.mu.Lock()
	for _, id := range ids {
		if _, ok := r.set[id]; !ok {
			r.set[id] = now
		}
	}
	r.mu.Unlock()
	if r.OnChange != nil && len(ids) > 0 {
		r.OnChange()
	}
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
	full := time.Now()
	load := func() {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		// revoked_at is stamped by the revoking process's clock before its
		// transaction commits, so a revocation can appear behind the
		// cursor: re-read a generous overlap every time, and everything
		// within keep now and then, so clock skew or a slow commit delays
		// a revocation instead of losing it.
		from := since - revocationOverlap.Milliseconds()
		if time.Since(full) >= fullReload {
			from, full = time.Now().Add(-keep).UnixMilli(), time.Now()
		}
		ids, latest, err := src.RevokedSince(qctx, max(0, from))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("revocation poll failed; will retry", "err", err)
			}
			return
		}
		r.Learn(ids...)
		since = max(since, latest)
	}
	load()
	lastLoad := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.resync:
			load()
		case <-t.C:
			r.prune(keep)
			// While the push channel is up it carries revocations (sent in
			// the revoking transaction); the store is still read now and
			// then, so nothing a lost notification missed lasts long.
			if r.Pushed != nil && r.Pushed() && time.Since(lastLoad) < pushedPoll {
				continue
			}
			load()
			lastLoad = time.Now()
		}
	}
}

// The poll's safety margins: how far behind its cursor each poll reads,
// and how often it reads everything still relevant.
const (
	revocationOverlap = 30 * time.Second
	fullReload        = 5 * time.Minute
	// pushedPoll is how often the store is read while revocations are
	// pushed.
	pushedPoll = 5 * time.Second
)

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
