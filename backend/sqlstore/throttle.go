package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The throttle table counts failed secret guesses per key in fixed
// windows, for every process on the database at once (backend/throttle
// builds the policy on top). A key names what is counted, never the
// secret guessed.

// throttleFail counts one failure with a single upsert, so concurrent
// failures from any number of processes each count exactly once: the
// row is locked (PostgreSQL) or the database is (SQLite) for the length
// of the statement. Every right-hand side of the SET sees the row as it
// was before the statement, on both databases.
//
// The inserted row is a fresh window: window_start = now, fails = 1 and
// blocked_until precomputed by the caller; excluded.window_start is
// therefore "now" in the update. A window has ended once
// window_start + window <= now; the next failure starts a new one at now.
// A failure that brings the count to the limit or beyond sets the block
// to the later of the block already there and the lock's end, so a block
// is never shortened (not even by a process whose clock runs behind).
//
// Arguments: key, now, insert's blocked_until, then per "?" below:
// window, window, window, limit, lock end (twice).
var throttleFail = [2]string{
	// 0: a fixed lock: the block ends lock after this failure.
	throttleFailQuery("excluded.window_start + ?"),
	// 1: lock 0: the block ends with the (possibly new) window.
	throttleFailQuery("(CASE WHEN throttle.window_start + ? <= excluded.window_start THEN excluded.window_start ELSE throttle.window_start END) + ?"),
}

func throttleFailQuery(lockEnd string) string {
	const ended = "throttle.window_start + ? <= excluded.window_start"
	return strings.Join([]string{
		"INSERT INTO throttle (key, window_start, fails, blocked_until) VALUES (?, ?, 1, ?)",
		"ON CONFLICT (key) DO UPDATE SET",
		"window_start = CASE WHEN " + ended + " THEN excluded.window_start ELSE throttle.window_start END,",
		"fails = CASE WHEN " + ended + " THEN 1 ELSE throttle.fails + 1 END,",
		"blocked_until = CASE",
		"WHEN (CASE WHEN " + ended + " THEN 1 ELSE throttle.fails + 1 END) < ? THEN throttle.blocked_until",
		"WHEN throttle.blocked_until > " + lockEnd + " THEN throttle.blocked_until",
		"ELSE " + lockEnd + " END",
		"RETURNING fails, blocked_until",
	}, " ")
}

// ThrottleFail counts one failure for key in its fixed window of length
// window: the first failure after a window ended starts a new one. When
// the count reaches limit (and on every failure after that in the
// window) the key is blocked until now+lock, or until the window ends
// when lock is 0; a block already running longer is kept. It returns the
// failures counted in the current window, and the end of the key's block
// when it is still running (zero otherwise), whichever failure set it.
func (s *DB) ThrottleFail(ctx context.Context, key string, window time.Duration, limit int, lock time.Duration) (fails int, blockedUntil time.Time, err error) {
	w, l := window.Milliseconds(), lock.Milliseconds()
	if w < 1 || limit < 1 || l < 0 {
		return 0, time.Time{}, fmt.Errorf("throttle fail: bad rule (window %v, limit %d, lock %v)", window, limit, lock)
	}
	now := s.now()
	q, end := throttleFail[0], []any{l, l}
	first := sql.NullInt64{Int64: now + l, Valid: limit <= 1}
	if l == 0 {
		q, end = throttleFail[1], []any{w, w, w, w}
		first.Int64 = now + w
	}
	args := append([]any{key, now, first, w, w, w, limit}, end...)
	var n int64
	var until sql.NullInt64
	if err := s.queryRow(ctx, q, args...).Scan(&n, &until); err != nil {
		return 0, time.Time{}, fmt.Errorf("throttle fail: %w", err)
	}
	if until.Valid && until.Int64 > now {
		blockedUntil = fromMS(until.Int64)
	}
	return int(n), blockedUntil, nil
}

// ThrottleBlocked returns the latest end of a block still running among
// keys, or the zero time when none is blocked.
func (s *DB) ThrottleBlocked(ctx context.Context, keys ...string) (time.Time, error) {
	if len(keys) == 0 {
		return time.Time{}, nil
	}
	args := make([]any, 0, len(keys)+1)
	for _, k := range keys {
		args = append(args, k)
	}
	args = append(args, s.now())
	q := "SELECT MAX(blocked_until) FROM throttle WHERE key IN (?" + strings.Repeat(", ?", len(keys)-1) + ") AND blocked_until > ?"
	var until sql.NullInt64
	if err := s.queryRow(ctx, q, args...).Scan(&until); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("throttle blocked: %w", err)
	}
	return fromNullMS(until), nil
}

// ThrottleReset forgets key's failures and its block.
func (s *DB) ThrottleReset(ctx context.Context, key string) error {
	if _, err := s.exec(ctx, "DELETE FROM throttle WHERE key = ?", key); err != nil {
		return fmt.Errorf("throttle reset: %w", err)
	}
	return nil
}

// PurgeThrottle deletes the rows whose window started and whose block,
// if any, ended before before, and returns how many it deleted.
//
// The table does not record each row's window length, so a window is
// known to have ended only once it started a full window ago: pass
// before = now minus the longest window in use (throttle's default rules:
// 15 minutes). A later before would drop counts still running and hand
// an attacker a fresh budget.
func (s *DB) PurgeThrottle(ctx context.Context, before time.Time) (int64, error) {
	b := s.ms(before)
	res, err := s.exec(ctx, "DELETE FROM throttle WHERE window_start < ? AND (blocked_until IS NULL OR blocked_until < ?)", b, b)
	if err != nil {
		return 0, fmt.Errorf("purge throttle: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("purge throttle: %w", err)
	}
	return n, nil
}
