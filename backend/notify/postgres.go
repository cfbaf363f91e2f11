package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Timing of the listening connection; variables so that tests may
// shorten them.
var (
	// minBackoff and maxBackoff bound the wait before a reconnection
	// attempt: 100 ms, doubling up to 5 s.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// pingEvery is how long the listener waits for a notification before
	// it pings the server: a connection that died without a word (a
	// network cut, no RST) is noticed within pingEvery + pingTimeout.
	// A server that shuts down or ends the session is noticed at once.
	pingEvery   = 15 * time.Second
	pingTimeout = 5 * time.Second
	// connectTimeout bounds one connection attempt (dial, TLS, startup,
	// LISTEN).
	connectTimeout = 5 * time.Second
)

// maxQueue bounds the notifications received but not yet handed to the
// subscribers. Past it the bus drops them and runs the OnReconnect
// callbacks once the subscribers have caught up, as after a reconnection:
// a stuck subscriber costs a catch-up, never unbounded memory.
const maxQueue = 1 << 16

// applicationName names the bus's connections in pg_stat_activity
// unless the DSN names them.
const applicationName = "chatauth-notify"

// Postgres is the bus over PostgreSQL LISTEN/NOTIFY.
//
// It holds one dedicated connection (pgx.Conn) that LISTENs on every
// topic and waits in WaitForNotification; a second goroutine hands what
// it receives to the subscribers, so a slow subscriber never delays the
// reading. When the connection fails the bus reports itself down,
// reconnects with backoff (100 ms doubling to 5 s), LISTENs again,
// reports itself up and runs the OnReconnect callbacks.
//
// Publish runs SELECT pg_notify($1, $2) on a pool of its own of at most
// two connections (pgxpool), so that publishing never waits behind the
// store's queries, and the bus needs no more than the DSN. To publish
// from inside a transaction, so that the signal goes out on commit, run
// NotifySQL's statement in it instead.
type Postgres struct {
	log    *slog.Logger
	config *pgx.ConnConfig
	pool   *pgxpool.Pool
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{} // closed when the listener has stopped
	once   sync.Once
	up     atomic.Bool
	pid    atomic.Uint32 // the listening connection's server process (tests)

	// Under subscribers.mu (p.mu), beside the subscribers:
	subscribers
	topics    map[string]bool // every topic to LISTEN on
	waiters   []chan struct{} // Subscribe calls waiting for a LISTEN
	interrupt func()          // ends the current WaitForNotification
	reconnect []func()        // OnReconnect callbacks

	qmu   sync.Mutex    // guards queue and lost
	queue []event       // received, not yet dispatched
	lost  bool          // queue overflowed; a catch-up is queued
	wake  chan struct{} // one token: the queue is not empty
}

var _ Bus = (*Postgres)(nil)

// NewPostgres connects the listening connection to dsn (a postgres://
// URL or key=value string) and starts listening. ctx bounds the first
// connection only; the bus lives until Close. log may be nil.
func NewPostgres(ctx context.Context, dsn string, log *slog.Logger) (*Postgres, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	config, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("notify: parse dsn: %w", err)
	}
	if _, ok := config.RuntimeParams["application_name"]; !ok {
		config.RuntimeParams["application_name"] = applicationName
	}
	poolConfig, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("notify: parse dsn: %w", err)
	}
	poolConfig.MaxConns = 2
	poolConfig.MinConns = 0
	poolConfig.MaxConnIdleTime = 5 * time.Minute
	if _, ok := poolConfig.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolConfig.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), poolConfig)
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	p := &Postgres{
		log:    log,
		config: config,
		pool:   pool,
		done:   make(chan struct{}),
		topics: map[string]bool{},
		wake:   make(chan struct{}, 1),
	}
	for _, t := range Topics {
		p.topics[t] = true
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	conn, listened, err := p.connect(ctx)
	if err != nil {
		p.cancel()
		pool.Close()
		return nil, err
	}
	p.up.Store(true) // connected and listening: up from the start
	go p.listen(conn, listened)
	go p.dispatch()
	return p, nil
}

// Publish sends payload on topic to every process listening on the
// database, this one included (it hears it through its own listening
// connection, so not while Up is false). It fails when the database does
// not answer; a failure on a connection the database had already closed
// is retried once on a fresh one.
func (p *Postgres) Publish(ctx context.Context, topic, payload string) error {
	if err := Check(topic, payload); err != nil {
		return err
	}
	if p.ctx.Err() != nil {
		return ErrClosed
	}
	_, err := p.pool.Exec(ctx, "SELECT pg_notify($1, $2)", topic, payload)
	if err != nil && pgconn.SafeToRetry(err) && ctx.Err() == nil {
		_, err = p.pool.Exec(ctx, "SELECT pg_notify($1, $2)", topic, payload)
	}
	if err != nil {
		return fmt.Errorf("notify: publish on %s: %w", topic, err)
	}
	return nil
}

// Subscribe registers fn for topic. All callbacks of the bus (and the
// OnReconnect ones) run on one goroutine, one at a time, in the order the
// notifications arrived: fn should be quick (hand the payload on, never
// wait for the network).
//
// The standard topics are listened on from the start. On another topic
// Subscribe returns once the listening connection has run LISTEN on it
// (or at once while the bus is down: it listens when it reconnects).
func (p *Postgres) Subscribe(topic string, fn func(payload string)) {
	if Check(topic, "") != nil {
		panic(fmt.Sprintf("notify: Subscribe on a bad topic %q", topic))
	}
	p.mu.Lock()
	p.add(topic, fn)
	var wait chan struct{}
	if !p.topics[topic] {
		p.topics[topic] = true
		if p.up.Load() {
			wait = make(chan struct{})
			p.waiters = append(p.waiters, wait)
			if p.interrupt != nil {
				p.interrupt()
			}
		}
	}
	p.mu.Unlock()
	if wait != nil {
		t := time.NewTimer(2 * connectTimeout)
		defer t.Stop()
		select {
		case <-wait:
		case <-p.done:
		case <-t.C:
		}
	}
}

// Up reports whether the listening connection is connected and
// listening on every subscribed topic.
func (p *Postgres) Up() bool { return p.up.Load() }

// OnReconnect registers fn, run (on the subscribers' goroutine) each time
// the listening connection is back after a failure, and after the bus
// had to drop notifications because its subscribers fell too far behind.
func (p *Postgres) OnReconnect(fn func()) {
	p.mu.Lock()
	p.reconnect = append(p.reconnect[:len(p.reconnect):len(p.reconnect)], fn)
	p.mu.Unlock()
}

// Close stops listening and closes the connections. After it returns no
// further notification is dispatched (a callback already under way may
// finish). Close may be called more than once, from any goroutine, a
// callback included.
func (p *Postgres) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		p.pool.Close()
	})
}

// connect opens the listening connection and LISTENs on every topic.
func (p *Postgres) connect(ctx context.Context) (*pgx.Conn, map[string]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, p.config)
	if err != nil {
		return nil, nil, fmt.Errorf("notify: connect: %w", err)
	}
	p.mu.Lock()
	topics := make([]string, 0, len(p.topics))
	for t := range p.topics {
		topics = append(topics, t)
	}
	p.mu.Unlock()
	if err := listenOn(ctx, conn, topics); err != nil {
		conn.Close(context.Background())
		return nil, nil, err
	}
	listened := make(map[string]bool, len(topics))
	for _, t := range topics {
		listened[t] = true
	}
	p.pid.Store(conn.PgConn().PID())
	return conn, listened, nil
}

func listenOn(ctx context.Context, conn *pgx.Conn, topics []string) error {
	var b strings.Builder
	for _, t := range topics {
		b.WriteString("LISTEN ")
		b.WriteString(pgx.Identifier{t}.Sanitize())
		b.WriteString(";")
	}
	if _, err := conn.Exec(ctx, b.String()); err != nil {
		return fmt.Errorf("notify: listen: %w", err)
	}
	return nil
}

// listen is the listening goroutine: it serves a connection until it
// fails, then reconnects, until Close.
func (p *Postgres) listen(conn *pgx.Conn, listened map[string]bool) {
	defer close(p.done)
	backoff := minBackoff
	var downAt time.Time
	for {
		if conn == nil {
			var err error
			attempts := 0
			for conn == nil {
				t := time.NewTimer(backoff)
				select {
				case <-p.ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				backoff = min(2*backoff, maxBackoff)
				attempts++
				conn, listened, err = p.connect(p.ctx)
				if err != nil {
					if p.ctx.Err() != nil {
						return
					}
					p.log.Debug("notify: reconnection failed", "attempt", attempts, "retry_in", backoff, "err", err)
				}
			}
			p.log.Info("notify: listening connection back; callers catch up", "down_for", time.Since(downAt).Round(time.Millisecond), "attempts", attempts)
		}
		upAt := time.Now()
		err := p.serve(conn, listened, !downAt.IsZero())
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(closeCtx) // a dead connection: a clean goodbye may not get through
		cancel()
		conn = nil
		p.setDown()
		if p.ctx.Err() != nil {
			return
		}
		downAt = time.Now()
		p.log.Warn("notify: listening connection lost; callers poll until it is back", "err", err)
		if time.Since(upAt) >= maxBackoff {
			// It had been up a while: start again from the shortest wait.
			// A connection that fails as soon as it is made keeps backing off.
			backoff = minBackoff
		}
	}
}

// serve marks the bus up and waits for notifications on conn until the
// connection fails or the bus closes; it LISTENs on topics subscribed to
// meanwhile, and pings the server when nothing came for pingEvery.
func (p *Postgres) serve(conn *pgx.Conn, listened map[string]bool, reconnected bool) error {
	p.mu.Lock()
	p.up.Store(true)
	p.releaseWaiters()
	p.mu.Unlock()
	if reconnected {
		p.enqueue(event{catchUp: true})
	}
	for {
		p.mu.Lock()
		var pending []string
		for t := range p.topics {
			if !listened[t] {
				pending = append(pending, t)
			}
		}
		var wctx context.Context
		var cancel context.CancelFunc
		if len(pending) == 0 {
			p.releaseWaiters()
			wctx, cancel = context.WithTimeout(p.ctx, pingEvery)
			p.interrupt = cancel
		}
		p.mu.Unlock()

		if len(pending) > 0 {
			ctx, cancel := context.WithTimeout(p.ctx, connectTimeout)
			err := listenOn(ctx, conn, pending)
			cancel()
			if err != nil {
				return err
			}
			for _, t := range pending {
				listened[t] = true
			}
			continue
		}

		n, err := conn.WaitForNotification(wctx)
		timedOut := errors.Is(wctx.Err(), context.DeadlineExceeded)
		p.mu.Lock()
		p.interrupt = nil
		p.mu.Unlock()
		cancel()
		if n != nil { // may come with an error when the wait was cut short
			p.enqueue(event{topic: n.Channel, payload: n.Payload})
		}
		switch {
		case err == nil:
		case p.ctx.Err() != nil:
			return err
		case conn.IsClosed():
			return err
		case !pgconn.Timeout(err) && !errors.Is(err, context.Canceled):
			return err
		case timedOut:
			ctx, cancel := context.WithTimeout(p.ctx, pingTimeout)
			err := conn.Ping(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("notify: ping: %w", err)
			}
		default:
			// Interrupted by Subscribe: LISTEN on its topic.
		}
	}
}

// setDown marks the bus down and releases the Subscribe calls waiting
// for a LISTEN (the reconnection LISTENs on their topics).
func (p *Postgres) setDown() {
	p.mu.Lock()
	p.up.Store(false)
	p.releaseWaiters()
	p.mu.Unlock()
}

// releaseWaiters is called with p.mu held.
func (p *Postgres) releaseWaiters() {
	for _, w := range p.waiters {
		close(w)
	}
	p.waiters = nil
}

func (p *Postgres) enqueue(e event) {
	p.qmu.Lock()
	switch {
	case len(p.queue) < maxQueue:
		p.queue = append(p.queue, e)
	case !p.lost:
		p.lost = true
		p.queue = append(p.queue, event{catchUp: true})
		p.log.Warn("notify: subscribers fell behind; dropping notifications until they catch up", "queued", len(p.queue))
	}
	p.qmu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// dispatch is the subscribers' goroutine.
func (p *Postgres) dispatch() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.wake:
		}
		for {
			p.qmu.Lock()
			if len(p.queue) == 0 {
				p.queue = nil
				p.qmu.Unlock()
				break
			}
			e := p.queue[0]
			p.queue[0] = event{}
			p.queue = p.queue[1:]
			if e.catchUp {
				p.lost = false
			}
			p.qmu.Unlock()
			if p.ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			var fns []func(string)
			var reconnect []func()
			if e.catchUp {
				reconnect = p.reconnect
			} else {
				fns = p.subs[e.topic]
			}
			p.mu.Unlock()
			for _, fn := range reconnect {
				p.call(e, func() { fn() })
			}
			for _, fn := range fns {
				p.call(e, func() { fn(e.payload) })
			}
		}
	}
}

// call runs a callback; a panicking one is logged, and the bus goes on.
func (p *Postgres) call(e event, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("notify: subscriber panicked", "topic", e.topic, "catch_up", e.catchUp, "panic", r)
		}
	}()
	fn()
}
