package notify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// --- helpers ---

func testDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("CHATAUTH_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("CHATAUTH_TEST_POSTGRES is not set")
	}
	return dsn
}

// privateTopic is a topic no other test (nor server) on the shared
// database publishes on.
func privateTopic(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	return "chatauth_test_" + hex.EncodeToString(b[:])
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func newBus(t *testing.T, dsn string) *Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := NewPostgres(ctx, dsn, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if !b.Up() {
		t.Fatal("a new bus is not up")
	}
	return b
}

// collect subscribes to topic and returns the channel its payloads
// arrive on.
func collect(b Bus, topic string) chan string {
	ch := make(chan string, 10000)
	b.Subscribe(topic, func(p string) { ch <- p })
	return ch
}

func receive(t *testing.T, ch chan string, want string, within time.Duration) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(within):
		t.Fatalf("%q not received within %v", want, within)
	}
}

// warm publishes "warm" on topic until ch receives it (at most 10 s),
// and drains the extra copies.
func warm(t *testing.T, b Bus, topic string, ch chan string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		publish(t, b, topic, "warm")
		select {
		case p := <-ch:
			if p != "warm" {
				t.Fatalf("received %q while warming up", p)
			}
			for {
				select {
				case p := <-ch:
					if p != "warm" {
						t.Fatalf("received %q while warming up", p)
					}
				case <-time.After(200 * time.Millisecond):
					return
				}
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatal("no notification arrived within 10 s")
}

func silence(t *testing.T, ch chan string, d time.Duration) {
	t.Helper()
	select {
	case got := <-ch:
		t.Fatalf("received %q, want nothing", got)
	case <-time.After(d):
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func publish(t *testing.T, b Bus, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, topic, payload); err != nil {
		t.Fatal(err)
	}
}

// setTiming shortens the listener's timing for one test (not parallel:
// no other bus may be running).
func setTiming(t *testing.T, ping, pingWait, backoffMax time.Duration) {
	oldPing, oldWait, oldMax := pingEvery, pingTimeout, maxBackoff
	pingEvery, pingTimeout, maxBackoff = ping, pingWait, backoffMax
	t.Cleanup(func() { pingEvery, pingTimeout, maxBackoff = oldPing, oldWait, oldMax })
}

// --- input checks and the local bus ---

func TestCheck(t *testing.T) {
	ok := []struct{ topic, payload string }{
		{TopicMessage, "12345"},
		{TopicKeys, ""},
		{TopicClient, strings.Repeat("x", MaxPayload)},
		{TopicRevocation, strings.Repeat("é", MaxPayload/2)},
		{strings.Repeat("t", 63), "p"},
	}
	for _, c := range ok {
		if err := Check(c.topic, c.payload); err != nil {
			t.Errorf("Check(%q, %d bytes) = %v, want nil", c.topic, len(c.payload), err)
		}
	}
	bad := []struct {
		topic, payload string
		err            error
	}{
		{TopicClient, strings.Repeat("x", MaxPayload+1), ErrPayloadTooLong},
		{TopicClient, strings.Repeat("é", MaxPayload/2) + "x", ErrPayloadTooLong},
		{TopicClient, "a\x00b", ErrBadPayload},
		{TopicClient, "\xff", ErrBadPayload},
		{"", "p", ErrBadTopic},
		{strings.Repeat("t", 64), "p", ErrBadTopic},
		{"a\x00", "p", ErrBadTopic},
	}
	for _, c := range bad {
		if err := Check(c.topic, c.payload); !errors.Is(err, c.err) {
			t.Errorf("Check(%q, %d bytes) = %v, want %v", c.topic, len(c.payload), err, c.err)
		}
	}
	q, args := NotifySQL(TopicMessage, "42")
	if q != "SELECT pg_notify(?, ?)" || !slices.Equal(args, []any{TopicMessage, "42"}) {
		t.Errorf("NotifySQL = %q %v", q, args)
	}
}

func TestLocal(t *testing.T) {
	b := NewLocal()
	if !b.Up() {
		t.Fatal("a local bus is always up")
	}
	b.OnReconnect(func() { t.Error("a local bus never reconnects") })
	var got []string
	b.Subscribe(TopicMessage, func(p string) { got = append(got, "m1:"+p) })
	b.Subscribe(TopicMessage, func(p string) { got = append(got, "m2:"+p) })
	b.Subscribe(TopicRevocation, func(p string) {
		got = append(got, "r:"+p)
		// A subscriber may publish: delivered after it returns, not
		// inside it, and before the outer Publish returns.
		if err := b.Publish(context.Background(), TopicKeys, ""); err != nil {
			t.Error(err)
		}
		got = append(got, "r-done")
	})
	b.Subscribe(TopicKeys, func(p string) { got = append(got, "k") })
	ctx := context.Background()
	for _, e := range [][2]string{{TopicMessage, "7"}, {TopicRevocation, "s1"}, {TopicClient, "nobody listens"}, {TopicMessage, "8"}} {
		if err := b.Publish(ctx, e[0], e[1]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"m1:7", "m2:7", "r:s1", "r-done", "k", "m1:8", "m2:8"}
	if !slices.Equal(got, want) {
		t.Fatalf("deliveries %q, want %q", got, want)
	}

	if err := b.Publish(ctx, TopicClient, strings.Repeat("x", MaxPayload+1)); !errors.Is(err, ErrPayloadTooLong) {
		t.Errorf("long payload: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := b.Publish(cctx, TopicClient, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}

	// Concurrent publishers: every payload delivered once, one callback at
	// a time, each publisher's payloads in its order.
	b2 := NewLocal()
	var running, overlap atomic.Int32
	last := map[string]int{}
	count := 0
	b2.Subscribe("t", func(p string) {
		if running.Add(1) != 1 {
			overlap.Add(1)
		}
		who, n, _ := strings.Cut(p, ":")
		i, _ := strconv.Atoi(n)
		if prev, ok := last[who]; ok && i != prev+1 {
			t.Errorf("publisher %s: %d after %d", who, i, prev)
		}
		last[who] = i
		count++
		running.Add(-1)
	})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				b2.Publish(ctx, "t", fmt.Sprintf("%d:%d", w, i))
			}
		})
	}
	wg.Wait()
	if count != 8000 || overlap.Load() != 0 {
		t.Fatalf("%d deliveries (want 8000), %d overlapping", count, overlap.Load())
	}
}

// --- PostgreSQL ---

// TestPostgresAcrossBuses: two buses on one database (two processes, as
// far as PostgreSQL can tell) hear each other's publications and their
// own; the latency from Publish to the other bus's subscriber is logged.
func TestPostgresAcrossBuses(t *testing.T) {
	dsn := testDSN(t)
	a, b := newBus(t, dsn), newBus(t, dsn)
	topic := privateTopic(t)
	fromA := collect(a, topic)
	var mu sync.Mutex
	var arrived = map[string]time.Time{}
	got := make(chan string, 10)
	b.Subscribe(topic, func(p string) {
		mu.Lock()
		arrived[p] = time.Now()
		mu.Unlock()
		got <- p
	})

	publish(t, a, topic, "hello")
	receive(t, got, "hello", 2*time.Second)
	receive(t, fromA, "hello", 2*time.Second) // the publisher's own process hears it too
	publish(t, b, topic, "back")
	receive(t, got, "back", 2*time.Second)
	receive(t, fromA, "back", 2*time.Second)

	// 1,000 notifications, one at a time: Publish on a, arrival at b's
	// subscriber.
	const n = 1000
	lat := make([]time.Duration, 0, n)
	ctx := context.Background()
	for i := range n {
		p := "n" + strconv.Itoa(i)
		start := time.Now()
		if err := a.Publish(ctx, topic, p); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != p {
				t.Fatalf("received %q, want %q", g, p)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("notification %d lost", i)
		}
		mu.Lock()
		lat = append(lat, arrived[p].Sub(start))
		mu.Unlock()
		<-fromA
	}
	slices.Sort(lat)
	t.Logf("Publish → other bus's subscriber, %d notifications one at a time: p50 %v, p90 %v, p99 %v, max %v",
		n, lat[n/2], lat[n*90/100], lat[n*99/100], lat[n-1])

	// Throughput: 1,000 published back to back.
	start := time.Now()
	for i := range n {
		if err := a.Publish(ctx, topic, "burst"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		receive(t, got, "burst"+strconv.Itoa(i), 5*time.Second)
	}
	t.Logf("%d notifications back to back: all received after %v", n, time.Since(start))
}

// TestPostgresOrder: notifications on a topic arrive in the order they
// were published; each concurrent publisher's in its own order.
func TestPostgresOrder(t *testing.T) {
	dsn := testDSN(t)
	a, b := newBus(t, dsn), newBus(t, dsn)
	topic, other := privateTopic(t), privateTopic(t)
	onB, onA := collect(b, topic), collect(a, topic)
	otherB := collect(b, other)
	ctx := context.Background()
	const n = 500
	for i := range n {
		if err := a.Publish(ctx, topic, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 { // interleave another topic: it must not disturb this one
			if err := a.Publish(ctx, other, strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range n {
		receive(t, onB, strconv.Itoa(i), 5*time.Second)
		receive(t, onA, strconv.Itoa(i), 5*time.Second)
		if i%10 == 0 {
			receive(t, otherB, strconv.Itoa(i), 5*time.Second)
		}
	}

	// Four publishers at once, over both buses' pools.
	var wg sync.WaitGroup
	for w := range 4 {
		bus := a
		if w%2 == 1 {
			bus = b
		}
		wg.Go(func() {
			for i := range 200 {
				if err := bus.Publish(ctx, topic, fmt.Sprintf("%d:%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := map[string]int{}
	for range 800 {
		var p string
		select {
		case p = <-onB:
		case <-time.After(5 * time.Second):
			t.Fatalf("lost notifications: got %v", next)
		}
		w, s, _ := strings.Cut(p, ":")
		i, _ := strconv.Atoi(s)
		if i != next[w] {
			t.Fatalf("publisher %s: received %d, want %d", w, i, next[w])
		}
		next[w]++
	}
	silence(t, onB, 100*time.Millisecond)
}

// TestPostgresPayload: the limit holds on PostgreSQL, and payloads up to
// it arrive intact.
func TestPostgresPayload(t *testing.T) {
	dsn := testDSN(t)
	a := newBus(t, dsn)
	topic := privateTopic(t)
	ch := collect(a, topic)
	ctx := context.Background()
	// On a loaded machine the first notification can go out before the
	// listener is ready: warm up until one arrives, then test payloads.
	warm(t, a, topic, ch)
	for _, p := range []string{"", "42", strings.Repeat("x", MaxPayload), strings.Repeat("é", MaxPayload/2), `'"; NOTIFY x; --`} {
		publish(t, a, topic, p)
		receive(t, ch, p, 2*time.Second)
	}
	if err := a.Publish(ctx, topic, strings.Repeat("x", MaxPayload+1)); !errors.Is(err, ErrPayloadTooLong) {
		t.Fatalf("a %d-byte payload: %v, want ErrPayloadTooLong", MaxPayload+1, err)
	}
	if err := a.Publish(ctx, "", "x"); !errors.Is(err, ErrBadTopic) {
		t.Fatalf("empty topic: %v", err)
	}
	// Case matters, and odd characters are fine (LISTEN quotes the name).
	odd := "Chatauth_Test \"" + privateTopic(t)[14:]
	oddCh := collect(a, odd)
	publish(t, a, odd, "odd")
	receive(t, oddCh, "odd", 2*time.Second)
	silence(t, ch, 100*time.Millisecond)
	a.Close()
	if err := a.Publish(ctx, topic, "x"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if a.Up() {
		t.Fatal("a closed bus is up")
	}
	a.Close() // twice is fine
}

// TestPostgresNotifySQL: a notification sent from a transaction goes out
// when it commits, and never when it rolls back.
func TestPostgresNotifySQL(t *testing.T) {
	dsn := testDSN(t)
	a := newBus(t, dsn)
	topic := privateTopic(t)
	ch := collect(a, topic)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	dollar := func(q string) string { // what sqlstore's dialect does
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", "$"+strconv.Itoa(i), 1)
		}
		return q
	}
	run := func(payload string, commit bool) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		q, args := NotifySQL(topic, payload)
		if _, err := tx.ExecContext(ctx, dollar(q), args...); err != nil {
			t.Fatal(err)
		}
		silence(t, ch, 150*time.Millisecond) // nothing before the commit
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	run("committed", true)
	receive(t, ch, "committed", 2*time.Second)
	run("rolled back", false)
	silence(t, ch, 300*time.Millisecond)
}

// TestPostgresBackendTerminated: the listening session is killed on the
// server; the bus notices at once, comes back, catches up, and delivers.
func TestPostgresBackendTerminated(t *testing.T) {
	dsn := testDSN(t)
	a, b := newBus(t, dsn), newBus(t, dsn)
	topic := privateTopic(t)
	ch := collect(a, topic)
	var reconnects atomic.Int32
	a.OnReconnect(func() { reconnects.Add(1) })

	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	pid := a.pid.Load()
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate %d: %v %v", pid, ok, err)
	}
	down := waitFor(t, "Up() false after the session was terminated", time.Second, func() bool { return !a.Up() })
	back := waitFor(t, "Up() true again", 5*time.Second, a.Up)
	waitFor(t, "OnReconnect called", time.Second, func() bool { return reconnects.Load() == 1 })
	t.Logf("down noticed after %v, up again %v later", down, back)
	if a.pid.Load() == pid {
		t.Fatal("same server process after reconnecting")
	}
	publish(t, b, topic, "after")
	receive(t, ch, "after", 2*time.Second)
	if !b.Up() || reconnects.Load() != 1 {
		t.Fatalf("b up %v, reconnects %d", b.Up(), reconnects.Load())
	}
}

// TestPostgresSilentDeath: a connection that stops answering without
// closing (a network cut) is found by the ping; the short waits it takes
// leave a live connection working.
func TestPostgresSilentDeath(t *testing.T) {
	dsn := testDSN(t)
	setTiming(t, 100*time.Millisecond, 200*time.Millisecond, 500*time.Millisecond)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("the proxy test needs a postgres:// URL with a host (%v)", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	px := newProxy(t, target)
	u.Host = "127.0.0.1:" + strconv.Itoa(px.port)
	proxied := u.String()
	a := newBus(t, proxied)
	pub := newBus(t, dsn)
	topic := privateTopic(t)
	ch := collect(a, topic)
	var reconnects atomic.Int32
	a.OnReconnect(func() { reconnects.Add(1) })

	// Many ping cycles go by; the connection still delivers.
	time.Sleep(500 * time.Millisecond)
	publish(t, pub, topic, "alive")
	receive(t, ch, "alive", 2*time.Second)
	if !a.Up() || reconnects.Load() != 0 {
		t.Fatalf("a live, idle connection was dropped (up %v, %d reconnects)", a.Up(), reconnects.Load())
	}

	px.freeze(true)
	down := waitFor(t, "Up() false after the network froze", 2*time.Second, func() bool { return !a.Up() })
	t.Logf("frozen connection noticed after %v (ping every %v, timeout %v)", down, pingEvery, pingTimeout)
	px.freeze(false)
	waitFor(t, "Up() true after the network came back", 5*time.Second, a.Up)
	waitFor(t, "OnReconnect called", time.Second, func() bool { return reconnects.Load() == 1 })
	publish(t, pub, topic, "back")
	receive(t, ch, "back", 2*time.Second)
}

// proxy forwards TCP connections to a server; frozen, it stops
// forwarding (and holds new connections) without closing anything.
type proxy struct {
	port   int
	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{port: l.Addr().(*net.TCPAddr).Port, thaw: make(chan struct{})}
	close(p.thaw)
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, s)
			cmu.Unlock()
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *proxy) freeze(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && !p.frozen {
		p.thaw = make(chan struct{})
	} else if !on && p.frozen {
		close(p.thaw)
	}
	p.frozen = on
}

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		thaw := p.thaw
		p.mu.Unlock()
		<-thaw // frozen: hold the bytes (a stalled network, not a closed one)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			} else if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}

// --- a private cluster, restarted ---

// ownPostgres is a PostgreSQL cluster of this test's own, so stopping it
// does not disturb the rest of the suite (as in cmd/chatauth's
// pgrestart_test.go).
type ownPostgres struct {
	bin, dir string
	port     int
}

func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	bin := os.Getenv("CHATAUTH_TEST_PG_BIN")
	if bin == "" {
		t.Skip("CHATAUTH_TEST_PG_BIN is not set (./build.sh test sets it)")
	}
	dir, err := os.MkdirTemp("", "chatauth-notify")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	p := &ownPostgres{bin: bin, dir: dir, port: port}
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		asPostgres(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	p.ctl(t, "start")
	return p
}

func (p *ownPostgres) ctl(t *testing.T, action string, extra ...string) {
	t.Helper()
	args := append([]string{"-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "server.log"), "-w", "-t", "60",
		"-o", "-p " + strconv.Itoa(p.port) + " -k " + p.dir + " -h 127.0.0.1 -c fsync=off"}, extra...)
	if out, err := asPostgres(filepath.Join(p.bin, "pg_ctl"), append(args, action)...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "server.log"))
		t.Fatalf("pg_ctl %s: %v\n%s\n%s", action, err, out, log)
	}
}

func (p *ownPostgres) dsn() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.port) + "/postgres?sslmode=disable"
}

// TestPostgresRestart stops the database under a connected bus and
// starts it again: the bus is down within a second (Publish fails, and
// callers poll), then up again by itself, calls OnReconnect, and
// delivers as before.
func TestPostgresRestart(t *testing.T) {
	if os.Getenv("CHATAUTH_TEST_POSTGRES") == "" {
		t.Skip("CHATAUTH_TEST_POSTGRES is not set")
	}
	pg := startOwnPostgres(t)
	a, b := newBus(t, pg.dsn()), newBus(t, pg.dsn())
	chA, chB := collect(a, TopicMessage), collect(b, TopicMessage)
	var reconnects atomic.Int32
	a.OnReconnect(func() { reconnects.Add(1) })
	publish(t, a, TopicMessage, "1")
	receive(t, chA, "1", 2*time.Second)
	receive(t, chB, "1", 2*time.Second)

	// pg_ctl -m fast ends the sessions, then waits for the server to
	// exit; the buses must notice while it does.
	stopped := time.Now()
	var downAfter atomic.Int64
	go func() {
		for time.Since(stopped) < 5*time.Second {
			if !a.Up() && !b.Up() {
				downAfter.Store(int64(time.Since(stopped)))
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	pg.ctl(t, "stop", "-m", "fast")
	ctlTook := time.Since(stopped)
	waitFor(t, "Up() false once the database is stopped", time.Second, func() bool { return !a.Up() && !b.Up() })
	waitFor(t, "the watcher", time.Second, func() bool { return downAfter.Load() != 0 })
	t.Logf("both buses down %v after pg_ctl stop began (pg_ctl took %v)", time.Duration(downAfter.Load()), ctlTook)
	if d := time.Duration(downAfter.Load()); d > time.Second {
		t.Fatalf("down noticed after %v, want within a second", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	if err := a.Publish(ctx, TopicMessage, "lost"); err == nil {
		t.Fatal("Publish succeeded with the database stopped")
	}
	cancel()
	time.Sleep(2 * time.Second) // a few failed reconnection attempts
	if a.Up() || reconnects.Load() != 0 {
		t.Fatalf("up %v, %d reconnects with the database stopped", a.Up(), reconnects.Load())
	}

	pg.ctl(t, "start")
	started := time.Now()
	waitFor(t, "Up() true once the database is back", 15*time.Second, func() bool { return a.Up() && b.Up() })
	t.Logf("both buses up %v after pg_ctl start returned", time.Since(started))
	waitFor(t, "OnReconnect called", time.Second, func() bool { return reconnects.Load() == 1 })
	for i := range 20 {
		publish(t, b, TopicMessage, "after"+strconv.Itoa(i))
		receive(t, chA, "after"+strconv.Itoa(i), 2*time.Second)
		receive(t, chB, "after"+strconv.Itoa(i), 2*time.Second)
	}
	if reconnects.Load() != 1 {
		t.Fatalf("%d reconnects, want 1", reconnects.Load())
	}
}
