package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"chatauth/shared"
)

// CreateOrganization stores o and sets its ID and CreatedAt.
func (s *DB) CreateOrganization(ctx context.Context, o *Organization) error {
	defer s.trees.clear() // "not in the tree" answers may be memoized
	o.CreatedAt = fromMS(s.now())
	parent := sql.NullInt64{Int64: o.ParentID, Valid: o.ParentID != 0}
	err := s.queryRow(ctx, "INSERT INTO organizations (parent_id, name, created_at) VALUES (?, ?, ?) RETURNING id",
		parent, o.Name, s.ms(o.CreatedAt)).Scan(&o.ID)
	if err != nil {
		return fmt.Errorf("create organization: %w", err)
	}
	return nil
}

// Organization fetches one organization.
func (s *DB) Organization(ctx context.Context, id int64) (Organization, error) {
	var o Organization
	var parent sql.NullInt64
	var created int64
	err := s.queryRow(ctx, "SELECT id, parent_id, name, created_at FROM organizations WHERE id = ?", id).Scan(&o.ID, &parent, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("organization: %w", err)
	}
	o.ParentID, o.CreatedAt = parent.Int64, fromMS(created)
	return o, nil
}

const userCols = "id, org_id, email, name, role, password_hash, api_token_used_at, created_at, updated_at"

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var role string
	var used sql.NullInt64
	var created, updated int64
	if err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.Name, &role, &u.PasswordHash, &used, &created, &updated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, ErrNotFound
		}
		return u, err
	}
	r, err := shared.ParseRole(role)
	if err != nil {
		return u, fmt.Errorf("user %d: stored role: %w", u.ID, err)
	}
	u.Role, u.APITokenUsedAt, u.CreatedAt, u.UpdatedAt = r, fromNullMS(used), fromMS(created), fromMS(updated)
	return u, nil
}

// CreateUser stores u (email normalized) and sets its ID and times.
// A taken email is ErrConflict.
func (s *DB) CreateUser(ctx context.Context, u *User) error {
	return s.createUser(ctx, s.db, u)
}

type execer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *DB) createUser(ctx context.Context, x execer, u *User) error {
	u.Email = NormalizeEmail(u.Email)
	now := s.now()
	u.CreatedAt, u.UpdatedAt = fromMS(now), fromMS(now)
	err := x.QueryRowContext(ctx, s.q("INSERT INTO users (org_id, email, name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
		u.OrgID, u.Email, u.Name, u.Role.String(), u.PasswordHash, now, now).Scan(&u.ID)
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	return nil
}

// Bootstrap creates organization orgName and admin on an empty database,
// in one transaction. It reports false (and changes nothing) when any
// user exists already.
func (s *DB) Bootstrap(ctx context.Context, orgName string, admin *User) (bool, error) {
	created := false
	err := s.tx(ctx, func(t *Tx) error {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM users").Scan(&n); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if n > 0 {
			return nil
		}
		var orgID int64
		if err := t.queryRow(ctx, "INSERT INTO organizations (name, created_at) VALUES (?, ?) RETURNING id", orgName, s.now()).Scan(&orgID); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		admin.OrgID = orgID
		if err := s.createUser(ctx, t.tx, admin); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		created = true
		return nil
	})
	return created, err
}

// UserByID fetches a user.
func (s *DB) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("user by id: %w", err)
	}
	return u, err
}

// UserByEmail fetches a user by (normalized) email.
func (s *DB) UserByEmail(ctx context.Context, email string) (User, error) {
	if !storable(email) {
		return User{}, ErrNotFound
	}
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE email = ?", NormalizeEmail(email)))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("user by email: %w", err)
	}
	return u, err
}

// UpdateUser writes u's email, name, role and password hash.
func (s *DB) UpdateUser(ctx context.Context, u *User, cols ...string) error {
	// Only the columns the caller changed are written: a rename racing an
	// admin's demotion or password reset must not write the old role or
	// password back.
	u.Email = NormalizeEmail(u.Email)
	u.UpdatedAt = fromMS(s.now())
	if len(cols) == 0 {
		cols = []string{"email", "name", "role", "password"} // every field
	}
	set, args := "updated_at = ?", []any{s.ms(u.UpdatedAt)}
	for _, c := range cols {
		switch c {
		case "email":
			set, args = set+", email = ?", append(args, u.Email)
		case "name":
			set, args = set+", name = ?", append(args, u.Name)
		case "role":
			set, args = set+", role = ?", append(args, u.Role.String())
		case "password":
			set, args = set+", password_hash = ?", append(args, u.PasswordHash)
		default:
			return fmt.Errorf("update user: no column %q", c)
		}
	}
	res, err := s.exec(ctx, "UPDATE users SET "+set+" WHERE id = ?", append(args, u.ID)...)
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("update user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetAPITokenHash replaces the user's API token; the old one stops
// matching with this statement.
func (s *DB) SetAPITokenHash(ctx context.Context, userID int64, hash []byte) error {
	res, err := s.exec(ctx, "UPDATE users SET api_token_hash = ?, api_token_used_at = NULL WHERE id = ?", hash, userID)
	if err != nil {
		return fmt.Errorf("set api token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// UserByAPITokenHash finds the owner of an API token by the token's
// SHA-256 hash, and returns the stored hash for a constant-time check.
func (s *DB) UserByAPITokenHash(ctx context.Context, hash []byte) (User, []byte, error) {
	var stored []byte
	row := s.queryRow(ctx, "SELECT "+userCols+", api_token_hash FROM users WHERE api_token_hash = ?", hash)
	var u User
	var role string
	var used sql.NullInt64
	var created, updated int64
	err := row.Scan(&u.ID, &u.OrgID, &u.Email, &u.Name, &role, &u.PasswordHash, &used, &created, &updated, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return u, nil, ErrNotFound
	}
	if err != nil {
		return u, nil, fmt.Errorf("user by api token: %w", err)
	}
	if u.Role, err = shared.ParseRole(role); err != nil {
		return u, nil, fmt.Errorf("user %d: stored role: %w", u.ID, err)
	}
	u.APITokenUsedAt, u.CreatedAt, u.UpdatedAt = fromNullMS(used), fromMS(created), fromMS(updated)
	return u, stored, nil
}

// TouchAPIToken records that the user's API token was used at t. Callers
// throttle it so a busy integration does not write on every request.
func (s *DB) TouchAPIToken(ctx context.Context, userID int64, t time.Time) error {
	if _, err := s.exec(ctx, "UPDATE users SET api_token_used_at = ? WHERE id = ?", s.ms(t), userID); err != nil {
		return fmt.Errorf("touch api token: %w", err)
	}
	return nil
}

// FirstOrganization is the oldest root organization (organization 1 on a
// fresh install).
func (s *DB) FirstOrganization(ctx context.Context) (Organization, error) {
	var o Organization
	var created int64
	err := s.queryRow(ctx, "SELECT id, name, created_at FROM organizations WHERE parent_id IS NULL ORDER BY id LIMIT 1").Scan(&o.ID, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("first organization: %w", err)
	}
	o.CreatedAt = fromMS(created)
	return o, nil
}
