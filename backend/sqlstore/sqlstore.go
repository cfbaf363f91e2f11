// Package sqlstore is chatauth's storage: one implementation over
// database/sql that runs on the embedded SQLite (modernc.org/sqlite, no
// cgo) and on PostgreSQL (pgx), with embedded, versioned migrations.
//
// Only the dialect differs between the two: placeholders, the primary-key
// and binary column types, and how a write transaction is begun. Every
// query is written once.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"

	_ "modernc.org/sqlite" // registers "sqlite"

	"chatauth/backend/notify"
)

//go:embed migrations/*.sql
var migrations embed.FS

type dialect int

const (
	sqlite dialect = iota
	postgres
)

// DB is the store. It is safe for concurrent use.
type DB struct {
	db      *sql.DB
	dialect dialect
	stmts   stmtCache
	writeMu sync.Mutex
	group   group
	// commits counts SQLite write transactions, so the background
	// checkpoint runs only after writes; stopCheckpoints ends it.
	commits         atomic.Uint64
	stopCheckpoints func()
	clients         memo[string, Client]
	trees           memo[[2]int64, bool]
	// Now is the store's clock; tests replace it.
	Now func() time.Time
}

// Open connects to "sqlite:PATH" (creating the file and its folders) or a
// postgres:// URL, and brings the schema up to date.
func Open(ctx context.Context, dsn string) (*DB, error) {
	var (
		db  *sql.DB
		err error
		d   dialect
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("create database folder: %w", err)
			}
		}
		// WAL lets readers run beside the writer; the busy timeout makes a
		// second writer wait instead of failing; _txlock=immediate takes the
		// write lock at BEGIN so two read-then-write transactions cannot
		// deadlock on the upgrade.
		// SQLite needs to write the file and its WAL beside it; say so
		// plainly instead of "unable to open database file".
		if err := writable(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("open store: %s is read-only or not writable (%w); chatauth writes its SQLite database and journal there: mount it read-write or fix its permissions", filepath.Dir(path), err)
		}
		q := "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate" +
			"&_pragma=wal_autocheckpoint(" + strconv.Itoa(walBackstop) + ")"
		db, err = sql.Open("sqlite", "file:"+path+q)
		d = sqlite
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err = sql.Open("pgx", dsn)
		d = postgres
	default:
		return nil, errors.New("open store: unknown database kind; use sqlite:PATH or postgres://")
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if d == postgres {
		db.SetMaxOpenConns(32)
		db.SetMaxIdleConns(16)
	} else {
		// As many idle connections as open ones: a pool that closes
		// connections under load reopens them, and every SQLite open
		// re-reads the schema and runs the pragmas.
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
	}
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &DB{db: db, dialect: d, Now: time.Now}
	if err := s.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if d == sqlite {
		stop, done := make(chan struct{}), make(chan struct{})
		go s.checkpoints(stop, done)
		var once sync.Once
		s.stopCheckpoints = func() { once.Do(func() { close(stop); <-done }) }
	}
	return s, nil
}

// Close releases the statements and the connections.
func (s *DB) Close() error {
	if s.stopCheckpoints != nil {
		s.stopCheckpoints()
	}
	s.stmts.close()
	return s.db.Close()
}

// Ping checks that the database answers (for /healthz).
func (s *DB) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// Kind is "sqlite" or "postgres".
func (s *DB) Kind() string {
	if s.dialect == postgres {
		return "postgres"
	}
	return "sqlite"
}

// SQL exposes the pool to packages that add their own tables through
// this store's migrations; it is not for ad-hoc queries.
func (s *DB) SQL() *sql.DB { return s.db }

// q rewrites ? placeholders to $n for PostgreSQL. Queries in this package
// never hold a literal question mark.
func (s *DB) q(query string) string {
	if s.dialect == sqlite {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (s *DB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := s.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.db.ExecContext(ctx, s.q(query), args...)
}

func (s *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, s.q(query), args...)
}

func (s *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.db.QueryContext(ctx, s.q(query), args...)
}

// tx runs fn in a transaction, committing when it returns nil.
//
// On SQLite the process's write transactions queue on a mutex first:
// SQLite has one writer, and a second BEGIN IMMEDIATE would wait in
// SQLite's busy handler, which sleeps in steps of up to 100 ms; a Go
// mutex hands the lock over as soon as it is free. Other processes still
// meet the busy timeout. Transactions that queue together commit together
// (groupcommit.go).
func (s *DB) tx(ctx context.Context, fn func(*Tx) error) error {
	if s.dialect == sqlite {
		return s.groupTx(ctx, fn)
	}
	// PostgreSQL may roll back one of two transactions that lock the same
	// rows in opposite orders (a rotation beside the purger): run it
	// again, as the server advises. Every fn here re-reads what it
	// decides on, so a second run is correct.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.tx1(ctx, fn); !transient(err) {
			return err
		}
	}
	return err
}

func (s *DB) tx1(ctx context.Context, fn func(*Tx) error) error {
	t, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&Tx{tx: t, s: s}); err != nil {
		t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Tx is a transaction with the store's placeholder rewriting.
type Tx struct {
	tx *sql.Tx
	s  *DB
	// detached: the transaction is shared by a group commit, and one
	// caller's cancellation must not interrupt it (see groupcommit.go).
	detached bool
}

func (t *Tx) ctx(ctx context.Context) context.Context {
	if t.detached {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx = t.ctx(ctx)
	if st := t.s.prepared(ctx, query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.s.q(query), args...)
}

func (t *Tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = t.ctx(ctx)
	if st := t.s.prepared(ctx, query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.s.q(query), args...)
}

func (t *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = t.ctx(ctx)
	if st := t.s.prepared(ctx, query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.s.q(query), args...)
}

func (s *DB) ms(t time.Time) int64 { return t.UnixMilli() }
func (s *DB) now() int64           { return s.Now().UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64)
}

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// isUnique reports a unique-constraint violation on either database.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, "UNIQUE constraint failed") || strings.Contains(m, "SQLSTATE 23505") || strings.Contains(m, "duplicate key value")
}

func (s *DB) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	if s.dialect == postgres {
		// Several processes may start at once on one database.
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7245100)"); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(7245100)")
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	for _, name := range names {
		base := filepath.Base(name)
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migrate: bad migration name %s", base)
		}
		if v <= current {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if err := s.apply(ctx, conn, v, s.render(string(body))); err != nil {
			return fmt.Errorf("migrate %s: %w", base, err)
		}
	}
	return nil
}

func (s *DB) render(body string) string {
	pk, blob := "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"
	if s.dialect == postgres {
		pk, blob = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA"
	}
	return strings.NewReplacer("{{pk}}", pk, "{{blob}}", blob).Replace(body)
}

func (s *DB) apply(ctx context.Context, conn *sql.Conn, version int, body string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range strings.Split(stripComments(body), ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"), version, s.now()); err != nil {
		return err
	}
	return tx.Commit()
}

func stripComments(stmt string) string {
	var b strings.Builder
	for _, line := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// announce tells every process of a change on PostgreSQL (NOTIFY); on
// SQLite it does nothing: one process owns the file, and memos expire.
func (s *DB) announce(ctx context.Context, topic, payload string) error {
	if s.dialect != postgres {
		return nil
	}
	q, args := notify.NotifySQL(topic, payload)
	if _, err := s.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("announce %s: %w", topic, err)
	}
	return nil
}

// announce within a transaction: delivered when it commits, and not at
// all if it rolls back.
func (t *Tx) announce(ctx context.Context, topic, payload string) error {
	if t.s.dialect != postgres {
		return nil
	}
	q, args := notify.NotifySQL(topic, payload)
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("announce %s: %w", topic, err)
	}
	return nil
}

// storable reports whether s can be a TEXT key: PostgreSQL refuses text
// that is not UTF-8 or holds a NUL byte (with an error, where a lookup of
// something that cannot exist should simply find nothing).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
