package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group commit for SQLite: the write transactions that queue while one
// commits run together in the next transaction, each in its own savepoint,
// so a burst of widget refreshes pays for one BEGIN and one COMMIT instead
// of one each (README, "Where the widget's time goes"). Each caller still
// sees only its own outcome: a function that fails is rolled back to its
// savepoint and its error returned, the others commit. Nobody waits for a
// batch to fill: the first caller to find the writer free runs whatever
// has queued by then, so a lone request costs what it did before.

// maxBatch bounds a group: past it, the rest wait for the next commit
// rather than make the one in progress hold the write lock longer.
const maxBatch = 32

type groupTx struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

// group is the queue of write transactions waiting for the writer.
type group struct {
	mu    sync.Mutex
	queue []*groupTx
	// lead is held by the caller running a batch; the others wait for it
	// or for their own outcome, whichever comes first.
	lead chan struct{}
	once sync.Once
}

func (s *DB) groupTx(ctx context.Context, fn func(*Tx) error) error {
	g := &s.group
	g.once.Do(func() { g.lead = make(chan struct{}, 1) })
	r := &groupTx{ctx: ctx, fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	g.mu.Unlock()
	for {
		select {
		case err := <-r.done:
			return err
		case g.lead <- struct{}{}:
		}
		// The writer is ours: a leader before us may have run our
		// transaction already (it delivers before it lets go).
		select {
		case err := <-r.done:
			<-g.lead
			return err
		default:
		}
		g.mu.Lock()
		n := min(len(g.queue), maxBatch)
		batch := append([]*groupTx(nil), g.queue[:n]...)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.mu.Unlock()
		s.runGroup(batch)
		<-g.lead
	}
}

// runGroup runs batch in one transaction and delivers every outcome.
func (s *DB) runGroup(batch []*groupTx) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if len(batch) == 1 {
		r := batch[0]
		r.done <- s.tx1(r.ctx, r.fn)
		s.commits.Add(1)
		return
	}
	// Statements run without their caller's cancellation: SQLite answers
	// an interrupted write inside a transaction by rolling back the whole
	// transaction, which would take the other callers' work with it. A
	// caller that has already given up is not started.
	t, err := s.db.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.done <- fmt.Errorf("begin: %w", err)
		}
		return
	}
	tx := &Tx{tx: t, s: s, detached: true}
	outcome := make([]error, len(batch))
	broken := false
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			outcome[i] = err
			continue
		}
		ctx := context.WithoutCancel(r.ctx)
		if _, err := t.ExecContext(ctx, "SAVEPOINT grouped"); err != nil {
			broken = true
			break
		}
		outcome[i] = r.fn(tx)
		if outcome[i] != nil {
			if _, err := t.ExecContext(ctx, "ROLLBACK TO grouped"); err != nil {
				broken = true
				break
			}
		}
		if _, err := t.ExecContext(ctx, "RELEASE grouped"); err != nil {
			broken = true
			break
		}
	}
	s.commits.Add(1)
	if !broken {
		if err := t.Commit(); err == nil {
			for i, r := range batch {
				r.done <- outcome[i]
			}
			return
		}
	} else {
		t.Rollback()
	}
	// The transaction itself failed (an I/O error, a full disk): nothing
	// of it was kept. Each caller's function runs again on its own, as a
	// retried PostgreSQL transaction does, so its outcome is its own.
	for _, r := range batch {
		r.done <- s.tx1(r.ctx, r.fn)
	}
}

// Checkpoints off the write path. SQLite's automatic checkpoint runs
// inside the commit that crosses the threshold, with the write lock held,
// and ends in an fsync: every writer queued behind it waits for the disk.
// Here a background goroutine copies the log into the database instead,
// shortly after writes, without blocking writers (PASSIVE); the automatic
// checkpoint stays as a backstop at a larger log, in case this one falls
// behind.
const (
	checkpointEvery = 250 * time.Millisecond
	// walBackstop is wal_autocheckpoint in pages (4 KB each): 32 MB.
	walBackstop = 8000
)

func (s *DB) checkpoints(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		// An idle server reads nothing here.
		if n := s.commits.Load(); n != seen {
			seen = n
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
			cancel()
		}
	}
}
