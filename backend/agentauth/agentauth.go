// Package agentauth signs agents in and keeps them signed in
// (docs/api.md, "Agent authentication"): password login under the guess
// throttle, sessions as refresh families (backend/refresh), password
// changes, and the user API token. It holds the rules; the HTTP layer
// only translates.
package agentauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what sign-in needs of the database.
type Store interface {
	UserByEmail(ctx context.Context, email string) (domain.User, error)
	UserByID(ctx context.Context, id int64) (domain.User, error)
	UpdateUser(ctx context.Context, u *domain.User, cols ...string) error
	SetAPITokenHash(ctx context.Context, userID int64, hash []byte) error
	Audit(ctx context.Context, e domain.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// FamilyKind marks refresh families made by password login.
const FamilyKind = refresh.KindAgent

// Service is agent sign-in.
type Service struct {
	Store    Store
	Issuer   *token.Issuer
	Families *refresh.Families
	Cascade  *credential.Cascade
	// Guard throttles password guesses: at sign-in and at the
	// current_password of a password change (docs/security.md, I5).
	Guard      *throttle.Guesses
	AccessTTL  time.Duration
	BcryptCost int
	Now        func() time.Time
}

// Pair is the answer to a login or a refresh.
type Pair struct {
	TokenType    string             `json:"tokenType"`
	Token        string             `json:"token"`
	RefreshToken string             `json:"refreshToken"`
	User         Profile            `json:"user"`
	Scope        string             `json:"scope"`
	ExpiresIn    int64              `json:"expiresIn"`
	Claims       shared.AgentClaims `json:"-"`
}

// Profile is a user as the API shows it (docs/api.md, "Agent authentication").
type Profile struct {
	ID        int64       `json:"id"`
	Name      string      `json:"name"`
	Email     string      `json:"email"`
	AccountID int64       `json:"account_id"`
	Role      shared.Role `json:"role"`
}

// ProfileOf shows u.
func ProfileOf(u domain.User) Profile {
	return Profile{ID: u.ID, Name: u.Name, Email: u.Email, AccountID: u.OrgID, Role: u.Role}
}

// HashPassword hashes a password with bcrypt at the service's cost.
func (s *Service) HashPassword(pw string) (string, error) {
	if len(pw) > 72 {
		// bcrypt ignores bytes past 72; refusing is better than a silent cut.
		return "", apierr.InvalidRequest("password: use at most 72 bytes")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), s.cost())
	if err != nil {
		return "", apierr.Internal(err)
	}
	return string(h), nil
}

func (s *Service) cost() int {
	if s.BcryptCost == 0 {
		return bcrypt.DefaultCost
	}
	return s.BcryptCost
}

// dummyHash is compared against when the email is unknown, so an unknown
// email costs the same time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("chatauth timing equalizer"), bcrypt.DefaultCost)

var errBadLogin = apierr.New(apierr.CodeInvalidCredential, "email or password is wrong")

// CheckPassword checks an email and password under the guess throttle.
// It is the one place a password is checked at sign-in, for the API login
// and the OAuth sign-in page alike.
func (s *Service) CheckPassword(ctx context.Context, email, password, ip string) (domain.User, error) {
	keys := s.Guard.Keys("login", domain.NormalizeEmail(email), ip)
	if err := s.Guard.Check(ctx, keys); err != nil {
		return domain.User{}, err
	}
	u, err := s.Store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return u, s.Guard.Fail(ctx, keys, 0, "too many failed sign-ins from "+ip, errBadLogin)
	case err != nil:
		return u, apierr.Internal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return domain.User{}, s.Guard.Fail(ctx, keys, u.OrgID, "too many failed sign-ins from "+ip, errBadLogin)
	}
	s.Guard.Reset(ctx, keys)
	return u, nil
}

// Login checks an email and password and starts a new refresh family.
func (s *Service) Login(ctx context.Context, email, password, ip string) (Pair, error) {
	u, err := s.CheckPassword(ctx, email, password, ip)
	if err != nil {
		return Pair{}, err
	}
	p, err := s.StartSession(ctx, u)
	if err != nil {
		return p, err
	}
	// A password reset or demotion that committed between the check and
	// the new session has already ended the user's sessions, but not this
	// one: look again, and end it if the user changed meanwhile
	// (docs/security.md, I2).
	now, err := s.Store.UserByID(ctx, u.ID)
	if err != nil || now.PasswordHash != u.PasswordHash || now.Role != u.Role {
		if rerr := s.Families.Revoke(ctx, p.Claims.Session, "user changed during sign-in"); rerr != nil {
			return Pair{}, apierr.Internal(rerr)
		}
		return Pair{}, errBadLogin
	}
	return p, nil
}

func firstParty(u domain.User) shared.Scope {
	return shared.Scope{Role: u.Role, API: shared.FirstParty}
}

// StartSession begins a new refresh family for u and issues its first pair.
func (s *Service) StartSession(ctx context.Context, u domain.User) (Pair, error) {
	fam := &domain.Family{Kind: FamilyKind, Subject: strconv.FormatInt(u.ID, 10), OrgID: u.OrgID, Scope: firstParty(u).String()}
	rt, err := s.Families.Start(ctx, fam, token.PrefixRefresh)
	if err != nil {
		return Pair{}, apierr.Internal(err)
	}
	return s.pair(u, fam.ID, rt)
}

func (s *Service) pair(u domain.User, sid, refresh string) (Pair, error) {
	scope := firstParty(u)
	tok, claims, err := s.Issuer.Agent(shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Org: u.OrgID, Scope: scope, Session: sid}, s.AccessTTL)
	if err != nil {
		return Pair{}, apierr.Internal(err)
	}
	return Pair{TokenType: "Bearer", Token: tok, RefreshToken: refresh, User: ProfileOf(u), Scope: scope.String(), ExpiresIn: int64(s.AccessTTL / time.Second), Claims: claims}, nil
}

// Owner says whether the family may be refreshed by this caller; it is
// checked before the token is spent, so a wrong caller cannot burn it.
type Owner func(f domain.Family, u domain.User) bool

// BySession accepts the sign-in's own access token: refreshing before
// expiry proves possession of both halves of the pair.
func BySession(sub, sid string) Owner {
	return func(f domain.Family, _ domain.User) bool { return f.Subject == sub && f.ID == sid }
}

// ByClientID accepts the user's email (or, for bots, their id): the
// "clientId" of a refresh after expiry (docs/api.md, "Agent authentication").
func ByClientID(clientID string) Owner {
	return func(f domain.Family, u domain.User) bool {
		return subtle.ConstantTimeCompare([]byte(domain.NormalizeEmail(clientID)), []byte(u.Email)) == 1 || clientID == f.Subject
	}
}

func refreshErr(msg string) error { return apierr.InvalidToken(msg) }

// Refresh spends a refresh token and returns a new pair in its family.
func (s *Service) Refresh(ctx context.Context, rt string, owner Owner) (Pair, error) {
	if rt == "" {
		return Pair{}, apierr.InvalidRequest("refreshToken: required")
	}
	if !token.HasPrefix(rt, token.PrefixRefresh) {
		return Pair{}, refreshErr("refreshToken is not a refresh token of this server (they start with " + token.PrefixRefresh + ")")
	}
	var u domain.User
	fam, next, err := s.Families.Rotate(ctx, rt, func(fam domain.Family) error {
		if fam.Kind != FamilyKind {
			return refreshErr("this refresh token belongs to an OAuth client; refresh it at POST /oauth/token")
		}
		uid, _ := strconv.ParseInt(fam.Subject, 10, 64)
		var err error
		u, err = s.Store.UserByID(ctx, uid)
		switch {
		case errors.Is(err, domain.ErrNotFound):
			return refreshErr("the user of this refresh token no longer exists")
		case err != nil:
			return apierr.Internal(err)
		}
		if !owner(fam, u) {
			return refreshErr("this refresh token belongs to another user or sign-in; send the clientId (email) it was issued to, or the access token of its own sign-in")
		}
		return nil
	})
	if err != nil {
		return Pair{}, refresh.APIError(err, "sign in again")
	}
	return s.pair(u, fam.ID, next)
}

// ResetAPIToken gives the holder's user a new API token; the old one
// fails at once. The API token acts with the user's full role, so only a
// first-party sign-in may mint it (docs/security.md, I1).
func (s *Service) ResetAPIToken(ctx context.Context, holder credential.Credential) (string, error) {
	if err := credential.LongLived(holder, "resetting the user API token"); err != nil {
		return "", err
	}
	u := holder.UserID()
	tok, hash := token.NewOpaque(token.PrefixAPIToken)
	if err := s.Store.SetAPITokenHash(ctx, u, hash); err != nil {
		return "", apierr.Internal(err)
	}
	if err := s.Cascade.CredentialEnded(ctx, sqlstore.APITokenParent(u), "API token reset"); err != nil {
		return "", apierr.Internal(err)
	}
	s.Store.Audit(ctx, domain.AuditEvent{OrgID: holder.Agent.Org, Actor: holder.Agent.Subject, Event: "credential.reset", Subject: "api:" + strconv.FormatInt(u, 10)})
	return tok, nil
}

// ChangePassword sets a new password after checking the current one
// (throttled like a sign-in), and ends every other sign-in and every
// grant of the user.
func (s *Service) ChangePassword(ctx context.Context, u *domain.User, current, next, keepSession, ip string) error {
	keys := s.Guard.Keys("current_password", strconv.FormatInt(u.ID, 10), ip)
	if err := s.Guard.Check(ctx, keys); err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(current)) != nil {
		return s.Guard.Fail(ctx, keys, u.OrgID, "too many wrong current_password guesses from "+ip,
			apierr.InvalidRequest("current_password: does not match; send your current password to set a new one"))
	}
	s.Guard.Reset(ctx, keys)
	if len(next) < 8 {
		return apierr.InvalidRequest("password: use at least 8 characters")
	}
	h, err := s.HashPassword(next)
	if err != nil {
		return err
	}
	u.PasswordHash = h
	if err := s.Store.UpdateUser(ctx, u, "password"); err != nil {
		return apierr.Internal(err)
	}
	if err := s.Cascade.UserChanged(ctx, u.ID, keepSession, "password changed"); err != nil {
		return apierr.Internal(err)
	}
	return nil
}
