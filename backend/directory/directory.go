// Package directory manages the users of organizations, once, for the
// agent API and the platform API alike: creating a user, changing one
// (and, when the role or password changes, ending what the old ones
// granted), deleting one with every credential derived from them. The
// two APIs differ only in who may call and which users they see; the
// rules about users live here (docs/security.md, I2).
package directory

import (
	"context"
	"errors"
	"net/mail"
	"strings"
	"unicode/utf8"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

// Store is what user management needs of the database.
type Store interface {
	CreateUser(ctx context.Context, u *domain.User) error
	UpdateUser(ctx context.Context, u *domain.User, cols ...string) error
}

var _ Store = (*sqlstore.DB)(nil)

// Hasher hashes passwords (agentauth.Service, at its bcrypt cost).
type Hasher interface {
	HashPassword(pw string) (string, error)
}

// Users is user management.
type Users struct {
	Store   Store
	Hasher  Hasher
	Cascade *credential.Cascade
}

// Patch is a create or update body: nil fields are left alone (and are
// required on create).
type Patch struct {
	Name     *string
	Email    *string
	Password *string
	Role     *string
}

// CheckEmail accepts a plain address (no display name), at most 254 characters.
func CheckEmail(v string) error {
	if a, err := mail.ParseAddress(v); err != nil || a.Address != v {
		return apierr.InvalidRequest("email: not an email address")
	}
	if utf8.RuneCountInString(v) > 254 {
		return apierr.InvalidRequest("email: too long; use at most 254 characters")
	}
	return nil
}

// role reads a role for a user account: guests are website visitors,
// who get customer tokens, not accounts.
func role(v string) (shared.Role, error) {
	r, err := shared.ParseRole(v)
	if err != nil || r == shared.RoleGuest {
		return 0, apierr.InvalidRequest("role: must be one of agent, bot, admin")
	}
	return r, nil
}

func checkPassword(pw string) error {
	if len(pw) < 8 || len(pw) > 72 {
		return apierr.InvalidRequest("password: use 8 to 72 bytes")
	}
	return nil
}

func checkName(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return apierr.InvalidRequest("name: required")
	case utf8.RuneCountInString(v) > 200:
		return apierr.InvalidRequest("name: too long; use at most 200 characters")
	}
	return nil
}

// apply validates and applies p to u; it reports whether the role or
// password changed.
func (s *Users) apply(p Patch, u *domain.User) (changed bool, err error) {
	if p.Name != nil {
		if err := checkName(*p.Name); err != nil {
			return false, err
		}
		u.Name = strings.TrimSpace(*p.Name)
	}
	if p.Email != nil {
		e := strings.TrimSpace(*p.Email)
		if err := CheckEmail(e); err != nil {
			return false, err
		}
		u.Email = e
	}
	if p.Role != nil {
		r, err := role(*p.Role)
		if err != nil {
			return false, err
		}
		changed = changed || r != u.Role
		u.Role = r
	}
	if p.Password != nil {
		if err := checkPassword(*p.Password); err != nil {
			return false, err
		}
		if u.PasswordHash, err = s.Hasher.HashPassword(*p.Password); err != nil {
			return false, err
		}
		changed = true
	}
	return changed, nil
}

func conflict(err error) error {
	if errors.Is(err, domain.ErrConflict) {
		return apierr.Conflict("email: already used by another user")
	}
	if errors.Is(err, domain.ErrNotFound) {
		return apierr.NotFound("user not found")
	}
	return apierr.Internal(err)
}

// Caller is who asks: an agent-API credential, or nil for the platform
// API (the operator's platform token).
type Caller = *credential.Credential

// mayMint applies the ceiling (docs/security.md, I1): a new user, or a
// new password, email or role, is a new way to sign in, so only a
// first-party sign-in may set one; a personal, API, bot or OAuth token
// could otherwise turn itself into an unrestricted account.
func mayMint(by Caller, what string) error {
	if by == nil {
		return nil
	}
	return credential.LongLived(*by, what)
}

// Create makes a user in org from a complete patch.
func (s *Users) Create(ctx context.Context, by Caller, org int64, p Patch) (domain.User, error) {
	if err := mayMint(by, "creating a user"); err != nil {
		return domain.User{}, err
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"name", p.Name}, {"email", p.Email}, {"password", p.Password}, {"role", p.Role}} {
		if f.v == nil || strings.TrimSpace(*f.v) == "" {
			return domain.User{}, apierr.InvalidRequest(f.name + ": required")
		}
	}
	u := domain.User{OrgID: org}
	if _, err := s.apply(p, &u); err != nil {
		return u, err
	}
	if err := s.Store.CreateUser(ctx, &u); err != nil {
		return u, conflict(err)
	}
	return u, nil
}

// Update applies p to u and stores it. A new role or password ends every
// sign-in, OAuth grant and implicit grant of the user, so no token keeps
// rights the user no longer has (personal and API tokens act with the
// role as it is now).
func (s *Users) Update(ctx context.Context, by Caller, u *domain.User, p Patch) error {
	if p.Password != nil || p.Email != nil || p.Role != nil {
		if err := mayMint(by, "changing a user's password, email or role"); err != nil {
			return err
		}
	}
	changed, err := s.apply(p, u)
	if err != nil {
		return err
	}
	var cols []string
	for _, f := range []struct {
		set bool
		col string
	}{{p.Name != nil, "name"}, {p.Email != nil, "email"}, {p.Role != nil, "role"}, {p.Password != nil, "password"}} {
		if f.set {
			cols = append(cols, f.col)
		}
	}
	if err := s.Store.UpdateUser(ctx, u, cols...); err != nil {
		return conflict(err)
	}
	if changed {
		if err := s.Cascade.UserChanged(ctx, u.ID, "", "password or role changed by an admin"); err != nil {
			return apierr.Internal(err)
		}
	}
	return nil
}

// Delete removes a user with every credential derived from them.
func (s *Users) Delete(ctx context.Context, id int64) error {
	if err := s.Cascade.DeleteUser(ctx, id); err != nil {
		if errors.Is(err, domain.ErrNotFound) {
			return apierr.NotFound("user not found")
		}
		return apierr.Internal(err)
	}
	return nil
}
