// Package sqlstoretest gives tests a fresh, real database: a SQLite file in
// a temporary folder, and, when CHATAUTH_TEST_POSTGRES holds a server URL,
// a PostgreSQL database created for the test and dropped after it; Open
// opens the store on one for the test's length.
//
// It imports sqlstore, so the internal tests of a package that sqlstore
// imports (domain, notify, shared) cannot use it.
package sqlstoretest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"chatauth/backend/sqlstore"
)

// Each runs fn once per available database kind, as subtests named
// "sqlite" and "postgres", passing a DSN for a new, empty database.
func Each(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t)) })
	if os.Getenv("CHATAUTH_TEST_POSTGRES") != "" {
		t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t)) })
	}
}

// SQLite returns the DSN of a new database file that the test removes.
func SQLite(tb testing.TB) string {
	tb.Helper()
	return "sqlite:" + filepath.Join(tb.TempDir(), "db", "chatauth.db")
}

// Postgres creates a database on the CHATAUTH_TEST_POSTGRES server and
// drops it when the test ends; it skips when the variable is unset.
func Postgres(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("CHATAUTH_TEST_POSTGRES")
	if base == "" {
		tb.Skip("CHATAUTH_TEST_POSTGRES is not set")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	var b [6]byte
	rand.Read(b[:])
	name := "chatauth_test_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		a, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer a.Close()
		a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("CHATAUTH_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// Open opens the store at dsn (SQLite or Postgres, above) and closes it
// when the test ends.
func Open(tb testing.TB, dsn string) *sqlstore.DB {
	tb.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Clock is a test clock at millisecond precision (the store's), moved
// only by Add; give its Now to the store and to the services under test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at the current millisecond.
func NewClock() *Clock { return &Clock{t: time.UnixMilli(time.Now().UnixMilli())} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
