package refresh_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
)

const (
	ttl   = time.Hour
	grace = 10 * time.Second
)

// clock is one settable clock for the store and the families: the store
// decides expiry and grace by its clock, the families mint by theirs.
type clock = sqlstoretest.Clock

func newClock() *clock { return sqlstoretest.NewClock() }

type fixture struct {
	db  *sqlstore.DB
	f   *refresh.Families
	rev *token.Revocations
	clk *clock
	org int64
}

func newFixture(t *testing.T, dsn string) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := newClock()
	db.Now = clk.Now
	org := &domain.Organization{Name: "Org"}
	if err := db.CreateOrganization(ctx, org); err != nil {
		t.Fatal(err)
	}
	rev := token.NewRevocations()
	return &fixture{
		db:  db,
		f:   refresh.New(db, rev, token.NewSecret("a-secret-of-at-least-32-characters!!"), ttl, grace, clk.Now),
		rev: rev, clk: clk, org: org.ID,
	}
}

// start begins a family of kind with a first token of prefix.
func (fx *fixture) start(t *testing.T, kind, prefix string) (domain.Family, string) {
	t.Helper()
	fam := &domain.Family{Kind: kind, Subject: "7", OrgID: fx.org, Scope: "agent read write chat"}
	secret, err := fx.f.Start(context.Background(), fam, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return *fam, secret
}

func (fx *fixture) rotate(t *testing.T, secret string) string {
	t.Helper()
	_, next, err := fx.f.Rotate(context.Background(), secret, nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return next
}

func (fx *fixture) lookup(t *testing.T, secret string) (domain.Family, domain.RefreshToken) {
	t.Helper()
	fam, rt, err := fx.f.Lookup(context.Background(), secret)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	return fam, rt
}

// tokens counts a family's stored refresh tokens, and those still live.
func (fx *fixture) tokens(t *testing.T, familyID string) (all, live int) {
	t.Helper()
	q := "SELECT COUNT(*), COALESCE(SUM(CASE WHEN rotated_at IS NULL THEN 1 ELSE 0 END), 0) FROM refresh_tokens WHERE family_id = ?"
	if fx.db.Kind() == "postgres" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	if err := fx.db.SQL().QueryRow(q, familyID).Scan(&all, &live); err != nil {
		t.Fatal(err)
	}
	return all, live
}

func (fx *fixture) auditEvents(t *testing.T, event string) []domain.AuditEvent {
	t.Helper()
	all, err := fx.db.AuditEvents(context.Background(), fx.org, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []domain.AuditEvent
	for _, e := range all {
		if e.Event == event {
			out = append(out, e)
		}
	}
	return out
}

func TestStart(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		fx := newFixture(t, dsn)
		ctx := context.Background()
		now := fx.clk.Now()
		fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		if fam.ID == "" {
			t.Fatal("Start left the family id empty")
		}
		if !strings.HasPrefix(secret, token.PrefixRefresh) || len(secret) < len(token.PrefixRefresh)+40 {
			t.Fatalf("secret %q", secret)
		}
		got, rt := fx.lookup(t, secret)
		if got.ID != fam.ID || got.Kind != refresh.KindAgent || got.Subject != "7" || got.OrgID != fx.org || got.Scope != "agent read write chat" {
			t.Fatalf("family %+v", got)
		}
		if !got.RevokedAt.IsZero() || !got.ExpiresAt.IsZero() || !rt.RotatedAt.IsZero() || rt.Dead {
			t.Fatalf("fresh family/token not live: %+v %+v", got, rt)
		}
		if !rt.CreatedAt.Equal(now) || !rt.ExpiresAt.Equal(now.Add(ttl)) {
			t.Fatalf("token times: created %v expires %v, want %v and %v", rt.CreatedAt, rt.ExpiresAt, now, now.Add(ttl))
		}

		// A caller's id is kept.
		named := &domain.Family{ID: "named-family", Kind: refresh.KindCustomer, Subject: "ent", OrgID: fx.org, Scope: "guest"}
		s2, err := fx.f.Start(ctx, named, token.PrefixCustomerRefresh)
		if err != nil {
			t.Fatal(err)
		}
		if f2, _ := fx.lookup(t, s2); f2.ID != "named-family" || !strings.HasPrefix(s2, token.PrefixCustomerRefresh) {
			t.Fatalf("named family: %+v %q", f2, s2)
		}
		// Two starts never share a secret or an id.
		fam3, s3 := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		if s3 == secret || fam3.ID == fam.ID {
			t.Fatal("two families share a secret or an id")
		}
		if _, _, err := fx.f.Lookup(ctx, token.PrefixRefresh+"never-issued"); !errors.Is(err, refresh.ErrUnknown) {
			t.Fatalf("lookup of an unknown secret: %v", err)
		}
	})
}

func TestStartSession(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		fx := newFixture(t, dsn)
		ctx := context.Background()
		fam := &domain.Family{Kind: refresh.KindImplicit, Subject: "7", OrgID: fx.org, ClientID: "cl", Scope: "agent read"}
		if err := fx.f.StartSession(ctx, fam); err != nil {
			t.Fatal(err)
		}
		if fam.ID == "" {
			t.Fatal("no id")
		}
		got, err := fx.db.Family(ctx, fam.ID)
		if err != nil || got.Kind != refresh.KindImplicit || got.ClientID != "cl" {
			t.Fatalf("%+v %v", got, err)
		}
		if all, _ := fx.tokens(t, fam.ID); all != 0 {
			t.Fatalf("an implicit session holds %d refresh tokens", all)
		}
		// Its revocation is what reaches the access tokens carrying its id.
		if err := fx.f.Revoke(ctx, fam.ID, "grant revoked"); err != nil || !fx.rev.Revoked(fam.ID) {
			t.Fatalf("revoke session: %v", err)
		}
	})
}

func TestRotate(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()

		t.Run("first use", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			fx.clk.Add(time.Minute)
			got, next, err := fx.f.Rotate(ctx, secret, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != fam.ID || got.Kind != refresh.KindAgent || got.Subject != "7" {
				t.Fatalf("family %+v", got)
			}
			if next != fx.f.Successor(secret) || next == secret || !strings.HasPrefix(next, token.PrefixRefresh) {
				t.Fatalf("successor %q of %q", next, secret)
			}
			if _, rt := fx.lookup(t, secret); !rt.RotatedAt.Equal(fx.clk.Now()) || rt.Dead {
				t.Fatalf("spent token: %+v", rt)
			}
			_, rt := fx.lookup(t, next)
			if !rt.RotatedAt.IsZero() || !rt.ExpiresAt.Equal(fx.clk.Now().Add(ttl)) || rt.FamilyID != fam.ID {
				t.Fatalf("successor token: %+v", rt)
			}
			if all, live := fx.tokens(t, fam.ID); all != 2 || live != 1 {
				t.Fatalf("tokens = %d, live = %d; want 2, 1", all, live)
			}
			// The chain goes on.
			next2 := fx.rotate(t, next)
			if next2 == next || next2 == secret {
				t.Fatal("successor repeats")
			}
		})

		t.Run("replay within grace answers the same successor", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			next := fx.rotate(t, secret)
			for _, d := range []time.Duration{0, grace / 2, grace / 2} { // the last lands exactly on grace
				fx.clk.Add(d)
				got, again, err := fx.f.Rotate(ctx, secret, nil)
				if err != nil {
					t.Fatalf("replay %v after rotation: %v", d, err)
				}
				if again != next || got.ID != fam.ID {
					t.Fatalf("replay answered %q, want the successor %q", again, next)
				}
			}
			if all, live := fx.tokens(t, fam.ID); all != 2 || live != 1 {
				t.Fatalf("replays branched the family: tokens = %d, live = %d", all, live)
			}
			if fx.rev.Revoked(fam.ID) {
				t.Fatal("a replay within grace revoked the family")
			}
			// The successor still rotates as a first use.
			fx.rotate(t, next)
		})

		t.Run("replay after the successor was spent is reuse", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			next := fx.rotate(t, secret)
			next2 := fx.rotate(t, next)
			fx.clk.Add(time.Second) // well within grace of the first rotation
			got, s, err := fx.f.Rotate(ctx, secret, nil)
			if !errors.Is(err, refresh.ErrReused) || s != "" {
				t.Fatalf("reuse: %q %v", s, err)
			}
			if got.ID != fam.ID || got.RevokedAt.IsZero() {
				t.Fatalf("family returned with reuse: %+v", got)
			}
			if !fx.rev.Revoked(fam.ID) {
				t.Fatal("reuse did not reach the revocation set")
			}
			stored, err := fx.db.Family(ctx, fam.ID)
			if err != nil || stored.RevokedAt.IsZero() || stored.Reason != "refresh token reused" {
				t.Fatalf("stored family: %+v %v", stored, err)
			}
			for _, other := range []string{next2, next, secret} {
				if _, _, err := fx.f.Rotate(ctx, other, nil); !errors.Is(err, refresh.ErrRevoked) {
					t.Fatalf("token of a revoked family: %v", err)
				}
			}
			if _, _, err := fx.f.Add(ctx, fam.ID, token.PrefixRefresh, nil); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("add to a revoked family: %v", err)
			}
			ev := fx.auditEvents(t, "refresh.reuse_detected")
			if len(ev) != 1 || ev[0].Subject != "user:7" || ev[0].OrgID != fx.org {
				t.Fatalf("audit: %+v", ev)
			}
		})

		t.Run("replay after grace is reuse", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			next := fx.rotate(t, secret)
			fx.clk.Add(grace + time.Millisecond)
			if _, _, err := fx.f.Rotate(ctx, secret, nil); !errors.Is(err, refresh.ErrReused) {
				t.Fatalf("replay after grace: %v", err)
			}
			if !fx.rev.Revoked(fam.ID) {
				t.Fatal("not in the revocation set")
			}
			if _, _, err := fx.f.Rotate(ctx, next, nil); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("unspent successor after reuse: %v", err)
			}
		})

		t.Run("reuse audit names the family kind", func(t *testing.T) {
			fx := newFixture(t, dsn)
			for _, c := range []struct{ kind, subject, detail string }{
				{refresh.KindOAuth, "user:7", "OAuth grant of client cl revoked"},
				{refresh.KindCustomer, "customer:7", "visitor's tokens revoked"},
			} {
				fam := &domain.Family{Kind: c.kind, Subject: "7", OrgID: fx.org, ClientID: "cl", Scope: "agent read"}
				secret, err := fx.f.Start(ctx, fam, token.PrefixRefresh)
				if err != nil {
					t.Fatal(err)
				}
				fx.rotate(t, secret)
				fx.clk.Add(grace + time.Second)
				if _, _, err := fx.f.Rotate(ctx, secret, nil); !errors.Is(err, refresh.ErrReused) {
					t.Fatal(err)
				}
				found := false
				for _, e := range fx.auditEvents(t, "refresh.reuse_detected") {
					found = found || (e.Subject == c.subject && e.Detail == c.detail)
				}
				if !found {
					t.Fatalf("%s: no audit event %q %q: %+v", c.kind, c.subject, c.detail, fx.auditEvents(t, "refresh.reuse_detected"))
				}
			}
		})

		t.Run("expired", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			fx.clk.Add(ttl)
			if _, s, err := fx.f.Rotate(ctx, secret, nil); !errors.Is(err, refresh.ErrExpired) || s != "" {
				t.Fatalf("expired: %q %v", s, err)
			}
			// Expiry is not reuse: nothing is revoked or spent.
			if fx.rev.Revoked(fam.ID) {
				t.Fatal("expiry revoked the family")
			}
			if _, rt := fx.lookup(t, secret); !rt.RotatedAt.IsZero() {
				t.Fatal("an expired token was spent")
			}
			if _, _, err := fx.f.Rotate(ctx, secret, nil); !errors.Is(err, refresh.ErrExpired) {
				t.Fatalf("expired again: %v", err)
			}
		})

		t.Run("unknown", func(t *testing.T) {
			fx := newFixture(t, dsn)
			if _, _, err := fx.f.Rotate(ctx, token.PrefixRefresh+"nope", nil); !errors.Is(err, refresh.ErrUnknown) {
				t.Fatalf("unknown: %v", err)
			}
			called := false
			fx.f.Rotate(ctx, "", func(domain.Family) error { called = true; return nil })
			if called {
				t.Fatal("check ran for an unknown token")
			}
		})

		t.Run("check refuses without spending", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			errWrongOwner := apierr.InvalidToken("not yours")
			var seen domain.Family
			_, s, err := fx.f.Rotate(ctx, secret, func(f domain.Family) error { seen = f; return errWrongOwner })
			if err != errWrongOwner || s != "" {
				t.Fatalf("check error not returned as is: %q %v", s, err)
			}
			if seen.ID != fam.ID || seen.Kind != refresh.KindAgent || seen.Subject != "7" || seen.OrgID != fx.org {
				t.Fatalf("check saw %+v", seen)
			}
			if _, rt := fx.lookup(t, secret); !rt.RotatedAt.IsZero() {
				t.Fatal("a refused token was spent")
			}
			if all, _ := fx.tokens(t, fam.ID); all != 1 {
				t.Fatalf("a refused rotation stored a successor (%d tokens)", all)
			}
			// Past grace the token still works as a first use: it was never spent.
			fx.clk.Add(grace + time.Minute)
			if next := fx.rotate(t, secret); next != fx.f.Successor(secret) {
				t.Fatal("unexpected successor")
			}
			if fx.rev.Revoked(fam.ID) {
				t.Fatal("revoked")
			}
		})

		t.Run("check runs on a revoked family too, and its refusal wins", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
			if err := fx.f.Revoke(ctx, fam.ID, "test"); err != nil {
				t.Fatal(err)
			}
			sentinel := errors.New("wrong client")
			if _, _, err := fx.f.Rotate(ctx, secret, func(domain.Family) error { return sentinel }); err != sentinel {
				t.Fatalf("%v", err)
			}
			if _, _, err := fx.f.Rotate(ctx, secret, func(domain.Family) error { return nil }); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("%v", err)
			}
		})
	})
}

// Racing tabs: every racer presenting one token gets the one successor.
func TestRotateConcurrent(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		fx := newFixture(t, dsn)
		fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		const n = 6
		var wg sync.WaitGroup
		got := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, got[i], errs[i] = fx.f.Rotate(context.Background(), secret, nil)
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || got[i] != fx.f.Successor(secret) {
				t.Fatalf("racer %d: %q %v", i, got[i], errs[i])
			}
		}
		if all, live := fx.tokens(t, fam.ID); all != 2 || live != 1 {
			t.Fatalf("tokens = %d, live = %d; want 2, 1", all, live)
		}
	})
}

func TestAdd(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()

		t.Run("retires the family's other live tokens", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, s1 := fx.start(t, refresh.KindCustomer, token.PrefixCustomerRefresh)
			fx.clk.Add(time.Minute)
			got, s2, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != fam.ID || got.Kind != refresh.KindCustomer || !strings.HasPrefix(s2, token.PrefixCustomerRefresh) || s2 == s1 {
				t.Fatalf("add: %+v %q", got, s2)
			}
			if s2 == fx.f.Successor(s1) {
				t.Fatal("the cookie path's token is derivable from the old one")
			}
			// Retired dead: the cookie proved the browser, and the token it
			// replaced must not start a branch (no grace).
			if _, rt := fx.lookup(t, s1); !rt.RotatedAt.Equal(fx.clk.Now()) || !rt.Dead {
				t.Fatalf("old token not retired dead: %+v", rt)
			}
			if _, rt := fx.lookup(t, s2); !rt.RotatedAt.IsZero() || !rt.ExpiresAt.Equal(fx.clk.Now().Add(ttl)) {
				t.Fatalf("new token: %+v", rt)
			}
			if all, live := fx.tokens(t, fam.ID); all != 2 || live != 1 {
				t.Fatalf("tokens = %d, live = %d", all, live)
			}
			// Again: one live token.
			_, s3, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, live := fx.tokens(t, fam.ID); live != 1 {
				t.Fatalf("live = %d after a second add", live)
			}
			fx.rotate(t, s3)
		})

		t.Run("unknown and revoked families", func(t *testing.T) {
			fx := newFixture(t, dsn)
			if _, s, err := fx.f.Add(ctx, "no-such-family", token.PrefixCustomerRefresh, nil); !errors.Is(err, refresh.ErrUnknown) || s != "" {
				t.Fatalf("unknown: %q %v", s, err)
			}
			fam, _ := fx.start(t, refresh.KindCustomer, token.PrefixCustomerRefresh)
			if err := fx.f.Revoke(ctx, fam.ID, "signed out"); err != nil {
				t.Fatal(err)
			}
			if _, s, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil); !errors.Is(err, refresh.ErrRevoked) || s != "" {
				t.Fatalf("revoked: %q %v", s, err)
			}
			if all, _ := fx.tokens(t, fam.ID); all != 1 {
				t.Fatalf("a token was added to a revoked family (%d)", all)
			}
		})

		// A token the cookie path retired is dead: presented again, even at
		// once, it is reuse, so a stolen token cannot live on beside the
		// owner's visits.
		t.Run("a token the cookie path retired is reuse at once", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, s1 := fx.start(t, refresh.KindCustomer, token.PrefixCustomerRefresh)
			_, s2, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil)
			if err != nil {
				t.Fatal(err)
			}
			fx.clk.Add(grace / 2)
			if _, _, err := fx.f.Rotate(ctx, s1, nil); !errors.Is(err, refresh.ErrReused) {
				t.Fatalf("retired token: %v", err)
			}
			if !fx.rev.Revoked(fam.ID) {
				t.Fatal("not revoked")
			}
			if _, _, err := fx.f.Rotate(ctx, s2, nil); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("after reuse: %v", err)
			}
		})

		t.Run("a retired token after grace is reuse", func(t *testing.T) {
			fx := newFixture(t, dsn)
			fam, s1 := fx.start(t, refresh.KindCustomer, token.PrefixCustomerRefresh)
			_, s2, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil)
			if err != nil {
				t.Fatal(err)
			}
			fx.clk.Add(grace + time.Millisecond)
			if _, _, err := fx.f.Rotate(ctx, s1, nil); !errors.Is(err, refresh.ErrReused) {
				t.Fatalf("retired after grace: %v", err)
			}
			if _, _, err := fx.f.Rotate(ctx, s2, nil); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("cookie's token after reuse: %v", err)
			}
		})
	})
}

func TestFamilyExpiresAt(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		end := fx.clk.Now().Add(30 * time.Minute) // sooner than ttl
		fam := &domain.Family{Kind: refresh.KindCustomer, Subject: "ent", OrgID: fx.org, Scope: "guest", ExpiresAt: end}
		s1, err := fx.f.Start(ctx, fam, token.PrefixCustomerRefresh)
		if err != nil {
			t.Fatal(err)
		}
		got, rt := fx.lookup(t, s1)
		if !got.ExpiresAt.Equal(end) || !rt.ExpiresAt.Equal(end) {
			t.Fatalf("first token expires %v (family %v), want %v", rt.ExpiresAt, got.ExpiresAt, end)
		}

		fx.clk.Add(10 * time.Minute)
		_, s2, err := fx.f.Rotate(ctx, s1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, rt := fx.lookup(t, s2); !rt.ExpiresAt.Equal(end) {
			t.Fatalf("successor expires %v, want the family's end %v", rt.ExpiresAt, end)
		}
		rotated, s3, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, rt := fx.lookup(t, s3); !rt.ExpiresAt.Equal(end) {
			t.Fatalf("added token expires %v, want %v", rt.ExpiresAt, end)
		}
		if d := refresh.AccessTTL(rotated, time.Hour, fx.clk.Now()); d != 20*time.Minute {
			t.Fatalf("AccessTTL = %v, want the 20 minutes left", d)
		}

		fx.clk.Add(20 * time.Minute) // exactly the family's end
		if _, _, err := fx.f.Rotate(ctx, s3, nil); !errors.Is(err, refresh.ErrExpired) {
			t.Fatalf("rotate at the family's end: %v", err)
		}
		if _, s, err := fx.f.Add(ctx, fam.ID, token.PrefixCustomerRefresh, nil); !errors.Is(err, refresh.ErrExpired) || s != "" {
			t.Fatalf("add at the family's end: %q %v", s, err)
		}

		// A family ending later than ttl: the tokens live ttl.
		far := &domain.Family{Kind: refresh.KindCustomer, Subject: "ent", OrgID: fx.org, Scope: "guest", ExpiresAt: fx.clk.Now().Add(10 * ttl)}
		s4, err := fx.f.Start(ctx, far, token.PrefixCustomerRefresh)
		if err != nil {
			t.Fatal(err)
		}
		if _, rt := fx.lookup(t, s4); !rt.ExpiresAt.Equal(fx.clk.Now().Add(ttl)) {
			t.Fatalf("token of a far family expires %v", rt.ExpiresAt)
		}
	})
}

func TestAccessTTL(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	for _, c := range []struct {
		name string
		end  time.Time
		want time.Duration
	}{
		{"no end", time.Time{}, time.Hour},
		{"end after ttl", now.Add(2 * time.Hour), time.Hour},
		{"end exactly at ttl", now.Add(time.Hour), time.Hour},
		{"end sooner", now.Add(25 * time.Minute), 25 * time.Minute},
		{"end in half a second", now.Add(500 * time.Millisecond), time.Second},
		{"end passed", now.Add(-time.Hour), time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := refresh.AccessTTL(domain.Family{ExpiresAt: c.end}, time.Hour, now); got != c.want {
				t.Fatalf("AccessTTL = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSuccessor(t *testing.T) {
	secret := token.NewSecret("a-secret-of-at-least-32-characters!!")
	f := refresh.New(nil, token.NewRevocations(), secret, ttl, grace, nil)
	same := refresh.New(nil, token.NewRevocations(), secret, ttl, grace, nil)
	other := refresh.New(nil, token.NewRevocations(), token.NewSecret("another-secret-of-at-least-32-chars"), ttl, grace, nil)
	for _, prefix := range []string{token.PrefixRefresh, token.PrefixCustomerRefresh} {
		s, _ := token.NewOpaque(prefix)
		next := f.Successor(s)
		if next != f.Successor(s) || next != same.Successor(s) {
			t.Fatal("successor is not deterministic for one server secret")
		}
		if next == s || !strings.HasPrefix(next, prefix) || len(next) != len(s) {
			t.Fatalf("successor %q of %q", next, s)
		}
		if other.Successor(s) == next {
			t.Fatal("another server secret derives the same successor")
		}
		if strings.Contains(next, s[len(prefix):]) {
			t.Fatal("successor carries the old secret")
		}
		if f.Successor(next) == next || f.Successor(next) == s {
			t.Fatal("chain repeats")
		}
		s2, _ := token.NewOpaque(prefix)
		if f.Successor(s2) == next {
			t.Fatal("two secrets share a successor")
		}
	}
	if f.Now == nil {
		t.Fatal("New left Now nil")
	}
}

func TestRevoke(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		fam, secret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		other, otherSecret := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		if fx.rev.Revoked(fam.ID) {
			t.Fatal("revoked before Revoke")
		}
		if err := fx.f.Revoke(ctx, fam.ID, "signed out"); err != nil {
			t.Fatal(err)
		}
		if !fx.rev.Revoked(fam.ID) || fx.rev.Revoked(other.ID) {
			t.Fatal("revocation set wrong")
		}
		stored, err := fx.db.Family(ctx, fam.ID)
		if err != nil || !stored.RevokedAt.Equal(fx.clk.Now()) || stored.Reason != "signed out" {
			t.Fatalf("%+v %v", stored, err)
		}
		if _, _, err := fx.f.Rotate(ctx, secret, nil); !errors.Is(err, refresh.ErrRevoked) {
			t.Fatalf("rotate: %v", err)
		}
		fx.rotate(t, otherSecret)
		// Other processes learn of it from the store.
		ids, _, err := fx.db.RevokedSince(ctx, 0)
		if err != nil || len(ids) != 1 || ids[0] != fam.ID {
			t.Fatalf("revoked since: %v %v", ids, err)
		}
		// Revoking again keeps the first reason.
		fx.clk.Add(time.Minute)
		if err := fx.f.Revoke(ctx, fam.ID, "again"); err != nil {
			t.Fatal(err)
		}
		if again, _ := fx.db.Family(ctx, fam.ID); again.Reason != "signed out" || !again.RevokedAt.Equal(stored.RevokedAt) {
			t.Fatalf("second revoke changed the record: %+v", again)
		}
	})
}

func TestAPIError(t *testing.T) {
	for _, c := range []struct {
		err      error
		code     string
		contains string
	}{
		{refresh.ErrReused, apierr.CodeInvalidToken, "already used"},
		{refresh.ErrRevoked, apierr.CodeInvalidToken, "revoked"},
		{refresh.ErrExpired, apierr.CodeInvalidToken, "expired"},
		{refresh.ErrUnknown, apierr.CodeInvalidToken, "unknown"},
		{apierr.InsufficientScope("mine"), apierr.CodeInsufficientScope, "mine"},
		{errors.New("database down"), apierr.CodeInternal, ""},
	} {
		e, ok := apierr.As(refresh.APIError(c.err, "sign in again"))
		if !ok || e.Code != c.code || !strings.Contains(e.Message, c.contains) {
			t.Errorf("%v: %+v", c.err, e)
		}
		if c.code == apierr.CodeInvalidToken && !strings.HasSuffix(e.Message, "sign in again") {
			t.Errorf("%v: message %q does not say how to start over", c.err, e.Message)
		}
	}
}

// TestDescendantReuse: a spent token is dropped after the next rotation,
// but presenting it is still reuse, found through the successors derived
// from it; a token of nobody's chain stays unknown.
func TestDescendantReuse(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		fam, s0 := fx.start(t, refresh.KindAgent, token.PrefixRefresh)
		s1 := fx.rotate(t, s0)
		fx.clk.Add(grace + time.Second)
		s2 := fx.rotate(t, s1)
		fx.clk.Add(grace + time.Second)
		s3 := fx.rotate(t, s2)
		if all, _ := fx.tokens(t, fam.ID); all > 3 {
			t.Fatalf("%d tokens kept, want at most 3", all)
		}
		if _, _, err := fx.f.Lookup(ctx, s0); !errors.Is(err, refresh.ErrUnknown) {
			t.Fatalf("s0 should have been dropped: %v", err)
		}
		if _, _, err := fx.f.Rotate(ctx, s0, nil); !errors.Is(err, refresh.ErrReused) {
			t.Fatalf("a dropped ancestor: %v, want ErrReused", err)
		}
		if !fx.rev.Revoked(fam.ID) {
			t.Fatal("family not revoked")
		}
		if _, _, err := fx.f.Rotate(ctx, s3, nil); !errors.Is(err, refresh.ErrRevoked) {
			t.Fatalf("live token after reuse: %v", err)
		}
		if _, _, err := fx.f.Rotate(ctx, token.PrefixRefresh+"nobodys-token", nil); !errors.Is(err, refresh.ErrUnknown) {
			t.Fatalf("garbage: %v", err)
		}
	})
}
