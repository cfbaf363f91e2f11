// Package agentauth signs agents in and keeps them signed in (SPEC §4):
// password login, refresh-token rotation with reuse detection and a grace
// window, the user API token, and failed-login throttling. It holds the
// rules; the HTTP layer only translates.
package agentauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"time"

	"golang.org/x/crypto/bcrypt"

	"chatauth/backend/apierr"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what sign-in needs of the database.
type Store interface {
	UserByEmail(ctx context.Context, email string) (sqlstore.User, error)
	UserByID(ctx context.Context, id int64) (sqlstore.User, error)
	UpdateUser(ctx context.Context, u *sqlstore.User) error
	SetAPITokenHash(ctx context.Context, userID int64, hash []byte) error
	UserByAPITokenHash(ctx context.Context, hash []byte) (sqlstore.User, []byte, error)
	TouchAPIToken(ctx context.Context, userID int64, t time.Time) error
	CreateFamily(ctx context.Context, f *sqlstore.Family, first sqlstore.RefreshToken) error
	LookupRefresh(ctx context.Context, hash []byte) (sqlstore.Family, sqlstore.RefreshToken, error)
	Rotate(ctx context.Context, hash []byte, grace time.Duration, next sqlstore.RefreshToken) (sqlstore.Family, error)
	RevokeFamily(ctx context.Context, id, reason string) error
	RevokeSubjectFamilies(ctx context.Context, kind, subject, keep, reason string) ([]string, error)
	Audit(ctx context.Context, e sqlstore.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// FamilyKind marks refresh families made by password login.
const FamilyKind = "agent"

// Limits of failed sign-ins per window.
const (
	FailsPerAccount = 10
	FailsPerIP      = 50
)

// Service is agent sign-in.
type Service struct {
	Store       Store
	Issuer      *token.Issuer
	Revocations *token.Revocations
	Throttle    *Throttle
	AccessTTL   time.Duration
	RefreshTTL  time.Duration
	Grace       time.Duration
	BcryptCost  int
	Now         func() time.Time
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

// Profile is a user as the API shows it (SPEC §4).
type Profile struct {
	ID        int64       `json:"id"`
	Name      string      `json:"name"`
	Email     string      `json:"email"`
	AccountID int64       `json:"account_id"`
	Role      shared.Role `json:"role"`
}

// ProfileOf shows u.
func ProfileOf(u sqlstore.User) Profile {
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

// CheckPassword checks an email and password under the failed-login
// throttle. It is the one place a password is checked, for the API login
// and the OAuth sign-in page alike.
func (s *Service) CheckPassword(ctx context.Context, email, password, ip string) (sqlstore.User, error) {
	acct, ipKey := "acct:"+sqlstore.NormalizeEmail(email), "ip:"+ip
	if wait := max(s.Throttle.Blocked(acct, FailsPerAccount), s.Throttle.Blocked(ipKey, FailsPerIP)); wait > 0 {
		return sqlstore.User{}, apierr.TooManyRequests("too many failed sign-ins; wait "+roundUp(wait)+" and try again, or reset the password", wait)
	}
	u, err := s.Store.UserByEmail(ctx, email)
	switch {
	case errors.Is(err, sqlstore.ErrNotFound):
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		s.Throttle.Fail(acct, ipKey)
		return u, errBadLogin
	case err != nil:
		return u, apierr.Internal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		s.Throttle.Fail(acct, ipKey)
		if s.Throttle.Blocked(acct, FailsPerAccount) > 0 {
			s.Store.Audit(ctx, sqlstore.AuditEvent{OrgID: u.OrgID, Event: "login.lockout", Subject: "user:" + strconv.FormatInt(u.ID, 10),
				Detail: "too many failed sign-ins from " + ip})
		}
		return sqlstore.User{}, errBadLogin
	}
	s.Throttle.Reset(acct)
	return u, nil
}

// Login checks an email and password and starts a new refresh family.
func (s *Service) Login(ctx context.Context, email, password, ip string) (Pair, error) {
	u, err := s.CheckPassword(ctx, email, password, ip)
	if err != nil {
		return Pair{}, err
	}
	return s.StartSession(ctx, u)
}

func roundUp(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 120 {
		return strconv.FormatInt(secs, 10) + "s"
	}
	return strconv.FormatInt((secs+59)/60, 10) + " minutes"
}

func firstParty(u sqlstore.User) shared.Scope {
	return shared.Scope{Role: u.Role, API: shared.FirstParty}
}

// StartSession begins a new refresh family for u and issues its first pair.
func (s *Service) StartSession(ctx context.Context, u sqlstore.User) (Pair, error) {
	refresh, hash := token.NewOpaque(token.PrefixRefresh)
	now := s.Now()
	fam := &sqlstore.Family{ID: token.NewID(), Kind: FamilyKind, Subject: strconv.FormatInt(u.ID, 10), OrgID: u.OrgID, Scope: firstParty(u).String()}
	if err := s.Store.CreateFamily(ctx, fam, sqlstore.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL)}); err != nil {
		return Pair{}, apierr.Internal(err)
	}
	return s.pair(u, fam.ID, refresh)
}

func (s *Service) pair(u sqlstore.User, sid, refresh string) (Pair, error) {
	scope := firstParty(u)
	tok, claims, err := s.Issuer.Agent(shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Org: u.OrgID, Scope: scope, Session: sid}, s.AccessTTL)
	if err != nil {
		return Pair{}, apierr.Internal(err)
	}
	return Pair{TokenType: "Bearer", Token: tok, RefreshToken: refresh, User: ProfileOf(u), Scope: scope.String(), ExpiresIn: int64(s.AccessTTL / time.Second), Claims: claims}, nil
}

// Owner says whether the family may be refreshed by this caller; it is
// checked before the token is spent, so a wrong caller cannot burn it.
type Owner func(f sqlstore.Family, u sqlstore.User) bool

// BySubject accepts a caller whose access token names the family's user.
func BySubject(sub string) Owner {
	return func(f sqlstore.Family, _ sqlstore.User) bool { return f.Subject == sub }
}

// ByClientID accepts the user's email (or, for bots, their id): the
// "clientId" of SPEC §4's refresh after expiry.
func ByClientID(clientID string) Owner {
	return func(f sqlstore.Family, u sqlstore.User) bool {
		return subtle.ConstantTimeCompare([]byte(sqlstore.NormalizeEmail(clientID)), []byte(u.Email)) == 1 || clientID == f.Subject
	}
}

func refreshErr(msg string) error { return apierr.InvalidToken(msg) }

// Refresh spends a refresh token and returns a new pair in its family.
func (s *Service) Refresh(ctx context.Context, refresh string, owner Owner) (Pair, error) {
	if refresh == "" {
		return Pair{}, apierr.InvalidRequest("refreshToken: required")
	}
	if !token.HasPrefix(refresh, token.PrefixRefresh) {
		return Pair{}, refreshErr("refreshToken is not a refresh token of this server (they start with " + token.PrefixRefresh + ")")
	}
	hash := token.Hash(refresh)
	fam, _, err := s.Store.LookupRefresh(ctx, hash)
	switch {
	case errors.Is(err, sqlstore.ErrNotFound):
		return Pair{}, refreshErr("refresh token is unknown; sign in again")
	case err != nil:
		return Pair{}, apierr.Internal(err)
	}
	if fam.Kind != FamilyKind {
		return Pair{}, refreshErr("this refresh token belongs to an OAuth client; refresh it at POST /oauth/token")
	}
	uid, _ := strconv.ParseInt(fam.Subject, 10, 64)
	u, err := s.Store.UserByID(ctx, uid)
	switch {
	case errors.Is(err, sqlstore.ErrNotFound):
		return Pair{}, refreshErr("the user of this refresh token no longer exists")
	case err != nil:
		return Pair{}, apierr.Internal(err)
	}
	if !owner(fam, u) {
		return Pair{}, refreshErr("this refresh token belongs to another user; send the clientId (email) it was issued to")
	}
	next, nextHash := token.NewOpaque(token.PrefixRefresh)
	now := s.Now()
	fam, err = s.Store.Rotate(ctx, hash, s.Grace, sqlstore.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL)})
	switch {
	case errors.Is(err, sqlstore.ErrReused):
		s.Revocations.Add(fam.ID)
		s.Store.Audit(ctx, sqlstore.AuditEvent{OrgID: fam.OrgID, Event: "refresh.reuse_detected", Subject: "user:" + fam.Subject, Detail: "sign-in revoked"})
		return Pair{}, refreshErr("refresh token was already used; for safety every token of this sign-in is now revoked. Sign in again")
	case errors.Is(err, sqlstore.ErrRevoked):
		return Pair{}, refreshErr("refresh token revoked; sign in again")
	case errors.Is(err, sqlstore.ErrExpired):
		return Pair{}, refreshErr("refresh token expired; sign in again")
	case errors.Is(err, sqlstore.ErrNotFound):
		return Pair{}, refreshErr("refresh token is unknown; sign in again")
	case err != nil:
		return Pair{}, apierr.Internal(err)
	}
	return s.pair(u, fam.ID, next)
}

// ResetAPIToken gives the user a new API token; the old one fails at once.
func (s *Service) ResetAPIToken(ctx context.Context, userID int64) (string, error) {
	tok, hash := token.NewOpaque(token.PrefixAPIToken)
	if err := s.Store.SetAPITokenHash(ctx, userID, hash); err != nil {
		return "", apierr.Internal(err)
	}
	return tok, nil
}

// touchEvery throttles last-used writes for busy integrations.
const touchEvery = time.Minute

// AuthenticateAPIToken finds the user of an api_access_token.
func (s *Service) AuthenticateAPIToken(ctx context.Context, tok string) (sqlstore.User, error) {
	if !token.HasPrefix(tok, token.PrefixAPIToken) {
		return sqlstore.User{}, apierr.InvalidToken("api_access_token is not a user API token of this server (they start with " + token.PrefixAPIToken + "); reset it at POST /api/v1/profile/reset_access_token")
	}
	hash := token.Hash(tok)
	u, stored, err := s.Store.UserByAPITokenHash(ctx, hash)
	switch {
	case errors.Is(err, sqlstore.ErrNotFound):
		return u, apierr.InvalidToken("api_access_token is not valid (it may have been reset); get the current one from your profile")
	case err != nil:
		return u, apierr.Internal(err)
	}
	if subtle.ConstantTimeCompare(stored, hash) != 1 {
		return u, apierr.InvalidToken("api_access_token is not valid")
	}
	if now := s.Now(); now.Sub(u.APITokenUsedAt) > touchEvery {
		if err := s.Store.TouchAPIToken(ctx, u.ID, now); err != nil {
			return u, apierr.Internal(err)
		}
	}
	return u, nil
}

// ClaimsForUser are the claims an API-token request acts with: the user's
// role and first-party scopes, no session.
func ClaimsForUser(u sqlstore.User) shared.AgentClaims {
	return shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Audience: shared.AudienceAgent, Org: u.OrgID, Scope: firstParty(u)}
}

// ChangePassword sets a new password after checking the current one, and
// signs out every other session of the user.
func (s *Service) ChangePassword(ctx context.Context, u *sqlstore.User, current, next, keepSession string) error {
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(current)) != nil {
		return apierr.InvalidRequest("current_password: does not match; send your current password to set a new one")
	}
	if len(next) < 8 {
		return apierr.InvalidRequest("password: use at least 8 characters")
	}
	h, err := s.HashPassword(next)
	if err != nil {
		return err
	}
	u.PasswordHash = h
	if err := s.Store.UpdateUser(ctx, u); err != nil {
		return apierr.Internal(err)
	}
	ids, err := s.Store.RevokeSubjectFamilies(ctx, FamilyKind, strconv.FormatInt(u.ID, 10), keepSession, "password changed")
	if err != nil {
		return apierr.Internal(err)
	}
	s.Revocations.Add(ids...)
	return nil
}
