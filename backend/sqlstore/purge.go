package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"
)

// Retention: Purge deletes what no request can use any more, so the
// tables stay bounded however long the server runs (backend/retention
// calls it in the background). Nothing live is ever deleted:
//
//   - a refresh token goes when it was spent longer ago than the grace
//     window (Rotate's replay rule needs a spent token, and its successor,
//     only within it) and a later one of its family was spent too, or
//     when it expired longer ago than RevocationKeep + Grace (until then
//     it keeps its family, whose last access tokens may still live). A
//     family's newest token is unspent until it expires, so it stays, and
//     so does the last one spent: presenting it again is reuse, which
//     revokes the family. (Rotate itself drops older spent tokens, so a
//     family holds about three rows however often it is refreshed.) An
//     older spent token, once purged, is still recognised as reused through
//     the successors derived from it (refresh.descendantReuse);
//   - a family goes RevocationKeep after the last moment any token of it
//     could be used: after its revocation (revoked_at), after its hard end
//     (expires_at; implicit grants and vouched visitors), or after its last
//     refresh token expired (the purge deletes that token RevocationKeep
//     after its expiry, and the family with it when the family has no other
//     token and no hard end still ahead). Every process lists a revoked
//     family through RevokedSince, and a revocation by subject, client or
//     parent finds a family by its row, for as long as an access token
//     carrying its id may live;
//   - an OpenID Connect grant row (oidc_grants) goes with its refresh
//     family: once the family row is purged (by any rule above, or with its
//     user), nothing refreshes it, userinfo refuses its access tokens
//     (their family is gone, so they are revoked or expired) and a logout
//     of its browser session has nothing left to end;
//   - an authorization code goes CodeKeep after it expired and after it
//     was used: a used code's family_id is what a second redemption
//     revokes;
//   - a personal access token goes a day after it expired;
//   - a visitor goes when their updated_at is older than VisitorRetention,
//     they have no conversation and no family that is not revoked (a
//     visitor holding a usable token always has one: see families above);
//   - an audit event goes after AuditRetention;
//   - throttle rows go through PurgeThrottle, once their 15-minute window
//     (the longest of backend/throttle's rules) and block are over.
//
// Every DELETE removes at most Batch rows in its own short transaction
// (on SQLite under the writer mutex, like any write), so a purge with a
// backlog of millions of rows never holds the writer for long. Rows are
// found through the indexes of migration 0008; the one rule whose scan
// meets rows that must stay (old visitors who still have a conversation
// or a family) reads them outside any write transaction, page by page.

// PurgePolicy says how long Purge keeps what is no longer live. A zero
// field takes its default; a negative one is an error.
type PurgePolicy struct {
	// Grace is CHATAUTH_REFRESH_GRACE: a spent refresh token is kept while
	// a replay of it may still answer its successor. Zero takes the
	// default, 10s (keeping spent tokens longer than a shorter grace
	// needs is harmless).
	Grace time.Duration
	// RevocationKeep is how long a family is kept after its revocation or
	// its end: at least the longest access-token lifetime,
	// max(CHATAUTH_ACCESS_TTL, CHATAUTH_CUSTOMER_TTL), or a process that
	// has not yet seen a revocation would accept the family's access
	// tokens. Default 24h1m (the default lifetimes plus a minute).
	RevocationKeep time.Duration
	// CodeKeep is how long an authorization code is kept after it expired
	// and after it was used. Default 1h.
	CodeKeep time.Duration
	// VisitorRetention is CHATAUTH_VISITOR_RETENTION. Default 720h.
	VisitorRetention time.Duration
	// AuditRetention is CHATAUTH_AUDIT_RETENTION. Default 8760h.
	AuditRetention time.Duration
	// Batch is the most rows one statement deletes. Default 500.
	Batch int
}

// Defaults of PurgePolicy.
const (
	DefaultPurgeGrace       = 10 * time.Second
	DefaultRevocationKeep   = 24*time.Hour + time.Minute
	DefaultCodeKeep         = time.Hour
	DefaultVisitorRetention = 720 * time.Hour
	DefaultAuditRetention   = 8760 * time.Hour
	DefaultPurgeBatch       = 500
	personalTokenKeep       = 24 * time.Hour
	throttleWindow          = 15 * time.Minute
	purgeChunk              = 64 // keys per DELETE ... WHERE key IN (...)
)

func (p PurgePolicy) withDefaults() (PurgePolicy, error) {
	for name, d := range map[string]time.Duration{"Grace": p.Grace, "RevocationKeep": p.RevocationKeep, "CodeKeep": p.CodeKeep,
		"VisitorRetention": p.VisitorRetention, "AuditRetention": p.AuditRetention} {
		if d < 0 {
			return p, fmt.Errorf("purge: %s must not be negative", name)
		}
	}
	if p.Batch < 0 {
		return p, errors.New("purge: Batch must not be negative")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&p.Grace, DefaultPurgeGrace)
	def(&p.RevocationKeep, DefaultRevocationKeep)
	def(&p.CodeKeep, DefaultCodeKeep)
	def(&p.VisitorRetention, DefaultVisitorRetention)
	def(&p.AuditRetention, DefaultAuditRetention)
	if p.Batch == 0 {
		p.Batch = DefaultPurgeBatch
	}
	return p, nil
}

// PurgeStats counts the rows one Purge deleted, per table. Refresh tokens
// of a deleted family go with it (ON DELETE CASCADE) and are not counted.
type PurgeStats struct {
	RefreshTokens  int64
	Families       int64
	Codes          int64
	PersonalTokens int64
	Visitors       int64
	AuditEvents    int64
	Throttle       int64
	// IdentityJTIs are used identity-token ids past their token's exp,
	// DPoPJTIs used proof ids past their proof's acceptance.
	IdentityJTIs int64
	DPoPJTIs     int64
	// OIDCGrants are oidc_grants rows whose refresh family is gone.
	OIDCGrants int64
}

// Total is the number of rows deleted.
func (st PurgeStats) Total() int64 {
	return st.RefreshTokens + st.Families + st.Codes + st.PersonalTokens + st.Visitors + st.AuditEvents + st.Throttle + st.IdentityJTIs + st.DPoPJTIs + st.OIDCGrants
}

// The purge statements. Each deletes by primary key what a LIMITed
// subquery selects, which both databases run the same.
const (
	purgeRevokedFamilies = "DELETE FROM refresh_families WHERE id IN (SELECT id FROM refresh_families WHERE revoked_at < ? LIMIT ?)"
	// A family past its hard end has no usable token: every token's expiry
	// is capped at it. Revoked ones go by revoked_at.
	purgeEndedFamilies = "DELETE FROM refresh_families WHERE id IN (SELECT id FROM refresh_families WHERE expires_at IS NOT NULL AND expires_at < ? AND revoked_at IS NULL LIMIT ?)"
	purgeSpentTokens   = "DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens t WHERE rotated_at IS NOT NULL AND rotated_at < ? AND EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.family_id = t.family_id AND (n.rotated_at > t.rotated_at OR (n.rotated_at = t.rotated_at AND n.hash > t.hash))) LIMIT ?) RETURNING family_id"
	purgeExpiredTokens = "DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < ? LIMIT ?) RETURNING family_id"
	purgeCodes         = "DELETE FROM oauth_codes WHERE hash IN (SELECT hash FROM oauth_codes WHERE expires_at < ? AND (used_at IS NULL OR used_at < ?) LIMIT ?)"
	purgePersonal      = "DELETE FROM credentials WHERE id IN (SELECT id FROM credentials WHERE kind = 'pat' AND expires_at IS NOT NULL AND expires_at < ? LIMIT ?)"
	purgeAudit         = "DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE created_at < ? LIMIT ?)"
	// A jti is remembered only while its token could be accepted; a
	// minute more covers the clock skew the verifier allows.
	purgeJTIs     = "DELETE FROM identity_jtis WHERE (client_id, jti) IN (SELECT client_id, jti FROM identity_jtis WHERE expires_at < ? LIMIT ?)"
	purgeDPoPJTIs = "DELETE FROM dpop_jtis WHERE (jkt, jti) IN (SELECT jkt, jti FROM dpop_jtis WHERE expires_at < ? LIMIT ?)"
	// The family is created before its oidc_grants row (the code grant
	// starts the family, then records the OIDC side), so a row without a
	// family is one whose family was purged or deleted, never one being
	// made.
	purgeOIDCGrants = "DELETE FROM oidc_grants WHERE family_id IN (SELECT family_id FROM oidc_grants g WHERE NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.id = g.family_id) LIMIT ?)"
)

// visitorGone holds for a visitor (the customers row c) who may go: no
// conversation, and no customer family that is not revoked.
func visitorGone(c string) string {
	return "NOT EXISTS (SELECT 1 FROM conversations v WHERE v.customer_id = " + c + ".entity_id)" +
		" AND NOT EXISTS (SELECT 1 FROM refresh_families f WHERE f.kind = 'customer' AND f.subject = " + c + ".entity_id AND f.revoked_at IS NULL)"
}

// The statements built from parts. Those over purgeChunk keys take a
// shorter list with its last key repeated, so each has one text (and one
// prepared statement).
var (
	// Old visitors who may go, in (updated_at, entity_id) order after a
	// cursor.
	purgeVisitorPage = "SELECT c.entity_id, c.updated_at FROM customers c WHERE c.updated_at < ? AND (c.updated_at, c.entity_id) > (?, ?) AND " + visitorGone("c") +
		" ORDER BY c.updated_at, c.entity_id LIMIT ?"
	// A family whose last token the purge just deleted, with no hard end
	// still to come (RevocationKeep ago), goes in the same transaction.
	purgeEmptyFamilies = "DELETE FROM refresh_families WHERE id IN (" + placeholders(purgeChunk) + ")" +
		" AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at < ?)" +
		" AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.id)"
	// The visitor rule again, under the write lock: the read that found
	// them ran outside it.
	purgeVisitors = "DELETE FROM customers WHERE entity_id IN (" + placeholders(purgeChunk) + ") AND updated_at < ? AND " + visitorGone("customers")
)

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// Purge deletes, in batches, what the policy says no request can use any
// more (see the rules above), and counts what it deleted. It stops at
// the first error, with the counts so far; ctx ends it between batches.
func (s *DB) Purge(ctx context.Context, p PurgePolicy) (PurgeStats, error) {
	var st PurgeStats
	p, err := p.withDefaults()
	if err != nil {
		return st, err
	}
	now := s.Now()
	keep := s.ms(now.Add(-p.RevocationKeep))
	steps := []struct {
		name string
		run  func() error
	}{
		{"revoked families", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.Families, purgeRevokedFamilies, keep)
		}},
		{"ended families", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.Families, purgeEndedFamilies, keep)
		}},
		{"spent refresh tokens", func() error {
			return s.purgeTokens(ctx, p.Batch, &st, keep, purgeSpentTokens, s.ms(now.Add(-p.Grace)))
		}},
		{"expired refresh tokens", func() error {
			return s.purgeTokens(ctx, p.Batch, &st, keep, purgeExpiredTokens, s.ms(now.Add(-p.RevocationKeep-p.Grace)))
		}},
		// After every rule that deletes families.
		{"OIDC grants", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.OIDCGrants, purgeOIDCGrants)
		}},
		{"authorization codes", func() error {
			cut := s.ms(now.Add(-p.CodeKeep))
			return s.purgeBatches(ctx, p.Batch, &st.Codes, purgeCodes, cut, cut)
		}},
		{"personal access tokens", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.PersonalTokens, purgePersonal, s.ms(now.Add(-personalTokenKeep)))
		}},
		{"visitors", func() error {
			return s.purgeVisitors(ctx, p.Batch, &st.Visitors, s.ms(now.Add(-p.VisitorRetention)))
		}},
		{"audit events", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.AuditEvents, purgeAudit, s.ms(now.Add(-p.AuditRetention)))
		}},
		{"identity token ids", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.IdentityJTIs, purgeJTIs, s.ms(now.Add(-2*time.Minute)))
		}},
		{"DPoP proof ids", func() error {
			return s.purgeBatches(ctx, p.Batch, &st.DPoPJTIs, purgeDPoPJTIs, s.ms(now.Add(-time.Minute)))
		}},
		{"throttle", func() error {
			n, err := s.PurgeThrottle(ctx, now.Add(-throttleWindow))
			st.Throttle += n
			return err
		}},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		if err := step.run(); err != nil {
			return st, fmt.Errorf("purge %s: %w", step.name, err)
		}
	}
	return st, nil
}

// purgeBatches runs query (whose last placeholder is the LIMIT) until a
// batch deletes nothing, adding what it deletes to n.
func (s *DB) purgeBatches(ctx context.Context, batch int, n *int64, query string, args ...any) error {
	args = append(append([]any(nil), args...), batch)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var got int64
		err := s.tx(ctx, func(t *Tx) error {
			res, err := t.exec(ctx, query, args...)
			if err != nil {
				return err
			}
			got, err = res.RowsAffected()
			return err
		})
		if transient(err) {
			continue
		}
		if err != nil {
			return err
		}
		*n += got
		// Until a batch finds nothing: a batch can come back short because
		// another process's purger took rows from under it, with more left.
		if got == 0 {
			return nil
		}
	}
}

// purgeTokens deletes refresh tokens in batches like purgeBatches, and
// in each batch's transaction the families left without a token whose
// hard end, if any, passed before keep.
func (s *DB) purgeTokens(ctx context.Context, batch int, st *PurgeStats, keep int64, query string, cut int64) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var got, fams int64
		err := s.tx(ctx, func(t *Tx) error {
			rows, err := t.query(ctx, query, cut, batch)
			if err != nil {
				return err
			}
			seen := map[string]bool{}
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return err
				}
				got++
				if !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			fams, err = deleteChunked(ctx, t, purgeEmptyFamilies, ids, keep)
			return err
		})
		if transient(err) {
			continue // a rotation or another purger held the rows: again
		}
		if err != nil {
			return err
		}
		st.RefreshTokens += got
		st.Families += fams
		// Until a batch finds nothing: a batch can come back short because
		// another process's purger took rows from under it, with more left.
		if got == 0 {
			return nil
		}
	}
}

// deleteChunked runs query, whose first purgeChunk placeholders are the
// keys and the rest extra, over keys in chunks, and counts the rows.
func deleteChunked(ctx context.Context, t *Tx, query string, keys []string, extra ...any) (int64, error) {
	var n int64
	for len(keys) > 0 {
		k := min(len(keys), purgeChunk)
		args := make([]any, 0, purgeChunk+len(extra))
		for i := range purgeChunk {
			args = append(args, keys[min(i, k-1)])
		}
		args = append(args, extra...)
		res, err := t.exec(ctx, query, args...)
		if err != nil {
			return n, err
		}
		got, err := res.RowsAffected()
		if err != nil {
			return n, err
		}
		n += got
		keys = keys[k:]
	}
	return n, nil
}

// purgeVisitors pages through the visitors older than cut that may go,
// with a read outside any write transaction (the scan meets every old
// visitor who must stay), and deletes each page in a short transaction
// that checks the rule again.
func (s *DB) purgeVisitors(ctx context.Context, batch int, n *int64, cut int64) error {
	afterAt, afterID := int64(-1), ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := s.query(ctx, purgeVisitorPage, cut, afterAt, afterID, batch)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			if err := rows.Scan(&afterID, &afterAt); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, afterID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			var got int64
			if err := s.tx(ctx, func(t *Tx) error {
				var err error
				got, err = deleteChunked(ctx, t, purgeVisitors, ids, cut)
				return err
			}); err != nil {
				return err
			}
			*n += got
		}
		if len(ids) < batch {
			return nil
		}
	}
}

// exclusiveNamespace is the first key of TryExclusive's PostgreSQL
// advisory locks (the migration lock is the single key 7245100: a
// different key space).
const exclusiveNamespace = 7245100

// TryExclusive takes the lock called name for work that one process at a
// time should do (the retention purge), without waiting: ok is false when
// another holder has it. The holder calls release when done; release is
// safe to call more than once.
//
// On PostgreSQL the lock is a session-level advisory lock,
// pg_try_advisory_lock(7245100, <32-bit FNV-1a hash of name>), held on
// one connection taken from the pool for as long as the lock is: every
// process on the database contends for it, and a process that dies
// releases it with its connection. release unlocks it and gives the
// connection back; a connection that cannot be shown unlocked is closed
// instead, so the pool never hands out a connection holding the lock.
//
// On SQLite there is one writer, which already serializes the work, and
// TryExclusive always succeeds at once.
func (s *DB) TryExclusive(ctx context.Context, name string) (release func(), ok bool, err error) {
	if s.dialect == sqlite {
		return func() {}, true, nil
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	key := int32(h.Sum32())
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("try exclusive %q: %w", name, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1, $2)", int32(exclusiveNamespace), key).Scan(&ok); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		return nil, false, fmt.Errorf("try exclusive %q: %w", name, err)
	}
	if !ok {
		conn.Close()
		return nil, false, nil
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var unlocked bool
			if err := conn.QueryRowContext(uctx, "SELECT pg_advisory_unlock($1, $2)", int32(exclusiveNamespace), key).Scan(&unlocked); err != nil || !unlocked {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			conn.Close()
		})
	}, true, nil
}
