package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestGroupCommitKeepsEachOutcome: SQLite write transactions that queue
// together commit together, yet each caller gets its own outcome: a
// function that fails (by its own error or a constraint) leaves nothing
// behind, the others in its group commit, and a caller that gave up
// before its turn is not run.
func TestGroupCommitKeepsEachOutcome(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "g.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE g (k TEXT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, "INSERT INTO g VALUES ('taken')"); err != nil {
		t.Fatal(err)
	}
	const n = 64
	errOwn := errors.New("refused by its own rule")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	before := s.commits.Load()
	outcome := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ctx
			if i == 7 {
				c = cancelled
			}
			outcome[i] = s.tx(c, func(t *Tx) error {
				key := fmt.Sprint(i)
				if i == 5 {
					key = "taken"
				}
				if _, err := t.exec(c, "INSERT INTO g VALUES (?)", key); err != nil {
					return err
				}
				// Hold the writer a moment, so the others queue.
				time.Sleep(200 * time.Microsecond)
				if i%3 == 0 {
					return errOwn
				}
				return nil
			})
		}()
	}
	wg.Wait()
	var want []string
	for i, err := range outcome {
		switch {
		case i == 5 || i == 7:
			if err == nil {
				t.Errorf("transaction %d: no error, want its own failure", i)
			}
		case i%3 == 0:
			if !errors.Is(err, errOwn) {
				t.Errorf("transaction %d: %v, want its own error", i, err)
			}
		case err != nil:
			t.Errorf("transaction %d: %v, want success", i, err)
		default:
			want = append(want, fmt.Sprint(i))
		}
	}
	for _, k := range want {
		var got string
		if err := s.db.QueryRowContext(ctx, "SELECT k FROM g WHERE k = ?", k).Scan(&got); err != nil {
			t.Errorf("row %s of a committed transaction: %v", k, err)
		}
	}
	var rows int
	s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM g").Scan(&rows)
	if rows != len(want)+1 {
		t.Errorf("%d rows, want %d (the committed ones and 'taken')", rows, len(want)+1)
	}
	if c := s.commits.Load() - before; c >= n {
		t.Errorf("%d commits for %d transactions: none was grouped", c, n)
	} else {
		t.Logf("%d transactions in %d commits", n, c)
	}
}
