package sqlstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// purgeClock is a settable clock for the store.
type purgeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *purgeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *purgeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func randomHash() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// count runs a COUNT(*) query with ? placeholders on either database.
func count(t *testing.T, db *sqlstore.DB, query string, args ...any) int {
	t.Helper()
	if db.Kind() == "postgres" {
		for i := 1; strings.Contains(query, "?"); i++ {
			query = strings.Replace(query, "?", "$"+strconv.Itoa(i), 1)
		}
	}
	var n int
	if err := db.SQL().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestPurgeTimeline creates one of everything Purge knows at t0, then
// purges just before and just after each moment something may go, and
// checks that every row is there exactly until its moment.
func TestPurgeTimeline(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := open(t, dsn)
		clk := &purgeClock{t: time.UnixMilli(time.Now().UnixMilli())}
		db.Now = clk.Now
		t0 := clk.Now()
		const (
			grace = 10 * time.Second
			keep  = 2 * time.Hour
			code  = time.Hour
			vr    = 30 * 24 * time.Hour
			ar    = 365 * 24 * time.Hour
			day   = 24 * time.Hour
			ms    = time.Millisecond
		)
		// Batch 2 makes every rule with more than two rows take several
		// batches.
		policy := sqlstore.PurgePolicy{Grace: grace, RevocationKeep: keep, CodeKeep: code, VisitorRetention: vr, AuditRetention: ar, Batch: 2}
		org := &domain.Organization{Name: "Org"}
		if err := db.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		client := &domain.Client{ID: "client1", OrgID: org.ID, Name: "c", Type: "public"}
		if err := db.CreateClient(ctx, client); err != nil {
			t.Fatal(err)
		}

		type object struct {
			name   string
			goneAt time.Time // zero: never
			exists func() bool
		}
		var objects []*object
		add := func(name string, goneAfter time.Duration, exists func() bool) {
			o := &object{name: name, exists: exists}
			if goneAfter >= 0 {
				// Purge deletes what is strictly older than its cut.
				o.goneAt = t0.Add(goneAfter + ms)
			}
			objects = append(objects, o)
		}
		const never = -1
		at := func(d time.Duration) { clk.Set(t0.Add(d)) }
		famExists := func(id string) func() bool {
			return func() bool {
				_, err := db.Family(ctx, id)
				if err != nil && !errors.Is(err, domain.ErrNotFound) {
					t.Fatal(err)
				}
				return err == nil
			}
		}
		tokExists := func(h []byte) func() bool {
			return func() bool { return count(t, db, "SELECT COUNT(*) FROM refresh_tokens WHERE hash = ?", h) == 1 }
		}
		family := func(id, kind, subject string, hardEnd time.Time, tokenExpires time.Duration) []byte {
			t.Helper()
			f := &domain.Family{ID: id, Kind: kind, Subject: subject, OrgID: org.ID, ClientID: client.ID, Scope: "s", ExpiresAt: hardEnd}
			var first domain.RefreshToken
			if tokenExpires > 0 {
				first = domain.RefreshToken{Hash: randomHash(), CreatedAt: clk.Now(), ExpiresAt: clk.Now().Add(tokenExpires)}
			}
			if err := db.CreateFamily(ctx, f, first); err != nil {
				t.Fatal(err)
			}
			return first.Hash
		}

		at(0)
		// A live family: its first token, spent at t0 and the last one
		// spent, stays for reuse detection until it expired; the successor
		// stays until RevocationKeep after it expired, and the family with it.
		l1 := family("live", "agent", "1", time.Time{}, 30*day)
		l2 := randomHash()
		if _, replay, err := db.Rotate(ctx, l1, grace, domain.RefreshToken{Hash: l2, CreatedAt: t0, ExpiresAt: t0.Add(30 * day)}); err != nil || replay {
			t.Fatal(replay, err)
		}
		add("spent token", 30*day+keep+grace, tokExists(l1))
		add("live token", 30*day+keep+grace, tokExists(l2))
		add("live family", 30*day+keep+grace, famExists("live"))

		// Revoked families stay RevocationKeep, with their tokens.
		for i := range 5 {
			id := fmt.Sprintf("revoked%d", i)
			h := family(id, "oauth", "1", time.Time{}, 30*day)
			if _, err := db.RevokeFamily(ctx, id, "test"); err != nil {
				t.Fatal(err)
			}
			add(id, keep, famExists(id))
			add(id+" token", keep, tokExists(h))
		}
		// A session row of client credentials (always revoked) and an
		// implicit grant (no tokens, a hard end).
		if _, err := db.RevokeSession(ctx, sqlstore.ClientCredentialsSession(client.ID, 0), "client_credentials", "client:"+client.ID, org.ID, "test"); err != nil {
			t.Fatal(err)
		}
		add("client-credentials session", keep, famExists(sqlstore.ClientCredentialsSession(client.ID, 0)))
		family("implicit", "implicit", "1", t0.Add(time.Hour), 0)
		add("implicit session", time.Hour+keep, famExists("implicit"))
		// A family revoked after its hard end is kept for its revocation.
		h := family("revoked-late", "agent", "1", t0.Add(time.Hour), time.Hour)
		add("token of the family revoked after its end", time.Hour+keep+grace, tokExists(h))
		at(time.Hour + keep/2)
		if _, err := db.RevokeFamily(ctx, "revoked-late", "test"); err != nil {
			t.Fatal(err)
		}
		at(0)
		add("family revoked after its end", time.Hour+keep/2+keep, famExists("revoked-late"))
		// A vouched family: its token's life is capped at the hard end.
		h = family("vouched", "customer", "v-vouched", t0.Add(3*time.Hour), 3*time.Hour)
		add("vouched family", 3*time.Hour+keep, famExists("vouched"))
		add("vouched token", 3*time.Hour+keep, tokExists(h))
		// A family whose token expired long before its hard end: the token
		// goes, the family waits for its hard end.
		h = family("long-end", "customer", "v-long-end", t0.Add(48*time.Hour), time.Hour)
		add("long-end token", time.Hour+keep+grace, tokExists(h))
		add("long-end family", 48*time.Hour+keep, famExists("long-end"))
		// An expired family without hard end.
		h = family("expired", "agent", "1", time.Time{}, time.Hour)
		add("expired token", time.Hour+keep+grace, tokExists(h))
		add("expired family", time.Hour+keep+grace, famExists("expired"))

		// OpenID Connect grant rows go with their family, whichever rule
		// ends it.
		grantExists := func(id string) func() bool {
			if err := db.CreateOIDCGrant(ctx, sqlstore.OIDCGrant{FamilyID: id, ClientID: client.ID, UserID: 1, BrowserSID: "browser", Scope: "openid", AuthTime: t0}); err != nil {
				t.Fatal(err)
			}
			return func() bool { return count(t, db, "SELECT COUNT(*) FROM oidc_grants WHERE family_id = ?", id) == 1 }
		}
		add("OIDC grant of the live family", 30*day+keep+grace, grantExists("live"))
		add("OIDC grant of a revoked family", keep, grantExists("revoked0"))
		add("OIDC grant of the expired family", time.Hour+keep+grace, grantExists("expired"))

		// Authorization codes: kept CodeKeep after they expired and after
		// they were used.
		codeExists := func(h []byte) func() bool {
			return func() bool { return count(t, db, "SELECT COUNT(*) FROM oauth_codes WHERE hash = ?", h) == 1 }
		}
		newCode := func(ttl time.Duration) []byte {
			h := randomHash()
			if err := db.CreateCode(ctx, domain.Code{Hash: h, ClientID: client.ID, UserID: 1, OrgID: org.ID, RedirectURI: "https://x/", Scope: "s", CreatedAt: t0, ExpiresAt: t0.Add(ttl)}); err != nil {
				t.Fatal(err)
			}
			return h
		}
		for i := range 3 {
			add(fmt.Sprintf("unused code %d", i), 5*time.Minute+code, codeExists(newCode(5*time.Minute)))
		}
		long := newCode(2 * time.Hour)
		at(time.Minute)
		if _, err := db.RedeemCode(ctx, long, "live", nil); err != nil {
			t.Fatal(err)
		}
		add("used code with a long TTL", 2*time.Hour+code, codeExists(long))
		quick := newCode(5 * time.Minute)
		at(4 * time.Minute)
		if _, err := db.RedeemCode(ctx, quick, "live", nil); err != nil {
			t.Fatal(err)
		}
		add("used code", 5*time.Minute+code, codeExists(quick))
		// RedeemCode marks a code used before the provider refuses it as
		// expired: its use is what a second redemption is measured by.
		late := newCode(5 * time.Minute)
		at(30 * time.Minute)
		if _, err := db.RedeemCode(ctx, late, "late", nil); err != nil {
			t.Fatal(err)
		}
		add("code used after it expired", 30*time.Minute+code, codeExists(late))
		at(0)

		// Credentials: expired personal tokens go a day later; the rest
		// stay.
		cred := func(kind string, expires time.Time) func() bool {
			c := &domain.Credential{Kind: kind, OrgID: org.ID, UserID: 1, Name: kind, Hash: randomHash(), ExpiresAt: expires}
			if err := db.CreateCredential(ctx, c); err != nil {
				t.Fatal(err)
			}
			return func() bool {
				_, err := db.CredentialByID(ctx, kind, c.ID)
				return err == nil
			}
		}
		for i := range 3 {
			add(fmt.Sprintf("expired pat %d", i), time.Hour+day, cred("pat", t0.Add(time.Hour)))
		}
		add("pat without expiry", never, cred("pat", time.Time{}))
		add("expired bot", never, cred("bot", t0.Add(time.Hour)))

		// Visitors.
		visitor := func(id string) func() bool {
			if err := db.CreateCustomer(ctx, &domain.Customer{EntityID: id, OrgID: org.ID, ClientID: client.ID}); err != nil {
				t.Fatal(err)
			}
			return func() bool {
				_, err := db.Customer(ctx, id)
				return err == nil
			}
		}
		for i := range 5 {
			add(fmt.Sprintf("abandoned visitor %d", i), vr, visitor(fmt.Sprintf("v-plain%d", i)))
		}
		add("visitor with a conversation", never, visitor("v-chat"))
		conversations := sqlstore.Table{Name: "conversations", Columns: []sqlstore.Column{{Name: "customer_id", Kind: sqlstore.ColText}}}
		if _, err := db.InsertObject(ctx, conversations, org.ID, map[string]any{"customer_id": "v-chat"}); err != nil {
			t.Fatal(err)
		}
		add("visitor with a live family", 60*day+keep+grace, visitor("v-live"))
		h = family("v-live-family", "customer", "v-live", time.Time{}, 60*day)
		add("visitor's live family", 60*day+keep+grace, famExists("v-live-family"))
		add("visitor with a revoked family", vr, visitor("v-revoked"))
		family("v-revoked-family", "customer", "v-revoked", time.Time{}, 60*day)
		if _, err := db.RevokeFamily(ctx, "v-revoked-family", "test"); err != nil {
			t.Fatal(err)
		}
		add("visitor's revoked family", keep, famExists("v-revoked-family"))
		// A revoked family does not keep its visitor, even while it is
		// itself kept.
		add("visitor with a family revoked late", vr, visitor("v-late"))
		family("v-late-family", "customer", "v-late", time.Time{}, 60*day)
		at(vr - time.Hour)
		if _, err := db.RevokeFamily(ctx, "v-late-family", "test"); err != nil {
			t.Fatal(err)
		}
		at(0)
		add("visitor's family revoked late", vr-time.Hour+keep, famExists("v-late-family"))
		// The vouched visitors' families end early; the visitors wait for
		// the retention.
		add("vouched visitor", vr, visitor("v-vouched"))
		add("long-end visitor", vr, visitor("v-long-end"))
		updated := visitor("v-updated")
		at(10 * day)
		if err := db.UpdateCustomer(ctx, &domain.Customer{EntityID: "v-updated", Name: "Ann"}); err != nil {
			t.Fatal(err)
		}
		add("updated visitor", 10*day+vr, updated)
		at(0)

		// Audit events.
		auditExists := func(event string) func() bool {
			return func() bool { return count(t, db, "SELECT COUNT(*) FROM audit_events WHERE event = ?", event) == 1 }
		}
		for i := range 3 {
			e := fmt.Sprintf("old%d", i)
			if err := db.Audit(ctx, domain.AuditEvent{OrgID: org.ID, Event: e}); err != nil {
				t.Fatal(err)
			}
			add("audit "+e, ar, auditExists(e))
		}
		at(100 * day)
		if err := db.Audit(ctx, domain.AuditEvent{OrgID: org.ID, Event: "newer"}); err != nil {
			t.Fatal(err)
		}
		add("audit newer", 100*day+ar, auditExists("newer"))
		at(0)

		// A throttle window.
		if _, _, err := db.ThrottleFail(ctx, "ip:192.0.2.1", 15*time.Minute, 100, 0); err != nil {
			t.Fatal(err)
		}
		add("throttle row", 15*time.Minute, func() bool { return count(t, db, "SELECT COUNT(*) FROM throttle WHERE key = ?", "ip:192.0.2.1") == 1 })

		var moments []time.Time
		for _, o := range objects {
			if !o.goneAt.IsZero() {
				moments = append(moments, o.goneAt.Add(-ms), o.goneAt)
			}
		}
		slices.SortFunc(moments, func(a, b time.Time) int { return a.Compare(b) })
		moments = slices.Compact(moments)
		var total sqlstore.PurgeStats
		for _, m := range moments {
			clk.Set(m)
			st, err := db.Purge(ctx, policy)
			if err != nil {
				t.Fatalf("purge at t0+%v: %v", m.Sub(t0), err)
			}
			total = add2(total, st)
			for _, o := range objects {
				want := o.goneAt.IsZero() || m.Before(o.goneAt)
				if got := o.exists(); got != want {
					t.Errorf("at t0+%v: %s exists = %v, want %v", m.Sub(t0), o.name, got, want)
				}
			}
			// A revoked family is listed to every process while it is kept.
			if m.Before(t0.Add(keep + ms)) {
				ids, _, err := db.RevokedSince(ctx, t0.UnixMilli())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(ids, "revoked0") || !slices.Contains(ids, "v-revoked-family") {
					t.Errorf("at t0+%v: RevokedSince = %v, want the revoked families", m.Sub(t0), ids)
				}
			}
		}
		want := sqlstore.PurgeStats{
			// Spent l1; expired l2 and the revoked-late, long-end, expired
			// and v-live tokens. The tokens of the other revoked and ended
			// families go with them.
			RefreshTokens: 6,
			// live, 5 revoked, revoked-late, cc, implicit, vouched, long-end, expired,
			// the live and the two revoked visitors' families.
			Families:       15,
			Codes:          6,
			PersonalTokens: 3,
			// 5 abandoned, the two revoked, vouched, long-end, updated, live.
			Visitors:    11,
			AuditEvents: 4,
			Throttle:    1,
			OIDCGrants:  3,
		}
		if total != want {
			t.Errorf("purged %+v, want %+v", total, want)
		}
		for table, n := range map[string]int{"refresh_tokens": 0, "refresh_families": 0, "oauth_codes": 0, "customers": 1, "credentials": 2, "audit_events": 0, "throttle": 0, "oidc_grants": 0} {
			if got := count(t, db, "SELECT COUNT(*) FROM "+table); got != n {
				t.Errorf("%s holds %d rows at the end, want %d", table, got, n)
			}
		}
	})
}

func add2(a, b sqlstore.PurgeStats) sqlstore.PurgeStats {
	return sqlstore.PurgeStats{
		RefreshTokens: a.RefreshTokens + b.RefreshTokens, Families: a.Families + b.Families, Codes: a.Codes + b.Codes,
		PersonalTokens: a.PersonalTokens + b.PersonalTokens, Visitors: a.Visitors + b.Visitors,
		AuditEvents: a.AuditEvents + b.AuditEvents, Throttle: a.Throttle + b.Throttle, OIDCGrants: a.OIDCGrants + b.OIDCGrants,
	}
}

func TestPurgePolicyRefusesNegatives(t *testing.T) {
	db := open(t, sqlstoretest.SQLite(t))
	for _, p := range []sqlstore.PurgePolicy{{Grace: -time.Second}, {RevocationKeep: -1}, {Batch: -1}} {
		if _, err := db.Purge(context.Background(), p); err == nil {
			t.Errorf("%+v: no error", p)
		}
	}
}

func TestTryExclusive(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := open(t, dsn), open(t, dsn)
		release, ok, err := a.TryExclusive(ctx, "job")
		if err != nil || !ok {
			t.Fatal(ok, err)
		}
		if a.Kind() == "sqlite" {
			// One writer serializes the work: the lock is not needed.
			release()
			return
		}
		if _, ok, err := b.TryExclusive(ctx, "job"); err != nil || ok {
			t.Fatalf("second holder: ok %v, err %v", ok, err)
		}
		if _, ok, err := a.TryExclusive(ctx, "job"); err != nil || ok {
			t.Fatalf("same process, other connection: ok %v, err %v", ok, err)
		}
		other, ok, err := b.TryExclusive(ctx, "another job")
		if err != nil || !ok {
			t.Fatalf("another name: ok %v, err %v", ok, err)
		}
		other()
		release()
		release() // harmless
		if st := a.SQL().Stats(); st.InUse != 0 {
			t.Fatalf("%d connections still in use after release", st.InUse)
		}
		again, ok, err := b.TryExclusive(ctx, "job")
		if err != nil || !ok {
			t.Fatalf("after release: ok %v, err %v", ok, err)
		}
		again()
		// Every connection back in a's pool has let go of the lock.
		for range 5 {
			r, ok, err := b.TryExclusive(ctx, "job")
			if err != nil || !ok {
				t.Fatalf("a pooled connection kept the lock: ok %v, err %v", ok, err)
			}
			r()
		}
	})
}
