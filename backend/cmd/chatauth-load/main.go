// Command chatauth-load measures chatauth over HTTP on loopback: it starts
// the real server binary on a temporary SQLite database, sets up an admin
// and an OAuth client, then drives each endpoint with concurrent
// keep-alive clients for a fixed time and prints req/s, p50, p99 and the
// serving process's CPU time per request beside baselines measured in the
// same run (a bare Echo JSON handler, the same handler answering with
// token/info's bytes, and a bare Echo handler that signs the same EdDSA
// JWT with no storage). Then it measures the three targets as
// paired alternations of each endpoint and its baseline. Results go to
// bench/results.json.
//
//	chatauth-load -bin bin/chatauth -duration 5s -concurrency 16 -pairs 20 -pair-slice 500ms
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
	serveBare := flag.String("serve-bare", "", "internal: serve the bare Echo baselines on this address")
	flag.Parse()
	if *serveBare != "" {
		if err := http.ListenAndServe(*serveBare, bareEcho()); err != nil {
			fmt.Fprintln(os.Stderr, "chatauth-load:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *dur, *conc, *out, *only, max(*rounds, 1), max(*pairs, 1), *pairSlice); err != nil {
		fmt.Fprintln(os.Stderr, "chatauth-load:", err)
		os.Exit(1)
	}
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func run(bin string, dur time.Duration, conc int, out, only string, rounds, pairs int, pairSlice time.Duration) error {
	dir, err := os.MkdirTemp("", "chatauth-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr := freeAddr()
	base := "http://" + addr
	srv := exec.Command(bin, "serve")
	srv.Env = append(os.Environ(), "CHATAUTH_ADDR="+addr, "CHATAUTH_ISSUER="+base, "CHATAUTH_DB=sqlite:"+filepath.Join(dir, "db", "chatauth.db"),
		"CHATAUTH_ADMIN_EMAIL=load@example.com", "CHATAUTH_ADMIN_PASSWORD=load-password", "CHATAUTH_LOG_FORMAT=json")
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start %s: %w (build it with ./build.sh)", bin, err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 30 * time.Second}
	if err := waitHealthy(client, base); err != nil {
		return err
	}
	// The baselines run in a process of their own, like the server, so
	// both compete with this load generator for the same cores in the same
	// way; served from this process they would share its scheduler.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bareAddr := freeAddr()
	bareProc := exec.Command(self, "-serve-bare", bareAddr)
	bareProc.Stdout, bareProc.Stderr = logf, logf
	if err := bareProc.Start(); err != nil {
		return fmt.Errorf("start the bare baseline: %w", err)
	}
	defer func() { bareProc.Process.Kill(); bareProc.Wait() }()
	if err := waitOK(client, "http://"+bareAddr+"/bare"); err != nil {
		return err
	}
	sp := setup{c: client, base: base}
	if err := sp.run(); err != nil {
		return err
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
			return err
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
		{name: "POST /api/v1/auth/token login (bcrypt)", concurrency: 4, next: func(int) (*http.Request, error) {
			return http.NewRequest("POST", base+"/api/v1/auth/token", strings.NewReader(`{"email":"load@example.com","password":"load-password"}`))
		}},
	}
	var sel []scenario
	for _, s := range scenarios {
		s.pid = srv.Process.Pid
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
	targets := measureTargets(client, sel, clients, pairs, pairSlice)
	if len(targets) > 0 {
		fmt.Printf("\n%-52s %7s %13s %7s\n", fmt.Sprintf("target (%d paired alternations of %s)", pairs, pairSlice), "median", "middle half", "target")
		for _, t := range targets {
			verdict := "met"
			if !t.Met {
				verdict = "NOT MET"
			}
			fmt.Printf("%-52s %6.0f%% %6.0f–%3.0f%% %6.0f%%  %s\n", t.Name, 100*t.Ratio, 100*t.Q1, 100*t.Q3, 100*t.Want, verdict)
		}
	}
	doc := map[string]any{"cores": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0), "duration": dur.String(), "rounds": rounds, "concurrency": conc, "database": "sqlite",
		"pairs": pairs, "pair_slice": pairSlice.String(), "at": time.Now().UTC().Format(time.RFC3339), "results": results, "targets": targets}
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
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
	req, _ = http.NewRequest("POST", s.base+"/api/v1/oauth/clients", strings.NewReader(`{"name":"widget","client_type":"public","allowed_origins":["https://shop.example.com"]}`))
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
func measureTargets(c *http.Client, sel []scenario, clients func(scenario) int, pairs int, slice time.Duration) []target {
	find := func(prefix string) (scenario, bool) {
		for _, s := range sel {
			if strings.HasPrefix(s.name, prefix) {
				return s, true
			}
		}
		return scenario{}, false
	}
	rate := func(s scenario) float64 {
		sl := drive(c, s, clients(s), slice)
		return float64(len(sl.lat)) / sl.elapsed.Seconds()
	}
	var out []target
	for _, g := range goals {
		num, ok1 := find(g.num)
		den, ok2 := find(g.den)
		if !ok1 || !ok2 {
			continue
		}
		var ratios []float64
		for i := range pairs {
			var n, d float64
			if i%2 == 0 {
				d = rate(den)
				n = rate(num)
			} else {
				n = rate(num)
				d = rate(den)
			}
			if d > 0 {
				ratios = append(ratios, n/d)
			}
		}
		if len(ratios) == 0 {
			continue
		}
		sort.Float64s(ratios)
		m := quantile(ratios, 0.5)
		out = append(out, target{Name: g.name, Ratio: m, Q1: quantile(ratios, 0.25), Q3: quantile(ratios, 0.75), Pairs: ratios, Want: g.want, Met: m >= g.want})
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
