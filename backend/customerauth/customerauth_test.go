package customerauth_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/token"
	"chatauth/shared"
)

const (
	issuer     = "http://chat.test"
	customerTT = time.Hour
	refreshTTL = 720 * time.Hour
	grace      = 10 * time.Second
)

type clock = sqlstoretest.Clock

func newClock() *clock { return sqlstoretest.NewClock() }

type fixture struct {
	db        *sqlstore.DB
	clk       *clock
	rev       *token.Revocations
	iss       *token.Issuer
	customers *token.CustomerVerifier
	agents    *token.AgentVerifier
	in        *credential.Inspector
	fams      *refresh.Families
	svc       *customerauth.Service

	root, child, other domain.Organization
	// client and client2 belong to root, childClient to child,
	// otherClient to the unrelated organization other.
	client, client2, childClient, otherClient domain.Client
	agent                                     domain.User // an agent of root
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
	fx := &fixture{db: db, clk: clk, rev: rev, iss: token.NewIssuer(keys, issuer),
		customers: token.NewCustomerVerifier(keys, issuer, rev.Revoked),
		agents:    token.NewAgentVerifier(keys, issuer, rev.Revoked),
		fams:      refresh.New(db, rev, secret, refreshTTL, grace, clk.Now),
	}
	fx.in = &credential.Inspector{Store: db, Agents: fx.agents, Customers: fx.customers, Now: clk.Now}
	fx.svc = &customerauth.Service{Store: db, Issuer: fx.iss, Families: fx.fams, TTL: customerTT, Now: clk.Now}

	fx.root = fx.org(t, "Root", 0)
	fx.child = fx.org(t, "Child", fx.root.ID)
	fx.other = fx.org(t, "Other", 0)
	fx.client = fx.newClient(t, "widget", fx.root.ID)
	fx.client2 = fx.newClient(t, "widget-2", fx.root.ID)
	fx.childClient = fx.newClient(t, "child-widget", fx.child.ID)
	fx.otherClient = fx.newClient(t, "other-widget", fx.other.ID)
	fx.agent = fx.user(t, "agent@root.example", fx.root.ID, shared.RoleAgent)
	return fx
}

func (fx *fixture) org(t *testing.T, name string, parent int64) domain.Organization {
	t.Helper()
	o := domain.Organization{Name: name, ParentID: parent}
	if err := fx.db.CreateOrganization(context.Background(), &o); err != nil {
		t.Fatal(err)
	}
	return o
}

func (fx *fixture) newClient(t *testing.T, id string, org int64) domain.Client {
	t.Helper()
	c := domain.Client{ID: id, OrgID: org, Name: id, Type: "public", Scopes: "read write chat",
		RedirectURIs: []string{"https://site.example/"}, AllowedOrigins: []string{"https://site.example"}}
	if err := fx.db.CreateClient(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	got, err := fx.db.Client(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func (fx *fixture) user(t *testing.T, email string, org int64, role shared.Role) domain.User {
	t.Helper()
	u := domain.User{OrgID: org, Email: email, Name: email, Role: role, PasswordHash: "x"}
	if err := fx.db.CreateUser(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (fx *fixture) visitor(t *testing.T, client domain.Client) customerauth.Answer {
	t.Helper()
	ans, err := fx.svc.New(context.Background(), client, "")
	if err != nil {
		t.Fatal(err)
	}
	return ans
}

// verify checks an answer's access token and returns its claims.
func (fx *fixture) verify(t *testing.T, ans customerauth.Answer, client domain.Client) shared.CustomerClaims {
	t.Helper()
	c, err := fx.customers.Verify(ans.AccessToken)
	if err != nil {
		t.Fatalf("customer token: %v", err)
	}
	if c.Subject != ans.EntityID || c.Session != ans.Session || c.ClientID != client.ID || c.Org != client.OrgID {
		t.Fatalf("claims %+v for answer %+v", c, ans)
	}
	if ans.TokenType != "Bearer" || !strings.HasPrefix(ans.RefreshToken, token.PrefixCustomerRefresh) || ans.Session == "" {
		t.Fatalf("answer %+v", ans)
	}
	if got := time.Unix(c.Expiry, 0).Sub(fx.clk.Now().Truncate(time.Second)); got != time.Duration(ans.ExpiresIn)*time.Second && got != time.Duration(ans.ExpiresIn+1)*time.Second {
		t.Fatalf("exp is %v from now, expires_in %d", got, ans.ExpiresIn)
	}
	return c
}

// holder inspects an agent access token minted for u with scope.
func (fx *fixture) holder(t *testing.T, u domain.User, scope shared.Scope, clientID string, ttl time.Duration) credential.Credential {
	t.Helper()
	tok, _, err := fx.iss.Agent(shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Org: u.OrgID, Scope: scope, ClientID: clientID, Session: token.NewID()}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fx.in.Inspect(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (fx *fixture) longLived(t *testing.T, c domain.Credential, prefix string) credential.Credential {
	t.Helper()
	secret, hash := token.NewOpaque(prefix)
	c.Hash = hash
	if err := fx.db.CreateCredential(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	cred, err := fx.in.Inspect(context.Background(), secret)
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

func (fx *fixture) family(t *testing.T, id string) domain.Family {
	t.Helper()
	f, err := fx.db.Family(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (fx *fixture) spent(t *testing.T, rt string) bool {
	t.Helper()
	_, tok, err := fx.db.LookupRefresh(context.Background(), token.Hash(rt))
	if err != nil {
		t.Fatal(err)
	}
	return !tok.RotatedAt.IsZero()
}

// familiesOf counts the visitor's families.
func (fx *fixture) familiesOf(t *testing.T, entity string) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM refresh_families WHERE subject = ?"
	if fx.db.Kind() == "postgres" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	var n int
	if err := fx.db.SQL().QueryRow(q, entity).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCode(t *testing.T, err error, code, contains string) {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code || !strings.Contains(e.Message, contains) {
		t.Fatalf("err = %v, want %s containing %q", err, code, contains)
	}
}

var firstParty = shared.Scope{Role: shared.RoleAgent, API: shared.FirstParty}

func TestNew(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		ans := fx.visitor(t, fx.client)
		if ans.ExpiresIn != int64(customerTT/time.Second) || ans.EntityID == "" {
			t.Fatalf("answer %+v", ans)
		}
		c := fx.verify(t, ans, fx.client)
		if c.Audience != shared.AudienceCustomer || c.Issuer != issuer {
			t.Fatalf("claims %+v", c)
		}
		// Customer tokens are not agent tokens.
		if _, err := fx.agents.Verify(ans.AccessToken); !errors.Is(err, token.ErrWrongFamily) {
			t.Fatalf("agent verifier on a customer token: %v", err)
		}
		cust, err := fx.db.Customer(ctx, ans.EntityID)
		if err != nil || cust.OrgID != fx.root.ID || cust.ClientID != fx.client.ID {
			t.Fatalf("customer %+v %v", cust, err)
		}
		fam := fx.family(t, ans.Session)
		if fam.Kind != customerauth.FamilyKind || fam.Subject != ans.EntityID || fam.ClientID != fx.client.ID || fam.OrgID != fx.root.ID || fam.Scope != "guest" || !fam.ExpiresAt.IsZero() {
			t.Fatalf("family %+v", fam)
		}
		if cr, err := fx.in.Inspect(ctx, ans.RefreshToken); err != nil || cr.Kind != credential.CustomerRefresh || cr.Family != ans.Session {
			t.Fatalf("refresh token: %+v %v", cr, err)
		}
		again := fx.visitor(t, fx.client)
		if again.EntityID == ans.EntityID || again.Session == ans.Session || again.RefreshToken == ans.RefreshToken {
			t.Fatal("two new visitors share something")
		}
		child := fx.visitor(t, fx.childClient)
		if cust, _ := fx.db.Customer(ctx, child.EntityID); cust.OrgID != fx.child.ID {
			t.Fatalf("child visitor in org %d", cust.OrgID)
		}
	})
}

func TestContinue(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)

		t.Run("cookie path keeps the family", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			fx.clk.Add(time.Minute)
			b, err := fx.svc.Continue(ctx, fx.client, a.EntityID, a.Session, "")
			if err != nil {
				t.Fatal(err)
			}
			fx.verify(t, b, fx.client)
			if b.EntityID != a.EntityID || b.Session != a.Session || b.RefreshToken == a.RefreshToken {
				t.Fatalf("continue: %+v after %+v", b, a)
			}
			if b.ExpiresIn != int64(customerTT/time.Second) {
				t.Fatalf("expires_in %d", b.ExpiresIn)
			}
			// Each answer's refresh token supersedes the earlier ones.
			if !fx.spent(t, a.RefreshToken) || fx.spent(t, b.RefreshToken) {
				t.Fatal("the earlier refresh token was not retired")
			}
			if _, err := fx.svc.Refresh(ctx, fx.client, b.RefreshToken, ""); err != nil {
				t.Fatalf("refresh of the cookie path's token: %v", err)
			}
		})

		// A cookie continues only a live session of its own visitor at its
		// own client; anything else is over, and the cookie alone does not
		// start it again (the handler makes a new visitor instead).
		t.Run("no, unknown or revoked family: over", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			for _, sid := range []string{"", "no-such-family"} {
				if _, err := fx.svc.Continue(ctx, fx.client, a.EntityID, sid, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
					t.Fatalf("sid %q: %v", sid, err)
				}
			}
			if err := fx.fams.Revoke(ctx, a.Session, "signed out"); err != nil {
				t.Fatal(err)
			}
			if _, err := fx.svc.Continue(ctx, fx.client, a.EntityID, a.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("after revocation: %v", err)
			}
			if fam := fx.family(t, a.Session); fam.RevokedAt.IsZero() {
				t.Fatal("the revoked family came back")
			}
		})

		t.Run("another visitor's or client's family: refused, and untouched", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			x := fx.visitor(t, fx.client)
			if _, err := fx.svc.Continue(ctx, fx.client, a.EntityID, x.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("foreign family: %v", err)
			}
			if fx.spent(t, x.RefreshToken) {
				t.Error("Continue retired the live refresh token of another visitor's family")
			}
			w2 := fx.visitor(t, fx.client2)
			if _, err := fx.svc.Continue(ctx, fx.client, w2.EntityID, w2.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("foreign client's family: %v", err)
			}
			if fx.spent(t, w2.RefreshToken) {
				t.Error("Continue retired the live refresh token of another client's family")
			}
			o := fx.visitor(t, fx.otherClient)
			if _, err := fx.svc.Continue(ctx, fx.client, o.EntityID, o.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("another organization's visitor: %v", err)
			}
			if fx.spent(t, o.RefreshToken) || fx.familiesOf(t, o.EntityID) != 1 {
				t.Fatal("a refused Continue changed the other organization's visitor")
			}
		})

		t.Run("a vouched family past its end: its cookie cannot restart it", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			holder := fx.holder(t, fx.agent, firstParty, "", 30*time.Minute)
			vouched, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, holder, "")
			if err != nil {
				t.Fatal(err)
			}
			fx.clk.Add(time.Hour) // the holder, and so the family, has ended
			// A session derived from a credential ends with it: the visitor's
			// cookie does not start it again (the handler then makes a new,
			// anonymous visitor).
			if _, err := fx.svc.Continue(ctx, fx.client, v.EntityID, vouched.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("returning visitor whose vouched session ended: %v", err)
			}
		})
	})
}

func TestVouch(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)

		t.Run("capped at the holder's expiry", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			holder := fx.holder(t, fx.agent, firstParty, "", 30*time.Minute)
			end := holder.Expiry()
			ans, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, holder, "")
			if err != nil {
				t.Fatal(err)
			}
			c := fx.verify(t, ans, fx.client)
			if ans.EntityID != v.EntityID || ans.Session == v.Session {
				t.Fatalf("vouch: %+v", ans)
			}
			if time.Unix(c.Expiry, 0).After(end) || ans.ExpiresIn > 1800 || ans.ExpiresIn < 1799 {
				t.Fatalf("access token ends %v (expires_in %d), after the holder's %v", time.Unix(c.Expiry, 0), ans.ExpiresIn, end)
			}
			fam := fx.family(t, ans.Session)
			if !fam.ExpiresAt.Equal(end) {
				t.Fatalf("family ends %v, want the holder's %v", fam.ExpiresAt, end)
			}
			if _, rt, _ := fx.db.LookupRefresh(ctx, token.Hash(ans.RefreshToken)); !rt.ExpiresAt.Equal(end) {
				t.Fatalf("refresh token ends %v, want %v", rt.ExpiresAt, end)
			}

			// Refresh and the cookie path keep the cap.
			fx.clk.Add(10 * time.Minute)
			r, err := fx.svc.Refresh(ctx, fx.client, ans.RefreshToken, "")
			if err != nil {
				t.Fatal(err)
			}
			if c := fx.verify(t, r, fx.client); time.Unix(c.Expiry, 0).After(end) || r.ExpiresIn > 1200 {
				t.Fatalf("refreshed token ends %v (expires_in %d)", time.Unix(c.Expiry, 0), r.ExpiresIn)
			}
			fx.clk.Add(10 * time.Minute)
			k, err := fx.svc.Continue(ctx, fx.client, v.EntityID, ans.Session, "")
			if err != nil {
				t.Fatal(err)
			}
			if c := fx.verify(t, k, fx.client); k.Session != ans.Session || time.Unix(c.Expiry, 0).After(end) || k.ExpiresIn > 600 {
				t.Fatalf("cookie path: %+v ends %v", k, time.Unix(c.Expiry, 0))
			}
			fx.clk.Add(11 * time.Minute) // past the holder's end
			_, err = fx.svc.Refresh(ctx, fx.client, k.RefreshToken, "")
			wantCode(t, err, apierr.CodeInvalidToken, "expired")
		})

		t.Run("read-only holders are refused", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			for _, api := range []shared.APIScope{shared.ScopeRead, shared.ScopeRead | shared.ScopeWrite, shared.ScopeRead | shared.ScopeChat, shared.ScopeChat} {
				holder := fx.holder(t, fx.agent, shared.Scope{Role: shared.RoleAgent, API: api}, "", time.Hour)
				_, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, holder, "")
				wantCode(t, err, apierr.CodeInsufficientScope, "write messages")
			}
			pat := fx.longLived(t, domain.Credential{Kind: "pat", OrgID: fx.root.ID, UserID: fx.agent.ID, Name: "ro", Scope: "agent read"}, token.PrefixPersonal)
			_, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, pat, "")
			wantCode(t, err, apierr.CodeInsufficientScope, "write messages")
			if n := fx.familiesOf(t, v.EntityID); n != 1 {
				t.Fatalf("refused vouches made families: %d", n)
			}
			// Write and chat is enough for a first-party token; an OAuth
			// app's never vouches.
			scope := shared.Scope{Role: shared.RoleAgent, API: shared.ScopeWrite | shared.ScopeChat}
			_, err = fx.svc.Vouch(ctx, fx.client, v.EntityID, fx.holder(t, fx.agent, scope, "app", time.Hour), "")
			wantCode(t, err, apierr.CodeForbidden, "OAuth app")
			if _, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, fx.holder(t, fx.agent, scope, "", time.Hour), ""); err != nil {
				t.Fatalf("write chat: %v", err)
			}
		})

		t.Run("another organization is refused", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			outsider := fx.user(t, "agent@other.example", fx.other.ID, shared.RoleAdmin)
			holder := fx.holder(t, outsider, shared.Scope{Role: shared.RoleAdmin, API: shared.FirstParty}, "", time.Hour)
			_, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, holder, "")
			wantCode(t, err, apierr.CodeForbidden, "another organization")
			// Not even for a visitor of its own organization through our client.
			o := fx.visitor(t, fx.otherClient)
			_, err = fx.svc.Vouch(ctx, fx.client, o.EntityID, holder, "")
			wantCode(t, err, apierr.CodeForbidden, "another organization")
			// A child organization's agent does not speak for the root's client.
			childAgent := fx.user(t, "agent@child.example", fx.child.ID, shared.RoleAgent)
			_, err = fx.svc.Vouch(ctx, fx.client, v.EntityID, fx.holder(t, childAgent, firstParty, "", time.Hour), "")
			wantCode(t, err, apierr.CodeForbidden, "another organization")
			if n := fx.familiesOf(t, v.EntityID); n != 1 {
				t.Fatalf("refused vouches made families: %d", n)
			}
			// Our agent, our client, their visitor: unknown.
			_, err = fx.svc.Vouch(ctx, fx.client, o.EntityID, fx.holder(t, fx.agent, firstParty, "", time.Hour), "")
			if !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("another organization's visitor: %v", err)
			}
			// A root agent speaks for a child's client and its visitors.
			c := fx.visitor(t, fx.childClient)
			ans, err := fx.svc.Vouch(ctx, fx.childClient, c.EntityID, fx.holder(t, fx.agent, firstParty, "", time.Hour), "")
			if err != nil {
				t.Fatalf("root agent for a child's visitor: %v", err)
			}
			fx.verify(t, ans, fx.childClient)
		})

		t.Run("non-agent credentials are refused", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			visitorCred, err := fx.in.Inspect(ctx, v.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			refreshCred, err := fx.in.Inspect(ctx, v.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			platform := fx.longLived(t, domain.Credential{Kind: "platform", Name: "ops"}, token.PrefixPlatform)
			for _, h := range []credential.Credential{visitorCred, refreshCred, platform, {}} {
				_, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, h, "")
				wantCode(t, err, apierr.CodeForbidden, "agent-family token")
			}
		})

		t.Run("holders without expiry give an uncapped family", func(t *testing.T) {
			v := fx.visitor(t, fx.client)
			secret, hash := token.NewOpaque(token.PrefixAPIToken)
			if err := fx.db.SetAPITokenHash(ctx, fx.agent.ID, hash); err != nil {
				t.Fatal(err)
			}
			api, err := fx.in.Inspect(ctx, secret)
			if err != nil {
				t.Fatal(err)
			}
			bot := fx.longLived(t, domain.Credential{Kind: "bot", OrgID: fx.root.ID, Name: "helper"}, token.PrefixBot)
			for _, h := range []credential.Credential{api, bot} {
				ans, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, h, "")
				if err != nil {
					t.Fatalf("%s: %v", h.Kind, err)
				}
				fx.verify(t, ans, fx.client)
				if fam := fx.family(t, ans.Session); !fam.ExpiresAt.IsZero() || ans.ExpiresIn != int64(customerTT/time.Second) {
					t.Fatalf("%s: family ends %v, expires_in %d", h.Kind, fam.ExpiresAt, ans.ExpiresIn)
				}
			}
			// An expiring personal token caps it at its own end.
			end := fx.clk.Now().Add(2 * time.Hour)
			pat := fx.longLived(t, domain.Credential{Kind: "pat", OrgID: fx.root.ID, UserID: fx.agent.ID, Name: "ci", Scope: "agent write chat", ExpiresAt: end}, token.PrefixPersonal)
			ans, err := fx.svc.Vouch(ctx, fx.client, v.EntityID, pat, "")
			if err != nil {
				t.Fatal(err)
			}
			if fam := fx.family(t, ans.Session); !fam.ExpiresAt.Equal(end) {
				t.Fatalf("family ends %v, want the token's %v", fam.ExpiresAt, end)
			}
		})
	})
}

func TestRefresh(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)

		t.Run("only customer refresh tokens", func(t *testing.T) {
			for _, rt := range []string{"", "garbage", token.PrefixRefresh + "x", token.PrefixAPIToken + "x"} {
				_, err := fx.svc.Refresh(ctx, fx.client, rt, "")
				wantCode(t, err, apierr.CodeInvalidToken, token.PrefixCustomerRefresh)
			}
			_, err := fx.svc.Refresh(ctx, fx.client, token.PrefixCustomerRefresh+"never", "")
			wantCode(t, err, apierr.CodeInvalidToken, "unknown")
		})

		t.Run("rotation and grace", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			fx.clk.Add(time.Minute)
			b, err := fx.svc.Refresh(ctx, fx.client, a.RefreshToken, "")
			if err != nil {
				t.Fatal(err)
			}
			fx.verify(t, b, fx.client)
			if b.EntityID != a.EntityID || b.Session != a.Session || b.RefreshToken == a.RefreshToken || b.AccessToken == a.AccessToken {
				t.Fatalf("refresh: %+v", b)
			}
			fx.clk.Add(grace / 2)
			c, err := fx.svc.Refresh(ctx, fx.client, a.RefreshToken, "")
			if err != nil || c.RefreshToken != b.RefreshToken {
				t.Fatalf("replay within grace: %q %v, want %q", c.RefreshToken, err, b.RefreshToken)
			}
		})

		t.Run("another client's token is refused without being spent", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			for _, other := range []domain.Client{fx.client2, fx.otherClient, fx.childClient} {
				_, err := fx.svc.Refresh(ctx, other, a.RefreshToken, "")
				wantCode(t, err, apierr.CodeInvalidToken, "another client_id")
			}
			if fx.spent(t, a.RefreshToken) {
				t.Fatal("a refused refresh spent the token")
			}
			fx.clk.Add(grace + time.Minute) // a replay would be reuse by now
			b, err := fx.svc.Refresh(ctx, fx.client, a.RefreshToken, "")
			if err != nil {
				t.Fatalf("the owner after the refusals: %v", err)
			}
			fx.verify(t, b, fx.client)
		})

		t.Run("an agent family is not a visitor's", func(t *testing.T) {
			fam := &domain.Family{Kind: refresh.KindAgent, Subject: strconv.FormatInt(fx.agent.ID, 10), OrgID: fx.root.ID, ClientID: fx.client.ID, Scope: "agent read write chat"}
			rt, err := fx.fams.Start(ctx, fam, token.PrefixCustomerRefresh)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fx.svc.Refresh(ctx, fx.client, rt, "")
			wantCode(t, err, apierr.CodeInvalidToken, "another client_id")
			if fx.spent(t, rt) {
				t.Fatal("spent")
			}
		})

		t.Run("reuse revokes the visitor's session", func(t *testing.T) {
			a := fx.visitor(t, fx.client)
			b, err := fx.svc.Refresh(ctx, fx.client, a.RefreshToken, "")
			if err != nil {
				t.Fatal(err)
			}
			c, err := fx.svc.Refresh(ctx, fx.client, b.RefreshToken, "")
			if err != nil {
				t.Fatal(err)
			}
			_, err = fx.svc.Refresh(ctx, fx.client, a.RefreshToken, "")
			wantCode(t, err, apierr.CodeInvalidToken, "already used")
			_, err = fx.svc.Refresh(ctx, fx.client, c.RefreshToken, "")
			wantCode(t, err, apierr.CodeInvalidToken, "revoked")
			if _, err := fx.customers.Verify(c.AccessToken); !errors.Is(err, token.ErrRevoked) {
				t.Fatalf("access token of the revoked session: %v", err)
			}
			if fam := fx.family(t, a.Session); fam.RevokedAt.IsZero() {
				t.Fatal("family not revoked in the store")
			}
			events, err := fx.db.AuditEvents(ctx, fx.root.ID, 0, 100)
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range events {
				found = found || (e.Event == "refresh.reuse_detected" && e.Subject == "customer:"+a.EntityID)
			}
			if !found {
				t.Fatalf("no reuse audit: %+v", events)
			}
			// The cookie does not start the stolen session over: whoever
			// holds a cookie is not proven to be the browser it was given to.
			if _, err := fx.svc.Continue(ctx, fx.client, a.EntityID, a.Session, ""); !errors.Is(err, customerauth.ErrUnknownVisitor) {
				t.Fatalf("continue after reuse: %v", err)
			}
		})
	})
}
