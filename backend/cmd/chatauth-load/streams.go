package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// visitor is one widget visitor: a customer token, its refresh token and,
// when asked for, a conversation of its own.
type visitor struct {
	token, refresh string
	cookie         string // the visitor's cookie, name=value
	conv           int64
}

// visitorsPerIP stays under the server's 60 new visitors per address per
// minute (httpapi.creationsPerMinute).
const visitorsPerIP = 50

// mintVisitors creates n visitors of the widget client, each with one
// POST /customer/token (and, with conv, one POST conversation), from
// concurrent clients spread over loopback source addresses.
func mintVisitors(base, widget string, n int, conv bool) ([]visitor, error) {
	out := make([]visitor, n)
	clients := make([]*http.Client, (n+visitorsPerIP-1)/visitorsPerIP)
	for i := range clients {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: sourceIP(i)}, Timeout: 5 * time.Second}
		clients[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 8}}
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				v, err := mintVisitor(clients[i/visitorsPerIP], base, widget, conv)
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("visitor %d: %w", i, err) })
					next.Store(int64(n))
					return
				}
				out[i] = v
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

func mintVisitor(c *http.Client, base, widget string, conv bool) (visitor, error) {
	var v visitor
	var ans struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	hdr, err := postJSONHeader(c, base+"/customer/token", "", `{"client_id":"`+widget+`","response_type":"token"}`, 200, &ans)
	if err != nil {
		return v, fmt.Errorf("POST /customer/token: %w", err)
	}
	v.token, v.refresh = ans.AccessToken, ans.RefreshToken
	v.cookie, _, _ = strings.Cut(hdr.Get("Set-Cookie"), ";")
	if !conv {
		return v, nil
	}
	var o struct{ ID int64 }
	if err := postJSON(c, base+"/customer/api/v1/conversations", v.token, `{"subject":"load"}`, 201, &o); err != nil {
		return v, fmt.Errorf("POST /customer/api/v1/conversations: %w", err)
	}
	v.conv = o.ID
	return v, nil
}

// postJSON posts body with an optional bearer and decodes the answer,
// which must have status want.
func postJSON(c *http.Client, u, bearer, body string, want int, into any) error {
	_, err := postJSONHeader(c, u, bearer, body, want, into)
	return err
}

// postJSONHeader is postJSON that also returns the answer's header.
func postJSONHeader(c *http.Client, u, bearer, body string, want int, into any) (http.Header, error) {
	req, err := http.NewRequest("POST", u, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		return res.Header, fmt.Errorf("%s: %s", res.Status, bytes.TrimSpace(b[:min(len(b), 300)]))
	}
	if into == nil {
		return res.Header, nil
	}
	return res.Header, json.Unmarshal(b, into)
}

// rawStream is an event stream on a plain TCP connection: the tool wrote
// the GET and read the response head; what follows is the stream.
type rawStream struct {
	conn   net.Conn
	status int
	// rest is what was read after the head (the retry preamble, an error
	// body).
	rest []byte
}

// openStream dials addr, writes a GET of path with the extra header
// lines (each ending in \r\n), and reads the response head.
func openStream(addr, path, header string, timeout time.Duration) (*rawStream, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nAccept: text/event-stream\r\n"+header+"\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	var buf [2048]byte
	n := 0
	for {
		m, err := conn.Read(buf[n:])
		n += m
		if i := bytes.Index(buf[:n], []byte("\r\n\r\n")); i >= 0 {
			line, _, _ := bytes.Cut(buf[:i], []byte("\r\n"))
			f := bytes.Fields(line)
			st := 0
			if len(f) >= 2 {
				st, _ = strconv.Atoi(string(f[1]))
			}
			conn.SetDeadline(time.Time{})
			return &rawStream{conn: conn, status: st, rest: append([]byte(nil), buf[i+4:n]...)}, nil
		}
		if err != nil || n == len(buf) {
			conn.Close()
			if err == nil {
				err = errors.New("response head too long")
			}
			return nil, err
		}
	}
}

// openResult counts how a batch of stream opens went.
type openResult struct {
	OK       int            `json:"ok"`
	Statuses map[string]int `json:"statuses,omitempty"` // non-200 answers
	Failed   int            `json:"failed"`             // no answer
	FirstErr string         `json:"first_error,omitempty"`
	Seconds  float64        `json:"seconds"`
}

// openMany opens the streams with indices [from, to) with concurrency
// workers; path(i) is stream i's request path and header(i) its extra
// header lines. ok streams are stored in conns[i].
func openMany(addr string, from, to, workers int, path func(int) string, header func(int) string, conns []*rawStream) openResult {
	var mu sync.Mutex
	res := openResult{Statuses: map[string]int{}}
	var next atomic.Int64
	next.Store(int64(from))
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				s, err := openStream(addr, path(i), header(i), 15*time.Second)
				mu.Lock()
				switch {
				case err != nil:
					res.Failed++
					if res.FirstErr == "" {
						res.FirstErr = err.Error()
					}
				case s.status != 200:
					res.Statuses[strconv.Itoa(s.status)]++
					if res.FirstErr == "" {
						res.FirstErr = strconv.Itoa(s.status) + ": " + string(bytes.TrimSpace(s.rest[:min(len(s.rest), 300)]))
					}
					s.conn.Close()
				default:
					res.OK++
					conns[i] = s
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	if len(res.Statuses) == 0 {
		res.Statuses = nil
	}
	return res
}

// streamsPerVisitor is how many streams each visitor holds in the idle
// run: half the default per-visitor limit (CHATAUTH_STREAMS_PER_USER, 20),
// like a visitor with ten tabs open.
const streamsPerVisitor = 10

type idleResult struct {
	Server            []string   `json:"server_env"`
	Streams           int        `json:"streams"`
	Visitors          int        `json:"visitors"`
	StreamsPerVisitor int        `json:"streams_per_visitor"`
	MintSeconds       float64    `json:"mint_seconds"`
	Open              openResult `json:"open"`
	// Server CPU over the idle window, as % of one core; and the same
	// process over a window before any stream was open.
	IdleSeconds    float64 `json:"idle_seconds"`
	CPUPercent     float64 `json:"server_cpu_percent_of_core"`
	CPUPercentNone float64 `json:"server_cpu_percent_of_core_no_streams"`
	HeartbeatsSeen int     `json:"heartbeats_in_window"`
	CPUms          []int64 `json:"server_cpu_ms_each_second"`
	// CPUPercentAmortized estimates the idle cost with the heartbeat
	// spread over its 15 s period (when the window held one).
	CPUPercentAmortized float64 `json:"server_cpu_percent_heartbeat_amortized,omitempty"`
	RSSBeforeKB         int64   `json:"rss_before_kb"`
	RSSOpenKB           int64   `json:"rss_after_open_kb"`
	RSSAfterKB          int64   `json:"rss_after_idle_kb"`
	RSSPerStreamKB      float64 `json:"rss_per_stream_kb"`
	FDsBefore           int     `json:"server_fds_before"`
	FDsAfter            int     `json:"server_fds_after"`
	TargetCPUPercent    float64 `json:"target_cpu_percent"`
	TargetKB            float64 `json:"target_kb_per_stream"`
	CPUMet              bool    `json:"cpu_met"`
	RSSMet              bool    `json:"rss_met"`
}

type maxResult struct {
	Target     int        `json:"target"`
	AlreadyOK  int        `json:"held_from_idle_step"`
	Open       openResult `json:"open"`
	Held       int        `json:"held"`
	ServerFDs  int        `json:"server_fds"`
	RSSKB      int64      `json:"rss_kb"`
	ToolNoFile uint64     `json:"tool_nofile_limit"`
	Met        bool       `json:"met"`
}

// idleStreams is the idle-streams section: a server of its own (SQLite,
// CHATAUTH_STREAMS_PER_IP raised, the per-visitor limit left at its
// default), visitors enough for n streams and for nMax, then the idle
// measurement and the hold-nMax step.
func idleStreams(bin, dir string, n, nMax int, idle time.Duration, nofile uint64) (*idleResult, *maxResult, error) {
	env := []string{"CHATAUTH_STREAMS_PER_IP=100000"}
	srv, err := startServer(bin, dir, "streams-server", sqliteDSN(dir, "streams"), "", env...)
	if err != nil {
		return nil, nil, err
	}
	defer srv.stop()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	sp := setup{c: client, base: srv.base}
	if err := sp.run(); err != nil {
		return nil, nil, err
	}
	total := max(n, nMax)
	t0 := time.Now()
	vis, err := mintVisitors(srv.base, sp.widget, (total+streamsPerVisitor-1)/streamsPerVisitor, true)
	if err != nil {
		return nil, nil, err
	}
	mint := time.Since(t0)
	fmt.Printf("\nidle event streams: one server process (SQLite, %s; per-visitor limit at its default, %d streams per visitor), %d visitors minted in %.1f s\n",
		strings.Join(env, " "), streamsPerVisitor, len(vis), mint.Seconds())
	conns := make([]*rawStream, total)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.conn.Close()
			}
		}
	}()
	path := func(i int) string {
		v := vis[i/streamsPerVisitor]
		return "/customer/api/v1/conversations/" + strconv.FormatInt(v.conv, 10) + "/events?access_token=" + v.token
	}
	noHeader := func(int) string { return "" }
	pid := srv.pid

	res := &idleResult{Server: env, Streams: n, Visitors: (n + streamsPerVisitor - 1) / streamsPerVisitor, StreamsPerVisitor: streamsPerVisitor,
		MintSeconds: mint.Seconds(), IdleSeconds: idle.Seconds(), TargetCPUPercent: 2, TargetKB: 16}
	if n > 0 {
		// The same process with no stream open, for comparison: what the
		// server spends doing nothing at all.
		time.Sleep(time.Second)
		c0 := procCPU(pid)
		w0 := time.Now()
		time.Sleep(idle / 2)
		res.CPUPercentNone = 100 * (procCPU(pid) - c0).Seconds() / time.Since(w0).Seconds()
		res.RSSBeforeKB, res.FDsBefore = procRSS(pid), procFDs(pid)
		res.Open = openMany(srv.addr, 0, n, 32, path, noHeader, conns)
		res.RSSOpenKB = procRSS(pid)
		// Each new stream wakes its conversation once (to catch up);
		// let that settle before the idle window.
		time.Sleep(time.Second)
		// One stream is read, to see whether a heartbeat fell in the
		// window (it is shared: every 15 s all streams get one).
		var beats atomic.Int64
		var watch *rawStream
		for _, c := range conns[:n] {
			if c != nil {
				watch = c
				break
			}
		}
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		if watch != nil {
			go func() {
				defer close(watched)
				var b [512]byte
				for {
					select {
					case <-stopWatch:
						return
					default:
					}
					watch.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
					m, err := watch.conn.Read(b[:])
					beats.Add(int64(bytes.Count(b[:m], []byte(": heartbeat"))))
					var ne net.Error
					if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
						return
					}
				}
			}()
		} else {
			close(watched)
		}
		prof := perfStart("idle-streams", pid)
		c1 := procCPU(pid)
		w1 := time.Now()
		// Second by second too, so a heartbeat's cost shows apart from
		// the rest.
		last := c1
		for end := w1.Add(idle); time.Now().Before(end); {
			time.Sleep(min(time.Second, time.Until(end)))
			c := procCPU(pid)
			res.CPUms = append(res.CPUms, (c - last).Milliseconds())
			last = c
		}
		el := time.Since(w1)
		res.CPUPercent = 100 * (procCPU(pid) - c1).Seconds() / el.Seconds()
		close(stopWatch)
		<-watched
		if watch != nil {
			watch.conn.SetReadDeadline(time.Time{})
		}
		res.HeartbeatsSeen = int(beats.Load())
		// The heartbeat comes every 15 s, so a 10 s window holds one or
		// none: the estimate spreads the costliest second's excess over
		// the median second across 15 s instead.
		if res.HeartbeatsSeen == 1 && len(res.CPUms) >= 3 {
			ms := append([]int64(nil), res.CPUms...)
			sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
			med, top := ms[len(ms)/2], ms[len(ms)-1]
			res.CPUPercentAmortized = 100 * (float64(med)/1000 + float64(top-med)/1000/15)
		}
		res.RSSAfterKB, res.FDsAfter = procRSS(pid), procFDs(pid)
		if res.Open.OK > 0 {
			res.RSSPerStreamKB = float64(res.RSSAfterKB-res.RSSBeforeKB) / float64(res.Open.OK)
		}
		res.CPUMet = res.Open.OK == n && res.CPUPercent <= res.TargetCPUPercent
		res.RSSMet = res.Open.OK == n && res.RSSPerStreamKB <= res.TargetKB
		fmt.Printf("  opened %d of %d in %.1f s%s; server open files %d → %d\n", res.Open.OK, n, res.Open.Seconds, openTrouble(res.Open), res.FDsBefore, res.FDsAfter)
		fmt.Printf("  server CPU over %s idle: %.2f %% of one core (%d shared heartbeat in the window; with no stream open: %.2f %%)   target ≤ %.0f %%  %s\n",
			idle, res.CPUPercent, res.HeartbeatsSeen, res.CPUPercentNone, res.TargetCPUPercent, verdict(res.CPUMet))
		if perfDir != "" {
			fmt.Println("  (perf record was attached during the window: the CPU figures include its sampling)")
		}
		fmt.Printf("  server CPU ms in each second of the window: %v", res.CPUms)
		if res.CPUPercentAmortized > 0 {
			fmt.Printf(" (the heartbeat spread over its 15 s period instead: about %.1f %% of one core)", res.CPUPercentAmortized)
		}
		fmt.Println()
		fmt.Printf("  server RSS %.1f MB before, %.1f MB after opening, %.1f MB after the idle window: %.1f KB per stream   target ≤ %.0f KB  %s\n",
			mb(res.RSSBeforeKB), mb(res.RSSOpenKB), mb(res.RSSAfterKB), res.RSSPerStreamKB, res.TargetKB, verdict(res.RSSMet))
		prof()
	}
	if nMax <= 0 {
		return res, nil, nil
	}
	// Holding nMax at once: the idle streams stay open and the rest are
	// added (closing them first would leave the server holding their
	// descriptors until its next heartbeat finds them closed).
	mr := &maxResult{Target: nMax, AlreadyOK: res.Open.OK, ToolNoFile: nofile}
	from := min(n, nMax)
	if n > nMax {
		mr.AlreadyOK = nMax
	}
	mr.Open = openMany(srv.addr, from, nMax, 32, path, noHeader, conns)
	mr.Held = mr.AlreadyOK + mr.Open.OK
	time.Sleep(200 * time.Millisecond)
	mr.ServerFDs, mr.RSSKB = procFDs(pid), procRSS(pid)
	mr.Met = mr.Held >= nMax
	fmt.Printf("  %d streams at once: %d answered 200 (%d held from the idle step, %d more opened in %.1f s%s); server open files %d, RSS %.1f MB  %s\n",
		nMax, mr.Held, mr.AlreadyOK, mr.Open.OK, mr.Open.Seconds, openTrouble(mr.Open), mr.ServerFDs, mb(mr.RSSKB), verdict(mr.Met))
	return res, mr, nil
}

func openTrouble(o openResult) string {
	if o.Failed == 0 && len(o.Statuses) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d failed, answers %v; first: %s)", o.Failed, o.Statuses, o.FirstErr)
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "NOT MET"
}

// sse reads a raw stream's events, calling on for each one with its id,
// event name and data, at the time it arrived.
func sse(s *rawStream, on func(id int64, event string, data []byte, at time.Time) bool) error {
	r := newLineReader(io.MultiReader(bytes.NewReader(s.rest), s.conn))
	var id int64
	var event string
	var data []byte
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		switch {
		case len(line) == 0:
			if data != nil || event != "" {
				if event == "" {
					event = "message"
				}
				if !on(id, event, data, time.Now()) {
					return nil
				}
			}
			event, data = "", nil
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("id: ")):
			id, _ = strconv.ParseInt(string(line[4:]), 10, 64)
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(line[7:])
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data[:0], line[6:]...)
		}
	}
}

// lineReader splits a stream into lines without their \n.
type lineReader struct {
	r   io.Reader
	buf []byte
	at  int
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: r, buf: make([]byte, 0, 4096)} }

func (l *lineReader) line() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.at:], '\n'); i >= 0 {
			line := l.buf[l.at : l.at+i]
			l.at += i + 1
			return line, nil
		}
		// Move what is left to the front and read more.
		n := copy(l.buf[:cap(l.buf)], l.buf[l.at:])
		l.buf, l.at = l.buf[:n], 0
		if n == cap(l.buf) {
			l.buf = append(l.buf, make([]byte, n)...)[:n]
		}
		m, err := l.r.Read(l.buf[n:cap(l.buf)])
		l.buf = l.buf[:n+m]
		if m == 0 && err != nil {
			return nil, err
		}
	}
}
