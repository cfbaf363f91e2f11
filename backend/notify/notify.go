// Package notify is chatauth's notification bus: small signals ("this
// conversation has new messages", "this session is revoked", "reload the
// signing keys", "forget this client") that every process must hear.
//
// On SQLite there is one process, and NewLocal's bus calls the
// subscribers directly. On PostgreSQL, NewPostgres's bus carries the
// signals with LISTEN/NOTIFY to every process connected to the database,
// this one included.
//
// A signal is a hint, never the data: a subscriber re-reads the database
// when it hears one. PostgreSQL keeps no notification for a session that
// is not connected, so while the listening connection is down (Up reports
// false) callers poll, and when it comes back OnReconnect's callbacks run
// so that they catch up on what they may have missed.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// The topics, with their payloads.
const (
	TopicMessage    = "chatauth_message"    // payload: conversation id (decimal)
	TopicRevocation = "chatauth_revocation" // payload: a revoked session id
	TopicKeys       = "chatauth_keys"       // payload: "" (reload the signing keys)
	TopicClient     = "chatauth_client"     // payload: client id (forget a memoized client)
)

// Topics are the topics the PostgreSQL bus listens on from the moment it
// connects. Other topics work too (the tests use private ones); the bus
// starts listening on them when they are first subscribed to.
var Topics = []string{TopicMessage, TopicRevocation, TopicKeys, TopicClient}

// MaxPayload is the longest payload, in bytes, Publish accepts.
// PostgreSQL's own limit is about 8,000 bytes; the bus carries ids, never
// data, and a small bound keeps PostgreSQL's notification queue small.
const MaxPayload = 200

// maxTopic is PostgreSQL's identifier length (NAMEDATALEN - 1); LISTEN
// would silently truncate a longer channel name.
const maxTopic = 63

// Errors Publish returns for input it refuses.
var (
	ErrPayloadTooLong = errors.New("notify: payload too long")
	ErrBadPayload     = errors.New("notify: payload must be UTF-8 text without NUL bytes")
	ErrBadTopic       = errors.New("notify: topic must be 1 to 63 bytes of UTF-8 text without NUL bytes")
	ErrClosed         = errors.New("notify: bus closed")
)

// Bus carries small signals to every process.
type Bus interface {
	// Publish sends payload on topic to every process (this one included).
	Publish(ctx context.Context, topic, payload string) error
	// Subscribe calls fn for every payload on topic, from one goroutine per bus, in order.
	Subscribe(topic string, fn func(payload string))
	// Up reports whether the bus currently delivers across processes (the
	// listening connection is connected); callers poll while it is false.
	Up() bool
	// OnReconnect registers fn, called after the listening connection comes back
	// (callers then re-read what they may have missed: catch up from the database).
	OnReconnect(fn func())
}

// Check reports whether Publish accepts topic and payload. Callers that
// notify from their own transaction with NotifySQL check first.
func Check(topic, payload string) error {
	if topic == "" || len(topic) > maxTopic || strings.IndexByte(topic, 0) >= 0 || !utf8.ValidString(topic) {
		return fmt.Errorf("%w: %q", ErrBadTopic, topic)
	}
	if len(payload) > MaxPayload {
		return fmt.Errorf("%w: %d bytes on %s (at most %d)", ErrPayloadTooLong, len(payload), topic, MaxPayload)
	}
	if strings.IndexByte(payload, 0) >= 0 || !utf8.ValidString(payload) {
		return fmt.Errorf("%w (on %s)", ErrBadPayload, topic)
	}
	return nil
}

// NotifySQL is the statement that publishes payload on topic from inside
// a caller's own PostgreSQL transaction, with ? placeholders (sqlstore's
// style; its dialect rewrites them to $1, $2). PostgreSQL delivers the
// notification when, and only if, the transaction commits: a subscriber
// that re-reads on the signal sees the committed rows. Within one
// transaction PostgreSQL folds identical notifications (same topic and
// payload) into one.
//
// It is for PostgreSQL only (SQLite has no pg_notify: there, publish on
// the local bus after the commit), and it does not check its input: call
// Check first.
func NotifySQL(topic, payload string) (query string, args []any) {
	return "SELECT pg_notify(?, ?)", []any{topic, payload}
}

// subscribers is the topic → callbacks table both buses share. The
// slices are copied on write, so a reader may use one without the lock.
type subscribers struct {
	mu   sync.Mutex
	subs map[string][]func(string)
}

// add registers fn on topic and reports whether topic is new.
func (s *subscribers) add(topic string, fn func(string)) bool {
	if s.subs == nil {
		s.subs = map[string][]func(string){}
	}
	old, had := s.subs[topic]
	fns := make([]func(string), len(old), len(old)+1)
	copy(fns, old)
	s.subs[topic] = append(fns, fn)
	return !had
}

type event struct {
	topic, payload string
	catchUp        bool // run the OnReconnect callbacks instead
}

// Local is the in-process bus (SQLite: one process).
type Local struct {
	subscribers
	queue    []event
	draining bool
}

// NewLocal returns an in-process bus: Publish calls the subscribers
// directly, and Up is always true (there is no other process to miss).
func NewLocal() Bus { return &Local{} }

// Publish calls topic's subscribers with payload before it returns,
// unless another Publish is calling subscribers at the same moment: then
// that one calls them once it is done with its own payload, so that
// subscribers are called one at a time, in publishing order. A subscriber
// may itself Publish (its payload is delivered after it returns).
func (l *Local) Publish(ctx context.Context, topic, payload string) error {
	if err := Check(topic, payload); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	l.queue = append(l.queue, event{topic: topic, payload: payload})
	if l.draining {
		l.mu.Unlock()
		return nil
	}
	l.draining = true
	for {
		if len(l.queue) == 0 {
			l.draining = false
			l.queue = nil
			l.mu.Unlock()
			return nil
		}
		e := l.queue[0]
		l.queue[0] = event{}
		l.queue = l.queue[1:]
		fns := l.subs[e.topic]
		l.mu.Unlock()
		l.deliver(fns, e.payload)
		l.mu.Lock()
	}
}

func (l *Local) deliver(fns []func(string), payload string) {
	done := false
	defer func() {
		if !done { // a subscriber panicked: the next Publish drains the rest
			l.mu.Lock()
			l.draining = false
			l.mu.Unlock()
		}
	}()
	for _, fn := range fns {
		fn(payload)
	}
	done = true
}

// Subscribe registers fn for topic.
func (l *Local) Subscribe(topic string, fn func(payload string)) {
	l.mu.Lock()
	l.add(topic, fn)
	l.mu.Unlock()
}

// Up is always true: everything a process publishes reaches it.
func (l *Local) Up() bool { return true }

// OnReconnect never calls fn: a local bus cannot lose its connection.
func (l *Local) OnReconnect(fn func()) {}
