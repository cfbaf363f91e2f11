package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// TestJWKSFetchedOnlyForAGoodSet: every successful fetch reports the
// kids it found (also when they did not change: that is how a process
// that never held the old set finds removed kids), and no failure does:
// not an HTTP error, not a body that is no JWK set, not an empty set or
// one without a usable key. Ending sessions on those would sign a site's
// users out for a moment of misconfiguration.
func TestJWKSFetchedOnlyForAGoodSet(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := json.Marshal(map[string]any{"keys": []any{jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "one"}, jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "two"}}})
	var mu sync.Mutex
	status, body := 200, good
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	}))
	defer srv.Close()
	now := time.Unix(1_800_000_000, 0)
	var calls [][]string
	j := &JWKS{Client: srv.Client(), Now: func() time.Time { return now }, Fetched: func(ctx context.Context, uri string, kids []string) {
		if uri != srv.URL || ctx.Err() != nil {
			t.Errorf("Fetched(%q) with ctx err %v", uri, ctx.Err())
		}
		calls = append(calls, append([]string(nil), kids...))
	}}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if _, err := j.keys(ctx, srv.URL, "", true); err != nil {
			t.Fatal(err)
		}
	}
	if len(calls) != 2 || strings.Join(calls[1], ",") != "one,two" {
		t.Fatalf("two good fetches: Fetched %v", calls)
	}
	for _, bad := range []struct {
		name   string
		status int
		body   string
	}{
		{"empty set", 200, `{"keys":[]}`},
		{"no usable key", 200, `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"x"}]}`},
		{"not JSON", 200, `<html>maintenance</html>`},
		{"no keys member", 200, `{}`},
		{"server error", 503, `{"keys":[]}`},
	} {
		mu.Lock()
		status, body = bad.status, []byte(bad.body)
		mu.Unlock()
		calls = nil
		keys, err := j.keys(ctx, srv.URL, "", true)
		if len(calls) != 0 {
			t.Errorf("%s: Fetched %v", bad.name, calls)
		}
		// The set fetched before still verifies.
		if err != nil || !hasKID(keys, "one") {
			t.Errorf("%s: keys %v, %v", bad.name, keys, err)
		}
	}
}

// TestSetKIDLedger: the database's record of the kids that signed
// visitors in, on both databases: recorded once (then refreshed at most
// every 10 minutes), reported gone when a fetched set lacks them,
// forgotten an hour after their last sign-in once gone, deleted with
// their record, and refused (ErrNotFound) for a record that is gone.
func TestSetKIDLedger(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := sqlstoretest.Open(t, dsn)
		clock := sqlstoretest.NewClock()
		db.Now = clock.Now
		org := &domain.Organization{Name: "Shop"}
		if err := db.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		client := domain.Client{ID: "widget_1", OrgID: org.ID, Name: "Widget", Type: "public", Scopes: "read write chat"}
		if err := db.CreateClient(ctx, &client); err != nil {
			t.Fatal(err)
		}
		const uri = "https://www.example.com/jwks.json"
		rec := domain.IdentityKey{ClientID: client.ID, OrgID: org.ID, Kind: domain.IdentityJWKSURI, JWKSURI: uri, KID: "set_0123456789abcdef"}
		if err := db.CreateIdentityKey(ctx, &rec, MaxKeys); err != nil {
			t.Fatal(err)
		}
		var ledger Ledger = db
		for _, kid := range []string{"k1", "k2", "k1"} {
			if err := ledger.SawSetKID(ctx, client.ID, rec.KID, kid); err != nil {
				t.Fatal(err)
			}
		}
		if err := ledger.SawSetKID(ctx, client.ID, "set_deleted", "k1"); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("a kid of a record that is gone: %v", err)
		}
		gone := func(held ...string) []string {
			t.Helper()
			g, err := db.SetKIDsGone(ctx, uri, held)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range g {
				if k.ClientID != client.ID || k.Record != rec.KID {
					t.Fatalf("gone kid of another record: %+v", k)
				}
				out = append(out, k.KID)
			}
			sort.Strings(out)
			return out
		}
		if g := gone("k1", "k2", "k3"); len(g) != 0 {
			t.Fatalf("nothing removed: %v", g)
		}
		if g := gone("k2"); strings.Join(g, ",") != "k1" {
			t.Fatalf("k1 removed: %v", g)
		}
		if g, _ := db.SetKIDsGone(ctx, "https://other.example/jwks.json", nil); len(g) != 0 {
			t.Fatalf("another uri: %v", g)
		}

		// Gone kids are kept for an hour after their last sign-in.
		forget := func() {
			t.Helper()
			g, err := db.SetKIDsGone(ctx, uri, []string{"k2"})
			if err == nil {
				err = db.ForgetSetKIDs(ctx, g)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		clock.Add(50 * time.Minute)
		forget()
		if g := gone("k2"); strings.Join(g, ",") != "k1" {
			t.Fatalf("k1 forgotten 50 minutes after its last sign-in: %v", g)
		}
		// A sign-in 50 minutes on rewrites seen_at (older than 10 min), so
		// an hour after the first sign-in k1 is still kept.
		if err := ledger.SawSetKID(ctx, client.ID, rec.KID, "k1"); err != nil {
			t.Fatal(err)
		}
		clock.Add(15 * time.Minute)
		forget()
		if g := gone("k2"); strings.Join(g, ",") != "k1" {
			t.Fatalf("k1 forgotten 15 minutes after a sign-in: %v", g)
		}
		clock.Add(time.Hour)
		forget()
		if g := gone(); strings.Join(g, ",") != "k2" {
			t.Fatalf("after an hour unseen only k1 goes (k2 is held): %v", g)
		}
		// Deleting the record deletes its kids.
		if _, err := db.DeleteIdentityKey(ctx, client.ID, rec.KID); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateIdentityKey(ctx, &rec, MaxKeys); err != nil {
			t.Fatal(err)
		}
		if g := gone(); len(g) != 0 {
			t.Fatalf("kids outlived their record: %v", g)
		}
	})
}

// TestSetKIDLedgerUpgrade: migration 0012 records the kids of the
// sessions live at the upgrade, read from their parents, so that the
// sessions signed in before the ledger existed end with their key too.
func TestSetKIDLedgerUpgrade(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db := sqlstoretest.Open(t, dsn)
		org := &domain.Organization{Name: "Shop"}
		if err := db.CreateOrganization(ctx, org); err != nil {
			t.Fatal(err)
		}
		client := domain.Client{ID: "widget:a_b", OrgID: org.ID, Name: "Widget", Type: "public", Scopes: "read write chat"}
		if err := db.CreateClient(ctx, &client); err != nil {
			t.Fatal(err)
		}
		const uri = "https://www.example.com/jwks.json"
		rec := domain.IdentityKey{ClientID: client.ID, OrgID: org.ID, Kind: domain.IdentityJWKSURI, JWKSURI: uri, KID: "set_0123456789abcdef"}
		if err := db.CreateIdentityKey(ctx, &rec, MaxKeys); err != nil {
			t.Fatal(err)
		}
		family := func(id, parent string) {
			t.Helper()
			f := &domain.Family{ID: id, Kind: "customer", Subject: "v-" + id, OrgID: org.ID, ClientID: client.ID, Scope: "guest", Parent: parent, ExpiresAt: time.Now().Add(time.Hour)}
			if err := db.CreateFamily(ctx, f, domain.RefreshToken{}); err != nil {
				t.Fatal(err)
			}
		}
		family("f1", sqlstore.IdentityParent(client.ID, SetKey(rec.KID, "old/1")))
		family("f2", sqlstore.IdentityParent(client.ID, SetKey(rec.KID, "old/1")))
		family("f3", sqlstore.IdentityParent(client.ID, SetKey(rec.KID, "kept")))
		family("f4", sqlstore.IdentityParent(client.ID, SetKey(rec.KID, "ended")))
		family("f5", sqlstore.IdentityParent(client.ID, "hs_other"))
		if _, err := db.RevokeFamilies(ctx, sqlstore.FamilyFilter{Parent: sqlstore.IdentityParent(client.ID, SetKey(rec.KID, "ended"))}, "test"); err != nil {
			t.Fatal(err)
		}
		// Back to the schema before 0012, and open again.
		for _, stmt := range []string{"DROP TABLE identity_set_kids", "DROP INDEX identity_keys_jwks_uri", "DELETE FROM schema_migrations WHERE version = 12"} {
			if _, err := db.SQL().ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		db2 := sqlstoretest.Open(t, dsn)
		g, err := db2.SetKIDsGone(ctx, uri, []string{"kept"})
		if err != nil {
			t.Fatal(err)
		}
		if len(g) != 1 || g[0].KID != "old/1" || g[0].Record != rec.KID || g[0].ClientID != client.ID {
			t.Fatalf("after the upgrade, gone: %+v", g)
		}
	})
}
