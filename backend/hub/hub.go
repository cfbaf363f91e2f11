// Package hub fans a conversation's new messages out to every server-sent
// event stream watching it (docs/api.md, "Chat API"). Within a process a
// conversation's new messages are read from the database once, however
// many streams watch it; an idle stream costs no database work, no
// goroutine and no timer of its own: after its headers are written its
// connection is taken over from net/http (hijacked) and kept in the hub,
// which writes to it when there is something to say. One shared ticker
// sends heartbeats (which also find connections the client closed), and
// one sweeper ends every stream within a second of its credential
// expiring or being revoked, with an event the SDK understands.
//
// What wakes a conversation is Notify: the process that stored a message
// calls it, and on PostgreSQL every other process hears of it through
// LISTEN/NOTIFY. Streams resume by message id (the SSE event id), so a
// reconnect after a process died misses and repeats nothing.
package hub

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Event is one message as a stream sends it.
type Event struct {
	ID      int64
	Private bool
	// Data is the event's JSON, rendered once for every stream.
	Data []byte
}

// Loader reads a conversation's messages after id after, oldest first, at
// most limit.
type Loader func(ctx context.Context, conv, org, after int64, limit int) ([]Event, error)

// Limits bound concurrent streams; 0 means no limit.
type Limits struct {
	PerOwner int // per visitor or per agent
	PerIP    int // per client address (an office behind one NAT shares it)
}

// Hub holds every stream of a process.
type Hub struct {
	Load    Loader
	Revoked func(sid string) bool
	Limits  Limits
	Log     *slog.Logger
	Now     func() time.Time
	// Heartbeat is how often idle streams get a comment line (15 s).
	Heartbeat time.Duration

	mu     sync.Mutex // rooms and closed; taken before a room's lock
	rooms  map[int64]*room
	closed bool
	// lim guards the counts under Limits; it is taken alone, so a stream
	// can be released with its room locked.
	lim     sync.Mutex
	owners  map[string]int
	ips     map[string]int
	streams int

	stop context.CancelFunc
	done chan struct{}
	kick chan struct{}
	// sent counts events written, for tests and benchmarks.
	sent atomic.Int64
}

// room is one conversation's streams.
type room struct {
	conv, org int64
	mu        sync.Mutex // held by the one loader at a time
	streams   map[*stream]struct{}
	dirty     bool // Notify while loading: load again
	loading   bool
}

// stream is one open event stream. Its fields after creation are guarded
// by its room's lock (last, dead) or are immutable.
type stream struct {
	w           writer
	withPrivate bool
	expires     time.Time
	session     string
	recheck     func() bool
	owner, ip   string
	last        int64
	dead        bool
	done        chan struct{} // closed when the stream ends (for held streams)
	// lastWrite and lastProbe pace the heartbeat and the check for a
	// client that went away (room lock).
	lastWrite, lastProbe time.Time
}

// writer is a hijacked connection or, where hijacking is not possible
// (HTTP/2), the handler's ResponseWriter with the handler held open.
type writer interface {
	write(b []byte) error
	close()
	// gone reports, without blocking, that the client closed the
	// connection (nobody reads a hijacked one, so a write would only
	// notice at the second try).
	gone() bool
}

// New returns a hub and starts its heartbeat and sweeper.
func New(load Loader, revoked func(string) bool, limits Limits, log *slog.Logger) *Hub {
	h := &Hub{Load: load, Revoked: revoked, Limits: limits, Log: log, Now: time.Now, Heartbeat: 15 * time.Second,
		rooms: map[int64]*room{}, owners: map[string]int{}, ips: map[string]int{}, done: make(chan struct{}), kick: make(chan struct{}, 1)}
	ctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	go h.run(ctx)
	return h
}

// ErrTooMany is answered (429) when a stream limit is reached.
type ErrTooMany struct{ What string }

func (e *ErrTooMany) Error() string { return e.What }

// ErrClosed: the server is shutting down.
var ErrClosed = errors.New("the server is shutting down")

// Spec is what a new stream watches and for whom.
type Spec struct {
	Conv, Org   int64
	After       int64 // resume after this message id
	WithPrivate bool  // agents see private notes; visitors do not
	// Expires and Session are the credential's: the stream ends when it
	// expires or its session is revoked.
	Expires time.Time
	Session string
	// Recheck, when set, says whether a credential that has no session (a
	// personal, API or bot token) still works; the sweeper asks once a
	// second.
	Recheck func() bool
	Owner   string // "visitor:<entity_id>" or "agent:<subject>", for the limits
	IP      string
}

// Serve answers an event-stream request: it checks the limits, writes
// the response head (header holds the headers already set, CORS among
// them), and hands the connection to the hub. With a hijackable
// connection it returns at once; otherwise it returns when the stream
// ends.
func (h *Hub) Serve(w http.ResponseWriter, header http.Header, sp Spec) error {
	if err := h.admit(sp.Owner, sp.IP); err != nil {
		return err
	}
	s := &stream{withPrivate: sp.WithPrivate, expires: sp.Expires, session: sp.Session, recheck: sp.Recheck, owner: sp.Owner, ip: sp.IP, last: sp.After}
	head := responseHead(header)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = brw // its buffers are dropped: an idle stream keeps none
		conn.SetDeadline(time.Time{})
		cw := &connWriter{conn: conn}
		if err := cw.write(head); err != nil {
			cw.close()
			h.release(s)
			return nil
		}
		s.w = cw
		h.join(sp.Conv, sp.Org, s)
		return nil
	}
	// Not hijackable: write through the ResponseWriter and hold the
	// handler until the stream ends.
	for k, v := range header {
		w.Header()[k] = v
	}
	setStreamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	rw := &responseWriter{w: w, rc: http.NewResponseController(w)}
	rw.rc.SetWriteDeadline(time.Time{})
	if err := rw.write([]byte(preamble)); err != nil {
		h.release(s)
		return nil
	}
	s.w, s.done = rw, make(chan struct{})
	h.join(sp.Conv, sp.Org, s)
	<-s.done
	return nil
}

// preamble tells EventSource how soon to reconnect after a drop.
const preamble = "retry: 2000\n\n"

func setStreamHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
}

// responseHead is the raw HTTP/1.1 head of a stream written on a
// hijacked connection: no length and no chunking, so the body lasts
// until the connection closes, which is what an event stream is.
func responseHead(header http.Header) []byte {
	h := header.Clone()
	setStreamHeaders(h)
	h.Set("Connection", "close")
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	h.Write(&b)
	b.WriteString("\r\n")
	b.WriteString(preamble)
	return b.Bytes()
}

func (h *Hub) admit(owner, ip string) error {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return ErrClosed
	}
	h.lim.Lock()
	defer h.lim.Unlock()
	switch {
	case h.Limits.PerOwner > 0 && h.owners[owner] >= h.Limits.PerOwner:
		return &ErrTooMany{What: "too many open event streams for this " + kindOf(owner) + " (" + strconv.Itoa(h.Limits.PerOwner) + "); close one (another tab or device) or wait"}
	case h.Limits.PerIP > 0 && h.ips[ip] >= h.Limits.PerIP:
		return &ErrTooMany{What: "too many open event streams from this address (" + strconv.Itoa(h.Limits.PerIP) + "); try again shortly"}
	}
	h.owners[owner]++
	h.ips[ip]++
	h.streams++
	return nil
}

func kindOf(owner string) string {
	if len(owner) > 8 && owner[:8] == "visitor:" {
		return "visitor"
	}
	return "agent"
}

// release gives back a stream's place under the limits.
func (h *Hub) release(s *stream) {
	h.lim.Lock()
	if h.owners[s.owner]--; h.owners[s.owner] <= 0 {
		delete(h.owners, s.owner)
	}
	if h.ips[s.ip]--; h.ips[s.ip] <= 0 {
		delete(h.ips, s.ip)
	}
	h.streams--
	h.lim.Unlock()
}

func (h *Hub) join(conv, org int64, s *stream) {
	// Under both locks (in the order dropRoom takes them), so a room is
	// never dropped between finding it and joining it, and Close cannot
	// sweep between the check and the join.
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.w.write(endShutdown)
		s.w.close()
		if s.done != nil {
			close(s.done)
		}
		h.release(s)
		return
	}
	r := h.rooms[conv]
	if r == nil {
		r = &room{conv: conv, org: org, streams: map[*stream]struct{}{}}
		h.rooms[conv] = r
	}
	r.mu.Lock()
	s.lastWrite, s.lastProbe = h.Now(), h.Now()
	r.streams[s] = struct{}{}
	r.mu.Unlock()
	h.mu.Unlock()
	// Catch the new stream up: messages stored between its start point
	// and now.
	h.Notify(conv)
}

// Streams is how many streams are open.
func (h *Hub) Streams() int {
	h.lim.Lock()
	defer h.lim.Unlock()
	return h.streams
}

// Sent is how many events the hub has written.
func (h *Hub) Sent() int64 { return h.sent.Load() }

// Notify says that conv has new messages: its streams get them after one
// read of the database. A conversation nobody watches here costs a map
// lookup.
func (h *Hub) Notify(conv int64) {
	h.mu.Lock()
	r := h.rooms[conv]
	h.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	if r.loading {
		r.dirty = true
		r.mu.Unlock()
		return
	}
	r.loading = true
	r.mu.Unlock()
	go h.load(r)
}

// NotifyAll wakes every conversation (after the bus reconnects, or on the
// fallback poll): streams catch up on what they may have missed.
func (h *Hub) NotifyAll() {
	for _, r := range h.snapshot() {
		h.Notify(r.conv)
	}
}

const batch = 100

// load reads what the room's streams have not seen, from the oldest
// point any of them needs, and writes each stream what is new to it.
func (h *Hub) load(r *room) {
	for {
		r.mu.Lock()
		r.dirty = false
		after := int64(-1)
		for s := range r.streams {
			if after < 0 || s.last < after {
				after = s.last
			}
		}
		r.mu.Unlock()
		for after >= 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			evs, err := h.Load(ctx, r.conv, r.org, after, batch)
			cancel()
			if err != nil {
				h.Log.Warn("event stream: reading new messages failed; streams will catch up on the next message", "conversation", r.conv, "err", err)
				break
			}
			if len(evs) == 0 {
				break
			}
			h.deliver(r, after, evs)
			after = evs[len(evs)-1].ID
			if len(evs) < batch {
				break
			}
		}
		r.mu.Lock()
		if !r.dirty {
			r.loading = false
			empty := len(r.streams) == 0
			r.mu.Unlock()
			if empty {
				h.dropRoom(r)
			}
			return
		}
		r.mu.Unlock()
	}
}

func (h *Hub) dropRoom(r *room) {
	h.mu.Lock()
	r.mu.Lock()
	if len(r.streams) == 0 && !r.loading && h.rooms[r.conv] == r {
		delete(h.rooms, r.conv)
	}
	r.mu.Unlock()
	h.mu.Unlock()
}

var (
	lineID    = []byte("id: ")
	lineEvent = []byte("\nevent: message\ndata: ")
	lineEnd   = []byte("\n\n")
)

// deliver writes evs, the messages after id after, to every stream that
// has seen everything up to after. A stream behind that (it joined while
// this batch was read) is left for the next read, which starts from it:
// a stream never gets a message before an older one it has not had.
func (h *Hub) deliver(r *room, after int64, evs []Event) {
	var buf []byte
	r.mu.Lock()
	var dead []*stream
	for s := range r.streams {
		if s.last < after {
			continue
		}
		buf = buf[:0]
		last := s.last
		for _, ev := range evs {
			if ev.ID <= s.last {
				continue
			}
			last = ev.ID
			if ev.Private && !s.withPrivate {
				continue
			}
			buf = append(buf, lineID...)
			buf = strconv.AppendInt(buf, ev.ID, 10)
			buf = append(buf, lineEvent...)
			buf = append(buf, ev.Data...)
			buf = append(buf, lineEnd...)
		}
		s.last = last
		if len(buf) == 0 {
			continue
		}
		if err := s.w.write(buf); err != nil {
			dead = append(dead, s)
			continue
		}
		s.lastWrite = time.Now()
		h.sent.Add(1)
	}
	for _, s := range dead {
		h.endLocked(r, s, nil)
	}
	r.mu.Unlock()
}

// endLocked ends s (r.mu held), writing last first when set.
func (h *Hub) endLocked(r *room, s *stream, last []byte) {
	if s.dead {
		return
	}
	s.dead = true
	if last != nil {
		s.w.write(last)
	}
	s.w.close()
	delete(r.streams, s)
	if s.done != nil {
		close(s.done)
	}
	h.release(s)
}

// run is the shared heartbeat and the credential sweeper.
func (h *Hub) run(ctx context.Context) {
	defer close(h.done)
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	var lastRevoked, lastRecheck time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
			// A revocation arrived: streams of that session end now, not
			// at the next tick.
			h.sweep(h.Now(), true, false)
		case <-tick.C:
			now := h.Now()
			revoked := now.Sub(lastRevoked) >= 2*time.Second
			if revoked {
				lastRevoked = now
			}
			recheck := now.Sub(lastRecheck) >= time.Second
			if recheck {
				lastRecheck = now
			}
			h.sweep(now, revoked, recheck)
		}
	}
}

// sweepEvery paces the one pass over every stream: expiry, heartbeats
// (each stream's own, so they spread over the period instead of all
// at once), and the check for clients that went away.
const (
	sweepEvery = 500 * time.Millisecond
	probeEvery = 5 * time.Second
)

// Kick makes the sweeper check revocations at once (the revocation set
// just learnt of one).
func (h *Hub) Kick() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

func (h *Hub) sweep(now time.Time, revoked, recheck bool) {
	var checks []*stream
	var empty []*room
	h.each(func(r *room, s *stream) {
		switch {
		case !s.expires.IsZero() && !now.Before(s.expires):
			h.endLocked(r, s, endExpired)
		case revoked && s.session != "" && h.Revoked != nil && h.Revoked(s.session):
			h.endLocked(r, s, endRevoked)
		case now.Sub(s.lastWrite) >= h.Heartbeat:
			if err := s.w.write(heartbeat); err != nil {
				h.endLocked(r, s, nil)
				break
			}
			s.lastWrite = now
		case now.Sub(s.lastProbe) >= probeEvery:
			s.lastProbe = now
			if s.w.gone() {
				h.endLocked(r, s, nil)
			}
		}
		if recheck && s.recheck != nil && !s.dead {
			checks = append(checks, s)
		}
	}, func(r *room) { empty = append(empty, r) })
	// Credentials without a session are asked again outside any lock: a
	// slow database must not hold up heartbeats or deliveries.
	for _, s := range checks {
		if !s.recheck() {
			h.endStream(s, endRevoked)
		}
	}
	for _, r := range empty {
		h.dropRoom(r)
	}
}

// snapshot lists the rooms, so they can be visited one at a time without
// holding the hub's lock.
func (h *Hub) snapshot() []*room {
	h.mu.Lock()
	defer h.mu.Unlock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

// endStream ends s wherever it is.
func (h *Hub) endStream(s *stream, last []byte) {
	for _, r := range h.snapshot() {
		r.mu.Lock()
		if _, ok := r.streams[s]; ok {
			h.endLocked(r, s, last)
		}
		r.mu.Unlock()
	}
}

var heartbeat = []byte(": heartbeat\n\n")

// The last event of a stream whose credential ended: the SDK and the
// widget reconnect with a fresh token (for a revoked one, after dropping
// it), resuming after the last message id they saw.
var (
	endExpired  = []byte("event: end\ndata: {\"error\":\"invalid_token\",\"reason\":\"expired\",\"message\":\"the access token of this stream expired; reconnect with a fresh token and last_event_id\"}\n\n")
	endRevoked  = []byte("event: end\ndata: {\"error\":\"invalid_token\",\"reason\":\"revoked\",\"message\":\"the access token of this stream was revoked; get a new token and reconnect with last_event_id\"}\n\n")
	endShutdown = []byte("retry: 1000\nevent: end\ndata: {\"error\":\"service_unavailable\",\"reason\":\"shutdown\",\"message\":\"the server is restarting; reconnect in a second with last_event_id\"}\n\n")
)

// each calls fn on every stream with its room locked, and then, when
// given, emptied on every room left without streams.
func (h *Hub) each(fn func(*room, *stream), emptied ...func(*room)) {
	for _, r := range h.snapshot() {
		r.mu.Lock()
		for s := range r.streams {
			fn(r, s)
		}
		isEmpty := len(r.streams) == 0 && !r.loading
		r.mu.Unlock()
		if isEmpty && len(emptied) > 0 {
			emptied[0](r)
		}
	}
}

// Close ends every stream with a retry hint and stops the hub; new
// streams are refused.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.each(func(r *room, s *stream) { h.endLocked(r, s, endShutdown) })
	h.stop()
	<-h.done
}

// connWriter writes to a hijacked connection. A write that cannot finish
// soon means the client stopped reading: the stream is dropped rather
// than let one slow client hold up a conversation's fan-out.
type connWriter struct{ conn net.Conn }

const writeWait = 200 * time.Millisecond

func (c *connWriter) write(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(writeWait))
	_, err := c.conn.Write(b)
	return err
}

func (c *connWriter) close() { c.conn.Close() }

func (c *connWriter) gone() bool { return peerClosed(c.conn) }

// responseWriter writes through net/http for a connection that cannot be
// hijacked; the handler is held open meanwhile.
type responseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (r *responseWriter) write(b []byte) error {
	r.rc.SetWriteDeadline(time.Now().Add(writeWait))
	if _, err := r.w.Write(b); err != nil {
		return err
	}
	return r.rc.Flush()
}

func (r *responseWriter) close() {}

func (r *responseWriter) gone() bool { return false }
