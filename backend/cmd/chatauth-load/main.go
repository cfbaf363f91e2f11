// Command chatauth-load measures chatauth over HTTP on loopback: it starts
// the real server binary on a temporary SQLite database, sets up an admin
// and an OAuth client, then drives each endpoint with concurrent
// keep-alive clients for a fixed time and prints req/s, p50, p99 and the
// serving process's CPU time per request beside baselines measured in the
// same run (a bare Echo JSON handler, the same handler answering with
// token/info's bytes, and a bare Echo handler that signs the same EdDSA
// JWT with no storage). Then it measures the targets as paired
// alternations of each endpoint and its baseline, the widget path (the
// returning visitor and the customer refresh) among them.
//
// Then event streams, each on a server process of its own: -streams idle
// visitor streams (raw TCP connections that read the response head and
// then nothing) with the server's CPU over -idle and its RSS per stream,
// and -streams-max held at once; the fan-out from an agent's POST to
// -fanout streams of one conversation; and with -pg (or
// CHATAUTH_BENCH_POSTGRES) the same fan-out across two processes on one
// PostgreSQL database and revocation across them. Results go to
// bench/results.json; -perf-dir profiles the server with perf.
//
//	chatauth-load -bin bin/chatauth -duration 5s -concurrency 16 -pairs 20 -pair-slice 500ms
//	chatauth-load -http=false -streams 10000 -streams-max 15000 -fanout 1000 -pg postgres://…
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
)

type result struct {
	Name        string    `json:"name"`
	Requests    int       `json:"requests"`
	Errors      int       `json:"errors"`
	RPS         float64   `json:"rps"`
	P50ms       float64   `json:"p50_ms"`
	P99ms       float64   `json:"p99_ms"`
	VsBare      float64   `json:"vs_bare"`
	RoundRPS    []float64 `json:"round_rps"`
	Concurrency int       `json:"concurrency"`
	// CPUus is the serving process's CPU time (user and system) per
	// request, in microseconds: unlike req/s, it does not depend on how
	// the scheduler shared two cores between server and load generator.
	CPUus float64 `json:"server_cpu_us_per_req,omitempty"`
}

type scenario struct {
	name        string
	concurrency int
	// next builds one request; worker is the worker's index.
	next func(worker int) (*http.Request, error)
	// after sees each response body (refresh chains its tokens).
	after func(worker int, body []byte)
	// pid is the process that serves it, whose CPU time is measured.
	pid int
}

func main() {
	bin := flag.String("bin", "bin/chatauth", "server binary")
	dur := flag.Duration("duration", 5*time.Second, "time per scenario")
	conc := flag.Int("concurrency", 16, "concurrent clients")
	out := flag.String("out", "bench/results.json", "results file")
	rounds := flag.Int("rounds", 3, "interleaved rounds each scenario's time is split into")
	only := flag.String("only", "", "run only the scenarios whose name contains this (baselines always run)")
	pairs := flag.Int("pairs", 20, "alternations of an endpoint and its baseline for each target")
	pairSlice := flag.Duration("pair-slice", 500*time.Millisecond, "time of each side of a target's alternation")
	streams := flag.Int("streams", 10000, "idle visitor event streams held on one server process while its CPU and RSS are measured (0: skip)")
	streamsMax := flag.Int("streams-max", 15000, "streams held at once in the short step after the idle one (0: skip)")
	idle := flag.Duration("idle", 10*time.Second, "idle window over which the streams' server CPU is measured")
	fanoutN := flag.Int("fanout", 1000, "agent streams watching one conversation in the fan-out run (0: skip)")
	messages := flag.Int("messages", 50, "messages posted one after another in each fan-out run")
	pg := flag.String("pg", os.Getenv("CHATAUTH_BENCH_POSTGRES"), "PostgreSQL server URL (default $CHATAUTH_BENCH_POSTGRES): also run fan-out and revocation across two server processes on a database created there")
	trials := flag.Int("revocations", 20, "sign-outs timed across processes (with -pg)")
	widget := flag.Bool("widget", true, "measure the widget path (returning visitor, customer refresh) beside the bare EdDSA signer")
	http_ := flag.Bool("http", true, "run the HTTP endpoint scenarios and their targets")
	flag.StringVar(&perfDir, "perf-dir", "", "profile the server with perf record during the idle window and an extra run of each widget-path scenario; data and reports go here")
	serveBare := flag.String("serve-bare", "", "internal: serve the bare Echo baselines on this address")
	flag.Parse()
	if *serveBare != "" {
		if err := http.ListenAndServe(*serveBare, bareEcho()); err != nil {
			fmt.Fprintln(os.Stderr, "chatauth-load:", err)
			os.Exit(1)
		}
		return
	}
	o := options{bin: *bin, dur: *dur, conc: *conc, out: *out, only: *only, rounds: max(*rounds, 1), pairs: max(*pairs, 1), pairSlice: *pairSlice,
		http: *http_, widget: *widget, streams: *streams, streamsMax: *streamsMax, idle: *idle, fanout: *fanoutN, messages: max(*messages, 1), pg: *pg, trials: max(*trials, 1)}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-load:", err)
		os.Exit(1)
	}
}

type options struct {
	bin                 string
	dur                 time.Duration
	conc                int
	out, only           string
	rounds, pairs       int
	pairSlice           time.Duration
	http, widget        bool
	streams, streamsMax int
	idle                time.Duration
	fanout, messages    int
	pg                  string
	trials              int
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func run(o options) error {
	// 15,000 streams are 15,000 descriptors here and as many in the
	// server, which inherits this limit.
	nofile, nerr := raiseNoFile()
	dir, err := os.MkdirTemp("", "chatauth-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	doc := map[string]any{"cores": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0), "at": time.Now().UTC().Format(time.RFC3339), "nofile_limit": nofile}
	if nerr != nil {
		fmt.Fprintln(os.Stderr, "chatauth-load: raising the open-files limit:", nerr)
	}
	var failed []string
	section := func(name string, err error) {
		if err != nil {
			fmt.Fprintf(os.Stderr, "chatauth-load: %s: %v\n", name, err)
			failed = append(failed, name+": "+err.Error())
		}
	}
	var sum []summary
	if o.http {
		s, err := httpSection(o, dir, doc)
		sum = append(sum, s...)
		section("HTTP endpoints", err)
	}
	if o.streams > 0 || o.streamsMax > 0 {
		ir, mr, err := idleStreams(o.bin, dir, o.streams, o.streamsMax, o.idle, nofile)
		if ir != nil && o.streams > 0 {
			doc["idle_streams"] = ir
			sum = append(sum,
				summary{fmt.Sprintf("%d idle streams: server CPU", o.streams), fmt.Sprintf("%.2f %% of a core", ir.CPUPercent), "≤ 2 %", ir.CPUMet},
				summary{fmt.Sprintf("%d idle streams: RSS per stream", o.streams), fmt.Sprintf("%.1f KB", ir.RSSPerStreamKB), "≤ 16 KB", ir.RSSMet})
		}
		if mr != nil {
			doc["streams_max"] = mr
			sum = append(sum, summary{"streams held at once", fmt.Sprintf("%d of %d", mr.Held, mr.Target), fmt.Sprintf("%d", mr.Target), mr.Met})
		}
		section("idle streams", err)
	}
	if o.fanout > 0 {
		fr, err := fanoutOne(o.bin, dir, o.fanout, o.messages)
		if fr != nil {
			doc["fanout"] = fr
			sum = append(sum, summary{fmt.Sprintf("fan-out p99, %d streams, one process", o.fanout), fmt.Sprintf("%.1f ms", fr.P99ms), "≤ 50 ms", fr.Met})
		}
		section("fan-out", err)
	}
	if o.pg != "" {
		fr, rr, err := acrossPostgres(o.bin, dir, o.pg, o.fanout, o.messages, o.trials)
		if fr != nil {
			doc["fanout_postgres"] = fr
			sum = append(sum, summary{fmt.Sprintf("fan-out p99, %d streams, two processes on PostgreSQL", o.fanout), fmt.Sprintf("%.1f ms", fr.P99ms), "≤ 150 ms", fr.Met})
		}
		if rr != nil {
			doc["revocation_postgres"] = rr
			sum = append(sum, summary{fmt.Sprintf("revocation across processes p99 (%d trials)", rr.Trials), fmt.Sprintf("%.1f ms", rr.P99ms), "≤ 100 ms", rr.Met})
		}
		section("PostgreSQL", err)
	} else {
		doc["postgres"] = "skipped: no -pg URL and no CHATAUTH_BENCH_POSTGRES"
		fmt.Println("\nacross two processes on PostgreSQL: skipped (no -pg URL and no CHATAUTH_BENCH_POSTGRES)")
	}
	if len(sum) > 0 {
		fmt.Printf("\n%-62s %16s %10s\n", "summary of the issue's targets", "figure", "target")
		for _, s := range sum {
			fmt.Printf("%-62s %16s %10s  %s\n", s.Name, s.Figure, s.Target, verdict(s.Met))
		}
		doc["summary"] = sum
	}
	if len(failed) > 0 {
		doc["errors"] = failed
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.out, b, 0o644); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d section(s) failed (results written to %s)", len(failed), o.out)
	}
	return nil
}

type summary struct {
	Name   string `json:"name"`
	Figure string `json:"figure"`
	Target string `json:"target"`
	Met    bool   `json:"met"`
}

// httpSection is the endpoint scenarios on the main server beside the
// bare baselines, the paired targets and the widget path.
func httpSection(o options, dir string, doc map[string]any) ([]summary, error) {
	dur, conc, rounds, pairs, pairSlice := o.dur, o.conc, o.rounds, o.pairs, o.pairSlice
	srv, err := startServer(o.bin, dir, "server", sqliteDSN(dir, "db"), "")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	base := srv.base
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	// The baselines run in a process of their own, like the server, so
	// both compete with this load generator for the same cores in the same
	// way; served from this process they would share its scheduler.
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bareAddr := freeAddr()
	bareProc := exec.Command(self, "-serve-bare", bareAddr)
	if logf, err := os.Create(filepath.Join(dir, "bare.log")); err == nil {
		bareProc.Stdout, bareProc.Stderr = logf, logf
		defer logf.Close()
	}
	if err := bareProc.Start(); err != nil {
		return nil, fmt.Errorf("start the bare baseline: %w", err)
	}
	defer func() { bareProc.Process.Kill(); bareProc.Wait() }()
	if err := waitOK(client, "http://"+bareAddr+"/bare"); err != nil {
		return nil, err
	}
	sp := setup{c: client, base: base}
	if err := sp.run(); err != nil {
		return nil, err
	}
	form := func(path, body string) func(int) (*http.Request, error) {
		return func(int) (*http.Request, error) {
			r, err := http.NewRequest("POST", base+path, strings.NewReader(body))
			if err == nil {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			return r, err
		}
	}
	get := func(u, auth string) func(int) (*http.Request, error) {
		return func(int) (*http.Request, error) {
			r, err := http.NewRequest("GET", u, nil)
			if err == nil && auth != "" {
				r.Header.Set("Authorization", "Bearer "+auth)
			}
			return r, err
		}
	}
	cc := "grant_type=client_credentials&client_id=" + url.QueryEscape(sp.clientID) + "&client_secret=" + url.QueryEscape(sp.secret)
	refresh := make([]string, max(conc, 4))
	for i := range refresh {
		p, err := sp.login()
		if err != nil {
			return nil, err
		}
		refresh[i] = p.RefreshToken
	}
	scenarios := []scenario{
		{name: "bare echo JSON GET (baseline)", next: get("http://"+bareAddr+"/bare", "")},
		{name: "GET /healthz", next: get(base+"/healthz", "")},
		{name: "bare echo, token/info's bytes (baseline)", next: get("http://"+bareAddr+"/bytes?n="+strconv.Itoa(sp.infoSize), sp.token)},
		{name: "GET /api/v1/token/info (bearer, no DB read)", next: get(base+"/api/v1/token/info", sp.token)},
		{name: "GET /api/v1/profile (bearer + DB read)", next: get(base+"/api/v1/profile", sp.token)},
		{name: "GET /api/v1/conversations (bearer + list)", next: get(base+"/api/v1/conversations?limit=10", sp.token)},
		{name: "bare echo EdDSA sign (baseline)", next: get("http://"+bareAddr+"/sign", "")},
		{name: "POST /oauth/token client_credentials", next: form("/oauth/token", cc)},
		{name: "POST /oauth/introspect", next: form("/oauth/introspect", cc+"&token="+url.QueryEscape(sp.token))},
		{name: "POST /api/v1/auth/token refresh", concurrency: len(refresh),
			next: func(w int) (*http.Request, error) {
				r, err := http.NewRequest("POST", base+"/api/v1/auth/token", strings.NewReader(`{"refreshToken":"`+refresh[w]+`","clientId":"load@example.com"}`))
				return r, err
			},
			after: func(w int, body []byte) {
				var p struct{ RefreshToken string }
				if json.Unmarshal(body, &p) == nil && p.RefreshToken != "" {
					refresh[w] = p.RefreshToken
				}
			}},
		{name: "POST /customer/token returning visitor", next: func(int) (*http.Request, error) {
			r, err := http.NewRequest("POST", base+"/customer/token", strings.NewReader(`{"client_id":"`+sp.widget+`","response_type":"token"}`))
			if err == nil {
				r.Header.Set("Cookie", sp.visitorCookie)
				r.Header.Set("Origin", "https://shop.example.com")
			}
			return r, err
		}},
	}
	if o.widget {
		// The widget's silent refresh: each client is a visitor of its
		// own, each request sends the refresh token the previous answer
		// returned.
		vis, err := mintVisitors(base, sp.widget, conc, false)
		if err != nil {
			return nil, fmt.Errorf("visitors for the customer refresh: %w", err)
		}
		// Visitors of their own: a cookie visit retires the session's other
		// refresh tokens (dead), so the two scenarios must not share one.
		rvis, err := mintVisitors(base, sp.widget, conc, false)
		if err != nil {
			return nil, fmt.Errorf("visitors for the customer refresh: %w", err)
		}
		crefresh := make([]string, len(rvis))
		for i, v := range rvis {
			crefresh[i] = v.refresh
		}
		// The returning visitor above is one visitor (one cookie, one
		// session) asked by every client at once; a site's load is many
		// visitors, each with a session of its own: for comparison.
		scenarios = append(scenarios, scenario{name: "POST /customer/token returning, own cookies", concurrency: len(vis),
			next: func(w int) (*http.Request, error) {
				r, err := http.NewRequest("POST", base+"/customer/token", strings.NewReader(`{"client_id":"`+sp.widget+`","response_type":"token"}`))
				if err == nil {
					r.Header.Set("Cookie", vis[w].cookie)
					r.Header.Set("Origin", "https://shop.example.com")
				}
				return r, err
			}})
		scenarios = append(scenarios, scenario{name: "POST /customer/token refresh (customer)", concurrency: len(crefresh),
			next: func(w int) (*http.Request, error) {
				r, err := http.NewRequest("POST", base+"/customer/token", strings.NewReader(`{"client_id":"`+sp.widget+`","grant_type":"refresh_token","refresh_token":"`+crefresh[w]+`"}`))
				if err == nil {
					r.Header.Set("Content-Type", "application/json")
					r.Header.Set("Origin", "https://shop.example.com")
				}
				return r, err
			},
			after: func(w int, body []byte) {
				var p struct {
					RefreshToken string `json:"refresh_token"`
				}
				if json.Unmarshal(body, &p) == nil && p.RefreshToken != "" {
					crefresh[w] = p.RefreshToken
				}
			}})
	}
	scenarios = append(scenarios, scenario{name: "POST /api/v1/auth/token login (bcrypt)", concurrency: 4, next: func(int) (*http.Request, error) {
		return http.NewRequest("POST", base+"/api/v1/auth/token", strings.NewReader(`{"email":"load@example.com","password":"load-password"}`))
	}})
	var sel []scenario
	only := o.only
	for _, s := range scenarios {
		s.pid = srv.pid
		if strings.Contains(s.name, "baseline") {
			s.pid = bareProc.Process.Pid
		}
		if only == "" || strings.Contains(s.name, only) || strings.Contains(s.name, "baseline") {
			sel = append(sel, s)
		}
	}
	clients := func(s scenario) int {
		if s.concurrency > 0 {
			return s.concurrency
		}
		return conc
	}
	fmt.Printf("chatauth HTTP load: %d cores, %s per scenario in %d interleaved rounds, %d clients (loopback, SQLite)\n\n", runtime.NumCPU(), dur, rounds, conc)
	// Warm every path up (connections, statement caches, JIT-free but
	// page-cache-full SQLite) before anything is timed.
	for _, s := range sel {
		drive(client, s, clients(s), 300*time.Millisecond)
	}
	// Rounds interleave the scenarios, so a baseline and the endpoint
	// compared with it are measured seconds apart, not a minute apart:
	// on a shared machine the available CPU drifts more than that.
	runs := make([]runAcc, len(sel))
	for range rounds {
		for i, s := range sel {
			runs[i].add(drive(client, s, clients(s), dur/time.Duration(rounds)))
		}
	}
	fmt.Printf("%-46s %10s %9s %9s %8s %11s\n", "endpoint", "req/s", "p50 ms", "p99 ms", "vs bare", "CPU µs/req")
	var results []result
	for i, s := range sel {
		r := runs[i].result(s.name, clients(s))
		r.VsBare = r.RPS / runs[0].rps()
		results = append(results, r)
		fmt.Printf("%-46s %10.0f %9.2f %9.2f %7.0f%% %11.1f", r.Name, r.RPS, r.P50ms, r.P99ms, 100*r.VsBare, r.CPUus)
		if r.Errors > 0 {
			fmt.Printf("  (%d errors)", r.Errors)
		}
		fmt.Println()
	}
	gs := goals
	if o.widget {
		gs = append(gs[:len(gs):len(gs)], widgetGoals...)
	}
	targets := measureTargets(client, sel, clients, gs, pairs, pairSlice)
	var sum []summary
	if len(targets) > 0 {
		fmt.Printf("\n%-52s %7s %13s %7s\n", fmt.Sprintf("target (%d paired alternations of %s)", pairs, pairSlice), "median", "middle half", "target")
		for _, t := range targets {
			fmt.Printf("%-52s %6.0f%% %6.0f–%3.0f%% %6.0f%%  %s\n", t.Name, 100*t.Ratio, 100*t.Q1, 100*t.Q3, 100*t.Want, verdict(t.Met))
			sum = append(sum, summary{t.Name + " (req/s)", fmt.Sprintf("%.0f %%", 100*t.Ratio), fmt.Sprintf("≥ %.0f %%", 100*t.Want), t.Met})
		}
	}
	doc["duration"], doc["rounds"], doc["concurrency"], doc["database"] = dur.String(), rounds, conc, "sqlite"
	doc["pairs"], doc["pair_slice"], doc["results"], doc["targets"] = pairs, pairSlice.String(), results, targets
	if o.widget {
		doc["widget_path"] = widgetPath(results, targets)
		if perfDir != "" {
			// Profiled apart from the timed runs: perf costs CPU too.
			for _, g := range widgetGoals {
				for _, s := range sel {
					if strings.HasPrefix(s.name, g.num) {
						stop := perfStart(strings.NewReplacer(" ", "-", "/", "_", "(", "", ")", "").Replace(s.name), srv.pid)
						drive(client, s, clients(s), 3*time.Second)
						stop()
					}
				}
			}
		}
	}
	return sum, nil
}

// widgetRow is the widget path beside the bare signer: req/s and server
// CPU per request from the rounds, and the paired ratios.
type widgetRow struct {
	Name      string  `json:"name"`
	RPS       float64 `json:"rps"`
	CPUus     float64 `json:"server_cpu_us_per_req"`
	BareRPS   float64 `json:"bare_signer_rps"`
	BareCPUus float64 `json:"bare_signer_cpu_us_per_req"`
	// Ratio is the paired median of the endpoint's req/s over the bare
	// signer's; CPURatio the paired median of the bare signer's CPU per
	// request over the endpoint's (both 1 for an endpoint as cheap as the
	// bare signer).
	Ratio    float64 `json:"rps_ratio"`
	CPURatio float64 `json:"cpu_ratio"`
	Want     float64 `json:"want"`
	Met      bool    `json:"met"`
}

var widgetGoals = []goal{
	{"returning visitor vs bare Echo EdDSA signer", "POST /customer/token returning visitor", "bare echo EdDSA sign", 0.30},
	{"customer refresh vs bare Echo EdDSA signer", "POST /customer/token refresh (customer)", "bare echo EdDSA sign", 0.30},
}

func widgetPath(results []result, targets []target) []widgetRow {
	find := func(prefix string) (result, bool) {
		for _, r := range results {
			if strings.HasPrefix(r.Name, prefix) {
				return r, true
			}
		}
		return result{}, false
	}
	bare, ok := find("bare echo EdDSA sign")
	if !ok {
		return nil
	}
	var rows []widgetRow
	fmt.Printf("\n%-46s %10s %11s %14s %11s %7s\n", "widget path beside the bare EdDSA signer", "req/s", "CPU µs/req", "req/s ratio", "CPU ratio", "target")
	fmt.Printf("%-46s %10.0f %11.1f\n", bare.Name, bare.RPS, bare.CPUus)
	for _, g := range widgetGoals {
		r, ok := find(g.num)
		if !ok {
			continue
		}
		row := widgetRow{Name: r.Name, RPS: r.RPS, CPUus: r.CPUus, BareRPS: bare.RPS, BareCPUus: bare.CPUus, Want: g.want}
		for _, t := range targets {
			if t.Name == g.name {
				row.Ratio, row.CPURatio, row.Met = t.Ratio, t.CPURatio, t.Met
			}
		}
		rows = append(rows, row)
		fmt.Printf("%-46s %10.0f %11.1f %13.0f%% %10.0f%% %6.0f%%  %s\n", row.Name, row.RPS, row.CPUus, 100*row.Ratio, 100*row.CPURatio, 100*row.Want, verdict(row.Met))
	}
	fmt.Println("  (ratios: paired medians; req/s ratio = endpoint ÷ bare signer, CPU ratio = bare signer's CPU per request ÷ the endpoint's)")
	return rows
}

func waitHealthy(c *http.Client, base string) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := c.Get(base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("server at %s did not become healthy", base)
}

// bareEcho is the baselines: a JSON handler with no middleware
// and no auth, and one that signs the same EdDSA JWT as client
// credentials does, with no storage and no client check.
func bareEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	_, priv, _ := ed25519.GenerateKey(nil)
	e.GET("/bare", func(c echo.Context) error { return c.JSON(200, map[string]string{"status": "ok"}) })
	// /bytes?n=N answers a JSON body of N bytes. Sent the same bearer as
	// token/info and sized like its answer, it costs the network, the
	// kernel, net/http and the load generator nearly what token/info costs
	// them (token/info adds two response headers), and none of our code.
	var bodies sync.Map
	e.GET("/bytes", func(c echo.Context) error {
		n, _ := strconv.Atoi(c.QueryParam("n"))
		n = min(max(n, 16), 1<<16)
		b, ok := bodies.Load(n)
		if !ok {
			b, _ = bodies.LoadOrStore(n, []byte(`{"pad":"`+strings.Repeat("x", n-11)+`"}`+"\n"))
		}
		return c.JSONBlob(200, b.([]byte))
	})
	e.GET("/sign", func(c echo.Context) error {
		now := time.Now()
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "bare", "sub": "client:x", "aud": "chatauth:agent", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "scope": "bot read", "org": 1})
		t.Header["kid"], t.Header["typ"] = "k", "at+jwt"
		s, err := t.SignedString(priv)
		if err != nil {
			return err
		}
		return c.JSON(200, map[string]any{"access_token": s, "token_type": "Bearer", "expires_in": 3600, "scope": "bot read"})
	})
	return e
}

func waitOK(c *http.Client, u string) error {
	for range 100 {
		if res, err := c.Get(u); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer", u)
}

// slice is one timed run of one scenario.
type slice struct {
	lat     []time.Duration
	errs    int
	elapsed time.Duration
	// cpu is the serving process's CPU time during the slice (0 where
	// /proc is not there to read it).
	cpu time.Duration
}

// procCPU is a process's user and system CPU time so far, from
// /proc/PID/stat (Linux). Its resolution is one clock tick (10 ms), fine
// for slices of a second or more.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// utime and stime are the 12th and 13th fields after it.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick
}

// runAcc accumulates a scenario's slices over the rounds.
type runAcc struct {
	slices []slice
}

func (r *runAcc) add(s slice) { r.slices = append(r.slices, s) }

func (r *runAcc) rps() float64 {
	n, el := 0, time.Duration(0)
	for _, s := range r.slices {
		n, el = n+len(s.lat), el+s.elapsed
	}
	if el == 0 {
		return 0
	}
	return float64(n) / el.Seconds()
}

func (r *runAcc) result(name string, conc int) result {
	var lat []time.Duration
	errs := 0
	var rounds []float64
	var cpu time.Duration
	for _, s := range r.slices {
		lat = append(lat, s.lat...)
		errs += s.errs
		cpu += s.cpu
		rounds = append(rounds, float64(len(s.lat))/s.elapsed.Seconds())
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	res := result{Name: name, Requests: len(lat), Errors: errs, RPS: r.rps(), RoundRPS: rounds, P50ms: pct(0.5), P99ms: pct(0.99), Concurrency: conc}
	if len(lat) > 0 {
		res.CPUus = float64(cpu.Microseconds()) / float64(len(lat))
	}
	return res
}

func drive(c *http.Client, s scenario, conc int, dur time.Duration) slice {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	cpu0 := procCPU(s.pid)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			for ctx.Err() == nil {
				req, err := s.next(w)
				if err != nil {
					bad++
					continue
				}
				t0 := time.Now()
				res, err := c.Do(req)
				if err != nil {
					bad++
					continue
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				d := time.Since(t0)
				if res.StatusCode != 200 {
					bad++
					continue
				}
				if s.after != nil {
					s.after(w, body)
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	return slice{lat: lat, errs: errs, elapsed: time.Since(start), cpu: procCPU(s.pid) - cpu0}
}

type setup struct {
	c                     *http.Client
	base, token           string
	clientID, secret      string
	widget, visitorCookie string
	// infoSize is the size of token/info's answer for token.
	infoSize int
}

type pair struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
}

func (s *setup) login() (pair, error) {
	var p pair
	res, err := s.c.Post(s.base+"/api/v1/auth/token", "application/json", strings.NewReader(`{"email":"load@example.com","password":"load-password"}`))
	if err != nil {
		return p, err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return p, fmt.Errorf("login: %s", res.Status)
	}
	return p, json.NewDecoder(res.Body).Decode(&p)
}

func (s *setup) run() error {
	p, err := s.login()
	if err != nil {
		return err
	}
	s.token = p.Token
	req, _ := http.NewRequest("GET", s.base+"/api/v1/token/info", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := s.c.Do(req)
	if err != nil {
		return err
	}
	info, _ := io.ReadAll(res.Body)
	res.Body.Close()
	s.infoSize = len(info)
	req, _ = http.NewRequest("POST", s.base+"/api/v1/oauth/clients", strings.NewReader(`{"name":"load","client_type":"confidential","scopes":["read","chat"]}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err = s.c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var cl struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.NewDecoder(res.Body).Decode(&cl); err != nil || cl.ClientSecret == "" {
		return fmt.Errorf("create client: %s %v", res.Status, err)
	}
	s.clientID, s.secret = cl.ClientID, cl.ClientSecret
	// The visitors below send no DPoP proofs (bearer tokens, as the
	// targets were set), so the widget client is made optional: a new
	// widget client requires DPoP by default (docs/dpop.md).
	req, _ = http.NewRequest("POST", s.base+"/api/v1/oauth/clients", strings.NewReader(`{"name":"widget","client_type":"public","allowed_origins":["https://shop.example.com"],"dpop":"optional"}`))
	req.Header.Set("Authorization", "Bearer "+s.token)
	res2, err := s.c.Do(req)
	if err != nil {
		return err
	}
	defer res2.Body.Close()
	if err := json.NewDecoder(res2.Body).Decode(&cl); err != nil {
		return err
	}
	s.widget = cl.ClientID
	res3, err := s.c.Post(s.base+"/customer/token", "application/json", strings.NewReader(`{"client_id":"`+s.widget+`","response_type":"token"}`))
	if err != nil {
		return err
	}
	res3.Body.Close()
	s.visitorCookie, _, _ = strings.Cut(res3.Header.Get("Set-Cookie"), ";")
	if s.visitorCookie == "" {
		return fmt.Errorf("customer token: no cookie (%s)", res3.Status)
	}
	return nil
}

type target struct {
	Name  string    `json:"name"`
	Ratio float64   `json:"ratio"` // median of Pairs
	Q1    float64   `json:"q1"`
	Q3    float64   `json:"q3"`
	Pairs []float64 `json:"pair_ratios"` // sorted
	Want  float64   `json:"want"`
	Met   bool      `json:"met"`
	// CPURatio is the median over the pairs of the baseline's server CPU
	// per request over the endpoint's (0 where /proc gave nothing).
	CPURatio float64 `json:"cpu_ratio,omitempty"`
}

// goal is one of the targets: num's req/s at least want times
// den's.
type goal struct {
	name, num, den string
	want           float64
}

var goals = []goal{
	{"token/info (bearer, no DB) vs bare Echo JSON", "GET /api/v1/token/info", "bare echo JSON", 0.80},
	{"client credentials vs bare Echo EdDSA signer", "POST /oauth/token client_credentials", "bare echo EdDSA sign", 0.70},
	{"introspection vs token/info", "POST /oauth/introspect", "GET /api/v1/token/info", 0.50},
}

// measureTargets measures each goal as a paired comparison: the endpoint
// and its baseline run alternately in short slices, each pair's ratio is
// taken, and the verdict is the median pair. This VM shares its host, and
// the CPU it gets drifts by a quarter within a minute; a drift hits both
// halves of a pair alike, which it does not do to two scenarios measured
// a minute apart. The order within a pair alternates too, so neither side
// always runs on connections the other just warmed.
func measureTargets(c *http.Client, sel []scenario, clients func(scenario) int, goals []goal, pairs int, slice time.Duration) []target {
	find := func(prefix string) (scenario, bool) {
		for _, s := range sel {
			if strings.HasPrefix(s.name, prefix) {
				return s, true
			}
		}
		return scenario{}, false
	}
	// rate is a slice's req/s and server CPU per request.
	rate := func(s scenario) (float64, float64) {
		sl := drive(c, s, clients(s), slice)
		cpu := 0.0
		if len(sl.lat) > 0 {
			cpu = sl.cpu.Seconds() / float64(len(sl.lat))
		}
		return float64(len(sl.lat)) / sl.elapsed.Seconds(), cpu
	}
	var out []target
	for _, g := range goals {
		num, ok1 := find(g.num)
		den, ok2 := find(g.den)
		if !ok1 || !ok2 {
			continue
		}
		var ratios, cpus []float64
		for i := range pairs {
			var n, d, nc, dc float64
			if i%2 == 0 {
				d, dc = rate(den)
				n, nc = rate(num)
			} else {
				n, nc = rate(num)
				d, dc = rate(den)
			}
			if d > 0 {
				ratios = append(ratios, n/d)
			}
			if nc > 0 && dc > 0 {
				cpus = append(cpus, dc/nc)
			}
		}
		if len(ratios) == 0 {
			continue
		}
		sort.Float64s(ratios)
		m := quantile(ratios, 0.5)
		t := target{Name: g.name, Ratio: m, Q1: quantile(ratios, 0.25), Q3: quantile(ratios, 0.75), Pairs: ratios, Want: g.want, Met: m >= g.want}
		if len(cpus) > 0 {
			sort.Float64s(cpus)
			t.CPURatio = quantile(cpus, 0.5)
		}
		out = append(out, t)
	}
	return out
}

// quantile of sorted xs, interpolating between neighbours.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (pos-float64(i))*(xs[i+1]-xs[i])
}
