package agentauth_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
	"chatauth/shared"
)

const (
	issuer    = "http://chat.test"
	accessTTL = time.Hour
	grace     = 10 * time.Second
	password  = "correct horse battery"
	ipA       = "203.0.113.5"
	ipB       = "198.51.100.7"
)

type clock = sqlstoretest.Clock

func newClock() *clock { return sqlstoretest.NewClock() }

// fixture is agent sign-in wired as backend/app wires it, over a real
// store, with one clock.
type fixture struct {
	db     *sqlstore.DB
	clk    *clock
	rev    *token.Revocations
	iss    *token.Issuer
	agents *token.AgentVerifier
	in     *credential.Inspector
	fams   *refresh.Families
	svc    *agentauth.Service
	org    domain.Organization
	ada    domain.User // an agent
	bob    domain.User // another agent of the organization
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
		agents: token.NewAgentVerifier(keys, issuer, rev.Revoked),
		fams:   refresh.New(db, rev, secret, 720*time.Hour, grace, clk.Now),
	}
	fx.in = &credential.Inspector{Store: db, Agents: fx.agents, Customers: token.NewCustomerVerifier(keys, issuer, rev.Revoked), Now: clk.Now}
	fx.svc = &agentauth.Service{
		Store: db, Issuer: fx.iss, Families: fx.fams,
		Cascade:   &credential.Cascade{Store: db, Revocations: rev},
		Guard:     &throttle.Guesses{Guard: &throttle.Guard{Store: db, Now: clk.Now}, Audit: db},
		AccessTTL: accessTTL, BcryptCost: bcrypt.MinCost, Now: clk.Now,
	}
	fx.org = domain.Organization{Name: "Acme"}
	if err := db.CreateOrganization(ctx, &fx.org); err != nil {
		t.Fatal(err)
	}
	fx.ada = fx.user(t, "ada@example.com", shared.RoleAgent)
	fx.bob = fx.user(t, "bob@example.com", shared.RoleAgent)
	return fx
}

func (fx *fixture) user(t *testing.T, email string, role shared.Role) domain.User {
	t.Helper()
	h, err := fx.svc.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	u := domain.User{OrgID: fx.org.ID, Email: email, Name: email, Role: role, PasswordHash: h}
	if err := fx.db.CreateUser(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func uid(u domain.User) string { return strconv.FormatInt(u.ID, 10) }

func (fx *fixture) login(t *testing.T, u domain.User) agentauth.Pair {
	t.Helper()
	p, err := fx.svc.Login(context.Background(), u.Email, password, ipA)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (fx *fixture) spent(t *testing.T, rt string) bool {
	t.Helper()
	_, tok, err := fx.db.LookupRefresh(context.Background(), token.Hash(rt))
	if err != nil {
		t.Fatal(err)
	}
	return !tok.RotatedAt.IsZero()
}

func (fx *fixture) familiesOf(t *testing.T, u domain.User) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM refresh_families WHERE subject = ?"
	if fx.db.Kind() == "postgres" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	var n int
	if err := fx.db.SQL().QueryRow(q, uid(u)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (fx *fixture) audits(t *testing.T, event string) []domain.AuditEvent {
	t.Helper()
	all, err := fx.db.AuditEvents(context.Background(), fx.org.ID, 0, 100)
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

func wantCode(t *testing.T, err error, code, contains string) *apierr.Error {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok || e.Code != code || !strings.Contains(e.Message, contains) {
		t.Fatalf("err = %v, want %s containing %q", err, code, contains)
	}
	return e
}

// fresh runs fn on a new database of each kind.
func fresh(t *testing.T, name string, fn func(t *testing.T, fx *fixture)) {
	t.Run(name, func(t *testing.T) {
		sqlstoretest.Each(t, func(t *testing.T, dsn string) { fn(t, newFixture(t, dsn)) })
	})
}

func TestHashPassword(t *testing.T) {
	svc := &agentauth.Service{BcryptCost: bcrypt.MinCost}
	h, err := svc.HashPassword(password)
	if err != nil || bcrypt.CompareHashAndPassword([]byte(h), []byte(password)) != nil {
		t.Fatalf("%q %v", h, err)
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != bcrypt.MinCost {
		t.Fatalf("cost %d", cost)
	}
	_, err = svc.HashPassword(strings.Repeat("x", 73))
	wantCode(t, err, apierr.CodeInvalidRequest, "72 bytes")
}

func TestCheckPassword(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		u, err := fx.svc.CheckPassword(ctx, "  ADA@Example.com ", password, ipA)
		if err != nil || u.ID != fx.ada.ID {
			t.Fatalf("right password: %+v %v", u, err)
		}
		_, err = fx.svc.CheckPassword(ctx, fx.ada.Email, "wrong", ipA)
		wrong := wantCode(t, err, apierr.CodeInvalidCredential, "email or password is wrong")
		_, err = fx.svc.CheckPassword(ctx, "nobody@example.com", password, ipA)
		unknown := wantCode(t, err, apierr.CodeInvalidCredential, "email or password is wrong")
		if wrong.Message != unknown.Message {
			t.Fatal("an unknown email is told apart from a wrong password")
		}
		if u, err := fx.svc.CheckPassword(ctx, fx.ada.Email, "", ipA); err == nil || u.ID != 0 {
			t.Fatalf("empty password: %+v %v", u, err)
		}
	})
}

func TestCheckPasswordThrottle(t *testing.T) {
	ctx := context.Background()

	fresh(t, "per account and IP", func(t *testing.T, fx *fixture) {
		for i := range throttle.PerAccountIP.Limit {
			_, err := fx.svc.CheckPassword(ctx, fx.ada.Email, "guess"+strconv.Itoa(i), ipA)
			wantCode(t, err, apierr.CodeInvalidCredential, "wrong")
		}
		// Blocked: the right password is refused too, with a wait.
		_, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipA)
		e := wantCode(t, err, apierr.CodeTooManyRequests, "too many failed attempts")
		if e.RetryAfter <= 14*time.Minute || e.RetryAfter > throttle.PerAccountIP.Window {
			t.Fatalf("Retry-After %v", e.RetryAfter)
		}
		// Refused guesses while blocked are not counted or audited again.
		_, err = fx.svc.CheckPassword(ctx, fx.ada.Email, "guess", ipA)
		wantCode(t, err, apierr.CodeTooManyRequests, "")

		ev := fx.audits(t, "login.lockout")
		if len(ev) != 1 || ev[0].Subject != throttle.AccountIP("login", "ada@example.com", ipA) || ev[0].OrgID != fx.org.ID || !strings.Contains(ev[0].Detail, ipA) {
			t.Fatalf("lockout audit: %+v", ev)
		}
		// The owner, elsewhere, is not locked out.
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipB); err != nil {
			t.Fatalf("owner from another IP: %v", err)
		}
		// Nor is another account from the same IP.
		if _, err := fx.svc.CheckPassword(ctx, fx.bob.Email, password, ipA); err != nil {
			t.Fatalf("another account from that IP: %v", err)
		}
		// The block ends with the window.
		fx.clk.Add(throttle.PerAccountIP.Window)
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipA); err != nil {
			t.Fatalf("after the window: %v", err)
		}
	})

	fresh(t, "per account from everywhere", func(t *testing.T, fx *fixture) {
		for i := range throttle.PerAccount.Limit {
			ip := "192.0.2." + strconv.Itoa(i+1)
			_, err := fx.svc.CheckPassword(ctx, fx.ada.Email, "guess", ip)
			wantCode(t, err, apierr.CodeInvalidCredential, "wrong")
		}
		_, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipB)
		e := wantCode(t, err, apierr.CodeTooManyRequests, "")
		if e.RetryAfter <= 0 || e.RetryAfter > throttle.PerAccount.Lock {
			t.Fatalf("Retry-After %v", e.RetryAfter)
		}
		ev := fx.audits(t, "login.lockout")
		if len(ev) != 1 || ev[0].Subject != throttle.Account("login", "ada@example.com") || !strings.Contains(ev[0].Detail, "locked for a minute") {
			t.Fatalf("lockout audit: %+v", ev)
		}
		fx.clk.Add(throttle.PerAccount.Lock)
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipB); err != nil {
			t.Fatalf("after the lock: %v", err)
		}
	})

	fresh(t, "a right password resets the account's count", func(t *testing.T, fx *fixture) {
		for round := range 3 {
			for range throttle.PerAccountIP.Limit - 1 {
				_, err := fx.svc.CheckPassword(ctx, fx.ada.Email, "guess", ipA)
				wantCode(t, err, apierr.CodeInvalidCredential, "")
			}
			if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipA); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if ev := fx.audits(t, "login.lockout"); len(ev) != 0 {
			t.Fatalf("lockouts: %+v", ev)
		}
	})

	fresh(t, "unknown emails count too", func(t *testing.T, fx *fixture) {
		for range throttle.PerAccountIP.Limit {
			_, err := fx.svc.CheckPassword(ctx, "ghost@example.com", "guess", ipA)
			wantCode(t, err, apierr.CodeInvalidCredential, "")
		}
		_, err := fx.svc.CheckPassword(ctx, "GHOST@example.com", "guess", ipA)
		wantCode(t, err, apierr.CodeTooManyRequests, "")
	})
}

func TestLogin(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		p := fx.login(t, fx.ada)
		scope := shared.Scope{Role: shared.RoleAgent, API: shared.FirstParty}
		if p.TokenType != "Bearer" || !strings.HasPrefix(p.RefreshToken, token.PrefixRefresh) || p.Scope != scope.String() ||
			p.ExpiresIn != int64(accessTTL/time.Second) || p.User != agentauth.ProfileOf(fx.ada) {
			t.Fatalf("pair %+v", p)
		}
		if p.User.AccountID != fx.org.ID || p.User.Email != "ada@example.com" {
			t.Fatalf("profile %+v", p.User)
		}
		c, err := fx.agents.Verify(p.Token)
		if err != nil || c != p.Claims {
			t.Fatalf("access token: %+v %v (pair says %+v)", c, err, p.Claims)
		}
		if c.Subject != uid(fx.ada) || c.Org != fx.org.ID || c.Scope != scope || c.Session == "" || c.ClientID != "" {
			t.Fatalf("claims %+v", c)
		}
		if time.Unix(c.Expiry, 0) != fx.clk.Now().Add(accessTTL).Truncate(time.Second) {
			t.Fatalf("exp %v", time.Unix(c.Expiry, 0))
		}
		fam, err := fx.db.Family(ctx, c.Session)
		if err != nil || fam.Kind != agentauth.FamilyKind || fam.Subject != uid(fx.ada) || fam.OrgID != fx.org.ID || fam.Scope != scope.String() {
			t.Fatalf("family %+v %v", fam, err)
		}
		if cred, err := fx.in.Inspect(ctx, p.Token); err != nil || cred.Kind != credential.Session {
			t.Fatalf("inspect: %+v %v", cred, err)
		}
		// Each sign-in is its own family.
		if q := fx.login(t, fx.ada); q.Claims.Session == p.Claims.Session || q.RefreshToken == p.RefreshToken {
			t.Fatal("two sign-ins share a session")
		}
		// A refused sign-in starts nothing.
		if _, err := fx.svc.Login(ctx, fx.bob.Email, "wrong", ipA); err == nil {
			t.Fatal("wrong password signed in")
		}
		if n := fx.familiesOf(t, fx.bob); n != 0 {
			t.Fatalf("a refused sign-in made %d families", n)
		}
		// StartSession is the sign-in after the password check (the OAuth
		// sign-in page's path): the same pair.
		s, err := fx.svc.StartSession(ctx, fx.bob)
		if err != nil || s.User.ID != fx.bob.ID || s.Claims.Subject != uid(fx.bob) {
			t.Fatalf("start session: %+v %v", s, err)
		}
		admin := fx.user(t, "root@example.com", shared.RoleAdmin)
		if a := fx.login(t, admin); a.Scope != "admin read write chat" || a.Claims.Scope.Role != shared.RoleAdmin {
			t.Fatalf("admin scope %q", a.Scope)
		}
	})
}

func TestRefresh(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)

		t.Run("malformed", func(t *testing.T) {
			_, err := fx.svc.Refresh(ctx, "", agentauth.ByClientID(fx.ada.Email))
			wantCode(t, err, apierr.CodeInvalidRequest, "refreshToken")
			for _, rt := range []string{"garbage", token.PrefixCustomerRefresh + "x", token.PrefixAPIToken + "x"} {
				_, err := fx.svc.Refresh(ctx, rt, agentauth.ByClientID(fx.ada.Email))
				wantCode(t, err, apierr.CodeInvalidToken, token.PrefixRefresh)
			}
			_, err = fx.svc.Refresh(ctx, token.PrefixRefresh+"never", agentauth.ByClientID(fx.ada.Email))
			wantCode(t, err, apierr.CodeInvalidToken, "unknown")
		})

		t.Run("by session", func(t *testing.T) {
			p := fx.login(t, fx.ada)
			fx.clk.Add(time.Minute)
			q, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.BySession(uid(fx.ada), p.Claims.Session))
			if err != nil {
				t.Fatal(err)
			}
			if q.Claims.Session != p.Claims.Session || q.RefreshToken != fx.fams.Successor(p.RefreshToken) || q.Token == p.Token || q.User.ID != fx.ada.ID {
				t.Fatalf("refreshed pair %+v", q)
			}
			if _, err := fx.agents.Verify(q.Token); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("by client id", func(t *testing.T) {
			p := fx.login(t, fx.ada)
			q, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.ByClientID(" ADA@example.COM "))
			if err != nil {
				t.Fatalf("email: %v", err)
			}
			if _, err := fx.svc.Refresh(ctx, q.RefreshToken, agentauth.ByClientID(uid(fx.ada))); err != nil {
				t.Fatalf("user id: %v", err)
			}
		})

		t.Run("a wrong owner does not spend", func(t *testing.T) {
			p := fx.login(t, fx.ada)
			other := fx.login(t, fx.ada) // the same user's other sign-in
			bobs := fx.login(t, fx.bob)
			for name, owner := range map[string]agentauth.Owner{
				"another sign-in's session":  agentauth.BySession(uid(fx.ada), other.Claims.Session),
				"another user's subject":     agentauth.BySession(uid(fx.bob), p.Claims.Session),
				"another user's session":     agentauth.BySession(uid(fx.bob), bobs.Claims.Session),
				"another user's email":       agentauth.ByClientID(fx.bob.Email),
				"another user's id":          agentauth.ByClientID(uid(fx.bob)),
				"an empty client id":         agentauth.ByClientID(""),
				"an email that only differs": agentauth.ByClientID("ada@example.co"),
			} {
				_, err := fx.svc.Refresh(ctx, p.RefreshToken, owner)
				e, ok := apierr.As(err)
				if !ok || e.Code != apierr.CodeInvalidToken || !strings.Contains(e.Message, "another user or sign-in") {
					t.Errorf("%s: %v", name, err)
				}
			}
			if fx.spent(t, p.RefreshToken) {
				t.Fatal("a refused refresh spent the token")
			}
			fx.clk.Add(grace + time.Minute) // a replay would be reuse by now
			if _, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.BySession(uid(fx.ada), p.Claims.Session)); err != nil {
				t.Fatalf("the owner after the refusals: %v", err)
			}
		})

		t.Run("an OAuth grant's token", func(t *testing.T) {
			fam := &domain.Family{Kind: refresh.KindOAuth, Subject: uid(fx.ada), OrgID: fx.org.ID, ClientID: "app", Scope: "agent read"}
			rt, err := fx.fams.Start(ctx, fam, token.PrefixRefresh)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fx.svc.Refresh(ctx, rt, agentauth.ByClientID(fx.ada.Email))
			wantCode(t, err, apierr.CodeInvalidToken, "OAuth client")
			if fx.spent(t, rt) {
				t.Fatal("spent")
			}
		})

		t.Run("a deleted user", func(t *testing.T) {
			gone := fx.user(t, "gone@example.com", shared.RoleAgent)
			p := fx.login(t, gone)
			if _, err := fx.db.DeleteUser(ctx, gone.ID); err != nil {
				t.Fatal(err)
			}
			_, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.BySession(uid(gone), p.Claims.Session))
			wantCode(t, err, apierr.CodeInvalidToken, "no longer exists")
			if fx.spent(t, p.RefreshToken) {
				t.Fatal("spent")
			}
		})

		t.Run("the pair follows the user's role now", func(t *testing.T) {
			u := fx.user(t, "promoted@example.com", shared.RoleAgent)
			p := fx.login(t, u)
			u.Role = shared.RoleBot
			if err := fx.db.UpdateUser(ctx, &u); err != nil {
				t.Fatal(err)
			}
			q, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.ByClientID(u.Email))
			if err != nil {
				t.Fatal(err)
			}
			if q.Claims.Scope.Role != shared.RoleBot || q.User.Role != shared.RoleBot {
				t.Fatalf("role after the change: %+v", q.Claims.Scope)
			}
		})

		t.Run("grace and reuse", func(t *testing.T) {
			p := fx.login(t, fx.ada)
			owner := agentauth.ByClientID(fx.ada.Email)
			q, err := fx.svc.Refresh(ctx, p.RefreshToken, owner)
			if err != nil {
				t.Fatal(err)
			}
			// Two tabs: the second gets the same refresh token.
			again, err := fx.svc.Refresh(ctx, p.RefreshToken, owner)
			if err != nil || again.RefreshToken != q.RefreshToken {
				t.Fatalf("replay within grace: %q %v", again.RefreshToken, err)
			}
			r, err := fx.svc.Refresh(ctx, q.RefreshToken, owner)
			if err != nil {
				t.Fatal(err)
			}
			_, err = fx.svc.Refresh(ctx, p.RefreshToken, owner)
			wantCode(t, err, apierr.CodeInvalidToken, "already used")
			_, err = fx.svc.Refresh(ctx, r.RefreshToken, owner)
			wantCode(t, err, apierr.CodeInvalidToken, "revoked")
			for _, tok := range []string{p.Token, q.Token, r.Token} {
				if _, err := fx.agents.Verify(tok); !errors.Is(err, token.ErrRevoked) {
					t.Fatalf("access token of the reused sign-in: %v", err)
				}
			}
			if ev := fx.audits(t, "refresh.reuse_detected"); len(ev) != 1 || ev[0].Subject != "user:"+uid(fx.ada) {
				t.Fatalf("audit %+v", ev)
			}
		})
	})
}

func TestChangePassword(t *testing.T) {
	ctx := context.Background()

	fresh(t, "a wrong current_password is throttled", func(t *testing.T, fx *fixture) {
		u, _ := fx.db.UserByID(ctx, fx.ada.ID)
		for range throttle.PerAccountIP.Limit {
			err := fx.svc.ChangePassword(ctx, &u, "guess", "new password 1", "", ipA)
			wantCode(t, err, apierr.CodeInvalidRequest, "current_password")
		}
		err := fx.svc.ChangePassword(ctx, &u, password, "new password 1", "", ipA)
		wantCode(t, err, apierr.CodeTooManyRequests, "")
		ev := fx.audits(t, "login.lockout")
		if len(ev) != 1 || ev[0].Subject != throttle.AccountIP("current_password", uid(fx.ada), ipA) || ev[0].OrgID != fx.org.ID {
			t.Fatalf("lockout audit: %+v", ev)
		}
		// The password is unchanged, and sign-in has its own count.
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipA); err != nil {
			t.Fatalf("sign-in after current_password guesses: %v", err)
		}
		// From elsewhere the owner can change it.
		if err := fx.svc.ChangePassword(ctx, &u, password, "new password 1", "", ipB); err != nil {
			t.Fatalf("from another IP: %v", err)
		}
	})

	fresh(t, "a bad new password changes nothing", func(t *testing.T, fx *fixture) {
		p := fx.login(t, fx.ada)
		u, _ := fx.db.UserByID(ctx, fx.ada.ID)
		err := fx.svc.ChangePassword(ctx, &u, password, "short", p.Claims.Session, ipA)
		wantCode(t, err, apierr.CodeInvalidRequest, "at least 8")
		err = fx.svc.ChangePassword(ctx, &u, password, strings.Repeat("x", 73), p.Claims.Session, ipA)
		wantCode(t, err, apierr.CodeInvalidRequest, "72 bytes")
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipA); err != nil {
			t.Fatalf("old password: %v", err)
		}
		other := fx.login(t, fx.ada)
		if _, err := fx.agents.Verify(other.Token); err != nil {
			t.Fatalf("sessions ended by a refused change: %v", err)
		}
	})

	fresh(t, "other sessions end, keep survives", func(t *testing.T, fx *fixture) {
		keep := fx.login(t, fx.ada)
		other1 := fx.login(t, fx.ada)
		other2 := fx.login(t, fx.ada)
		grant := &domain.Family{Kind: refresh.KindOAuth, Subject: uid(fx.ada), OrgID: fx.org.ID, ClientID: "app", Scope: "agent read"}
		grantRT, err := fx.fams.Start(ctx, grant, token.PrefixRefresh)
		if err != nil {
			t.Fatal(err)
		}
		implicit := &domain.Family{Kind: refresh.KindImplicit, Subject: uid(fx.ada), OrgID: fx.org.ID, ClientID: "app", Scope: "agent read"}
		if err := fx.fams.StartSession(ctx, implicit); err != nil {
			t.Fatal(err)
		}
		bobs := fx.login(t, fx.bob)

		u, _ := fx.db.UserByID(ctx, fx.ada.ID)
		const next = "a brand new password"
		if err := fx.svc.ChangePassword(ctx, &u, password, next, keep.Claims.Session, ipA); err != nil {
			t.Fatal(err)
		}
		stored, _ := fx.db.UserByID(ctx, fx.ada.ID)
		if stored.PasswordHash != u.PasswordHash || bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte(next)) != nil {
			t.Fatal("new password not stored")
		}
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, password, ipB); err == nil {
			t.Fatal("the old password still signs in")
		}
		if _, err := fx.svc.CheckPassword(ctx, fx.ada.Email, next, ipB); err != nil {
			t.Fatalf("new password: %v", err)
		}

		for _, p := range []agentauth.Pair{other1, other2} {
			if _, err := fx.agents.Verify(p.Token); !errors.Is(err, token.ErrRevoked) {
				t.Fatalf("other session's access token: %v", err)
			}
			_, err := fx.svc.Refresh(ctx, p.RefreshToken, agentauth.ByClientID(fx.ada.Email))
			wantCode(t, err, apierr.CodeInvalidToken, "revoked")
		}
		for _, id := range []string{grant.ID, implicit.ID} {
			if f, _ := fx.db.Family(ctx, id); f.RevokedAt.IsZero() || f.Reason != "password changed" || !fx.rev.Revoked(id) {
				t.Fatalf("grant %s: %+v", id, f)
			}
		}
		if _, _, err := fx.fams.Rotate(ctx, grantRT, nil); !errors.Is(err, refresh.ErrRevoked) {
			t.Fatalf("grant's refresh token: %v", err)
		}
		// The session that changed it goes on.
		if _, err := fx.agents.Verify(keep.Token); err != nil {
			t.Fatalf("kept session: %v", err)
		}
		if _, err := fx.svc.Refresh(ctx, keep.RefreshToken, agentauth.BySession(uid(fx.ada), keep.Claims.Session)); err != nil {
			t.Fatalf("kept session's refresh: %v", err)
		}
		// Other users are untouched.
		if _, err := fx.agents.Verify(bobs.Token); err != nil {
			t.Fatalf("another user's session: %v", err)
		}
	})
}

func TestResetAPIToken(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		fx := newFixture(t, dsn)
		p := fx.login(t, fx.ada)
		session, err := fx.in.Inspect(ctx, p.Token)
		if err != nil {
			t.Fatal(err)
		}
		first, err := fx.svc.ResetAPIToken(ctx, session)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(first, token.PrefixAPIToken) {
			t.Fatalf("token %q", first)
		}
		api, err := fx.in.Inspect(ctx, first)
		if err != nil || api.Kind != credential.API || api.UserID() != fx.ada.ID {
			t.Fatalf("new API token: %+v %v", api, err)
		}
		if ev := fx.audits(t, "credential.reset"); len(ev) != 1 || ev[0].Subject != "api:"+uid(fx.ada) || ev[0].Actor != uid(fx.ada) {
			t.Fatalf("audit %+v", ev)
		}

		// Every other kind is refused, and the token stays as it is.
		oauthTok, _, err := fx.iss.Agent(shared.AgentClaims{Subject: uid(fx.ada), Org: fx.org.ID, ClientID: "app", Session: "g",
			Scope: shared.Scope{Role: shared.RoleAgent, API: shared.FirstParty}}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		oauthCred, err := fx.in.Inspect(ctx, oauthTok)
		if err != nil || oauthCred.Kind != credential.OAuth {
			t.Fatalf("%+v %v", oauthCred, err)
		}
		patSecret, hash := token.NewOpaque(token.PrefixPersonal)
		if err := fx.db.CreateCredential(ctx, &domain.Credential{Kind: "pat", OrgID: fx.org.ID, UserID: fx.ada.ID, Name: "ci", Scope: "agent read write chat", Hash: hash}); err != nil {
			t.Fatal(err)
		}
		pat, err := fx.in.Inspect(ctx, patSecret)
		if err != nil {
			t.Fatal(err)
		}
		refreshCred, err := fx.in.Inspect(ctx, p.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		claims := shared.AgentClaims{Subject: uid(fx.ada), Org: fx.org.ID, Scope: shared.Scope{Role: shared.RoleAgent, API: shared.FirstParty}}
		holders := []credential.Credential{oauthCred, api, pat, refreshCred}
		for _, k := range []credential.Kind{credential.ClientToken, credential.Bot, credential.Platform, credential.Customer, credential.CustomerRefresh, ""} {
			holders = append(holders, credential.Credential{Kind: k, Agent: claims})
		}
		for _, h := range holders {
			tok, err := fx.svc.ResetAPIToken(ctx, h)
			wantCode(t, err, apierr.CodeSignInRequired, "first-party sign-in")
			if tok != "" {
				t.Fatalf("%s: got a token", h.Kind)
			}
		}
		if _, err := fx.in.Inspect(ctx, first); err != nil {
			t.Fatalf("a refused reset changed the token: %v", err)
		}

		// A second reset: the first token fails at once.
		second, err := fx.svc.ResetAPIToken(ctx, session)
		if err != nil || second == first {
			t.Fatalf("second reset: %q %v", second, err)
		}
		if _, err := fx.in.Inspect(ctx, first); err == nil {
			t.Fatal("the previous API token still works")
		}
		if c, err := fx.in.Inspect(ctx, second); err != nil || c.UserID() != fx.ada.ID {
			t.Fatalf("%+v %v", c, err)
		}
		if ev := fx.audits(t, "credential.reset"); len(ev) != 2 {
			t.Fatalf("%d reset events", len(ev))
		}
	})
}
