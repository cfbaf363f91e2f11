// Package retention runs the store's purge (sqlstore.DB.Purge) in the
// background, so the tables stay bounded: spent and expired refresh
// tokens, dead families, used and expired codes, expired personal tokens,
// abandoned visitors (CHATAUTH_VISITOR_RETENTION), old audit events
// (CHATAUTH_AUDIT_RETENTION) and finished throttle windows. The rules,
// and why nothing live is deleted, are sqlstore's (purge.go).
//
// With several processes on one PostgreSQL database one purges at a time:
// each run first takes an advisory lock (sqlstore.DB.TryExclusive), and a
// process that does not get it skips that run. On SQLite the single writer
// serializes the work and no lock is needed.
package retention

import (
	"context"
	"log/slog"
	"time"

	"chatauth/backend/sqlstore"
)

// Store is the purge the purger runs.
type Store interface {
	Purge(ctx context.Context, p sqlstore.PurgePolicy) (sqlstore.PurgeStats, error)
}

// Locker hands out a lock that one process at a time holds
// (sqlstore.DB.TryExclusive): ok is false when another holder has it.
type Locker interface {
	TryExclusive(ctx context.Context, name string) (release func(), ok bool, err error)
}

var (
	_ Store  = (*sqlstore.DB)(nil)
	_ Locker = (*sqlstore.DB)(nil)
)

// LockName names the purge's lock.
const LockName = "chatauth retention purge"

// Defaults of Purger.
const (
	DefaultEvery = 10 * time.Minute
	// DefaultDelay is the longest wait before the first run: a starting
	// server does its other work first, and short-lived ones (a test's)
	// never purge.
	DefaultDelay = time.Minute
)

// Purger purges every Every (default 10 minutes), the first time shortly
// after Run starts.
type Purger struct {
	Store
	Every  time.Duration
	Policy sqlstore.PurgePolicy
	Log    *slog.Logger
	// Lock, when set, keeps other purgers on the same database out while
	// a run lasts; without it every run goes ahead.
	Lock Locker
	// Delay is the wait before the first run; zero means the shorter of
	// Every and DefaultDelay.
	Delay time.Duration
}

// Run purges until ctx ends, and logs one line per run that deleted
// anything (and one per failure; the next run retries).
func (p *Purger) Run(ctx context.Context) {
	every := p.Every
	if every <= 0 {
		every = DefaultEvery
	}
	delay := p.Delay
	if delay <= 0 {
		delay = min(every, DefaultDelay)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		st, ran, err := p.Once(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			p.log().Warn("retention purge failed; will retry", "err", err, "deleted_so_far", st.Total())
		case !ran:
			p.log().Debug("retention purge skipped: another process is purging")
		case st.Total() > 0:
			p.log().Info("retention purge",
				"refresh_tokens", st.RefreshTokens, "families", st.Families, "codes", st.Codes,
				"personal_tokens", st.PersonalTokens, "visitors", st.Visitors, "audit_events", st.AuditEvents,
				"throttle", st.Throttle, "oidc_grants", st.OIDCGrants, "took", time.Since(start).Round(time.Millisecond))
		}
		// The interval runs from the end of a run: runs never overlap.
		t.Reset(every)
	}
}

// Once runs one purge now, under the lock when there is one. ran is false
// when another purger holds the lock: this run is skipped.
func (p *Purger) Once(ctx context.Context) (st sqlstore.PurgeStats, ran bool, err error) {
	if p.Lock != nil {
		release, ok, err := p.Lock.TryExclusive(ctx, LockName)
		if err != nil || !ok {
			return st, false, err
		}
		defer release()
	}
	st, err = p.Purge(ctx, p.Policy)
	return st, true, err
}

func (p *Purger) log() *slog.Logger {
	if p.Log == nil {
		return slog.Default()
	}
	return p.Log
}
