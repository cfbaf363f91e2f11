package credential_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

const issuer = "http://chat.test"

type clock = sqlstoretest.Clock

func newClock() *clock { return sqlstoretest.NewClock() }

// fixture is the credential core wired as backend/app does it, over a
// real store, with one clock.
type fixture struct {
	db      *sqlstore.DB
	clk     *clock
	rev     *token.Revocations
	iss     *token.Issuer
	in      *credential.Inspector
	cascade *credential.Cascade
	fams    *refresh.Families
	org     domain.Organization
	admin   domain.User
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
	secret := token.NewSecret("a-secret-of-at-least-32-characters!!")
	keys, err := token.LoadKeys(ctx, db, token.NewSealer(secret), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	rev := token.NewRevocations()
	fx := &fixture{
		db: db, clk: clk, rev: rev,
		iss: token.NewIssuer(keys, issuer),
		in: &credential.Inspector{Store: db, Now: clk.Now,
			Agents:    token.NewAgentVerifier(keys, issuer, rev.Revoked),
			Customers: token.NewCustomerVerifier(keys, issuer, rev.Revoked)},
		cascade: &credential.Cascade{Store: db, Revocations: rev},
		fams:    refresh.New(db, rev, secret, 720*time.Hour, 10*time.Second, clk.Now),
	}
	fx.org = domain.Organization{Name: "Acme"}
	if err := db.CreateOrganization(ctx, &fx.org); err != nil {
		t.Fatal(err)
	}
	fx.admin = fx.user(t, "admin@example.com", shared.RoleAdmin)
	return fx
}

func (fx *fixture) user(t *testing.T, email string, role shared.Role) domain.User {
	t.Helper()
	u := domain.User{OrgID: fx.org.ID, Email: email, Name: email, Role: role, PasswordHash: "x"}
	if err := fx.db.CreateUser(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func uid(u domain.User) string { return strconv.FormatInt(u.ID, 10) }

// q rewrites ? placeholders for PostgreSQL, for the few reads the tests
// make of their own.
func (fx *fixture) q(query string) string {
	if fx.db.Kind() != "postgres" {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

type auditRow struct {
	org           sql.NullInt64
	actor, detail string
}

// audits lists the audit events of one event and subject, of any
// organization (platform tokens have none).
func (fx *fixture) audits(t *testing.T, event, subject string) []auditRow {
	t.Helper()
	rows, err := fx.db.SQL().Query(fx.q("SELECT org_id, actor, detail FROM audit_events WHERE event = ? AND subject = ? ORDER BY id"), event, subject)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.org, &r.actor, &r.detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (fx *fixture) agentJWT(t *testing.T, c shared.AgentClaims, ttl time.Duration) (string, shared.AgentClaims) {
	t.Helper()
	tok, signed, err := fx.iss.Agent(c, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok, signed
}

func (fx *fixture) sessionOf(u domain.User, sid string) shared.AgentClaims {
	return shared.AgentClaims{Subject: uid(u), Org: u.OrgID, Scope: shared.Scope{Role: u.Role, API: shared.FirstParty}, Session: sid}
}

// longLived stores a credential of kind and returns its secret.
func (fx *fixture) longLived(t *testing.T, c domain.Credential, prefix string) (string, domain.Credential) {
	t.Helper()
	secret, hash := token.NewOpaque(prefix)
	c.Hash = hash
	if err := fx.db.CreateCredential(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	return secret, c
}

func (fx *fixture) pat(t *testing.T, u domain.User, scope string, expires time.Time) (string, domain.Credential) {
	t.Helper()
	return fx.longLived(t, domain.Credential{Kind: "pat", OrgID: u.OrgID, UserID: u.ID, Name: "ci", Scope: scope, ExpiresAt: expires}, token.PrefixPersonal)
}

func (fx *fixture) family(t *testing.T, kind, subject, clientID, prefix string) (domain.Family, string) {
	t.Helper()
	fam := &domain.Family{Kind: kind, Subject: subject, OrgID: fx.org.ID, ClientID: clientID, Scope: "admin read write chat"}
	if kind == refresh.KindCustomer {
		fam.Scope = "guest"
	}
	if kind == refresh.KindImplicit {
		if err := fx.fams.StartSession(context.Background(), fam); err != nil {
			t.Fatal(err)
		}
		return *fam, ""
	}
	secret, err := fx.fams.Start(context.Background(), fam, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return *fam, secret
}

func (fx *fixture) client(t *testing.T, id string) domain.Client {
	t.Helper()
	c := domain.Client{ID: id, OrgID: fx.org.ID, Name: id, Type: "confidential", SecretHash: token.Hash("cas_x"),
		RedirectURIs: []string{"https://app.example/cb"}, Scopes: "read write chat"}
	if err := fx.db.CreateClient(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (fx *fixture) inspect(t *testing.T, raw string) credential.Credential {
	t.Helper()
	c, err := fx.in.Inspect(context.Background(), raw)
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return c
}

// refused inspects raw and returns why it does not work.
func (fx *fixture) refused(t *testing.T, raw string) *credential.Invalid {
	t.Helper()
	c, err := fx.in.Inspect(context.Background(), raw)
	var inv *credential.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("Inspect(%.20q) = %+v, %v; want *Invalid", raw, c, err)
	}
	if c.Kind != "" {
		t.Fatalf("a refused credential came back with kind %q", c.Kind)
	}
	return inv
}

func wantInvalid(t *testing.T, inv *credential.Invalid, kind credential.Kind, org int64, reason string) {
	t.Helper()
	if inv.Kind != kind || inv.Org != org || !strings.Contains(inv.Reason, reason) {
		t.Fatalf("Invalid{Kind %q, Org %d, Reason %q}, want kind %q, org %d, reason containing %q", inv.Kind, inv.Org, inv.Reason, kind, org, reason)
	}
}

func TestInspectRefresh(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		now := fx.clk.Now()

		fam, secret := fx.family(t, refresh.KindAgent, uid(fx.admin), "", token.PrefixRefresh)
		c := fx.inspect(t, secret)
		if c.Kind != credential.Refresh || c.Family != fam.ID || !c.ExpiresAt.Equal(now.Add(720*time.Hour)) || !c.IssuedAt.Equal(now) {
			t.Fatalf("refresh: %+v", c)
		}
		if c.Agent.Subject != uid(fx.admin) || c.Agent.Org != fx.org.ID || c.Agent.Session != fam.ID || c.Agent.ClientID != "" ||
			c.Agent.Scope != (shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}) {
			t.Fatalf("refresh claims: %+v", c.Agent)
		}
		if c.UserID() != fx.admin.ID || c.FirstParty() || !c.Expiry().Equal(c.ExpiresAt) {
			t.Fatalf("UserID %d FirstParty %v Expiry %v", c.UserID(), c.FirstParty(), c.Expiry())
		}
		// Inspecting spends nothing: the token still rotates as a first use.
		fx.inspect(t, secret)
		if _, rt, _ := fx.db.LookupRefresh(ctx, token.Hash(secret)); !rt.RotatedAt.IsZero() {
			t.Fatal("Inspect spent a refresh token")
		}

		_, oauthSecret := fx.family(t, refresh.KindOAuth, uid(fx.admin), "app", token.PrefixRefresh)
		if c := fx.inspect(t, oauthSecret); c.Kind != credential.Refresh || c.Agent.ClientID != "app" {
			t.Fatalf("oauth refresh: %+v", c)
		}

		cfam, csecret := fx.family(t, refresh.KindCustomer, "entity-1", "widget", token.PrefixCustomerRefresh)
		cc := fx.inspect(t, csecret)
		if cc.Kind != credential.CustomerRefresh || cc.Family != cfam.ID || cc.UserID() != 0 {
			t.Fatalf("customer refresh: %+v", cc)
		}
		if cc.Visitor != (shared.CustomerClaims{Subject: "entity-1", Org: fx.org.ID, ClientID: "widget", Session: cfam.ID}) {
			t.Fatalf("visitor: %+v", cc.Visitor)
		}
		if cc.Agent.Scope != (shared.Scope{Role: shared.RoleGuest, API: shared.FirstParty}) {
			t.Fatalf("customer refresh scope: %+v", cc.Agent.Scope)
		}

		// Spent.
		fx.clk.Add(time.Minute)
		if _, _, err := fx.fams.Rotate(ctx, secret, nil); err != nil {
			t.Fatal(err)
		}
		fx.clk.Add(time.Hour)
		wantInvalid(t, fx.refused(t, secret), credential.Refresh, fx.org.ID, "already used 1h ago")

		// Revoked.
		if err := fx.fams.Revoke(ctx, cfam.ID, "signed out"); err != nil {
			t.Fatal(err)
		}
		fx.clk.Add(2 * time.Minute)
		wantInvalid(t, fx.refused(t, csecret), credential.CustomerRefresh, fx.org.ID, "revoked 2m ago (signed out)")

		// Expired.
		_, old := fx.family(t, refresh.KindAgent, uid(fx.admin), "", token.PrefixRefresh)
		fx.clk.Add(721 * time.Hour)
		wantInvalid(t, fx.refused(t, old), credential.Refresh, fx.org.ID, "expired 1h ago")

		// Unknown: nothing is told about an organization.
		wantInvalid(t, fx.refused(t, token.PrefixRefresh+"never"), credential.Refresh, 0, "unknown refresh token")
		wantInvalid(t, fx.refused(t, token.PrefixCustomerRefresh+"never"), credential.CustomerRefresh, 0, "unknown refresh token")
	})
}

func TestInspectAPIToken(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		secret, hash := token.NewOpaque(token.PrefixAPIToken)
		if err := fx.db.SetAPITokenHash(ctx, fx.admin.ID, hash); err != nil {
			t.Fatal(err)
		}
		c := fx.inspect(t, secret)
		want := shared.AgentClaims{Subject: uid(fx.admin), Audience: shared.AudienceAgent, Org: fx.org.ID, Scope: shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}}
		if c.Kind != credential.API || c.Agent != want || !c.LastUsedAt.IsZero() || c.UserID() != fx.admin.ID {
			t.Fatalf("api: %+v", c)
		}
		if c.Agent != credential.ClaimsForUser(fx.admin) {
			t.Fatalf("claims differ from ClaimsForUser: %+v", c.Agent)
		}
		if !c.Expiry().IsZero() {
			t.Fatal("an API token has an expiry")
		}
		// It acts with the user's role as it is now.
		demoted := fx.admin
		demoted.Role = shared.RoleAgent
		if err := fx.db.UpdateUser(ctx, &demoted); err != nil {
			t.Fatal(err)
		}
		if c := fx.inspect(t, secret); c.Agent.Scope.Role != shared.RoleAgent {
			t.Fatalf("role after demotion: %v", c.Agent.Scope.Role)
		}
		// Reset: the old one fails at once.
		_, hash2 := token.NewOpaque(token.PrefixAPIToken)
		if err := fx.db.SetAPITokenHash(ctx, fx.admin.ID, hash2); err != nil {
			t.Fatal(err)
		}
		wantInvalid(t, fx.refused(t, secret), credential.API, 0, "revoked or reset")
		wantInvalid(t, fx.refused(t, token.PrefixAPIToken+"never"), credential.API, 0, "revoked or reset")
	})
}

func TestInspectPersonal(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		now := fx.clk.Now()
		secret, cr := fx.pat(t, fx.admin, "admin read", time.Time{})
		c := fx.inspect(t, secret)
		if c.Kind != credential.Personal || c.ID != cr.ID || c.Name != "ci" || !c.IssuedAt.Equal(now) || !c.ExpiresAt.IsZero() || !c.Expiry().IsZero() {
			t.Fatalf("personal: %+v", c)
		}
		want := shared.AgentClaims{Subject: uid(fx.admin), Audience: shared.AudienceAgent, Org: fx.org.ID, Scope: shared.Scope{Role: shared.RoleAdmin, API: shared.ScopeRead}}
		if c.Agent != want || c.UserID() != fx.admin.ID {
			t.Fatalf("personal claims: %+v", c.Agent)
		}

		t.Run("narrower than the owner stays narrow", func(t *testing.T) {
			s, _ := fx.pat(t, fx.admin, "agent read write", time.Time{})
			if c := fx.inspect(t, s); c.Agent.Scope != (shared.Scope{Role: shared.RoleAgent, API: shared.ScopeRead | shared.ScopeWrite}) {
				t.Fatalf("%+v", c.Agent.Scope)
			}
		})

		t.Run("a demoted owner shrinks the scope", func(t *testing.T) {
			u := fx.user(t, "demoted@example.com", shared.RoleAdmin)
			s, _ := fx.pat(t, u, "admin read write", time.Time{})
			u.Role = shared.RoleAgent
			if err := fx.db.UpdateUser(ctx, &u); err != nil {
				t.Fatal(err)
			}
			c := fx.inspect(t, s)
			if c.Agent.Scope != (shared.Scope{Role: shared.RoleAgent, API: shared.ScopeRead | shared.ScopeWrite}) {
				t.Fatalf("scope after demotion: %+v", c.Agent.Scope)
			}
			// Promoted again, it gets back what it was made with, never more.
			u.Role = shared.RoleAdmin
			if err := fx.db.UpdateUser(ctx, &u); err != nil {
				t.Fatal(err)
			}
			if c := fx.inspect(t, s); c.Agent.Scope.Role != shared.RoleAdmin {
				t.Fatalf("scope after promotion: %+v", c.Agent.Scope)
			}
		})

		t.Run("a deleted owner", func(t *testing.T) {
			// A row whose owner is gone (DeleteUser removes a user's tokens
			// with them; this one was left behind).
			s, _ := fx.longLived(t, domain.Credential{Kind: "pat", OrgID: fx.org.ID, UserID: 999999, Name: "orphan", Scope: "agent read"}, token.PrefixPersonal)
			wantInvalid(t, fx.refused(t, s), credential.Personal, 0, "no longer exists")
		})

		t.Run("expired", func(t *testing.T) {
			s, cr := fx.pat(t, fx.admin, "admin read", fx.clk.Now().Add(time.Hour))
			c := fx.inspect(t, s)
			if !c.ExpiresAt.Equal(cr.ExpiresAt) || !c.Expiry().Equal(cr.ExpiresAt) {
				t.Fatalf("expiry: %+v", c)
			}
			fx.clk.Add(3 * time.Hour)
			wantInvalid(t, fx.refused(t, s), credential.Personal, fx.org.ID, "expired 2h ago")
		})

		t.Run("a secret stored as another kind", func(t *testing.T) {
			s, hash := token.NewOpaque(token.PrefixPersonal)
			if err := fx.db.CreateCredential(ctx, &domain.Credential{Kind: "bot", OrgID: fx.org.ID, Name: "b", Hash: hash}); err != nil {
				t.Fatal(err)
			}
			wantInvalid(t, fx.refused(t, s), credential.Personal, 0, "revoked or reset")
		})

		t.Run("deleted", func(t *testing.T) {
			s, cr := fx.pat(t, fx.admin, "admin read", time.Time{})
			if err := fx.db.DeleteCredential(ctx, cr.ID); err != nil {
				t.Fatal(err)
			}
			wantInvalid(t, fx.refused(t, s), credential.Personal, 0, "revoked or reset")
		})
	})
}

func TestInspectBotAndPlatform(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		fx := newFixture(t, dsn)
		bs, bot := fx.longLived(t, domain.Credential{Kind: "bot", OrgID: fx.org.ID, Name: "helper"}, token.PrefixBot)
		c := fx.inspect(t, bs)
		want := shared.AgentClaims{Subject: "bot:" + strconv.FormatInt(bot.ID, 10), Audience: shared.AudienceAgent, Org: fx.org.ID,
			Scope: shared.Scope{Role: shared.RoleBot, API: shared.FirstParty}}
		if c.Kind != credential.Bot || c.ID != bot.ID || c.Name != "helper" || c.Agent != want || c.UserID() != 0 {
			t.Fatalf("bot: %+v", c)
		}

		ps, pl := fx.longLived(t, domain.Credential{Kind: "platform", Name: "ops"}, token.PrefixPlatform)
		c = fx.inspect(t, ps)
		if c.Kind != credential.Platform || c.ID != pl.ID || c.Agent != (shared.AgentClaims{Subject: "platform:" + strconv.FormatInt(pl.ID, 10)}) || c.UserID() != 0 {
			t.Fatalf("platform: %+v", c)
		}

		es, _ := fx.longLived(t, domain.Credential{Kind: "bot", OrgID: fx.org.ID, Name: "old", ExpiresAt: fx.clk.Now().Add(time.Minute)}, token.PrefixBot)
		fx.clk.Add(2 * time.Minute)
		wantInvalid(t, fx.refused(t, es), credential.Bot, fx.org.ID, "expired 1m ago")
		wantInvalid(t, fx.refused(t, token.PrefixBot+"never"), credential.Bot, 0, "revoked or reset")
		wantInvalid(t, fx.refused(t, token.PrefixPlatform+"never"), credential.Platform, 0, "revoked or reset")
		// A bot's secret presented as a platform token's is nothing.
		wantInvalid(t, fx.refused(t, token.PrefixPlatform+bs[len(token.PrefixBot):]), credential.Platform, 0, "revoked or reset")
	})
}

func TestInspectJWT(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		fx := newFixture(t, dsn)
		now := fx.clk.Now()

		session, signed := fx.agentJWT(t, fx.sessionOf(fx.admin, "sid-1"), time.Hour)
		c := fx.inspect(t, session)
		if c.Kind != credential.Session || c.Agent != signed || !c.IssuedAt.Equal(now.Truncate(time.Second)) {
			t.Fatalf("session: %+v", c)
		}
		if !c.FirstParty() || c.UserID() != fx.admin.ID || !c.Expiry().Equal(time.Unix(signed.Expiry, 0)) {
			t.Fatalf("session helpers: %v %d %v", c.FirstParty(), c.UserID(), c.Expiry())
		}

		oauthClaims := fx.sessionOf(fx.admin, "grant-1")
		oauthClaims.ClientID, oauthClaims.Scope = "app", shared.Scope{Role: shared.RoleAgent, API: shared.ScopeRead}
		oauthTok, _ := fx.agentJWT(t, oauthClaims, time.Hour)
		if c := fx.inspect(t, oauthTok); c.Kind != credential.OAuth || c.Agent.ClientID != "app" || c.UserID() != fx.admin.ID || c.FirstParty() {
			t.Fatalf("oauth: %+v", c)
		}

		cc := shared.AgentClaims{Subject: "client:app", Org: fx.org.ID, ClientID: "app", Scope: shared.Scope{Role: shared.RoleBot, API: shared.ScopeRead},
			Session: sqlstore.ClientCredentialsSession("app", 0) + ".tok1"}
		ccTok, _ := fx.agentJWT(t, cc, time.Hour)
		if c := fx.inspect(t, ccTok); c.Kind != credential.ClientToken || c.UserID() != 0 || c.FirstParty() {
			t.Fatalf("client credentials: %+v", c)
		}

		custTok, cs, err := fx.iss.Customer(shared.CustomerClaims{Subject: "entity-1", Org: fx.org.ID, ClientID: "widget", Session: "vs-1"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, inspect := range []func(string) (credential.Credential, error){
			func(raw string) (credential.Credential, error) { return fx.in.Inspect(context.Background(), raw) },
			fx.in.JWT,
			fx.in.CustomerJWT,
		} {
			c, err := inspect(custTok)
			if err != nil || c.Kind != credential.Customer || c.Visitor != cs || c.UserID() != 0 || !c.Expiry().Equal(time.Unix(cs.Expiry, 0)) {
				t.Fatalf("customer: %+v %v", c, err)
			}
		}
		// An agent token is not a customer one.
		_, err = fx.in.CustomerJWT(session)
		var inv *credential.Invalid
		if !errors.As(err, &inv) || inv.Kind != "" || !errors.Is(err, token.ErrWrongFamily) {
			t.Fatalf("agent token as a customer's: %v", err)
		}

		// Revoked: the organization is told (the signature verified).
		fx.rev.Add("sid-1", "vs-1")
		inv = fx.refused(t, session)
		if inv.Org != fx.org.ID || !errors.Is(inv, token.ErrRevoked) || inv.Kind != "" {
			t.Fatalf("revoked session: %+v", inv)
		}
		inv = fx.refused(t, custTok)
		if inv.Kind != credential.Customer || inv.Org != fx.org.ID || !errors.Is(inv, token.ErrRevoked) {
			t.Fatalf("revoked customer: %+v", inv)
		}
		// The client's epoch ends its client-credentials tokens.
		fx.rev.Add(sqlstore.ClientCredentialsSession("app", 0))
		if inv := fx.refused(t, ccTok); !errors.Is(inv, token.ErrRevoked) {
			t.Fatalf("cc token after its epoch was revoked: %+v", inv)
		}

		// Expired.
		fx.clk.Add(2 * time.Hour)
		inv = fx.refused(t, oauthTok)
		if inv.Org != fx.org.ID || !errors.Is(inv, token.ErrExpired) || !strings.Contains(inv.Reason, "expired 1h ago") {
			t.Fatalf("expired: %+v", inv)
		}
	})
}

func TestInspectGarbage(t *testing.T) {
	fx := newFixture(t, sqlstoretest.SQLite(t))
	wantInvalid(t, fx.refused(t, ""), "", 0, "no token was sent")
	for _, raw := range []string{
		"hello", "a.b.c", "Bearer abc", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("x", 9000), "..", "cax_unknown_prefix",
	} {
		inv := fx.refused(t, raw)
		if inv.Kind != "" || inv.Org != 0 || inv.Reason == "" {
			t.Errorf("%.30q: %+v", raw, inv)
		}
	}
	// A bare prefix is that kind, unknown.
	for prefix, kind := range map[string]credential.Kind{
		token.PrefixRefresh: credential.Refresh, token.PrefixCustomerRefresh: credential.CustomerRefresh, token.PrefixAPIToken: credential.API,
		token.PrefixPersonal: credential.Personal, token.PrefixBot: credential.Bot, token.PrefixPlatform: credential.Platform,
	} {
		if inv := fx.refused(t, prefix); inv.Kind != kind {
			t.Errorf("%s: kind %q, want %q", prefix, inv.Kind, kind)
		}
	}
}

// A store that does not answer is a failure to check, never "invalid".
func TestInspectStoreDown(t *testing.T) {
	fx := newFixture(t, sqlstoretest.SQLite(t))
	down, err := sqlstore.Open(context.Background(), sqlstoretest.SQLite(t))
	if err != nil {
		t.Fatal(err)
	}
	down.Close()
	in := &credential.Inspector{Store: down, Agents: fx.in.Agents, Customers: fx.in.Customers}
	for _, prefix := range []string{token.PrefixRefresh, token.PrefixCustomerRefresh, token.PrefixAPIToken, token.PrefixPersonal, token.PrefixBot, token.PrefixPlatform} {
		s, _ := token.NewOpaque(prefix)
		_, err := in.Inspect(context.Background(), s)
		var inv *credential.Invalid
		if err == nil || errors.As(err, &inv) {
			t.Errorf("%s with the store down: %v", prefix, err)
		}
	}
	// Access tokens need no store.
	tok, _ := fx.agentJWT(t, fx.sessionOf(fx.admin, "s"), time.Hour)
	if c, err := in.Inspect(context.Background(), tok); err != nil || c.Kind != credential.Session {
		t.Fatalf("JWT with the store down: %v", err)
	}
}

func basic(account int64, tok string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(account, 10)+":"+tok))
}

func TestInspectBasic(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		secret, cr := fx.pat(t, fx.admin, "admin read", time.Time{})
		c, err := fx.in.InspectBasic(ctx, basic(fx.org.ID, secret))
		if err != nil || c.Kind != credential.Personal || c.ID != cr.ID || c.Agent.Org != fx.org.ID {
			t.Fatalf("basic: %+v %v", c, err)
		}

		basicRefused := func(h string, reason string) {
			t.Helper()
			c, err := fx.in.InspectBasic(ctx, h)
			var inv *credential.Invalid
			if !errors.As(err, &inv) || c.Kind != "" || inv.Kind != credential.Personal || !strings.Contains(inv.Reason, reason) {
				t.Fatalf("InspectBasic(%q) = %+v, %v; want reason %q", h, c, err, reason)
			}
		}
		other := fx.org.ID + 1
		basicRefused(basic(other, secret), "account_id in the Basic credential is "+strconv.FormatInt(other, 10)+" but the token belongs to account "+strconv.FormatInt(fx.org.ID, 10))
		api, hash := token.NewOpaque(token.PrefixAPIToken)
		if err := fx.db.SetAPITokenHash(ctx, fx.admin.ID, hash); err != nil {
			t.Fatal(err)
		}
		basicRefused(basic(fx.org.ID, api), "not a personal access token")
		basicRefused("Basic !!!", credential.ErrBasicEncoding.Error())
		basicRefused("Basic "+base64.StdEncoding.EncodeToString([]byte("1%3A"+secret)), "%3A")
		basicRefused("Basic "+base64.StdEncoding.EncodeToString([]byte("me:"+secret)), "account_id")
		basicRefused(basic(fx.org.ID, token.PrefixPersonal+"never"), "revoked or reset")
	})
}

func TestUse(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)

		t.Run("personal: at most once a minute, first use audited", func(t *testing.T) {
			secret, cr := fx.pat(t, fx.admin, "admin read", time.Time{})
			subject := "pat:" + strconv.FormatInt(cr.ID, 10)
			first := fx.clk.Now()
			if err := fx.in.Use(ctx, fx.inspect(t, secret)); err != nil {
				t.Fatal(err)
			}
			c := fx.inspect(t, secret)
			if !c.LastUsedAt.Equal(first) {
				t.Fatalf("last used %v, want %v", c.LastUsedAt, first)
			}
			ev := fx.audits(t, "credential.first_use", subject)
			if len(ev) != 1 || ev[0].org.Int64 != fx.org.ID || ev[0].actor != uid(fx.admin) || ev[0].detail != "ci" {
				t.Fatalf("first-use audit: %+v", ev)
			}
			for _, d := range []time.Duration{30 * time.Second, 30 * time.Second} { // to exactly a minute
				fx.clk.Add(d)
				if err := fx.in.Use(ctx, fx.inspect(t, secret)); err != nil {
					t.Fatal(err)
				}
				if c := fx.inspect(t, secret); !c.LastUsedAt.Equal(first) {
					t.Fatalf("touched again within a minute: %v", c.LastUsedAt)
				}
			}
			fx.clk.Add(time.Millisecond)
			if err := fx.in.Use(ctx, fx.inspect(t, secret)); err != nil {
				t.Fatal(err)
			}
			if c := fx.inspect(t, secret); !c.LastUsedAt.Equal(fx.clk.Now()) {
				t.Fatalf("not touched after a minute: %v", c.LastUsedAt)
			}
			if ev := fx.audits(t, "credential.first_use", subject); len(ev) != 1 {
				t.Fatalf("first use audited %d times", len(ev))
			}
		})

		t.Run("bot and platform first uses are audited", func(t *testing.T) {
			bs, bot := fx.longLived(t, domain.Credential{Kind: "bot", OrgID: fx.org.ID, Name: "helper"}, token.PrefixBot)
			ps, pl := fx.longLived(t, domain.Credential{Kind: "platform", Name: "ops"}, token.PrefixPlatform)
			for _, s := range []string{bs, ps} {
				if err := fx.in.Use(ctx, fx.inspect(t, s)); err != nil {
					t.Fatal(err)
				}
			}
			botID, plID := strconv.FormatInt(bot.ID, 10), strconv.FormatInt(pl.ID, 10)
			if ev := fx.audits(t, "credential.first_use", "bot:"+botID); len(ev) != 1 || ev[0].actor != "bot:"+botID || ev[0].org.Int64 != fx.org.ID || ev[0].detail != "helper" {
				t.Fatalf("bot: %+v", ev)
			}
			if ev := fx.audits(t, "credential.first_use", "platform:"+plID); len(ev) != 1 || ev[0].org.Valid || ev[0].actor != "platform:"+plID {
				t.Fatalf("platform: %+v", ev)
			}
			if c := fx.inspect(t, bs); !c.LastUsedAt.Equal(fx.clk.Now()) {
				t.Fatalf("bot last used %v", c.LastUsedAt)
			}
			// A reset forgets the last use, and the next use is a first again.
			_, hash := token.NewOpaque(token.PrefixBot)
			if err := fx.db.ResetCredential(ctx, bot.ID, hash); err != nil {
				t.Fatal(err)
			}
			got, _ := fx.db.CredentialByID(ctx, "bot", bot.ID)
			if !got.LastUsedAt.IsZero() {
				t.Fatal("reset kept the last use")
			}
		})

		t.Run("the user API token records its use", func(t *testing.T) {
			u := fx.user(t, "api@example.com", shared.RoleAgent)
			secret, hash := token.NewOpaque(token.PrefixAPIToken)
			if err := fx.db.SetAPITokenHash(ctx, u.ID, hash); err != nil {
				t.Fatal(err)
			}
			first := fx.clk.Now()
			if err := fx.in.Use(ctx, fx.inspect(t, secret)); err != nil {
				t.Fatal(err)
			}
			if c := fx.inspect(t, secret); !c.LastUsedAt.Equal(first) {
				t.Fatalf("last used %v", c.LastUsedAt)
			}
			fx.clk.Add(59 * time.Second)
			fx.in.Use(ctx, fx.inspect(t, secret))
			if c := fx.inspect(t, secret); !c.LastUsedAt.Equal(first) {
				t.Fatalf("touched within a minute: %v", c.LastUsedAt)
			}
			fx.clk.Add(2 * time.Second)
			fx.in.Use(ctx, fx.inspect(t, secret))
			if c := fx.inspect(t, secret); !c.LastUsedAt.Equal(fx.clk.Now()) {
				t.Fatalf("not touched after a minute: %v", c.LastUsedAt)
			}
		})

		t.Run("access tokens record nothing", func(t *testing.T) {
			tok, _ := fx.agentJWT(t, fx.sessionOf(fx.admin, "s"), time.Hour)
			if err := fx.in.Use(ctx, fx.inspect(t, tok)); err != nil {
				t.Fatal(err)
			}
		})
	})
}

var allKinds = []credential.Kind{
	credential.Session, credential.OAuth, credential.ClientToken, credential.Customer, credential.Refresh,
	credential.CustomerRefresh, credential.API, credential.Personal, credential.Bot, credential.Platform, "",
}

func code(err error) string {
	if err == nil {
		return ""
	}
	e, ok := apierr.As(err)
	if !ok {
		return "not an apierr: " + err.Error()
	}
	return e.Code
}

func TestLongLived(t *testing.T) {
	for _, k := range allKinds {
		err := credential.LongLived(credential.Credential{Kind: k}, "making a personal access token")
		if k == credential.Session {
			if err != nil {
				t.Errorf("session refused: %v", err)
			}
			continue
		}
		e, _ := apierr.As(err)
		if code(err) != apierr.CodeSignInRequired || !strings.HasPrefix(e.Message, "making a personal access token needs a first-party sign-in") {
			t.Errorf("%q: %v", k, err)
		}
	}
}

func TestWithin(t *testing.T) {
	rw := shared.ScopeRead | shared.ScopeWrite
	for _, c := range []struct {
		holder, want shared.Scope
		ok           bool
	}{
		{shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}, shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}, true},
		{shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}, shared.Scope{Role: shared.RoleAgent, API: shared.ScopeRead}, true},
		{shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}, shared.Scope{API: shared.ScopeChat}, true}, // no role asked
		{shared.Scope{Role: shared.RoleAgent, API: rw}, shared.Scope{Role: shared.RoleAgent, API: rw}, true},
		{shared.Scope{Role: shared.RoleAgent, API: rw}, shared.Scope{Role: shared.RoleAgent}, true},
		{shared.Scope{Role: shared.RoleAgent, API: rw}, shared.Scope{Role: shared.RoleBot, API: shared.ScopeRead}, false},
		{shared.Scope{Role: shared.RoleBot, API: shared.FirstParty}, shared.Scope{Role: shared.RoleAdmin}, false},
		{shared.Scope{Role: shared.RoleAgent, API: rw}, shared.Scope{Role: shared.RoleAgent, API: shared.ScopeChat}, false},
		{shared.Scope{Role: shared.RoleAdmin, API: shared.ScopeRead}, shared.Scope{API: rw}, false},
		{shared.Scope{Role: shared.RoleAdmin}, shared.Scope{API: shared.ScopeRead}, false},
		{shared.Scope{}, shared.Scope{Role: shared.RoleGuest}, false}, // a holder without a role holds none
	} {
		err := credential.Within(c.holder, c.want)
		if c.ok && err != nil || !c.ok && code(err) != apierr.CodeInsufficientScope {
			t.Errorf("Within(%q, %q) = %v, want ok %v", c.holder, c.want, err, c.ok)
		}
	}
}

func TestNotAfter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(time.Hour)
	session := credential.Credential{Kind: credential.Session, Agent: shared.AgentClaims{Expiry: exp.Unix()}}
	customer := credential.Credential{Kind: credential.Customer, Visitor: shared.CustomerClaims{Expiry: exp.Unix()}}
	expiringPAT := credential.Credential{Kind: credential.Personal, ExpiresAt: exp}
	forever := credential.Credential{Kind: credential.Personal}
	api := credential.Credential{Kind: credential.API}
	for _, c := range []struct {
		name   string
		holder credential.Credential
		want   time.Time
		got    time.Time
	}{
		{"session, no expiry asked", session, time.Time{}, exp},
		{"session, later asked", session, exp.Add(time.Minute), exp},
		{"session, sooner asked", session, now.Add(time.Minute), now.Add(time.Minute)},
		{"session, exactly its end", session, exp, exp},
		{"customer, no expiry asked", customer, time.Time{}, exp},
		{"expiring PAT, later asked", expiringPAT, exp.Add(time.Hour), exp},
		{"expiring PAT, sooner asked", expiringPAT, now, now},
		{"PAT without expiry, none asked", forever, time.Time{}, time.Time{}},
		{"PAT without expiry, some asked", forever, exp, exp},
		{"API token, none asked", api, time.Time{}, time.Time{}},
	} {
		got, err := credential.NotAfter(c.holder, c.want)
		if err != nil || !got.Equal(c.got) {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.got)
		}
	}
}

func TestMayVouch(t *testing.T) {
	// Every kind, every role a token can carry and every set of API
	// scopes: only first-party agent-family kinds (not an OAuth app's
	// token) that may write messages vouch.
	agentFamily := map[credential.Kind]bool{
		credential.Session: true, credential.ClientToken: true,
		credential.API: true, credential.Personal: true, credential.Bot: true,
	}
	roles := []shared.Role{shared.RoleInvalid, shared.RoleAgent, shared.RoleBot, shared.RoleAdmin}
	n := 0
	for _, k := range allKinds {
		for _, role := range roles {
			for api := shared.APIScope(0); api <= shared.FirstParty; api++ {
				holder := credential.Credential{Kind: k, Agent: shared.AgentClaims{Subject: "1", Org: 1, Scope: shared.Scope{Role: role, API: api}}}
				err := credential.MayVouch(holder)
				canWrite := role != shared.RoleInvalid && api&shared.ScopeWrite != 0 && api&shared.ScopeChat != 0
				var want string
				switch {
				case !agentFamily[k]:
					want = apierr.CodeForbidden
				case !canWrite:
					want = apierr.CodeInsufficientScope
				}
				if got := code(err); got != want {
					t.Errorf("kind %q scope %q: %q (%v), want %q", k, holder.Agent.Scope, got, err, want)
				}
				n++
			}
		}
	}
	if n != len(allKinds)*len(roles)*8 {
		t.Fatalf("%d combinations", n)
	}
}

// Each event runs on a fresh database of each kind.
func TestCascade(t *testing.T) {
	ctx := context.Background()
	run := func(name string, fn func(t *testing.T, fx *fixture)) {
		t.Run(name, func(t *testing.T) {
			sqlstoretest.Each(t, func(t *testing.T, dsn string) { fn(t, newFixture(t, dsn)) })
		})
	}
	live := func(t *testing.T, fx *fixture, want bool, fams ...domain.Family) {
		t.Helper()
		for _, f := range fams {
			got, err := fx.db.Family(ctx, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.RevokedAt.IsZero() != want || fx.rev.Revoked(f.ID) == want {
				t.Errorf("family %s (%s of %s): revoked at %v, in the set %v; want live %v", f.ID, f.Kind, f.Subject, got.RevokedAt, fx.rev.Revoked(f.ID), want)
			}
		}
	}

	run("UserChanged keeps keep", func(t *testing.T, fx *fixture) {
		u := fx.user(t, "agent@example.com", shared.RoleAgent)
		keep, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		other, otherRT := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		grant, _ := fx.family(t, refresh.KindOAuth, uid(u), "app", token.PrefixRefresh)
		implicit, _ := fx.family(t, refresh.KindImplicit, uid(u), "app", "")
		// A visitor whose entity_id happens to read as the user id.
		visitor, _ := fx.family(t, refresh.KindCustomer, uid(u), "widget", token.PrefixCustomerRefresh)
		colleague, _ := fx.family(t, refresh.KindAgent, uid(fx.admin), "", token.PrefixRefresh)

		keepTok, _ := fx.agentJWT(t, fx.sessionOf(u, keep.ID), time.Hour)
		otherTok, _ := fx.agentJWT(t, fx.sessionOf(u, other.ID), time.Hour)

		if err := fx.cascade.UserChanged(ctx, u.ID, keep.ID, "password changed"); err != nil {
			t.Fatal(err)
		}
		live(t, fx, false, other, grant, implicit)
		live(t, fx, true, keep, visitor, colleague)
		if got, _ := fx.db.Family(ctx, other.ID); got.Reason != "password changed" {
			t.Errorf("reason %q", got.Reason)
		}
		fx.inspect(t, keepTok)
		if inv := fx.refused(t, otherTok); !errors.Is(inv, token.ErrRevoked) {
			t.Fatalf("access token of an ended session: %+v", inv)
		}
		if _, _, err := fx.fams.Rotate(ctx, otherRT, nil); !errors.Is(err, refresh.ErrRevoked) {
			t.Fatalf("refresh of an ended session: %v", err)
		}
		// Without keep, every one ends.
		if err := fx.cascade.UserChanged(ctx, u.ID, "", "role changed"); err != nil {
			t.Fatal(err)
		}
		live(t, fx, false, keep)
		live(t, fx, true, visitor, colleague)
	})

	run("SignOut and SignOutAll", func(t *testing.T, fx *fixture) {
		u := fx.user(t, "agent@example.com", shared.RoleAgent)
		a1, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		a2, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		a3, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		grant, _ := fx.family(t, refresh.KindOAuth, uid(u), "app", token.PrefixRefresh)
		implicit, _ := fx.family(t, refresh.KindImplicit, uid(u), "app", "")
		colleague, _ := fx.family(t, refresh.KindAgent, uid(fx.admin), "", token.PrefixRefresh)

		if err := fx.cascade.SignOut(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if err := fx.cascade.SignOut(ctx, a1.ID); err != nil {
			t.Fatal(err)
		}
		live(t, fx, false, a1)
		live(t, fx, true, a2, a3, grant, implicit, colleague)

		if err := fx.cascade.SignOutAll(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		live(t, fx, false, a2, a3)
		// OAuth grants are the apps'.
		live(t, fx, true, grant, implicit, colleague)
		if got, _ := fx.db.Family(ctx, a2.ID); got.Reason != "signed out everywhere" {
			t.Errorf("reason %q", got.Reason)
		}
	})

	for _, remove := range []bool{false, true} {
		name := "ClientChanged"
		if remove {
			name = "DeleteClient"
		}
		run(name, func(t *testing.T, fx *fixture) {
			app := fx.client(t, "app")
			fx.client(t, "other-app")
			u := fx.user(t, "agent@example.com", shared.RoleAgent)
			grant, grantRT := fx.family(t, refresh.KindOAuth, uid(u), app.ID, token.PrefixRefresh)
			implicit, _ := fx.family(t, refresh.KindImplicit, uid(u), app.ID, "")
			visitor, _ := fx.family(t, refresh.KindCustomer, "entity-1", app.ID, token.PrefixCustomerRefresh)
			otherGrant, _ := fx.family(t, refresh.KindOAuth, uid(u), "other-app", token.PrefixRefresh)
			signIn, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)

			epoch0 := sqlstore.ClientCredentialsSession(app.ID, app.CCEpoch)
			ccClaims := shared.AgentClaims{Subject: "client:" + app.ID, Org: fx.org.ID, ClientID: app.ID,
				Scope: shared.Scope{Role: shared.RoleBot, API: shared.ScopeRead}, Session: epoch0 + ".tok1"}
			ccTok, _ := fx.agentJWT(t, ccClaims, time.Hour)
			otherCC := ccClaims
			otherCC.Subject, otherCC.ClientID, otherCC.Session = "client:other-app", "other-app", sqlstore.ClientCredentialsSession("other-app", 0)+".tok2"
			otherCCTok, _ := fx.agentJWT(t, otherCC, time.Hour)
			fx.inspect(t, ccTok)

			var err error
			if remove {
				err = fx.cascade.DeleteClient(ctx, app.ID)
			} else {
				err = fx.cascade.ClientChanged(ctx, app.ID, "secret reset")
			}
			if err != nil {
				t.Fatal(err)
			}
			live(t, fx, false, grant, implicit, visitor)
			live(t, fx, true, otherGrant, signIn)
			if _, _, err := fx.fams.Rotate(ctx, grantRT, nil); !errors.Is(err, refresh.ErrRevoked) {
				t.Fatalf("grant's refresh token: %v", err)
			}
			// The client-credentials epoch: revoked here and in the store.
			if !fx.rev.Revoked(epoch0) || !fx.rev.Revoked(epoch0+".tok1") {
				t.Fatal("the epoch session is not revoked")
			}
			if inv := fx.refused(t, ccTok); !errors.Is(inv, token.ErrRevoked) {
				t.Fatalf("client-credentials token: %+v", inv)
			}
			fx.inspect(t, otherCCTok)
			ids, _, err := fx.db.RevokedSince(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !contains(ids, epoch0) || !contains(ids, grant.ID) || !contains(ids, implicit.ID) || !contains(ids, visitor.ID) {
				t.Fatalf("other processes would not learn of it: %v", ids)
			}

			got, err := fx.db.Client(ctx, app.ID)
			if remove {
				if !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("deleted client still found: %+v %v", got, err)
				}
				if err := fx.cascade.DeleteClient(ctx, app.ID); !errors.Is(err, domain.ErrNotFound) {
					t.Fatalf("deleting it again: %v", err)
				}
				return
			}
			if err != nil || got.CCEpoch != app.CCEpoch+1 {
				t.Fatalf("epoch after the change: %+v %v", got, err)
			}
			// Tokens minted in the new epoch are not caught.
			ccClaims.Session = sqlstore.ClientCredentialsSession(app.ID, got.CCEpoch) + ".tok3"
			fresh, _ := fx.agentJWT(t, ccClaims, time.Hour)
			fx.inspect(t, fresh)
			// A second change ends the new epoch too.
			if err := fx.cascade.ClientChanged(ctx, app.ID, "made public"); err != nil {
				t.Fatal(err)
			}
			if inv := fx.refused(t, fresh); !errors.Is(inv, token.ErrRevoked) {
				t.Fatalf("second epoch: %+v", inv)
			}
			if got, _ := fx.db.Client(ctx, app.ID); got.CCEpoch != app.CCEpoch+2 {
				t.Fatalf("epoch %d", got.CCEpoch)
			}
		})
	}

	run("DeleteUser", func(t *testing.T, fx *fixture) {
		u := fx.user(t, "leaver@example.com", shared.RoleAgent)
		pat1, _ := fx.pat(t, u, "agent read", time.Time{})
		pat2, _ := fx.pat(t, u, "agent read write chat", time.Time{})
		adminPAT, _ := fx.pat(t, fx.admin, "admin read", time.Time{})
		bot, _ := fx.longLived(t, domain.Credential{Kind: "bot", OrgID: fx.org.ID, Name: "helper"}, token.PrefixBot)
		api, hash := token.NewOpaque(token.PrefixAPIToken)
		if err := fx.db.SetAPITokenHash(ctx, u.ID, hash); err != nil {
			t.Fatal(err)
		}
		signIn, _ := fx.family(t, refresh.KindAgent, uid(u), "", token.PrefixRefresh)
		grant, _ := fx.family(t, refresh.KindOAuth, uid(u), "app", token.PrefixRefresh)
		implicit, _ := fx.family(t, refresh.KindImplicit, uid(u), "app", "")
		colleague, _ := fx.family(t, refresh.KindAgent, uid(fx.admin), "", token.PrefixRefresh)
		sessionTok, _ := fx.agentJWT(t, fx.sessionOf(u, signIn.ID), time.Hour)

		if err := fx.cascade.DeleteUser(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{pat1, pat2, api} {
			if inv := fx.refused(t, s); !strings.Contains(inv.Reason, "revoked or reset") {
				t.Fatalf("credential of a deleted user: %+v", inv)
			}
		}
		if creds, err := fx.db.ListCredentials(ctx, "pat", fx.org.ID, u.ID); err != nil || len(creds) != 0 {
			t.Fatalf("personal tokens left: %+v %v", creds, err)
		}
		live(t, fx, false, signIn, grant, implicit)
		live(t, fx, true, colleague)
		if inv := fx.refused(t, sessionTok); !errors.Is(inv, token.ErrRevoked) {
			t.Fatalf("session of a deleted user: %+v", inv)
		}
		fx.inspect(t, adminPAT)
		fx.inspect(t, bot)
		if _, err := fx.db.UserByID(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("user still there: %v", err)
		}
		if err := fx.cascade.DeleteUser(ctx, u.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("deleting again: %v", err)
		}
	})

	run("EndSession", func(t *testing.T, fx *fixture) {
		sid := sqlstore.ClientCredentialsSession("app", 0) + ".tok9"
		claims := shared.AgentClaims{Subject: "client:app", Org: fx.org.ID, ClientID: "app", Scope: shared.Scope{Role: shared.RoleBot, API: shared.ScopeRead}, Session: sid}
		tok, _ := fx.agentJWT(t, claims, time.Hour)
		claims.Session = sqlstore.ClientCredentialsSession("app", 0) + ".tok10"
		sibling, _ := fx.agentJWT(t, claims, time.Hour)
		if err := fx.cascade.EndSession(ctx, sid, "client_credentials", "client:app", fx.org.ID, "revoked at /oauth/revoke"); err != nil {
			t.Fatal(err)
		}
		if inv := fx.refused(t, tok); !errors.Is(inv, token.ErrRevoked) {
			t.Fatalf("%+v", inv)
		}
		fx.inspect(t, sibling)
		if ids, _, _ := fx.db.RevokedSince(ctx, 0); !contains(ids, sid) {
			t.Fatalf("not in the store: %v", ids)
		}
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
