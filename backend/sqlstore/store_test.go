package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/shared"
)

func open(t *testing.T, dsn string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStore(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := open(t, dsn)

		t.Run("bootstrap once", func(t *testing.T) {
			admin := &domain.User{Email: "Admin@Example.com", Name: "Admin", Role: shared.RoleAdmin, PasswordHash: "x"}
			ok, err := db.Bootstrap(ctx, "Acme", admin)
			if err != nil || !ok || admin.OrgID == 0 || admin.ID == 0 {
				t.Fatalf("bootstrap: %v %v %+v", ok, err, admin)
			}
			again := &domain.User{Email: "other@example.com", Name: "B", Role: shared.RoleAdmin, PasswordHash: "x"}
			if ok, err := db.Bootstrap(ctx, "Acme", again); err != nil || ok {
				t.Fatalf("second bootstrap: %v %v", ok, err)
			}
			u, err := db.UserByEmail(ctx, "ADMIN@example.com ")
			if err != nil || u.ID != admin.ID || u.Role != shared.RoleAdmin || u.Email != "admin@example.com" {
				t.Fatalf("by email: %+v %v", u, err)
			}
		})

		t.Run("users", func(t *testing.T) {
			org := &domain.Organization{Name: "Org"}
			if err := db.CreateOrganization(ctx, org); err != nil {
				t.Fatal(err)
			}
			u := &domain.User{OrgID: org.ID, Email: "a@b.c", Name: "A", Role: shared.RoleAgent, PasswordHash: "h"}
			if err := db.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			dup := &domain.User{OrgID: org.ID, Email: "A@B.C", Name: "A", Role: shared.RoleAgent, PasswordHash: "h"}
			if err := db.CreateUser(ctx, dup); !errors.Is(err, domain.ErrConflict) {
				t.Fatalf("duplicate email: %v", err)
			}
			u.Name = "Renamed"
			if err := db.UpdateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			got, err := db.UserByID(ctx, u.ID)
			if err != nil || got.Name != "Renamed" {
				t.Fatalf("%+v %v", got, err)
			}
			if _, err := db.UserByID(ctx, 999999); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("missing user: %v", err)
			}
			h1, h2 := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
			if err := db.SetAPITokenHash(ctx, u.ID, h1); err != nil {
				t.Fatal(err)
			}
			if got, _, err := db.UserByAPITokenHash(ctx, h1); err != nil || got.ID != u.ID {
				t.Fatalf("by token: %v", err)
			}
			if err := db.SetAPITokenHash(ctx, u.ID, h2); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.UserByAPITokenHash(ctx, h1); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("old token still found: %v", err)
			}
		})

		t.Run("keys", func(t *testing.T) {
			now := time.Now()
			k1 := sqlstore.SigningKey{KID: "k1", Family: "agent", Alg: "EdDSA", PublicKey: []byte{1}, PrivateKey: []byte{2}, CreatedAt: now, SignsFrom: now}
			if err := db.InsertKey(ctx, k1); err != nil {
				t.Fatal(err)
			}
			k2 := k1
			k2.KID, k2.CreatedAt, k2.SignsFrom = "k2", now.Add(time.Millisecond), now.Add(time.Hour)
			if err := db.RotateKey(ctx, k2, now.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			keys, err := db.Keys(ctx, now)
			if err != nil || len(keys) != 2 || keys[0].VerifyUntil.IsZero() || !keys[1].VerifyUntil.IsZero() {
				t.Fatalf("keys: %+v %v", keys, err)
			}
			keys, _ = db.Keys(ctx, now.Add(3*time.Hour))
			if len(keys) != 1 || keys[0].KID != "k2" {
				t.Fatalf("after expiry: %+v", keys)
			}
		})

		t.Run("refresh rotation", func(t *testing.T) {
			now := time.Now()
			tok := func(s string) domain.RefreshToken {
				return domain.RefreshToken{Hash: []byte(s), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
			}
			f := &domain.Family{ID: "fam1", Kind: "agent", Subject: "1", OrgID: 1, Scope: "agent"}
			if err := db.CreateFamily(ctx, f, tok("t1")); err != nil {
				t.Fatal(err)
			}
			if _, replay, err := db.Rotate(ctx, []byte("t1"), time.Minute, tok("t2")); err != nil || replay {
				t.Fatal(err, replay)
			}
			// Within grace: the successor already issued, never a branch.
			if _, replay, err := db.Rotate(ctx, []byte("t1"), time.Minute, tok("t2")); err != nil || !replay {
				t.Fatalf("grace: %v %v", err, replay)
			}
			if _, _, err := db.Rotate(ctx, []byte("t2"), time.Minute, tok("t4")); err != nil {
				t.Fatal(err)
			}
			// Its successor spent too: reuse, and the family dies, t4 with it.
			if _, _, err := db.Rotate(ctx, []byte("t1"), time.Minute, tok("t2")); !errors.Is(err, domain.ErrReused) {
				t.Fatalf("reuse: %v", err)
			}
			if _, _, err := db.Rotate(ctx, []byte("t4"), time.Minute, tok("t5")); !errors.Is(err, domain.ErrRevoked) {
				t.Fatalf("after reuse: %v", err)
			}
			ids, _, err := db.RevokedSince(ctx, 0)
			if err != nil || len(ids) != 1 || ids[0] != "fam1" {
				t.Fatalf("revoked since: %v %v", ids, err)
			}
			if _, _, err := db.Rotate(ctx, []byte("nope"), time.Minute, tok("t6")); !errors.Is(err, domain.ErrNotFound) {
				t.Fatalf("unknown: %v", err)
			}
		})

		t.Run("refresh expiry and no grace", func(t *testing.T) {
			now := time.Now()
			f := &domain.Family{ID: "fam2", Kind: "agent", Subject: "1", OrgID: 1, Scope: "agent"}
			if err := db.CreateFamily(ctx, f, domain.RefreshToken{Hash: []byte("e1"), CreatedAt: now, ExpiresAt: now.Add(-time.Second)}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := db.Rotate(ctx, []byte("e1"), 0, domain.RefreshToken{Hash: []byte("e2"), CreatedAt: now, ExpiresAt: now}); !errors.Is(err, domain.ErrExpired) {
				t.Fatalf("expired: %v", err)
			}
		})

		t.Run("concurrent rotation", func(t *testing.T) {
			now := time.Now()
			f := &domain.Family{ID: "fam3", Kind: "agent", Subject: "1", OrgID: 1, Scope: "agent"}
			if err := db.CreateFamily(ctx, f, domain.RefreshToken{Hash: []byte("c0"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			// Racers on one token all present the same successor (it is
			// derived from the token): one rotation, the rest replays of it,
			// and only one successor row.
			var wg sync.WaitGroup
			errs := make([]error, 3)
			replays := make([]bool, 3)
			for i := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, replays[i], errs[i] = db.Rotate(ctx, []byte("c0"), time.Minute, domain.RefreshToken{Hash: []byte("c1"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
				}()
			}
			wg.Wait()
			fresh := 0
			for i, err := range errs {
				if err != nil {
					t.Fatalf("racer %d: %v", i, err)
				}
				if !replays[i] {
					fresh++
				}
			}
			if fresh != 1 {
				t.Fatalf("fresh rotations = %d, want 1 (%v)", fresh, replays)
			}
			if _, _, err := db.Rotate(ctx, []byte("c1"), time.Minute, domain.RefreshToken{Hash: []byte("c2"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func TestReopenKeepsSchema(t *testing.T) {
	dsn := sqlstoretest.SQLite(t)
	db := open(t, dsn)
	org := &domain.Organization{Name: "x"}
	if err := db.CreateOrganization(context.Background(), org); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2 := open(t, dsn)
	if _, err := db2.Organization(context.Background(), org.ID); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

// Clients and tree membership are memoized; a change through the same
// store applies at once, one made by another process within memoTTL.
func TestMemoizedReads(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		a, b := open(t, dsn), open(t, dsn) // two processes' stores
		org := &domain.Organization{Name: "Org"}
		if err := a.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		c := &domain.Client{ID: "memo-client", OrgID: org.ID, Name: "M", Type: "confidential", SecretHash: []byte("old"), RedirectURIs: []string{"https://a.example/cb"}}
		if err := a.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		for _, db := range []*sqlstore.DB{a, b} {
			if got, err := db.Client(ctx, c.ID); err != nil || string(got.SecretHash) != "old" {
				t.Fatalf("first read: %+v %v", got, err)
			}
		}
		// A caller editing its copy does not touch the memo.
		got, _ := a.Client(ctx, c.ID)
		got.RedirectURIs[0] = "https://evil.example/cb"
		if again, _ := a.Client(ctx, c.ID); again.RedirectURIs[0] != "https://a.example/cb" {
			t.Fatalf("memo changed through a caller's copy: %v", again.RedirectURIs)
		}

		c.SecretHash = []byte("new")
		if err := a.SetClientSecret(ctx, c.ID, c.SecretHash); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Client(ctx, c.ID); string(got.SecretHash) != "new" {
			t.Fatal("the store that changed the client still serves the old secret")
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			got, _ := b.Client(ctx, c.ID)
			if string(got.SecretHash) == "new" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("another process still serves the old secret after 2 s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := a.EndClientTokens(ctx, c.ID, "test", true); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Client(ctx, c.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("deleted client still found: %v", err)
		}

		// Tree membership: a "no" is forgotten when an org is created.
		if in, err := a.InTree(ctx, org.ID, org.ID+1); err != nil || in {
			t.Fatalf("unknown org in tree: %v %v", in, err)
		}
		child := &domain.Organization{Name: "Child", ParentID: org.ID}
		if err := a.CreateOrganization(ctx, child); err != nil {
			t.Fatal(err)
		}
		if in, err := a.InTree(ctx, org.ID, child.ID); err != nil || !in {
			t.Fatalf("new child not in tree: %v %v", in, err)
		}
	})
}
