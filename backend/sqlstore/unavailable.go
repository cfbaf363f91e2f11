package sqlstore

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	sqlitedrv "modernc.org/sqlite"
)

// SQLite primary result codes (sqlite3.h) that mean "the database cannot
// serve this now", not "this request is wrong".
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)

// Unavailable reports whether err means the database is unreachable,
// full, read-only or overloaded, and if so a message that tells an
// operator what to do. The HTTP layer answers these with 503 and
// Retry-After instead of a 500: nothing is wrong with the request, and
// nothing was written.
func Unavailable(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	var le *sqlitedrv.Error
	if errors.As(err, &le) {
		switch le.Code() & 0xff {
		case sqliteFull:
			return "the database's disk is full; nothing was saved. Free space on the server's disk and retry", true
		case sqliteReadOnly:
			return "the database is read-only (file permissions or a read-only mount); nothing was saved. Make it writable and retry", true
		case sqliteBusy, sqliteLocked:
			return "the database is busy; retry shortly", true
		case sqliteIOErr, sqliteCantOpen:
			return "the database's disk reported an I/O error; nothing was saved. Check the server's disk and retry", true
		}
		return "", false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, crash, starting up
			strings.HasPrefix(pe.Code, "53"): // insufficient resources: disk full, too many connections
			return "the database is unavailable (" + pe.Code + "); retry shortly", true
		case pe.Code == "25006": // read_only_sql_transaction: a standby or read-only database
			return "the database is read-only (a standby?); nothing was saved. Point CHATAUTH_DB at the primary", true
		}
		return "", false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		pgconn.Timeout(err), strings.Contains(err.Error(), "conn closed"):
		return "the database is unreachable; retry shortly", true
	case errors.Is(err, syscall.ENOSPC):
		return "the server's disk is full; nothing was saved. Free space and retry", true
	case errors.Is(err, syscall.EROFS):
		return "the database is on a read-only file system; nothing was saved. Make it writable and retry", true
	}
	return "", false
}

// transient reports a PostgreSQL deadlock or serialization failure: the
// transaction was rolled back and may simply be run again.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}
