package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"chatauth/backend/sqlstore/sqlstoretest"
)

// hkDo sends a JSON request with headers ("Name: value") and decodes the
// answer.
func hkDo(method, url string, body any, headers ...string) (int, map[string]any, error) {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	c := http.Client{Timeout: 5 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var m map[string]any
	json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m, nil
}

// hkStartServer is startServer for one of several processes behind one
// address: they share the issuer, as a scaled-out deployment does.
func hkStartServer(t *testing.T, bin, dsn, addr, issuer string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "CHATAUTH_DB="+dsn, "CHATAUTH_ADDR="+addr, "CHATAUTH_ISSUER="+issuer,
		"CHATAUTH_SECRET=kill-test-secret-0123456789-0123456789", "CHATAUTH_ADMIN_EMAIL=admin@example.com",
		"CHATAUTH_ADMIN_PASSWORD=admin-password-1", "CHATAUTH_LOG_FORMAT=json")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, base: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(p.base + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("server did not start")
	return nil
}

// hkStream is one client of the event stream (a browser tab): it
// reconnects to the surviving process with the last id it saw.
type hkStream struct {
	name, path string
	headers    []string
	mu         sync.Mutex
	base       string
	ids        []int64
	last       int64
	reconnects int
	ends       []string
	back       time.Time // when it last reconnected
}

var hkTransport = &http.Transport{}

// connect opens the stream on base; lastID < 0 means none.
func (s *hkStream) connect(ctx context.Context, base string, lastID int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+s.path, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range s.headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	if lastID >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(lastID, 10))
	}
	res, err := hkTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return nil, fmt.Errorf("status %d %s", res.StatusCode, b.Bytes())
	}
	return res, nil
}

// read consumes res until it ends, recording message ids.
func (s *hkStream) read(res *http.Response) {
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "":
			s.mu.Lock()
			switch {
			case event == "end":
				s.ends = append(s.ends, data)
			case data != "":
				if n, err := strconv.ParseInt(id, 10, 64); err == nil {
					s.ids = append(s.ids, n)
					s.last = n
				}
			}
			s.mu.Unlock()
			id, event, data = "", "", ""
		}
	}
}

// run reads the stream opened on first and, whenever it drops,
// reconnects to fallback with Last-Event-ID until ctx ends.
func (s *hkStream) run(ctx context.Context, res *http.Response, fallback string) {
	for {
		s.read(res)
		for {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			last := s.last
			s.mu.Unlock()
			var err error
			if res, err = s.connect(ctx, fallback, last); err == nil {
				s.mu.Lock()
				s.reconnects++
				s.base, s.back = fallback, time.Now()
				s.mu.Unlock()
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestHubKillOneProcess: two server processes on one PostgreSQL
// database, visitors' and agents' streams on both; a writer posts 200
// messages alternately to both; process A is killed with SIGKILL midway;
// the streams that were on A reconnect to B with their last event id.
// In the end every stream has every stored message exactly once, in
// order.
func TestHubKillOneProcess(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	bin := filepath.Join(t.TempDir(), "chatauth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	freeAddr := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		defer l.Close()
		return l.Addr().String()
	}
	const issuer = "http://chatauth.test"
	a := hkStartServer(t, bin, dsn, freeAddr(), issuer)
	defer func() { a.cmd.Process.Kill(); a.cmd.Wait() }()
	b := hkStartServer(t, bin, dsn, freeAddr(), issuer)
	defer func() { b.cmd.Process.Kill(); b.cmd.Wait() }()

	status, login, err := post(a.base, map[string]string{"email": "admin@example.com", "password": "admin-password-1"})
	if err != nil || status != 200 {
		t.Fatalf("login: %d %v", status, err)
	}
	admin := "Authorization: Bearer " + login.Token
	const shop = "https://shop.example.com"
	st, cl, err := hkDo("POST", a.base+"/api/v1/oauth/clients", map[string]any{"name": "Widget", "client_type": "public",
		"redirect_uris": []string{shop + "/chat"}, "allowed_origins": []string{shop}, "dpop": "optional"}, admin)
	if err != nil || st != 201 {
		t.Fatalf("client: %d %v %v", st, cl, err)
	}
	st, v, err := hkDo("POST", a.base+"/customer/token", map[string]any{"client_id": cl["client_id"], "response_type": "token"}, "Origin: "+shop)
	if err != nil || st != 200 {
		t.Fatalf("visitor: %d %v %v", st, v, err)
	}
	visitor := v["access_token"].(string)
	st, conv, err := hkDo("POST", a.base+"/customer/api/v1/conversations", nil, "Authorization: Bearer "+visitor)
	if err != nil || st != 201 {
		t.Fatalf("conversation: %d %v %v", st, conv, err)
	}
	cid := strconv.Itoa(int(conv["id"].(float64)))

	// Three tabs of the visitor and three consoles on each process.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var streams []*hkStream
	var wg sync.WaitGroup
	for _, srv := range []struct {
		name string
		p    *proc
	}{{"A", a}, {"B", b}} {
		for i := range 3 {
			for _, kind := range []string{"visitor", "agent"} {
				s := &hkStream{name: fmt.Sprintf("%s-%s%d", srv.name, kind, i), base: srv.p.base}
				if kind == "visitor" {
					s.path = "/customer/api/v1/conversations/" + cid + "/events?access_token=" + visitor
				} else {
					s.path, s.headers = "/api/v1/conversations/"+cid+"/events", []string{admin}
				}
				res, err := s.connect(ctx, srv.p.base, -1)
				if err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
				streams = append(streams, s)
				wg.Add(1)
				go func() { defer wg.Done(); s.run(ctx, res, b.base) }()
			}
		}
	}
	time.Sleep(200 * time.Millisecond)

	// The writer: 200 messages, alternately to A and B; A dies midway.
	const total = 200
	var killed atomic.Bool
	var killedAt time.Time
	retried, lostAnswers := 0, 0
	for i := range total {
		if i == total/2 {
			killedAt = time.Now()
			go func() {
				a.cmd.Process.Signal(syscall.SIGKILL)
				a.cmd.Wait()
				killed.Store(true)
			}()
		}
		target := a.base
		if i%2 == 1 || killed.Load() {
			target = b.base
		}
		body := map[string]any{"content": "m" + strconv.Itoa(i)}
		st, _, err := hkDo("POST", target+"/api/v1/conversations/"+cid+"/messages", body, admin)
		if err != nil || st != 201 {
			if target == b.base {
				t.Fatalf("post %d to B: %d %v", i, st, err)
			}
			// A died under the request: post it to B. If A had stored
			// it already, it exists twice (two ids), which is the
			// writer's doing, not the streams'.
			retried++
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				lostAnswers++
			}
			if st, _, err = hkDo("POST", b.base+"/api/v1/conversations/"+cid+"/messages", body, admin); err != nil || st != 201 {
				t.Fatalf("post %d to B after A died: %d %v", i, st, err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}

	// What the database holds is what every stream must have.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT id, content FROM messages WHERE conversation_id = $1 ORDER BY id", cid)
	if err != nil {
		t.Fatal(err)
	}
	var stored []int64
	contents := map[string]int{}
	for rows.Next() {
		var id int64
		var c string
		rows.Scan(&id, &c)
		stored = append(stored, id)
		contents[c]++
	}
	rows.Close()
	if len(contents) != total {
		t.Fatalf("the database holds %d distinct messages of %d", len(contents), total)
	}
	maxID := stored[len(stored)-1]
	deadline := time.Now().Add(30 * time.Second)
	var caughtUp time.Time
	for time.Now().Before(deadline) {
		behind := 0
		for _, s := range streams {
			s.mu.Lock()
			if s.last < maxID {
				behind++
			}
			s.mu.Unlock()
		}
		if behind == 0 {
			caughtUp = time.Now()
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()

	var slowest time.Duration
	for _, s := range streams {
		if !s.back.IsZero() {
			slowest = max(slowest, s.back.Sub(killedAt))
		}
	}
	t.Logf("%d messages stored (%d rows; %d posts to A retried on B after the kill, %d of them with the answer lost in flight); A's streams were back on B at most %v after the kill; all streams caught up %v after it",
		total, len(stored), retried, lostAnswers, slowest.Round(time.Millisecond), caughtUp.Sub(killedAt).Round(time.Millisecond))
	for _, s := range streams {
		s.mu.Lock()
		seen := map[int64]int{}
		var dup []int64
		ordered := true
		for i, id := range s.ids {
			if seen[id]++; seen[id] == 2 {
				dup = append(dup, id)
			}
			if i > 0 && id <= s.ids[i-1] {
				ordered = false
			}
		}
		var lost []int64
		for _, id := range stored {
			if seen[id] == 0 {
				lost = append(lost, id)
			}
		}
		reconnects := s.reconnects
		t.Logf("%s: %d events for %d stored messages, lost %d, duplicated %d, in order %v, reconnects %d, end events %d",
			s.name, len(s.ids), len(stored), len(lost), len(dup), ordered, reconnects, len(s.ends))
		if len(lost) > 0 || len(dup) > 0 || !ordered || len(s.ids) != len(stored) {
			t.Errorf("%s: lost %v, duplicated %v, in order %v", s.name, lost, dup, ordered)
		}
		if strings.HasPrefix(s.name, "A-") && reconnects < 1 {
			t.Errorf("%s: never reconnected after A died", s.name)
		}
		if strings.HasPrefix(s.name, "B-") && reconnects != 0 {
			t.Errorf("%s: reconnected %d times though B stayed up", s.name, reconnects)
		}
		s.mu.Unlock()
	}
}
