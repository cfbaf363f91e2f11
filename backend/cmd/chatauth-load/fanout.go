package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mrand "math/rand/v2"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func sqliteDSN(dir, name string) string { return "sqlite:" + filepath.Join(dir, name, "chatauth.db") }

// fanoutEnv raises both stream limits: M streams of one agent from one
// address.
var fanoutEnv = []string{"CHATAUTH_STREAMS_PER_USER=100000", "CHATAUTH_STREAMS_PER_IP=100000"}

type fanResult struct {
	Name      string     `json:"name"`
	Database  string     `json:"database"`
	Processes int        `json:"processes"`
	Server    []string   `json:"server_env"`
	Streams   int        `json:"streams"`
	Messages  int        `json:"messages"`
	Open      openResult `json:"open"`
	// Pairs is how many (stream, message) arrivals were timed; Lost
	// those that did not arrive within 5 s, Duplicated those that came
	// twice.
	Pairs       int     `json:"pairs"`
	Lost        int     `json:"lost"`
	Duplicated  int     `json:"duplicated"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	PostP50ms   float64 `json:"post_p50_ms"` // the POST's own answer
	TargetP99ms float64 `json:"target_p99_ms"`
	Met         bool    `json:"met"`
}

// fanout opens m agent streams on conversation conv of the streams
// server and posts k messages, one after another, through the agent API
// of the posts server; each message's latency on each stream is from
// just before its POST to its arrival.
func fanout(name string, streams, posts *server, token string, conv int64, m, k int, target float64) (*fanResult, error) {
	res := &fanResult{Name: name, Streams: m, Messages: k, TargetP99ms: target}
	conns := make([]*rawStream, m)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	path := "/api/v1/conversations/" + strconv.FormatInt(conv, 10) + "/events"
	res.Open = openMany(streams.addr, 0, m, 32, func(int) string { return path }, func(int) string { return "Authorization: Bearer " + token + "\r\n" }, conns)
	if res.Open.OK == 0 {
		return res, fmt.Errorf("no stream opened: %s", res.Open.FirstErr)
	}
	type arrival struct {
		id int64
		at time.Time
	}
	got := make([][]arrival, m)
	var delivered atomic.Int64
	var wg sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sse(c, func(id int64, event string, _ []byte, at time.Time) bool {
				if event == "message" {
					got[i] = append(got[i], arrival{id, at})
					delivered.Add(1)
				}
				return true
			})
		}()
	}
	// Every stream is in the hub once its head is written; a moment for
	// the catch-up read each join triggers.
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	sent := map[int64]time.Time{}
	var postLat []time.Duration
	open := int64(res.Open.OK)
	for j := range k {
		t0 := time.Now()
		var msg struct{ ID int64 }
		err := postJSON(client, posts.base+"/api/v1/conversations/"+strconv.FormatInt(conv, 10)+"/messages", token,
			`{"content":"fan-out message `+strconv.Itoa(j)+`","message_type":"outgoing"}`, 201, &msg)
		if err != nil {
			return res, fmt.Errorf("post message %d: %w", j, err)
		}
		postLat = append(postLat, time.Since(t0))
		sent[msg.ID] = t0
		// One after another: the next message once every stream has
		// this one (or 5 s have gone).
		deadline := t0.Add(5 * time.Second)
		for delivered.Load() < open*int64(j+1) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // late duplicates
	for _, c := range conns {
		if c != nil {
			c.conn.Close()
		}
	}
	wg.Wait()
	var lat []time.Duration
	for i, c := range conns {
		if c == nil {
			continue
		}
		seen := map[int64]bool{}
		for _, a := range got[i] {
			t0, ok := sent[a.id]
			if !ok {
				continue
			}
			if seen[a.id] {
				res.Duplicated++
				continue
			}
			seen[a.id] = true
			lat = append(lat, a.at.Sub(t0))
		}
		res.Lost += len(sent) - len(seen)
	}
	res.Pairs = len(lat)
	res.P50ms, res.P99ms, res.MaxMs = durPct(lat, 0.5), durPct(lat, 0.99), durPct(lat, 1)
	res.PostP50ms = durPct(postLat, 0.5)
	res.Met = res.Open.OK == m && res.Lost == 0 && res.Duplicated == 0 && res.P99ms <= target
	return res, nil
}

// durPct is the p-quantile of ds (nearest rank below), in ms; it sorts ds.
func durPct(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[int(p*float64(len(ds)-1))].Microseconds()) / 1000
}

func printFan(r *fanResult) {
	fmt.Printf("  %s: %d streams (%d opened%s), %d messages one after another: %d arrivals, p50 %.2f ms, p99 %.2f ms, max %.2f ms (the POST itself: p50 %.2f ms); lost %d, duplicated %d   target p99 ≤ %.0f ms  %s\n",
		r.Name, r.Streams, r.Open.OK, openTrouble(r.Open), r.Messages, r.Pairs, r.P50ms, r.P99ms, r.MaxMs, r.PostP50ms, r.Lost, r.Duplicated, r.TargetP99ms, verdict(r.Met))
}

// agentSetup signs the admin in on srv and starts a conversation.
func agentSetup(srv *server) (string, int64, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	sp := setup{c: client, base: srv.base}
	p, err := sp.login()
	if err != nil {
		return "", 0, err
	}
	var o struct{ ID int64 }
	if err := postJSON(client, srv.base+"/api/v1/conversations", p.Token, `{"subject":"fan-out","status":"open"}`, 201, &o); err != nil {
		return "", 0, fmt.Errorf("POST /api/v1/conversations: %w", err)
	}
	return p.Token, o.ID, nil
}

// fanoutOne is the fan-out in one process on SQLite.
func fanoutOne(bin, dir string, m, k int) (*fanResult, error) {
	srv, err := startServer(bin, dir, "fanout-server", sqliteDSN(dir, "fanout"), "", fanoutEnv...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	tok, conv, err := agentSetup(srv)
	if err != nil {
		return nil, err
	}
	fmt.Printf("\nfan-out: one server process (SQLite, %s)\n", strings.Join(fanoutEnv, " "))
	r, err := fanout("one process, SQLite", srv, srv, tok, conv, m, k, 50)
	if r != nil {
		r.Database, r.Processes, r.Server = "sqlite", 1, fanoutEnv
		printFan(r)
	}
	return r, err
}

type revResult struct {
	Trials      int       `json:"trials"`
	Ended       int       `json:"ended_revoked"`
	Samples     []float64 `json:"samples_ms"` // sorted
	P50ms       float64   `json:"p50_ms"`
	P99ms       float64   `json:"p99_ms"`
	MaxMs       float64   `json:"max_ms"`
	LogoutP50ms float64   `json:"logout_post_p50_ms"` // the POST's own answer
	TargetP99ms float64   `json:"target_p99_ms"`
	Met         bool      `json:"met"`
	FirstErr    string    `json:"first_error,omitempty"`
}

// pgDatabase creates a database of its own on the server of dsn and
// returns its DSN and a function that drops it.
func pgDatabase(dsn string) (string, func(), error) {
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "chatauth_load_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		a, err := sql.Open("pgx", dsn)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	}
	return u.String(), drop, nil
}

// acrossPostgres is the two-process part: servers A and B on one
// PostgreSQL database, streams on B and posts on A; then revocation
// across them.
func acrossPostgres(bin, dir, dsn string, m, k, trials int) (*fanResult, *revResult, error) {
	db, drop, err := pgDatabase(dsn)
	if err != nil {
		return nil, nil, err
	}
	defer drop()
	var sb [24]byte
	rand.Read(sb[:])
	env := append([]string{"CHATAUTH_SECRET=" + hex.EncodeToString(sb[:])}, fanoutEnv...)
	a, err := startServer(bin, dir, "pg-server-a", db, "", env...)
	if err != nil {
		return nil, nil, err
	}
	defer a.stop()
	b, err := startServer(bin, dir, "pg-server-b", db, a.base, env...)
	if err != nil {
		return nil, nil, err
	}
	defer b.stop()
	tok, conv, err := agentSetup(a)
	if err != nil {
		return nil, nil, err
	}
	fmt.Printf("\nacross two server processes on one PostgreSQL database (%s; streams on B, posts and sign-outs on A)\n", strings.Join(fanoutEnv, " "))
	var fr *fanResult
	if m > 0 {
		fr, err = fanout("two processes, PostgreSQL", b, a, tok, conv, m, k, 150)
		if fr != nil {
			fr.Database, fr.Processes, fr.Server = "postgres", 2, fanoutEnv
			printFan(fr)
		}
		if err != nil {
			return fr, nil, err
		}
	}
	rr := revocation(a, b, conv, trials)
	fmt.Printf("  revocation: sign in on A, stream on B, POST /api/v1/auth/logout on A, until B ends the stream (event: end, revoked): %d of %d trials ended, p50 %.1f ms, p99 %.1f ms, max %.1f ms (the logout POST itself: p50 %.1f ms)   target p99 ≤ %.0f ms  %s\n",
		rr.Ended, rr.Trials, rr.P50ms, rr.P99ms, rr.MaxMs, rr.LogoutP50ms, rr.TargetP99ms, verdict(rr.Met))
	if rr.FirstErr != "" {
		fmt.Printf("    first error: %s\n", rr.FirstErr)
	}
	return fr, rr, nil
}

// revocation times trials sign-outs on a until b ends a stream of that
// sign-in.
func revocation(a, b *server, conv int64, trials int) *revResult {
	rr := &revResult{Trials: trials, TargetP99ms: 100}
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	sp := setup{c: client, base: a.base}
	fail := func(err error) {
		if rr.FirstErr == "" {
			rr.FirstErr = err.Error()
		}
	}
	path := "/api/v1/conversations/" + strconv.FormatInt(conv, 10) + "/events"
	var logouts []time.Duration
	for range trials {
		p, err := sp.login()
		if err != nil {
			fail(err)
			continue
		}
		s, err := openStream(b.addr, path, "Authorization: Bearer "+p.Token+"\r\n", 10*time.Second)
		if err == nil && s.status != 200 {
			s.conn.Close()
			err = fmt.Errorf("stream on B: %d %s", s.status, bytes.TrimSpace(s.rest))
		}
		if err != nil {
			fail(err)
			continue
		}
		ended := make(chan time.Time, 1)
		go func() {
			sse(s, func(_ int64, event string, data []byte, at time.Time) bool {
				if event == "end" {
					if bytes.Contains(data, []byte("revoked")) {
						ended <- at
					}
					return false
				}
				return true
			})
		}()
		// Each sign-out at a random moment, so that no periodic work of
		// the server keeps the same phase to the trials.
		time.Sleep(mrand.N(300 * time.Millisecond))
		t0 := time.Now()
		if err := postJSON(client, a.base+"/api/v1/auth/logout", p.Token, "", 204, nil); err != nil {
			fail(fmt.Errorf("logout on A: %w", err))
			s.conn.Close()
			continue
		}
		logouts = append(logouts, time.Since(t0))
		select {
		case at := <-ended:
			rr.Ended++
			rr.Samples = append(rr.Samples, float64(at.Sub(t0).Microseconds())/1000)
		case <-time.After(5 * time.Second):
			fail(fmt.Errorf("B did not end the stream within 5 s of the sign-out"))
		}
		s.conn.Close()
	}
	rr.LogoutP50ms = durPct(logouts, 0.5)
	sort.Float64s(rr.Samples)
	if len(rr.Samples) > 0 {
		rr.P50ms, rr.P99ms, rr.MaxMs = quantile(rr.Samples, 0.5), quantile(rr.Samples, 0.99), rr.Samples[len(rr.Samples)-1]
	}
	rr.Met = rr.Ended == trials && rr.P99ms <= rr.TargetP99ms
	return rr
}
