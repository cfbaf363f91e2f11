package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the statement cache. Every query in this package
// is built from constants and a few optional filters, so the set is small;
// the bound only guards against a future caller that builds SQL from data.
const maxCachedStmts = 512

// stmtCache keeps one prepared statement per query text. SQLite parses
// and plans a query every time it is prepared, which under load cost more
// than running it; database/sql then keeps each statement prepared on
// every connection that has used it. PostgreSQL does not use the cache:
// pgx already keeps its own per-connection statement cache.
type stmtCache struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

// prepared returns the cached statement for query, preparing it on first
// use, or nil when the caller should run the query unprepared.
func (s *DB) prepared(ctx context.Context, query string) *sql.Stmt {
	if s.dialect != sqlite {
		return nil
	}
	c := &s.stmts
	c.mu.RLock()
	st, ok := c.m[query]
	n := len(c.m)
	c.mu.RUnlock()
	if ok {
		return st
	}
	if n >= maxCachedStmts {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		// Run it unprepared; the error, if it is real, surfaces there.
		return nil
	}
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt)
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = nil
}
