package httpapi_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// Tests of the event-stream hub (backend/hub) through the real router:
// fan-out, idle cost, resume, the credential sweeper, the limits,
// shutdown, and two processes on one PostgreSQL database.

// hubEvent is one server-sent event as a client parses it.
type hubEvent struct {
	id, event, data, retry string
	at                     time.Time
}

// hubStream is one open event stream read by a goroutine of the test.
type hubStream struct {
	status int
	header http.Header
	body   map[string]any // the error answer when status is not 200
	ch     chan hubEvent
	done   chan struct{} // closed when the server closed the stream
	cancel context.CancelFunc
	mu     sync.Mutex
	closed time.Time
}

// hubTransport keeps the streams off the apps' own clients.
var hubTransport = &http.Transport{MaxIdleConnsPerHost: 64}

// hubDial opens path on base with headers ("Name: value"); a refusal is
// returned with its status and body, not failed.
func hubDial(t *testing.T, base, path, lastID string, headers ...string) *hubStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := hubTransport.RoundTrip(req)
	if err != nil {
		cancel()
		t.Fatalf("stream %s: %v", path, err)
	}
	s := &hubStream{status: res.StatusCode, header: res.Header, cancel: cancel, done: make(chan struct{})}
	t.Cleanup(cancel)
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		defer res.Body.Close()
		json.NewDecoder(res.Body).Decode(&s.body)
		cancel()
		close(s.done)
		return s
	}
	s.ch = make(chan hubEvent, 8192)
	go func() {
		defer res.Body.Close()
		defer func() {
			s.mu.Lock()
			s.closed = time.Now()
			s.mu.Unlock()
			close(s.done)
		}()
		sc := bufio.NewScanner(res.Body)
		var ev hubEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case strings.HasPrefix(line, "retry: "):
				ev.retry = strings.TrimPrefix(line, "retry: ")
			case line == "":
				if ev.data != "" || ev.event != "" {
					if ev.event == "" {
						ev.event = "message"
					}
					ev.at = time.Now()
					s.ch <- ev
				}
				ev = hubEvent{}
			}
		}
	}()
	return s
}

// hubOpen is hubDial that must succeed.
func hubOpen(t *testing.T, e *apptest.Env, path, lastID string, headers ...string) *hubStream {
	t.Helper()
	s := hubDial(t, e.Srv.URL, path, lastID, headers...)
	if s.status != 200 {
		t.Fatalf("stream %s: %d %v", path, s.status, s.body)
	}
	return s
}

// next returns the next event, failing after limit or when the stream
// closed.
func (s *hubStream) next(t *testing.T, limit time.Duration) hubEvent {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-s.done:
		select {
		case ev := <-s.ch:
			return ev
		default:
		}
		t.Fatalf("the stream closed without a further event")
	case <-time.After(limit):
		t.Fatalf("no event within %v (the stream is still open)", limit)
	}
	return hubEvent{}
}

// quiet collects what arrives within d (it should be nothing).
func (s *hubStream) quiet(d time.Duration) []hubEvent {
	var out []hubEvent
	deadline := time.After(d)
	for {
		select {
		case ev := <-s.ch:
			out = append(out, ev)
		case <-deadline:
			return out
		}
	}
}

// closedWithin reports whether the server closed the stream within d.
func (s *hubStream) closedWithin(d time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(d):
		return false
	}
}

// hubEnd is the data of an `event: end`.
type hubEnd struct {
	Error, Reason, Message string
}

func (ev hubEvent) end(t *testing.T) hubEnd {
	t.Helper()
	if ev.event != "end" {
		t.Fatalf("want event end, got %+v", ev)
	}
	var e hubEnd
	if err := json.Unmarshal([]byte(ev.data), &e); err != nil {
		t.Fatalf("end data %q: %v", ev.data, err)
	}
	if e.Message == "" {
		t.Fatalf("end without a message: %s", ev.data)
	}
	return e
}

// hubWorld is an app with the admin's sign-in, a widget client, a visitor
// and the visitor's conversation.
type hubWorld struct {
	*customerWorld
	visitor string // the visitor's access token
	cid     string
}

func newHubWorld(t *testing.T, e *apptest.Env) *hubWorld {
	t.Helper()
	w := &hubWorld{customerWorld: newCustomerWorld(t, e)}
	w.visitor, w.cid = w.newVisitor(t)
	return w
}

// newVisitor makes a visitor of the widget and its conversation.
func (w *hubWorld) newVisitor(t *testing.T) (tok, cid string) {
	t.Helper()
	v := w.visitorToken(map[string]any{"response_type": "token"})
	expect(t, v, 200, "")
	tok = v.Str("access_token")
	conv := w.e.Do("POST", "/customer/api/v1/conversations", nil, apptest.Bearer(tok))
	expect(t, conv, 201, "")
	return tok, strconv.Itoa(int(conv.Body["id"].(float64)))
}

func visitorEvents(cid, tok string) string {
	return "/customer/api/v1/conversations/" + cid + "/events?access_token=" + url.QueryEscape(tok)
}

func agentEvents(cid string) string { return "/api/v1/conversations/" + cid + "/events" }

// hubPost posts an agent message and returns its id.
func hubPost(t *testing.T, e *apptest.Env, auth, cid, content string, private bool) int64 {
	t.Helper()
	body := map[string]any{"content": content}
	if private {
		body["private"] = true
	}
	r := e.Do("POST", "/api/v1/conversations/"+cid+"/messages", body, auth)
	expect(t, r, 201, "")
	return int64(r.Body["id"].(float64))
}

func evID(t *testing.T, ev hubEvent) int64 {
	t.Helper()
	id, err := strconv.ParseInt(ev.id, 10, 64)
	if err != nil || ev.event != "message" {
		t.Fatalf("not a message event: %+v", ev)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(ev.data), &m); err != nil || int64(m["id"].(float64)) != id {
		t.Fatalf("event id %s does not name the message %s", ev.id, ev.data)
	}
	return id
}

// waitStreams waits until the hub holds n streams.
func waitStreams(t *testing.T, e *apptest.Env, n int) {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("hub holds %d streams", n), func() bool { return e.App.Server.Hub.Streams() == n })
}

// jwtExpiry reads the exp claim of a JWT.
func jwtExpiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.Exp == 0 {
		t.Fatalf("claims %s: %v", b, err)
	}
	return time.Unix(c.Exp, 0)
}

// pgMessageReads is how many scans of the messages table PostgreSQL
// counted (its statistics lag by up to about 10 s).
func pgMessageReads(t *testing.T, dsn string) int64 {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT COALESCE(seq_scan, 0) + COALESCE(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = 'messages'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHubFanOutReadsOnce: 50 agent streams and the visitor's own on one
// conversation; one message reaches each exactly once, in order, with
// the message id as event id; a private note reaches the agents only.
// The hub's database reads are not observable through its API (only
// Sent, the writes); with CHATAUTH_TEST_HUB_PGSTAT=1 the PostgreSQL run
// logs the scans of messages that PostgreSQL counted for one message.
func TestHubFanOutReadsOnce(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		// 50 streams of one agent: above the default of 20 per owner.
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_STREAMS_PER_USER": "100"})
		w := newHubWorld(t, e)
		h := e.App.Server.Hub
		const agents = 50
		visitor := hubOpen(t, e, visitorEvents(w.cid, w.visitor), "")
		streams := []*hubStream{visitor}
		for range agents {
			streams = append(streams, hubOpen(t, e, agentEvents(w.cid), "", w.admin))
		}
		waitStreams(t, e, agents+1)
		time.Sleep(200 * time.Millisecond) // the joins' catch-up reads settle
		pgStat := strings.HasPrefix(dsn, "postgres") && os.Getenv("CHATAUTH_TEST_HUB_PGSTAT") != ""
		var reads0 int64
		if pgStat {
			time.Sleep(11 * time.Second) // PostgreSQL flushes table statistics lazily
			reads0 = pgMessageReads(t, dsn)
		}

		// One message: every stream, once, as one write each.
		sent0 := h.Sent()
		m1 := hubPost(t, e, w.admin, w.cid, "to everyone", false)
		for i, s := range streams {
			if got := evID(t, s.next(t, 5*time.Second)); got != m1 {
				t.Fatalf("stream %d: event %d, want %d", i, got, m1)
			}
		}
		eventually(t, time.Second, "Sent counts every stream", func() bool { return h.Sent()-sent0 >= agents+1 })
		time.Sleep(300 * time.Millisecond)
		if d := h.Sent() - sent0; d != agents+1 {
			t.Fatalf("one message: Sent grew by %d, want %d", d, agents+1)
		}
		t.Logf("one message to %d streams: Sent +%d", agents+1, h.Sent()-sent0)
		if pgStat {
			time.Sleep(11 * time.Second)
			t.Logf("one message to %d streams: PostgreSQL counted %d scans of messages", agents+1, pgMessageReads(t, dsn)-reads0)
		}

		// A private note: the agents' streams only.
		sent1 := h.Sent()
		p := hubPost(t, e, w.admin, w.cid, "internal note", true)
		for i, s := range streams[1:] {
			if got := evID(t, s.next(t, 5*time.Second)); got != p {
				t.Fatalf("agent stream %d: event %d, want the note %d", i, got, p)
			}
		}
		if extra := visitor.quiet(300 * time.Millisecond); len(extra) != 0 {
			t.Fatalf("the visitor's stream got the private note: %+v", extra)
		}
		if d := h.Sent() - sent1; d != agents {
			t.Fatalf("private note: Sent grew by %d, want %d", d, agents)
		}

		// A burst of five: in order, once each, everywhere.
		sent2 := h.Sent()
		var burst []int64
		for i := range 5 {
			burst = append(burst, hubPost(t, e, w.admin, w.cid, "burst "+strconv.Itoa(i), false))
		}
		for i, s := range streams {
			for _, want := range burst {
				if got := evID(t, s.next(t, 5*time.Second)); got != want {
					t.Fatalf("stream %d: event %d, want %d (in order)", i, got, want)
				}
			}
		}
		for i, s := range streams {
			if extra := s.quiet(10 * time.Millisecond); len(extra) != 0 {
				t.Fatalf("stream %d: duplicates %+v", i, extra)
			}
		}
		if extra := visitor.quiet(300 * time.Millisecond); len(extra) != 0 {
			t.Fatalf("visitor: duplicates %+v", extra)
		}
		// Sent counts writes (one per stream per batch read), not events.
		t.Logf("a burst of 5 messages to %d streams: Sent +%d (%d events delivered)", agents+1, h.Sent()-sent2, 5*(agents+1))
	})
}

// hubRawStream opens a stream on a bare TCP connection, so the client
// side holds no goroutine and runtime.NumGoroutine counts the server's.
func hubRawStream(t *testing.T, e *apptest.Env, path, auth string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", e.Srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n\r\n", path, e.Srv.Listener.Addr(), auth)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("raw stream: %d %v", res.StatusCode, res.Header)
	}
	c.SetReadDeadline(time.Time{})
	return c, br
}

func procThreads() string {
	b, _ := os.ReadFile("/proc/self/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Threads:") || strings.HasPrefix(l, "VmRSS:") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}

// TestHubIdleStreamsCostNothing: 200 open, idle streams hold no
// goroutine each in the server, and still work.
func TestHubIdleStreamsCostNothing(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_STREAMS_PER_USER": "1000"})
		w := newHubWorld(t, e)
		auth := w.admin
		e.Srv.Client().CloseIdleConnections()
		time.Sleep(200 * time.Millisecond)
		runtime.GC()
		g0 := runtime.NumGoroutine()
		p0 := procThreads()

		const n = 200
		type raw struct {
			c  net.Conn
			br *bufio.Reader
		}
		conns := make([]raw, n)
		for i := range n {
			c, br := hubRawStream(t, e, agentEvents(w.cid), auth)
			conns[i] = raw{c, br}
		}
		waitStreams(t, e, n)
		time.Sleep(2 * time.Second)
		g1 := runtime.NumGoroutine()
		t.Logf("goroutines: %d before, %d with %d idle streams (+%d); %s before, %s after", g0, g1, n, g1-g0, p0, procThreads())
		if g1-g0 > 20 {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d idle streams added %d goroutines:\n%s", n, g1-g0, buf[:runtime.Stack(buf, true)])
		}

		// They are alive: one message reaches all of them.
		id := hubPost(t, e, auth, w.cid, "wake up", false)
		want := "id: " + strconv.FormatInt(id, 10)
		for i, r := range conns {
			r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				line, err := r.br.ReadString('\n')
				if err != nil {
					t.Fatalf("raw stream %d did not get message %d: %v", i, id, err)
				}
				if strings.TrimRight(line, "\n") == want {
					break
				}
			}
		}
	})
}

// TestHubResume: after a disconnect, Last-Event-ID (or ?last_event_id=)
// brings exactly the messages missed, once.
func TestHubResume(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newHubWorld(t, e)
		vpath := visitorEvents(w.cid, w.visitor)
		s := hubOpen(t, e, vpath, "")
		a := hubOpen(t, e, agentEvents(w.cid), "", w.admin)
		first := hubPost(t, e, w.admin, w.cid, "before the drop", false)
		ev := s.next(t, 5*time.Second)
		if evID(t, ev) != first || evID(t, a.next(t, 5*time.Second)) != first {
			t.Fatalf("first event %+v", ev)
		}
		s.cancel()
		a.cancel()
		<-s.done
		var missed []int64
		for i := range 3 {
			missed = append(missed, hubPost(t, e, w.admin, w.cid, "missed "+strconv.Itoa(i), false))
		}
		// The visitor resumes with the header, the agent with the query.
		s2 := hubOpen(t, e, vpath, ev.id)
		a2 := hubOpen(t, e, agentEvents(w.cid)+"?last_event_id="+ev.id, "", w.admin)
		for name, st := range map[string]*hubStream{"visitor": s2, "agent": a2} {
			for _, want := range missed {
				if got := evID(t, st.next(t, 5*time.Second)); got != want {
					t.Fatalf("%s resumed: event %d, want %d", name, got, want)
				}
			}
		}
		for name, st := range map[string]*hubStream{"visitor": s2, "agent": a2} {
			if extra := st.quiet(500 * time.Millisecond); len(extra) != 0 {
				t.Fatalf("%s resumed: more than the 3 missed: %+v", name, extra)
			}
		}
		// A bad id is refused before the stream starts.
		if bad := hubDial(t, e.Srv.URL, vpath, "abc"); bad.status != 400 {
			t.Fatalf("Last-Event-ID abc: %d %v", bad.status, bad.body)
		}
	})
}

// TestHubStreamEndsOnExpiry: a stream ends with `event: end`, reason
// expired, within a second of its token's expiry, then closes.
func TestHubStreamEndsOnExpiry(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_CUSTOMER_TTL": "2s", "CHATAUTH_ACCESS_TTL": "2s"})
		w := newHubWorld(t, e)
		agentTok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
		streams := map[string]*hubStream{
			"visitor": hubOpen(t, e, visitorEvents(w.cid, w.visitor), ""),
			"agent":   hubOpen(t, e, agentEvents(w.cid), "", apptest.Bearer(agentTok)),
		}
		exp := map[string]time.Time{"visitor": jwtExpiry(t, w.visitor), "agent": jwtExpiry(t, agentTok)}
		var wg sync.WaitGroup
		for name, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case ev := <-s.ch:
					var end hubEnd
					if ev.event != "end" || json.Unmarshal([]byte(ev.data), &end) != nil {
						t.Errorf("%s: want the end event, got %+v", name, ev)
						return
					}
					late := ev.at.Sub(exp[name])
					t.Logf("%s stream: end (reason %s) %v after the token's expiry", name, end.Reason, late.Round(time.Millisecond))
					if end.Error != "invalid_token" || end.Reason != "expired" || end.Message == "" {
						t.Errorf("%s: end %s", name, ev.data)
					}
					if late < -50*time.Millisecond || late > 1500*time.Millisecond {
						t.Errorf("%s: ended %v after expiry, want within 0..1.5 s", name, late)
					}
					if !s.closedWithin(time.Second) {
						t.Errorf("%s: not closed after the end event", name)
					}
				case <-time.After(time.Until(exp[name]) + 3*time.Second):
					t.Errorf("%s: no end event by expiry + 3 s", name)
				}
			}()
		}
		wg.Wait()
	})
}

// TestHubStreamEndsOnRevocation: sign-out, deletion of the widget
// client, and deletion of a personal access token end the streams they
// authenticate.
func TestHubStreamEndsOnRevocation(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newHubWorld(t, e)
		waitEnd := func(name string, s *hubStream, from time.Time, limit time.Duration) {
			t.Helper()
			ev := s.next(t, limit+2*time.Second)
			end := ev.end(t)
			took := ev.at.Sub(from)
			t.Logf("%s: stream ended (%s/%s) %v after the request", name, end.Error, end.Reason, took.Round(time.Millisecond))
			if end.Error != "invalid_token" || end.Reason != "revoked" {
				t.Errorf("%s: end %s", name, ev.data)
			}
			if took > limit {
				t.Errorf("%s: ended %v after the request, want within %v", name, took, limit)
			}
			if !s.closedWithin(time.Second) {
				t.Errorf("%s: not closed after the end event", name)
			}
		}

		// Sign-out.
		login := e.Login(apptest.AdminEmail, apptest.AdminPassword)
		signin := apptest.Bearer(login.Str("token"))
		a := hubOpen(t, e, agentEvents(w.cid), "", signin)
		keep := hubOpen(t, e, agentEvents(w.cid), "", w.admin) // another sign-in
		time.Sleep(100 * time.Millisecond)
		start := time.Now()
		if r := e.Do("POST", "/api/v1/auth/logout", nil, signin); r.Status != 204 {
			t.Fatalf("logout: %d %s", r.Status, r.Raw)
		}
		waitEnd("logout", a, start, time.Second)

		// A personal access token, deleted.
		pat := e.Do("POST", "/api/v1/personal_access_tokens", map[string]any{"name": "stream", "scopes": []string{"read", "write", "chat"}}, w.admin)
		expect(t, pat, 201, "")
		org := int64(login.Body["user"].(map[string]any)["account_id"].(float64))
		p := hubOpen(t, e, agentEvents(w.cid), "", basic(org, pat.Str("token")))
		time.Sleep(100 * time.Millisecond)
		start = time.Now()
		expect(t, e.Do("DELETE", "/api/v1/personal_access_tokens/"+strconv.Itoa(int(pat.Body["id"].(float64))), nil, w.admin), 204, "")
		waitEnd("personal access token deleted", p, start, 1500*time.Millisecond)

		// The widget client, deleted: its visitor's stream ends.
		v := hubOpen(t, e, visitorEvents(w.cid, w.visitor), "")
		time.Sleep(100 * time.Millisecond)
		start = time.Now()
		expect(t, e.Do("DELETE", "/api/v1/oauth/clients/"+w.client, nil, w.admin), 204, "")
		waitEnd("widget client deleted", v, start, time.Second)

		// The other sign-in's stream is untouched.
		id := hubPost(t, e, w.admin, w.cid, "still here", false)
		if got := evID(t, keep.next(t, 5*time.Second)); got != id {
			t.Fatalf("the other sign-in's stream: %d, want %d", got, id)
		}
	})
}

// TestHubLimits: per owner and per address, 429 with Retry-After and a
// message; a closed stream frees its place.
func TestHubLimits(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_STREAMS_PER_USER": "3", "CHATAUTH_STREAMS_PER_IP": "5"})
		w := newHubWorld(t, e)
		vpath := visitorEvents(w.cid, w.visitor)
		refused := func(s *hubStream, want string) {
			t.Helper()
			m, _ := s.body["message"].(string)
			if s.status != 429 || s.header.Get("Retry-After") == "" || !strings.Contains(m, want) {
				t.Fatalf("want 429 with Retry-After and %q, got %d Retry-After=%q %v", want, s.status, s.header.Get("Retry-After"), s.body)
			}
		}
		var mine []*hubStream
		for range 3 {
			mine = append(mine, hubOpen(t, e, vpath, ""))
		}
		fourth := hubDial(t, e.Srv.URL, vpath, "")
		refused(fourth, "this visitor")
		t.Logf("4th stream of one visitor: %d, Retry-After %s, %q", fourth.status, fourth.header.Get("Retry-After"), fourth.body["message"])

		// Other owners from the same address: up to 5 in all.
		hubOpen(t, e, agentEvents(w.cid), "", w.admin)
		tok2, cid2 := w.newVisitor(t)
		hubOpen(t, e, visitorEvents(cid2, tok2), "")
		tok3, cid3 := w.newVisitor(t)
		sixth := hubDial(t, e.Srv.URL, visitorEvents(cid3, tok3), "")
		refused(sixth, "address")
		refused(hubDial(t, e.Srv.URL, agentEvents(w.cid), "", w.admin), "address")
		t.Logf("6th stream from one address: %d, %q", sixth.status, sixth.body["message"])

		// The visitor closes a tab: its place comes back.
		mine[0].cancel()
		<-mine[0].done
		closed := time.Now()
		var again *hubStream
		for time.Since(closed) < 40*time.Second {
			if again = hubDial(t, e.Srv.URL, vpath, ""); again.status == 200 {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		took := time.Since(closed)
		if again.status != 200 {
			t.Fatalf("the place of a closed stream was not freed within 40 s: %d %v", again.status, again.body)
		}
		t.Logf("a closed stream's place came back after %v", took.Round(time.Millisecond))
		if took > 20*time.Second {
			t.Errorf("a closed stream held its place for %v (> 20 s): the hub needs two writes to notice a closed client", took.Round(time.Millisecond))
		}
	})
}

// TestHubShutdown: app.Close ends open streams with a retry hint and
// `event: end`, reason shutdown.
func TestHubShutdown(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newHubWorld(t, e)
		streams := map[string]*hubStream{
			"visitor": hubOpen(t, e, visitorEvents(w.cid, w.visitor), ""),
			"agent":   hubOpen(t, e, agentEvents(w.cid), "", w.admin),
		}
		waitStreams(t, e, 2)
		// Both have joined their room once a message reached them (a
		// stream admitted but not yet joined when Close runs is missed:
		// TestHubShutdownWhileJoining).
		id := hubPost(t, e, w.admin, w.cid, "before the restart", false)
		for name, s := range streams {
			if got := evID(t, s.next(t, 5*time.Second)); got != id {
				t.Fatalf("%s: %d, want %d", name, got, id)
			}
		}
		e.Stop()
		for name, s := range streams {
			select {
			case <-s.done:
			case <-time.After(5 * time.Second):
				t.Errorf("%s: still open 5 s after app.Close; the hub counts %d streams", name, e.App.Server.Hub.Streams())
				continue
			}
			ev := s.next(t, time.Second)
			end := ev.end(t)
			if end.Reason != "shutdown" || ev.retry == "" {
				t.Errorf("%s: end %+v, want reason shutdown with a retry line", name, ev)
			}
			t.Logf("%s: retry %s, %s", name, ev.retry, ev.data)
			if !s.closedWithin(time.Second) {
				t.Errorf("%s: not closed after shutdown", name)
			}
		}
	})
}

// TestHubAcrossProcesses: two apps on one PostgreSQL database; B's
// streams get A's messages over LISTEN/NOTIFY, and a sign-out on A ends
// B's stream of that sign-in.
func TestHubAcrossProcesses(t *testing.T) {
	dsn := sqlstoretest.Postgres(t)
	a := apptest.Start(t, dsn, nil)
	b := apptest.Start(t, dsn, nil)
	w := newHubWorld(t, a)
	agent := hubOpen(t, b, agentEvents(w.cid), "", w.admin)
	visitor := hubOpen(t, b, visitorEvents(w.cid, w.visitor), "")
	waitStreams(t, b, 2)

	const n = 100
	lat := make([]time.Duration, n)
	var ids []int64
	for i := range n {
		start := time.Now()
		id := hubPost(t, a, w.admin, w.cid, "across "+strconv.Itoa(i), false)
		ev := agent.next(t, 5*time.Second)
		if evID(t, ev) != id {
			t.Fatalf("message %d: B's stream got %s", id, ev.id)
		}
		lat[i] = ev.at.Sub(start)
		ids = append(ids, id)
	}
	for _, want := range ids {
		if got := evID(t, visitor.next(t, 5*time.Second)); got != want {
			t.Fatalf("B's visitor stream: %d, want %d", got, want)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("POST on A to the event on B, %d messages: p50 %v, p99 %v, max %v", n, lat[n/2], lat[n*99/100-1], lat[n-1])
	if lat[n*99/100-1] > time.Second {
		t.Errorf("p99 %v: B heard of A's messages by polling, not LISTEN/NOTIFY?", lat[n*99/100-1])
	}

	// The visitor writes on A: B's agent stream gets it. A private note
	// posted on A reaches B's agent stream but not B's visitor stream.
	r := a.Do("POST", "/customer/api/v1/conversations/"+w.cid+"/messages", map[string]any{"content": "from the visitor"}, apptest.Bearer(w.visitor))
	expect(t, r, 201, "")
	mine := int64(r.Body["id"].(float64))
	note := hubPost(t, a, w.admin, w.cid, "note on A", true)
	after := hubPost(t, a, w.admin, w.cid, "after the note", false)
	for _, want := range []int64{mine, note, after} {
		if got := evID(t, agent.next(t, 5*time.Second)); got != want {
			t.Fatalf("B's agent stream: %d, want %d", got, want)
		}
	}
	for _, want := range []int64{mine, after} {
		if got := evID(t, visitor.next(t, 5*time.Second)); got != want {
			t.Fatalf("B's visitor stream: %d, want %d (the private note %d left out)", got, want, note)
		}
	}

	// A sign-out on A ends B's stream of that sign-in.
	signin := apptest.Bearer(a.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token"))
	s := hubOpen(t, b, agentEvents(w.cid), "", signin)
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if r := a.Do("POST", "/api/v1/auth/logout", nil, signin); r.Status != 204 {
		t.Fatalf("logout: %d %s", r.Status, r.Raw)
	}
	ev := s.next(t, 3*time.Second)
	end := ev.end(t)
	took := ev.at.Sub(start)
	t.Logf("sign-out on A ended B's stream after %v (%s)", took.Round(time.Millisecond), end.Reason)
	if end.Reason != "revoked" || took > time.Second {
		t.Errorf("sign-out on A: B's stream ended %v later with %s, want revoked within 1 s", took, ev.data)
	}
}

// TestHubConcurrentPosts: messages posted at the same time by many
// writers all reach a stream, once each and in id order. On PostgreSQL
// ids come from a sequence when the row is inserted, but rows become
// visible when their transactions commit, which may be in another order.
func TestHubConcurrentPosts(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newHubWorld(t, e)
		s := hubOpen(t, e, agentEvents(w.cid), "", w.admin)
		v := hubOpen(t, e, visitorEvents(w.cid, w.visitor), "")
		waitStreams(t, e, 2)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		var mu sync.Mutex
		var posted []int64
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					body, _ := json.Marshal(map[string]any{"content": fmt.Sprintf("w%d-%d", g, i)})
					req, _ := http.NewRequest("POST", e.Srv.URL+"/api/v1/conversations/"+w.cid+"/messages", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					k, val, _ := strings.Cut(w.admin, ": ")
					req.Header.Set(k, val)
					res, err := hubTransport.RoundTrip(req)
					if err != nil {
						t.Error(err)
						return
					}
					var m map[string]any
					json.NewDecoder(res.Body).Decode(&m)
					res.Body.Close()
					if res.StatusCode != 201 {
						t.Errorf("post: %d %v", res.StatusCode, m)
						return
					}
					mu.Lock()
					posted = append(posted, int64(m["id"].(float64)))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		sort.Slice(posted, func(i, j int) bool { return posted[i] < posted[j] })
		for name, st := range map[string]*hubStream{"agent": s, "visitor": v} {
			var got []int64
		collect:
			for len(got) < len(posted) {
				select {
				case ev := <-st.ch:
					got = append(got, evID(t, ev))
				case <-time.After(2 * time.Second):
					break collect // nothing more is coming
				}
			}
			for _, ev := range st.quiet(200 * time.Millisecond) {
				got = append(got, evID(t, ev))
			}
			seen := map[int64]int{}
			ordered := true
			for i, id := range got {
				seen[id]++
				if i > 0 && id <= got[i-1] {
					ordered = false
				}
			}
			var lost, dup []int64
			for _, id := range posted {
				if seen[id] == 0 {
					lost = append(lost, id)
				} else if seen[id] > 1 {
					dup = append(dup, id)
				}
			}
			t.Logf("%s stream: %d of %d messages from %d concurrent writers; lost %d, duplicated %d, in order %v", name, len(got), len(posted), writers, len(lost), len(dup), ordered)
			if len(lost) > 0 || len(dup) > 0 || !ordered {
				t.Errorf("%s stream: lost %v, duplicated %v, in order %v", name, lost, dup, ordered)
			}
		}
	})
}

// TestHubShutdownWhileJoining: streams that are being opened while the
// app closes either are refused or end; none stays open on a closed hub.
// (Hub.Serve admits a stream, writes its head, then joins its room; a
// Close that sweeps the rooms in between never ends it.)
func TestHubShutdownWhileJoining(t *testing.T) {
	var stuck, opened int
	for round := range 40 {
		e := apptest.Start(t, sqlstoretest.SQLite(t), map[string]string{"CHATAUTH_STREAMS_PER_USER": "1000"})
		w := newHubWorld(t, e)
		// The URL is read before the streams start: Stop clears e.Srv
		// while they may still be dialing.
		url := e.Srv.URL + agentEvents(w.cid)
		const n = 20
		streams := make(chan *hubStream, n)
		first := make(chan struct{}, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(cancel)
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				k, v, _ := strings.Cut(w.admin, ": ")
				req.Header.Set(k, v)
				res, err := hubTransport.RoundTrip(req)
				first <- struct{}{}
				if err != nil || res.StatusCode != 200 {
					if res != nil {
						res.Body.Close()
					}
					return
				}
				s := &hubStream{status: 200, cancel: cancel, done: make(chan struct{})}
				go func() {
					defer close(s.done)
					defer res.Body.Close()
					buf := make([]byte, 512)
					for {
						if _, err := res.Body.Read(buf); err != nil {
							return
						}
					}
				}()
				streams <- s
			}()
		}
		<-first
		e.Stop()
		wg.Wait()
		close(streams)
		for s := range streams {
			opened++
			if !s.closedWithin(3 * time.Second) {
				stuck++
			}
		}
		if n := e.App.Server.Hub.Streams(); n > 0 {
			t.Logf("round %d: the closed hub still counts %d streams", round, n)
		}
	}
	t.Logf("%d streams opened while closing, %d still open 3 s after app.Close", opened, stuck)
	if stuck > 0 {
		t.Errorf("%d of %d streams opened during app.Close were never ended (Hub.join after Hub.Close's sweep)", stuck, opened)
	}
}

// TestHubResumeIntoBusyRoom: a stream that resumes from an old id while
// its conversation is busy (a read for the streams already there is in
// flight) still gets every message after its id, in order, once.
func TestHubResumeIntoBusyRoom(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, map[string]string{"CHATAUTH_STREAMS_PER_USER": "100"})
		w := newHubWorld(t, e)
		var history []int64
		for i := range 30 {
			history = append(history, hubPost(t, e, w.admin, w.cid, "history "+strconv.Itoa(i), false))
		}
		hubOpen(t, e, agentEvents(w.cid), "", w.admin) // the live console
		// Two writers keep the room busy.
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var mu sync.Mutex
		var posted []int64
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					body, _ := json.Marshal(map[string]any{"content": "busy " + strconv.Itoa(i)})
					req, _ := http.NewRequest("POST", e.Srv.URL+"/api/v1/conversations/"+w.cid+"/messages", strings.NewReader(string(body)))
					req.Header.Set("Content-Type", "application/json")
					k, v, _ := strings.Cut(w.admin, ": ")
					req.Header.Set(k, v)
					res, err := hubTransport.RoundTrip(req)
					if err != nil {
						t.Error(err)
						return
					}
					var m map[string]any
					json.NewDecoder(res.Body).Decode(&m)
					res.Body.Close()
					if res.StatusCode == 201 {
						mu.Lock()
						posted = append(posted, int64(m["id"].(float64)))
						mu.Unlock()
					}
				}
			}()
		}
		// Streams resume from early ids while messages keep coming.
		type resumed struct {
			from int64
			s    *hubStream
		}
		var rs []resumed
		for i := range 20 {
			from := history[i%len(history)]
			rs = append(rs, resumed{from, hubOpen(t, e, agentEvents(w.cid), strconv.FormatInt(from, 10), w.admin)})
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		stop()
		wg.Wait()
		all := append(append([]int64(nil), history...), posted...)
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		bad := 0
		for i, r := range rs {
			var want []int64
			for _, id := range all {
				if id > r.from {
					want = append(want, id)
				}
			}
			var got []int64
		collect:
			for len(got) < len(want) {
				select {
				case ev := <-r.s.ch:
					got = append(got, evID(t, ev))
				case <-time.After(time.Second):
					break collect
				}
			}
			got = append(got, func() (ids []int64) {
				for _, ev := range r.s.quiet(100 * time.Millisecond) {
					ids = append(ids, evID(t, ev))
				}
				return
			}()...)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				bad++
				seen := map[int64]bool{}
				for _, id := range got {
					seen[id] = true
				}
				var lost []int64
				for _, id := range want {
					if !seen[id] {
						lost = append(lost, id)
					}
				}
				t.Errorf("stream %d resumed after %d: %d events, want %d; lost %d (first %v)", i, r.from, len(got), len(want), len(lost), lost[:min(len(lost), 10)])
			}
		}
		t.Logf("%d streams resumed into a busy room (%d messages posted meanwhile): %d incomplete", len(rs), len(posted), bad)
	})
}
