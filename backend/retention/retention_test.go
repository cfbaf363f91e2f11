package retention_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chatauth/backend/app"
	"chatauth/backend/config"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/retention"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
)

const (
	ttl   = 90 * 24 * time.Hour // refresh-token life: longer than the visitor retention
	grace = 10 * time.Second
	day   = 24 * time.Hour
)

// policy is what app.New builds from the default settings.
var policy = sqlstore.PurgePolicy{Grace: grace, RevocationKeep: day + time.Minute}

// clock is one settable clock for the store and the families.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	db  *sqlstore.DB
	f   *refresh.Families
	clk *clock
	org int64
	p   *retention.Purger
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: time.UnixMilli(time.Now().UnixMilli())}
	db.Now = clk.Now
	org := &domain.Organization{Name: "Org"}
	if err := db.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	f := refresh.New(db, token.NewRevocations(), token.NewSecret("a-secret-of-at-least-32-characters!!"), ttl, grace, clk.Now)
	return &fixture{db: db, f: f, clk: clk, org: org.ID, p: &retention.Purger{Store: db, Lock: db, Policy: policy}}
}

func (fx *fixture) purge(t *testing.T) sqlstore.PurgeStats {
	t.Helper()
	st, ran, err := fx.p.Once(context.Background())
	if err != nil || !ran {
		t.Fatalf("purge: ran %v, err %v", ran, err)
	}
	return st
}

// visitor creates a visitor and, with session, a customer family with
// its first refresh token.
func (fx *fixture) visitor(t *testing.T, id string, session bool) (famID, secret string) {
	t.Helper()
	ctx := context.Background()
	if err := fx.db.CreateCustomer(ctx, &domain.Customer{EntityID: id, OrgID: fx.org, ClientID: "client"}); err != nil {
		t.Fatal(err)
	}
	if !session {
		return "", ""
	}
	fam := &domain.Family{Kind: refresh.KindCustomer, Subject: id, OrgID: fx.org, ClientID: "client", Scope: "guest"}
	secret, err := fx.f.Start(ctx, fam, token.PrefixCustomerRefresh)
	if err != nil {
		t.Fatal(err)
	}
	return fam.ID, secret
}

func (fx *fixture) rotate(t *testing.T, secret string) string {
	t.Helper()
	_, next, err := fx.f.Rotate(context.Background(), secret, nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return next
}

func (fx *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := fx.db.SQL().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (fx *fixture) exists(t *testing.T, entityID string) bool {
	t.Helper()
	_, err := fx.db.Customer(context.Background(), entityID)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestNothingLiveIsPurged walks families, visitors and audit events
// through their lives with purges all along: whatever a request can still
// use is there, whatever it cannot goes.
func TestNothingLiveIsPurged(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		t0 := fx.clk.Now()
		famID, r0 := fx.visitor(t, "v-live", true)
		fx.visitor(t, "v-chat", false)
		conversations := sqlstore.Table{Name: "conversations", Columns: []sqlstore.Column{{Name: "customer_id", Kind: sqlstore.ColText}}}
		if _, err := fx.db.InsertObject(ctx, conversations, fx.org, map[string]any{"customer_id": "v-chat"}); err != nil {
			t.Fatal(err)
		}
		fx.visitor(t, "v-gone", false)
		if err := fx.db.Audit(ctx, domain.AuditEvent{OrgID: fx.org, Event: "first"}); err != nil {
			t.Fatal(err)
		}

		// Within grace: the spent token and its successor stay, and two
		// tabs racing one refresh both get the same successor.
		r1 := fx.rotate(t, r0)
		fx.clk.Add(grace / 2)
		fx.purge(t)
		if again := fx.rotate(t, r0); again != r1 {
			t.Fatal("a replay within grace after a purge did not answer the successor")
		}
		r2 := fx.rotate(t, r1)
		if n := fx.count(t, "refresh_tokens"); n != 3 {
			t.Fatalf("%d tokens within grace, want r0, r1 and r2", n)
		}

		// Past grace: the older spent token goes; the last one spent stays
		// (presenting it would be reuse); the live one stays and works.
		fx.clk.Add(grace + time.Millisecond)
		if st := fx.purge(t); st.RefreshTokens != 1 || st.Families != 0 {
			t.Fatalf("past grace purged %+v, want the older spent token", st)
		}
		if _, _, err := fx.f.Lookup(ctx, r2); err != nil {
			t.Fatalf("live token after a purge: %v", err)
		}
		r3 := fx.rotate(t, r2)
		// (A purged spent token is still reuse, found through its derived
		// successors: TestDescendantReuse in backend/refresh.)
		_, _ = r0, r3

		// A revoked family stays RevocationKeep, listed to every process.
		agent := &domain.Family{Kind: refresh.KindAgent, Subject: "7", OrgID: fx.org, Scope: "agent"}
		if _, err := fx.f.Start(ctx, agent, token.PrefixRefresh); err != nil {
			t.Fatal(err)
		}
		revokedAt := fx.clk.Now().UnixMilli()
		if err := fx.f.Revoke(ctx, agent.ID, "test"); err != nil {
			t.Fatal(err)
		}
		listed := func() bool {
			ids, _, err := fx.db.RevokedSince(ctx, revokedAt)
			if err != nil {
				t.Fatal(err)
			}
			return slices.Contains(ids, agent.ID)
		}
		fx.clk.Add(policy.RevocationKeep - time.Second)
		fx.purge(t)
		if _, err := fx.db.Family(ctx, agent.ID); err != nil || !listed() {
			t.Fatalf("revoked family younger than RevocationKeep: %v, listed %v", err, listed())
		}
		fx.clk.Add(2 * time.Second)
		if st := fx.purge(t); st.Families != 1 {
			t.Fatalf("purged %+v, want the revoked family", st)
		}
		if _, err := fx.db.Family(ctx, agent.ID); !errors.Is(err, domain.ErrNotFound) || listed() {
			t.Fatalf("revoked family older than RevocationKeep: %v, listed %v", err, listed())
		}

		// Past the visitor retention: the visitor with neither a
		// conversation nor a session goes; the others stay, and the live
		// session still refreshes.
		fx.clk.Set(t0.Add(30 * day))
		fx.purge(t)
		if !fx.exists(t, "v-live") || !fx.exists(t, "v-chat") || !fx.exists(t, "v-gone") {
			t.Fatal("a visitor went before the retention")
		}
		fx.clk.Add(time.Millisecond)
		if st := fx.purge(t); st.Visitors != 1 || fx.exists(t, "v-gone") {
			t.Fatalf("purged %+v, want the abandoned visitor", st)
		}
		if !fx.exists(t, "v-live") || !fx.exists(t, "v-chat") {
			t.Fatal("a visitor with a conversation or a live session went")
		}
		if _, err := fx.db.Family(ctx, famID); err != nil {
			t.Fatal(err)
		}
		r3 = fx.rotate(t, r3)
		if n := fx.count(t, "audit_events"); n != 1 {
			t.Fatalf("%d audit events, want the one younger than the retention", n)
		}

		// Once its last token expired (and RevocationKeep more), the
		// session goes and takes its visitor with it.
		fx.clk.Add(ttl + policy.RevocationKeep + grace + time.Second)
		st := fx.purge(t)
		if st.Families != 1 || st.Visitors != 1 || fx.exists(t, "v-live") || !fx.exists(t, "v-chat") {
			t.Fatalf("purged %+v after the session expired", st)
		}
		if _, _, err := fx.f.Lookup(ctx, r3); !errors.Is(err, refresh.ErrUnknown) {
			t.Fatalf("expired token: %v", err)
		}
		fx.clk.Add(365 * day)
		if st := fx.purge(t); st.AuditEvents != 1 {
			t.Fatalf("purged %+v after the audit retention", st)
		}
	})
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s = %q: want a positive number", name, v)
	}
	return n
}

// TestRefreshStormStaysBounded: every visitor refreshes silently over and
// over (mostly by rotation, every fifth time by the cookie path), with a
// purge every purgeEvery rounds, the clock moved past the grace window
// first. The refresh-token table stays at about one row per visitor and
// every visitor's session keeps working.
//
// CHATAUTH_STORM_VISITORS and CHATAUTH_STORM_REFRESHES (per visitor) set
// the size; the figure is 1000 and 200 (200,000 refreshes).
func TestRefreshStormStaysBounded(t *testing.T) {
	visitors := envInt(t, "CHATAUTH_STORM_VISITORS", 200)
	refreshes := envInt(t, "CHATAUTH_STORM_REFRESHES", 100)
	const (
		purgeEvery = 10
		workers    = 8
	)
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		t.Parallel() // SQLite's run is bound by the writer, PostgreSQL's by round trips
		ctx := context.Background()
		fx := newFixture(t, dsn)
		fams := make([]string, visitors)
		secrets := make([]string, visitors)
		for i := range visitors {
			fams[i], secrets[i] = fx.visitor(t, fmt.Sprintf("storm-%d", i), true)
		}
		// Another process's purger runs all along, beside the refreshes.
		bg, stopBG := context.WithCancel(ctx)
		var bgRuns atomic.Int64
		var bgWG sync.WaitGroup
		bgWG.Add(1)
		go func() {
			defer bgWG.Done()
			p := &retention.Purger{Store: fx.db, Policy: policy}
			for bg.Err() == nil {
				if _, _, err := p.Once(bg); err != nil && bg.Err() == nil {
					t.Errorf("background purge: %v", err)
					return
				}
				bgRuns.Add(1)
				time.Sleep(20 * time.Millisecond)
			}
		}()
		start := time.Now()
		var total sqlstore.PurgeStats
		peak, purges := 0, 0
		for round := range refreshes {
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < visitors; i += workers {
						var next string
						var err error
						if round%5 == 4 {
							_, next, err = fx.f.Add(ctx, fams[i], token.PrefixCustomerRefresh, nil)
						} else {
							_, next, err = fx.f.Rotate(ctx, secrets[i], nil)
						}
						if err != nil {
							errs <- fmt.Errorf("visitor %d, refresh %d: %w", i, round, err)
							return
						}
						secrets[i] = next
					}
				}()
			}
			wg.Wait()
			close(errs)
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			if (round+1)%purgeEvery == 0 || round == refreshes-1 {
				peak = max(peak, fx.count(t, "refresh_tokens"))
				fx.clk.Add(grace + time.Second)
				st := fx.purge(t)
				purges++
				total.RefreshTokens += st.RefreshTokens
				total.Families += st.Families
				total.Visitors += st.Visitors
			}
		}
		took := time.Since(start)
		stopBG()
		bgWG.Wait()
		// One more purge once the other purger stopped: it runs without
		// the lock (so it races this test's purges), and a batch it
		// emptied first can end one of theirs early.
		st := fx.purge(t)
		total.RefreshTokens += st.RefreshTokens
		rows := fx.count(t, "refresh_tokens")
		t.Logf("%d visitors × %d silent refreshes (%d in all) in %v, %d purges (and %d by a purger running beside them): refresh_tokens peaked at %d rows (%.1f per visitor) before a purge, holds %d after the last (%.2f per visitor); the test's own purges deleted %d tokens, %d families, %d visitors",
			visitors, refreshes, visitors*refreshes, took.Round(time.Millisecond), purges, bgRuns.Load(), peak, float64(peak)/float64(visitors), rows, float64(rows)/float64(visitors),
			total.RefreshTokens, total.Families, total.Visitors)
		if rows > 3*visitors {
			t.Fatalf("refresh_tokens holds %d rows for %d visitors, want at most 3 per visitor", rows, visitors)
		}
		if total.Families != 0 || total.Visitors != 0 || fx.count(t, "refresh_families") != visitors || fx.count(t, "customers") != visitors {
			t.Fatalf("a live session or visitor went: purged %+v", total)
		}
		for i := range visitors {
			if _, _, err := fx.f.Lookup(ctx, secrets[i]); err != nil {
				t.Fatalf("visitor %d's live token after the storm: %v", i, err)
			}
		}
	})
}

// gate is a purge store that counts concurrent purges.
type gate struct {
	active, peak, runs atomic.Int64
	hold               time.Duration
	block              chan struct{} // when set, Purge waits for it to close
	entered            chan struct{}
}

func (g *gate) Purge(ctx context.Context, _ sqlstore.PurgePolicy) (sqlstore.PurgeStats, error) {
	n := g.active.Add(1)
	defer g.active.Add(-1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			break
		}
	}
	g.runs.Add(1)
	if g.block != nil {
		g.entered <- struct{}{}
		<-g.block
	}
	time.Sleep(g.hold)
	return sqlstore.PurgeStats{}, ctx.Err()
}

// TestOnePurgerAtATime: two processes (two stores) on one PostgreSQL
// database never purge at the same time; the one that does not get the
// lock skips its run.
func TestOnePurgerAtATime(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	ctx := context.Background()
	open := func() *sqlstore.DB {
		db, err := sqlstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()

	g := &gate{block: make(chan struct{}), entered: make(chan struct{})}
	pa := &retention.Purger{Store: g, Lock: a}
	pb := &retention.Purger{Store: g, Lock: b}
	done := make(chan bool)
	go func() {
		_, ran, err := pa.Once(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- ran
	}()
	<-g.entered
	if _, ran, err := pb.Once(ctx); err != nil || ran {
		t.Fatalf("second purger while the first runs: ran %v, err %v", ran, err)
	}
	close(g.block)
	if !<-done {
		t.Fatal("first purger did not run")
	}
	g.block = nil
	if _, ran, err := pb.Once(ctx); err != nil || !ran {
		t.Fatalf("second purger after the first: ran %v, err %v", ran, err)
	}

	// Both running all the time, from two goroutines each, against the
	// real purge too: never two at once.
	g = &gate{hold: 5 * time.Millisecond}
	var skipped atomic.Int64
	var wg sync.WaitGroup
	for _, db := range []*sqlstore.DB{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &retention.Purger{Store: g, Lock: db}
			real := &retention.Purger{Store: db, Lock: db, Policy: policy}
			for range 25 {
				if _, ran, err := p.Once(ctx); err != nil {
					t.Error(err)
					return
				} else if !ran {
					skipped.Add(1)
				}
				if _, _, err := real.Once(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d runs, %d skipped, at most %d at once", g.runs.Load(), skipped.Load(), g.peak.Load())
	if g.peak.Load() != 1 || g.runs.Load() == 0 || skipped.Load() == 0 {
		t.Fatalf("peak %d, runs %d, skipped %d: want one purger at a time", g.peak.Load(), g.runs.Load(), skipped.Load())
	}
	for _, db := range []*sqlstore.DB{a, b} {
		if n := db.SQL().Stats().InUse; n != 0 {
			t.Fatalf("%d connections still in use", n)
		}
	}
}

// syncBuffer is a log destination safe for the purger's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunPurgesAndLogs: Run purges on its schedule, logs one line with
// the counts when it deleted something (and none when it did not), and
// returns when its context ends.
func TestRunPurgesAndLogs(t *testing.T) {
	fx := newFixture(t, sqlstoretest.SQLite(t))
	ctx := context.Background()
	for range 3 {
		if err := fx.db.Audit(ctx, domain.AuditEvent{OrgID: fx.org, Event: "old"}); err != nil {
			t.Fatal(err)
		}
	}
	fx.clk.Add(366 * day)
	var logs syncBuffer
	fx.p.Log = slog.New(slog.NewTextHandler(&logs, nil))
	fx.p.Every, fx.p.Delay = 5*time.Millisecond, time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	ended := make(chan struct{})
	go func() { defer close(ended); fx.p.Run(runCtx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "audit_events=3") {
		if time.Now().After(deadline) {
			t.Fatalf("no purge logged; logs: %q", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // several more runs, with nothing to delete
	stop()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := strings.Count(logs.String(), "msg=\"retention purge\""); n != 1 {
		t.Fatalf("%d purge lines, want 1: %q", n, logs.String())
	}
	if n := fx.count(t, "audit_events"); n != 0 {
		t.Fatalf("%d audit events left", n)
	}
}

func TestRetentionSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := config.Load(env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.VisitorRetention != 720*time.Hour || c.AuditRetention != 8760*time.Hour {
		t.Fatalf("defaults: visitors %v, audit %v", c.VisitorRetention, c.AuditRetention)
	}
	c, err = config.Load(env(map[string]string{"CHATAUTH_VISITOR_RETENTION": "24h"}), []string{"--audit-retention=48h"})
	if err != nil || c.VisitorRetention != day || c.AuditRetention != 2*day {
		t.Fatalf("got %v %v, %v", c.VisitorRetention, c.AuditRetention, err)
	}
	for _, tt := range []struct {
		env     map[string]string
		args    []string
		mention string
	}{
		{map[string]string{"CHATAUTH_VISITOR_RETENTION": "23h"}, nil, "CHATAUTH_VISITOR_RETENTION"},
		{map[string]string{"CHATAUTH_VISITOR_RETENTION": "a month"}, nil, "CHATAUTH_VISITOR_RETENTION"},
		{map[string]string{"CHATAUTH_AUDIT_RETENTION": "1h"}, nil, "CHATAUTH_AUDIT_RETENTION"},
		{nil, []string{"--audit-retention=0s"}, "CHATAUTH_AUDIT_RETENTION"},
		{nil, []string{"--visitor-retention=-1h"}, "--visitor-retention"},
	} {
		if _, err := config.Load(env(tt.env), tt.args); err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%v %v: err = %v, want it to name %s", tt.env, tt.args, err, tt.mention)
		}
	}
}

// TestAppWiresThePurger: the server's purger keeps revoked families a
// minute longer than the longest access token and spent tokens for the
// grace window, and Close stops it.
func TestAppWiresThePurger(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{
		"CHATAUTH_DB": "sqlite:" + filepath.Join(dir, "db", "chatauth.db"), "CHATAUTH_ACCESS_TTL": "1h", "CHATAUTH_CUSTOMER_TTL": "2h",
		"CHATAUTH_REFRESH_GRACE": "3s", "CHATAUTH_CODE_TTL": "90m", "CHATAUTH_VISITOR_RETENTION": "48h", "CHATAUTH_AUDIT_RETENTION": "72h",
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := sqlstore.PurgePolicy{Grace: 3 * time.Second, RevocationKeep: 2*time.Hour + time.Minute, CodeKeep: 90 * time.Minute, VisitorRetention: 2 * day, AuditRetention: 3 * day}
	if a.Purger == nil || a.Purger.Policy != want || a.Purger.Lock == nil {
		t.Fatalf("purger %+v, want policy %+v", a.Purger, want)
	}
	closed := make(chan error)
	go func() { closed <- a.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}
