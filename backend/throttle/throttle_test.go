package throttle

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
)

var _ Store = (*sqlstore.DB)(nil)

// clock is a settable clock shared by a store and its guard.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var t0 = time.UnixMilli(1_700_000_000_000)

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func open(t *testing.T, dsn string, c *clock) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if c != nil {
		db.Now = c.Now
	}
	return db
}

// counting counts the store's database reads.
type counting struct {
	Store
	reads atomic.Int64
}

func (c *counting) ThrottleBlocked(ctx context.Context, keys ...string) (time.Time, error) {
	c.reads.Add(1)
	return c.Store.ThrottleBlocked(ctx, keys...)
}

// login is the keys of a sign-in attempt with the default rules.
func login(acct, ip string) []Key {
	return []Key{
		{Name: IP(ip), Rule: PerIP},
		{Name: AccountIP("login", acct, ip), Rule: PerAccountIP},
		{Name: Account("login", acct), Rule: PerAccount},
	}
}

func names(keys []Key) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.Name)
	}
	return strings.Join(s, ",")
}

func mustWait(t *testing.T, g *Guard, want time.Duration, keys ...Key) {
	t.Helper()
	got, err := g.Check(context.Background(), keys...)
	if err != nil {
		t.Fatalf("check %s: %v", names(keys), err)
	}
	if got != want {
		t.Fatalf("check %s: wait %v, want %v", names(keys), got, want)
	}
}

func fail(t *testing.T, g *Guard, keys ...Key) []Key {
	t.Helper()
	locked, err := g.Fail(context.Background(), keys...)
	if err != nil {
		t.Fatalf("fail %s: %v", names(keys), err)
	}
	return locked
}

func failN(t *testing.T, g *Guard, n int, keys ...Key) {
	t.Helper()
	for i := 0; i < n; i++ {
		if locked := fail(t, g, keys...); len(locked) != 0 {
			t.Fatalf("failure %d of %d locked %s", i+1, n, names(locked))
		}
	}
}

func TestGuard(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		c := newClock()
		db := open(t, dsn, c)
		var g *Guard
		// Each subtest starts on an empty table at t0 with a fresh guard.
		fresh := func(t *testing.T) {
			t.Helper()
			c.Set(t0)
			if _, err := db.PurgeThrottle(ctx, t0.Add(1000*time.Hour)); err != nil {
				t.Fatal(err)
			}
			g = &Guard{Store: db, Now: c.Now}
		}

		t.Run("per IP", func(t *testing.T) {
			fresh(t)
			ip := "198.51.100.7"
			for i := 0; i < PerIP.Limit-1; i++ {
				if locked := fail(t, g, login(fmt.Sprintf("user%d@example.com", i), ip)...); len(locked) != 0 {
					t.Fatalf("failure %d locked %s", i+1, names(locked))
				}
			}
			mustWait(t, g, 0, login("new@example.com", ip)...)
			c.Add(time.Minute)
			locked := fail(t, g, login("last@example.com", ip)...)
			if names(locked) != IP(ip) {
				t.Fatalf("locked %q, want the IP", names(locked))
			}
			mustWait(t, g, 14*time.Minute, login("new@example.com", ip)...)
			mustWait(t, g, 0, login("new@example.com", "198.51.100.8")...)
			c.Add(14*time.Minute - time.Millisecond)
			mustWait(t, g, time.Millisecond, login("new@example.com", ip)...)
			c.Add(time.Millisecond)
			mustWait(t, g, 0, login("new@example.com", ip)...)
		})

		t.Run("per account and IP", func(t *testing.T) {
			fresh(t)
			failN(t, g, PerAccountIP.Limit-1, login("alice@example.com", "192.0.2.1")...)
			mustWait(t, g, 0, login("alice@example.com", "192.0.2.1")...)
			locked := fail(t, g, login("alice@example.com", "192.0.2.1")...)
			if names(locked) != AccountIP("login", "alice@example.com", "192.0.2.1") {
				t.Fatalf("locked %q, want alice from that IP", names(locked))
			}
			mustWait(t, g, PerAccountIP.Window, login("alice@example.com", "192.0.2.1")...)
			// The owner elsewhere, and others from that IP, are not affected.
			mustWait(t, g, 0, login("alice@example.com", "192.0.2.2")...)
			mustWait(t, g, 0, login("bob@example.com", "192.0.2.1")...)
		})

		t.Run("short account lock", func(t *testing.T) {
			fresh(t)
			acct := "carol@example.com"
			ipOf := func(i int) string { return fmt.Sprintf("203.0.113.%d", i%50) }
			for i := 0; i < PerAccount.Limit-1; i++ {
				if locked := fail(t, g, login(acct, ipOf(i))...); len(locked) != 0 {
					t.Fatalf("failure %d locked %s", i+1, names(locked))
				}
			}
			locked := fail(t, g, login(acct, ipOf(99))...)
			if names(locked) != Account("login", acct) {
				t.Fatalf("locked %q, want the account", names(locked))
			}
			mustWait(t, g, time.Minute, login(acct, "203.0.113.200")...)
			c.Add(time.Minute)
			mustWait(t, g, 0, login(acct, "203.0.113.200")...)
			// Each further failure in the window locks for another minute.
			c.Add(30 * time.Second)
			locked = fail(t, g, login(acct, "203.0.113.201")...)
			if names(locked) != Account("login", acct) {
				t.Fatalf("re-lock: locked %q, want the account", names(locked))
			}
			mustWait(t, g, time.Minute, login(acct, "203.0.113.202")...)
			if w := g.CheckFast(login(acct, "203.0.113.202")...); w != time.Minute {
				t.Fatalf("check fast after re-lock: %v", w)
			}
			// A new window starts clean.
			c.Set(t0.Add(PerAccount.Window))
			mustWait(t, g, 0, login(acct, "203.0.113.202")...)
			for i := 0; i < PerAccount.Limit-1; i++ {
				if locked := fail(t, g, login(acct, ipOf(i+7))...); len(locked) != 0 {
					t.Fatalf("new window, failure %d locked %s", i+1, names(locked))
				}
			}
			if locked := fail(t, g, login(acct, ipOf(3))...); names(locked) != Account("login", acct) {
				t.Fatalf("new window: locked %q", names(locked))
			}
		})

		t.Run("window expiry", func(t *testing.T) {
			fresh(t)
			k := Key{Name: AccountIP("login", "dave@example.com", "192.0.2.9"), Rule: PerAccountIP}
			failN(t, g, 9, k)
			// The window ends 15 minutes after its first failure.
			c.Add(PerAccountIP.Window)
			failN(t, g, 9, k)
			fails, _, err := db.ThrottleFail(ctx, "other", time.Minute, 3, 0)
			if err != nil || fails != 1 {
				t.Fatalf("fresh key: %d %v", fails, err)
			}
			// The new window began with the first of those 9; the 10th in
			// it blocks until it ends, 15 minutes after that first one.
			c.Add(10 * time.Minute)
			if locked := fail(t, g, k); len(locked) != 1 {
				t.Fatalf("10th in window: locked %q", names(locked))
			}
			mustWait(t, g, 5*time.Minute, k)
			c.Add(5 * time.Minute)
			mustWait(t, g, 0, k)
			if w := g.CheckFast(k); w != 0 {
				t.Fatalf("check fast after the window: %v", w)
			}
			if fails, _, err := db.ThrottleFail(ctx, k.Name, k.Rule.Window, k.Rule.Limit, k.Rule.Lock); err != nil || fails != 1 {
				t.Fatalf("after the window: %d %v", fails, err)
			}

			// Limit 1, until the window ends: the failure that ends a window
			// blocks until the end of the next one.
			one := Key{Name: "t:one", Rule: Rule{Limit: 1, Window: time.Minute}}
			if l := fail(t, g, one); len(l) != 1 {
				t.Fatalf("limit 1: locked %q", names(l))
			}
			c.Add(time.Minute)
			if until, err := db.ThrottleBlocked(ctx, one.Name); err != nil || !until.IsZero() {
				t.Fatalf("blocked at its very end: %v %v", until, err)
			}
			if l := fail(t, g, one); len(l) != 1 {
				t.Fatalf("limit 1, next window: locked %q", names(l))
			}
			mustWait(t, &Guard{Store: db, Now: c.Now}, time.Minute, one)
		})

		t.Run("a block is never shortened", func(t *testing.T) {
			fresh(t)
			k := Key{Name: "t:skew", Rule: Rule{Limit: 1, Window: time.Hour, Lock: 10 * time.Minute}}
			fail(t, g, k)
			// A process whose clock runs 5 minutes behind fails again.
			c.Add(-5 * time.Minute)
			fail(t, g, k)
			c.Add(5 * time.Minute)
			mustWait(t, &Guard{Store: db, Now: c.Now}, 10*time.Minute, k)
		})

		t.Run("reset", func(t *testing.T) {
			fresh(t)
			keys := login("erin@example.com", "192.0.2.30")
			failN(t, g, 9, keys...)
			if err := g.Reset(ctx, keys[1:]...); err != nil {
				t.Fatal(err)
			}
			failN(t, g, 9, keys...) // per account and IP counts from zero
			if locked := fail(t, g, keys...); names(locked) != keys[1].Name {
				t.Fatalf("locked %q", names(locked))
			}
			mustWait(t, g, PerAccountIP.Window, keys...)
			if err := g.Reset(ctx, keys...); err != nil {
				t.Fatal(err)
			}
			mustWait(t, g, 0, keys...)
			if w := g.CheckFast(keys...); w != 0 {
				t.Fatalf("check fast after reset: %v", w)
			}
			// The IP's count was reset too: 49 more do not block it.
			for i := 0; i < PerIP.Limit-1; i++ {
				fail(t, g, Key{Name: keys[0].Name, Rule: PerIP})
			}
			mustWait(t, g, 0, keys[0])
		})

		t.Run("IPv6 /64 and IPv4-mapped", func(t *testing.T) {
			fresh(t)
			a, b := "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"
			for i := 0; i < PerAccountIP.Limit-1; i++ {
				ip := a
				if i%2 == 1 {
					ip = b
				}
				failN(t, g, 1, login("frank@example.com", ip)...)
			}
			mustWait(t, g, 0, login("frank@example.com", a)...)
			fail(t, g, login("frank@example.com", b)...)
			mustWait(t, g, PerAccountIP.Window, login("frank@example.com", a)...)
			mustWait(t, g, PerAccountIP.Window, login("frank@example.com", "2001:db8:1:2:abcd::9")...)
			mustWait(t, g, 0, login("frank@example.com", "2001:db8:1:3::1")...)

			failN(t, g, 5, login("grace@example.com", "::ffff:192.0.2.77")...)
			failN(t, g, 4, login("grace@example.com", "192.0.2.77")...)
			fail(t, g, login("grace@example.com", "::ffff:c000:24d")...) // 192.0.2.77 in hex
			mustWait(t, g, PerAccountIP.Window, login("grace@example.com", "192.0.2.77")...)
			mustWait(t, g, 0, login("grace@example.com", "192.0.2.78")...)
		})

		t.Run("check fast", func(t *testing.T) {
			fresh(t)
			k := Key{Name: Account("client", "app1"), Rule: Rule{Limit: 3, Window: time.Hour}}
			other := Key{Name: Account("client", "app2"), Rule: k.Rule}
			if w := g.CheckFast(k); w != 0 {
				t.Fatalf("unseen key: %v", w)
			}
			failN(t, g, 2, k)
			if w := g.CheckFast(k); w != 0 {
				t.Fatalf("below limit: %v", w)
			}
			fail(t, g, k)
			if w := g.CheckFast(k, other); w != time.Hour {
				t.Fatalf("set by Fail here: %v", w)
			}
			// Another process: it learns the block from Check, then
			// answers from memory.
			cs := &counting{Store: db}
			g2 := &Guard{Store: cs, Now: c.Now}
			if w := g2.CheckFast(k); w != 0 {
				t.Fatalf("other process, unseen: %v", w)
			}
			mustWait(t, g2, time.Hour, other, k)
			reads := cs.reads.Load()
			if w := g2.CheckFast(k); w != time.Hour {
				t.Fatalf("other process, learnt: %v", w)
			}
			if w := g2.CheckFast(other); w != 0 {
				t.Fatalf("other key learnt as blocked: %v", w)
			}
			mustWait(t, g2, time.Hour, k)
			if n := cs.reads.Load(); n != reads {
				t.Fatalf("CheckFast and a known block read the database %d times", n-reads)
			}
			// A third process learns it from its own next wrong guess.
			g3 := &Guard{Store: db, Now: c.Now}
			if locked := fail(t, g3, k); len(locked) != 0 {
				t.Fatalf("fourth failure locked again (lock 0): %q", names(locked))
			}
			if w := g3.CheckFast(k); w != time.Hour {
				t.Fatalf("learnt from Fail: %v", w)
			}
			c.Add(time.Hour)
			if w := g2.CheckFast(k); w != 0 {
				t.Fatalf("after the block: %v", w)
			}
		})

		t.Run("purge", func(t *testing.T) {
			fresh(t)
			ended := Key{Name: "t:ended", Rule: Rule{Limit: 5, Window: 15 * time.Minute}}
			locked := Key{Name: "t:locked", Rule: Rule{Limit: 1, Window: time.Minute, Lock: time.Hour}}
			fail(t, g, ended)
			if l := fail(t, g, locked); len(l) != 1 {
				t.Fatalf("limit 1: locked %q", names(l))
			}
			c.Add(20 * time.Minute)
			running := Key{Name: "t:running", Rule: Rule{Limit: 5, Window: 15 * time.Minute}}
			fail(t, g, running)
			n, err := db.PurgeThrottle(ctx, c.Now().Add(-15*time.Minute))
			if err != nil || n != 1 {
				t.Fatalf("purge: %d %v", n, err)
			}
			mustWait(t, &Guard{Store: db, Now: c.Now}, 40*time.Minute, locked) // from the database
			if fails, _, err := db.ThrottleFail(ctx, running.Name, running.Rule.Window, running.Rule.Limit, 0); err != nil || fails != 2 {
				t.Fatalf("running key after purge: %d %v", fails, err)
			}
		})

		t.Run("bad rule", func(t *testing.T) {
			fresh(t)
			for _, r := range []Rule{{}, {Limit: 0, Window: time.Minute}, {Limit: 1}, {Limit: 1, Window: time.Minute, Lock: -time.Second}} {
				if _, err := g.Fail(ctx, Key{Name: "t:bad", Rule: r}); err == nil {
					t.Fatalf("rule %+v accepted", r)
				}
			}
			if w, err := g.Check(ctx); w != 0 || err != nil {
				t.Fatalf("no keys: %v %v", w, err)
			}
		})
	})
}

// TestAcrossProcesses opens the database twice, as two processes would.
func TestAcrossProcesses(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db1, db2 := open(t, dsn, nil), open(t, dsn, nil)
		g1, g2 := &Guard{Store: db1}, &Guard{Store: db2}

		keys := login("heidi@example.com", "192.0.2.50")
		failN(t, g1, PerAccountIP.Limit-1, keys...)
		if w, err := g2.Check(ctx, keys...); w != 0 || err != nil {
			t.Fatalf("below the limit: %v %v", w, err)
		}
		if locked := fail(t, g2, keys...); names(locked) != keys[1].Name {
			t.Fatalf("the other process's failure: locked %q", names(locked))
		}
		for _, g := range []*Guard{g1, g2} {
			if w, err := g.Check(ctx, keys...); w <= 14*time.Minute || err != nil {
				t.Fatalf("blocked across processes: %v %v", w, err)
			}
		}

		// Concurrent failures through both count exactly once each.
		const perProc = 25
		rule := Rule{Limit: 2 * perProc, Window: 15 * time.Minute}
		k := Key{Name: Account("pat", "shared"), Rule: rule}
		var (
			mu     sync.Mutex
			counts []int
			nLock  int
			wg     sync.WaitGroup
		)
		for _, db := range []*sqlstore.DB{db1, db2} {
			for i := 0; i < perProc; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fails, _, err := db.ThrottleFail(ctx, k.Name, rule.Window, rule.Limit, rule.Lock)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Error(err)
						return
					}
					counts = append(counts, fails)
					if fails == rule.Limit {
						nLock++
					}
				}()
			}
		}
		wg.Wait()
		sort.Ints(counts)
		for i, n := range counts {
			if n != i+1 {
				t.Fatalf("counts %v: not each failure once", counts)
			}
		}
		if len(counts) != 2*perProc || nLock != 1 {
			t.Fatalf("%d failures, %d reached the limit", len(counts), nLock)
		}
		w1, err1 := g1.Check(ctx, k)
		w2, err2 := g2.Check(ctx, k)
		if w1 <= 0 || w2 <= 0 || err1 != nil || err2 != nil {
			t.Fatalf("blocked after concurrent failures: %v %v %v %v", w1, w2, err1, err2)
		}
	})
}

// fakeStore blocks every key at once, for the memory bound.
type fakeStore struct{ now func() time.Time }

func (f fakeStore) ThrottleFail(ctx context.Context, key string, window time.Duration, limit int, lock time.Duration) (int, time.Time, error) {
	return 1, f.now().Add(time.Hour), nil
}
func (fakeStore) ThrottleBlocked(context.Context, ...string) (time.Time, error) {
	return time.Time{}, nil
}
func (fakeStore) ThrottleReset(context.Context, string) error { return nil }

func TestMemoryBounded(t *testing.T) {
	c := newClock()
	g := &Guard{Store: fakeStore{c.Now}, Now: c.Now}
	ctx := context.Background()
	for i := 0; i < maxEntries+maxEntries/2; i++ {
		g.Fail(ctx, Key{Name: IP(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)), Rule: Rule{Limit: 1, Window: time.Hour}})
	}
	if n := len(g.blocks); n > maxEntries {
		t.Fatalf("%d blocks remembered, bound %d", n, maxEntries)
	}
	last := Key{Name: IP("10.255.255.255")}
	g.Fail(ctx, Key{Name: last.Name, Rule: Rule{Limit: 1, Window: time.Hour}})
	if w := g.CheckFast(last); w != time.Hour {
		t.Fatalf("the newest block: %v", w)
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.1", "ip:192.0.2.1"},
		{"::ffff:192.0.2.1", "ip:192.0.2.1"},
		{"::ffff:c000:201", "ip:192.0.2.1"},
		{"192.0.2.1:8080", "ip:192.0.2.1"},
		{"2001:db8:1:2::1", "ip6:2001:db8:1:2::/64"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "ip6:2001:db8:1:2::/64"},
		{"2001:DB8:1:2::1", "ip6:2001:db8:1:2::/64"},
		{"[2001:db8:1:2::1]:443", "ip6:2001:db8:1:2::/64"},
		{"fe80::1%eth0", "ip6:fe80::/64"},
		{"2001:db8:1:3::1", "ip6:2001:db8:1:3::/64"},
		{"::1", "ip6:::/64"},
		{"", "ip:?"},
		{"unknown", "ip:?unknown"},
		{"01.2.3.4", "ip:?01.2.3.4"},
		{strings.Repeat("x", 100), "ip:?" + strings.Repeat("x", 64)},
		{strings.Repeat("x", 63) + "é", "ip:?" + strings.Repeat("x", 63)},
		{"a\x00b\xffc", "ip:?a?b?c"},
	} {
		if got := IP(tc.in); got != tc.want {
			t.Errorf("IP(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := Account("login", "alice@example.com"); got != "acct:login:alice@example.com" {
		t.Errorf("Account: %q", got)
	}
	if got := AccountIP("login", "alice@example.com", "::ffff:192.0.2.1"); got != "acctip:login:alice@example.com@ip:192.0.2.1" {
		t.Errorf("AccountIP: %q", got)
	}
	long1, long2 := Account("login", strings.Repeat("a", 200)), Account("login", strings.Repeat("a", 199)+"b")
	if long1 == long2 || len(long1) > 64 || !strings.HasPrefix(long1, "acct:login:sha256:") {
		t.Errorf("long ids: %q %q", long1, long2)
	}
	if k := Account("login", "bad\xff"); !utf8.ValidString(k) || k == Account("login", "bad\xfe") {
		t.Errorf("invalid UTF-8 id: %q", k)
	}
}

func FuzzIP(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1", "::ffff:192.0.2.1", "2001:db8:1:2::1", "[2001:db8::1]:80", "fe80::1%eth0",
		"", "unknown", "1.2.3.4.5", strings.Repeat("é", 40), "a\x00\xff", "::", "2001:db8::/64",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := IP(s)
		if len(k) > 80 {
			t.Fatalf("IP(%q) = %q: %d bytes", s, k, len(k))
		}
		if !utf8.ValidString(k) || strings.ContainsRune(k, 0) {
			t.Fatalf("IP(%q) = %q: not storable text", s, k)
		}
		if !strings.HasPrefix(k, "ip:") && !strings.HasPrefix(k, "ip6:") {
			t.Fatalf("IP(%q) = %q: prefix", s, k)
		}
		if a, err := netip.ParseAddr(s); err == nil {
			if a.Unmap().Is4() != strings.HasPrefix(k, "ip:") || strings.HasPrefix(k, "ip:?") {
				t.Fatalf("IP(%q) = %q for an address", s, k)
			}
			if IP(a.String()) != k {
				t.Fatalf("IP(%q) = %q but IP(%q) = %q", s, k, a.String(), IP(a.String()))
			}
		}
	})
}
