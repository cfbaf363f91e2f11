// Package throttle limits secret guesses (passwords, client secrets,
// personal access tokens) across every process on one database: failures
// are counted in the store's throttle table, so N processes give an
// attacker the same budget as one.
//
// A Guard counts failures per Key. A key names what is counted: a client
// IP (an IPv6 client by its /64, which one host usually holds whole), an
// account, or an account from one IP; never the secret guessed. Each key
// has a Rule: at most Limit failures in a fixed Window (the first failure
// after a window ended starts the next), after which the key is blocked
// for Lock, or until the window ends when Lock is 0.
//
// The default rules are chosen so that a stranger who knows an account's
// name cannot lock its owner out for long:
//
//   - PerIP: 50 failures per client IP in 15 minutes block that IP, for
//     every account, until the window ends.
//   - PerAccountIP: 10 failures for one account from one IP in 15 minutes
//     block that IP for that account until the window ends; the owner,
//     signing in from elsewhere, is not affected.
//   - PerAccount: 20 failures for one account from all IPs in 15 minutes
//     lock the account for only 1 minute; each further failure in the
//     window locks it for another minute. An attacker spread over many
//     IPs is held to about one guess a minute, and the owner waits at
//     most a minute after the attack stops.
//
// Check reads the database, so a block set by any process counts;
// CheckFast, for high-entropy secrets checked on every request, consults
// only the blocks this process has seen.
package throttle

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Store keeps the failure counts; *sqlstore.DB is one.
type Store interface {
	// ThrottleFail counts one failure for key and returns the failures in
	// its current window and the end of its block if one is running.
	ThrottleFail(ctx context.Context, key string, window time.Duration, limit int, lock time.Duration) (fails int, blockedUntil time.Time, err error)
	// ThrottleBlocked returns the latest running block's end among keys,
	// zero when none is blocked.
	ThrottleBlocked(ctx context.Context, keys ...string) (time.Time, error)
	// ThrottleReset forgets key.
	ThrottleReset(ctx context.Context, key string) error
}

// Rule limits one kind of key: Limit failures in a fixed Window, then a
// block for Lock (0: until the window ends).
type Rule struct {
	Limit  int
	Window time.Duration
	Lock   time.Duration
}

// The default rules (see the package documentation).
var (
	// PerIP applies to IP(ip): 50 failures in 15 minutes block the client
	// until the window ends.
	PerIP = Rule{Limit: 50, Window: 15 * time.Minute}
	// PerAccountIP applies to AccountIP(kind, id, ip): 10 failures in 15
	// minutes block that IP for that account until the window ends.
	PerAccountIP = Rule{Limit: 10, Window: 15 * time.Minute}
	// PerAccount applies to Account(kind, id): 20 failures from all IPs in
	// 15 minutes lock the account for 1 minute, and each further failure
	// in the window for another minute.
	PerAccount = Rule{Limit: 20, Window: 15 * time.Minute, Lock: time.Minute}
)

// Key is one counted thing and its rule.
type Key struct {
	Name string
	Rule Rule
}

// maxIDLen bounds the caller-supplied part of a key; longer ids (and ids
// that are not valid UTF-8 or hold a NUL byte, which PostgreSQL's TEXT
// refuses) are replaced by their SHA-256, so every key is short and
// storable and distinct ids keep distinct keys.
const maxIDLen = 128

// Account names an account of a kind ("login" for a sign-in email,
// "current_password", "client" for an OAuth client id, "pat", ...):
// "acct:" + kind + ":" + id.
func Account(kind, id string) string {
	return "acct:" + kind + ":" + safeID(id)
}

// AccountIP names an account of a kind seen from one client IP, for
// PerAccountIP: "acctip:" + kind + ":" + id + "@" + IP(ip).
func AccountIP(kind, id, ip string) string {
	return "acctip:" + kind + ":" + safeID(id) + "@" + IP(ip)
}

func safeID(id string) string {
	if len(id) <= maxIDLen && utf8.ValidString(id) && !strings.ContainsRune(id, 0) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// maxRawIP is how much of an unparsable address a key keeps.
const maxRawIP = 64

// IP names a client address: "ip:" + an IPv4 address (an IPv4-mapped
// IPv6 address counts as its IPv4 address), "ip6:" + the /64 of an IPv6
// address ("ip6:2001:db8:1:2::/64"), since one host or customer usually
// holds a whole /64 and could otherwise take a fresh address per guess.
// A value that is not an address (nor address:port) gives "ip:?" + the
// value, clipped to 64 bytes and made valid UTF-8 without NUL bytes.
func IP(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(ip)
		if err2 != nil {
			return "ip:?" + clip(ip)
		}
		a = ap.Addr()
	}
	a = a.WithZone("").Unmap()
	if a.Is4() {
		return "ip:" + a.String()
	}
	return "ip6:" + netip.PrefixFrom(a, 64).Masked().String()
}

func clip(s string) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "?"), "?")
	if len(s) <= maxRawIP {
		return s
	}
	n := maxRawIP
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxEntries bounds the blocks a Guard remembers in memory under a spray
// of distinct keys.
const maxEntries = 100_000

// Guard applies rules to keys over a Store. Its zero value with a Store
// is ready; it is safe for concurrent use.
type Guard struct {
	Store Store
	// Now is the guard's clock (time.Now when nil); give the store the
	// same one in tests.
	Now func() time.Time

	mu     sync.Mutex
	blocks map[string]time.Time // key -> end of a block this process has seen
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

// Check returns a wait > 0 when any key is blocked. It looks first at
// the blocks this process has seen (and then answers without the
// database), then reads the database, so a block set by another process
// counts, and remembers that block for CheckFast. The wait is how long
// the block found lasts; another key may be blocked longer.
func (g *Guard) Check(ctx context.Context, keys ...Key) (wait time.Duration, err error) {
	if len(keys) == 0 {
		return 0, nil
	}
	now := g.now()
	if w := g.known(now, keys); w > 0 {
		return w, nil
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	until, err := g.Store.ThrottleBlocked(ctx, names...)
	if err != nil {
		return 0, err
	}
	if !until.After(now) {
		return 0, nil
	}
	// Blocked. Learn which key is, so that CheckFast and later Checks
	// answer from memory: one more read per key, once per block.
	if len(names) == 1 {
		g.remember(now, names[0], until)
	} else {
		for _, n := range names {
			u, err := g.Store.ThrottleBlocked(ctx, n)
			if err != nil {
				break // the answer stands; only the learning is lost
			}
			if u.After(now) {
				g.remember(now, n, u)
			}
		}
	}
	return until.Sub(now), nil
}

// CheckFast returns a wait > 0 when any key is blocked as far as this
// process knows: it consults only the blocks that Fail here set or met,
// or that Check learnt, and never the database.
//
// It is for high-entropy secrets (client secrets, personal access
// tokens) checked on every API request, which must not cost a database
// read each time. That is acceptable because such a secret (256 bits)
// cannot be guessed at any rate, so the throttle there only sheds load
// and noise; every wrong guess is still counted in the database by Fail,
// whose answer carries a block set by any process, so a process learns
// a block at its next wrong guess at the latest, and a block learnt by
// any Fail or Check applies here at once.
func (g *Guard) CheckFast(keys ...Key) time.Duration {
	return g.known(g.now(), keys)
}

// Fail counts one failure for each key under its rule, in the database,
// and returns the keys this failure blocked: the one that reached its
// limit, and for a rule with a Lock each later failure in the window,
// which locks the key again (so the caller can audit an account lock).
// Every key is counted even when one fails; the errors are joined.
func (g *Guard) Fail(ctx context.Context, keys ...Key) (locked []Key, err error) {
	var errs []error
	for _, k := range keys {
		fails, until, err := g.Store.ThrottleFail(ctx, k.Name, k.Rule.Window, k.Rule.Limit, k.Rule.Lock)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		now := g.now()
		if until.After(now) {
			g.remember(now, k.Name, until)
		}
		if fails == k.Rule.Limit || (fails > k.Rule.Limit && k.Rule.Lock > 0) {
			locked = append(locked, k)
		}
	}
	return locked, errors.Join(errs...)
}

// Reset forgets the failures and blocks of keys (after a successful
// sign-in, for the keys that success clears), here and in the database.
// Other processes may still answer from memory a block they had seen,
// until it ends.
func (g *Guard) Reset(ctx context.Context, keys ...Key) error {
	g.mu.Lock()
	for _, k := range keys {
		delete(g.blocks, k.Name)
	}
	g.mu.Unlock()
	var errs []error
	for _, k := range keys {
		if err := g.Store.ThrottleReset(ctx, k.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// known returns the longest wait among the blocks remembered for keys.
func (g *Guard) known(now time.Time, keys []Key) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		until, ok := g.blocks[k.Name]
		if !ok {
			continue
		}
		if !until.After(now) {
			delete(g.blocks, k.Name)
			continue
		}
		wait = max(wait, until.Sub(now))
	}
	return wait
}

// remember records that key is blocked until until.
func (g *Guard) remember(now time.Time, key string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocks == nil {
		g.blocks = map[string]time.Time{}
	}
	if old, ok := g.blocks[key]; ok && !until.After(old) {
		return
	}
	if len(g.blocks) >= maxEntries {
		g.sweep(now)
	}
	g.blocks[key] = until
}

func (g *Guard) sweep(now time.Time) {
	for k, until := range g.blocks {
		if !until.After(now) {
			delete(g.blocks, k)
		}
	}
	// Still full: a spray of fresh keys. Forget arbitrary blocks rather
	// than grow without bound; Check still finds them in the database.
	for k := range g.blocks {
		if len(g.blocks) < maxEntries/2 {
			break
		}
		delete(g.blocks, k)
	}
}
