package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

var idInTree = strings.Replace(inTree, "org_id", "id", 1)

// OrganizationInTree fetches organization id when it is root or one of its
// descendants.
func (s *DB) OrganizationInTree(ctx context.Context, root, id int64) (Organization, error) {
	o, err := scanOrg(s.queryRow(ctx, "SELECT id, parent_id, name, created_at FROM organizations WHERE id = ? AND "+idInTree, id, root))
	if errors.Is(err, sql.ErrNoRows) {
		return o, ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("organization in tree: %w", err)
	}
	return o, nil
}

// RenameOrganization sets an organization's name.
func (s *DB) RenameOrganization(ctx context.Context, id int64, name string) error {
	if _, err := s.exec(ctx, "UPDATE organizations SET name = ? WHERE id = ?", name, id); err != nil {
		return fmt.Errorf("rename organization: %w", err)
	}
	return nil
}

// DeleteOrganization removes an empty organization; one that still has
// child organizations, users or data is ErrInUse, so nothing is lost.
func (s *DB) DeleteOrganization(ctx context.Context, id int64) error {
	defer s.trees.clear()
	res, err := s.exec(ctx, "DELETE FROM organizations WHERE id = ?", id)
	if err != nil {
		if isForeignKey(err) {
			return ErrInUse
		}
		return fmt.Errorf("delete organization: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// UserInTree fetches user id when it belongs to root or a descendant.
func (s *DB) UserInTree(ctx context.Context, root, id int64) (User, error) {
	u, err := scanUser(s.queryRow(ctx, "SELECT "+userCols+" FROM users WHERE id = ? AND "+inTree, id, root))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return u, fmt.Errorf("user in tree: %w", err)
	}
	return u, err
}

// UserFamilyKinds are the families whose subject is a user id: password
// sign-ins, OAuth grants and implicit grants. Customer families name a
// visitor, never a user.
var UserFamilyKinds = []string{"agent", "oauth", "implicit", KindBrowser}

// KindBrowser is the browser sign-in of the authorization page: a session
// row without refresh tokens.
const KindBrowser = "browser"

// DeleteUser removes a user with their personal access tokens, and ends
// every sign-in and grant of theirs, in one transaction; it returns the
// ended sessions so the caller can revoke their access tokens at once.
func (s *DB) DeleteUser(ctx context.Context, id int64) ([]string, error) {
	var ids []string
	err := s.tx(ctx, func(t *Tx) error {
		var err error
		now := s.now()
		ids, err = revokeFamilies(ctx, t, FamilyFilter{Kinds: UserFamilyKinds, Subject: strconv.FormatInt(id, 10)}, "user deleted", now)
		if err != nil {
			return err
		}
		// Visitors the user's API token or personal tokens vouched for.
		vouched, err := scanIDs(t.query(ctx, "UPDATE refresh_families SET revoked_at = ?, revoke_reason = 'user deleted' WHERE revoked_at IS NULL AND (parent = ? OR parent IN (SELECT 'cred:pat:' || id FROM credentials WHERE kind = 'pat' AND user_id = ?)) RETURNING id",
			now, APITokenParent(id), id))
		if err != nil {
			return err
		}
		if err := announceRevoked(ctx, t, vouched); err != nil {
			return err
		}
		ids = append(ids, vouched...)
		if _, err := t.exec(ctx, "DELETE FROM credentials WHERE kind = 'pat' AND user_id = ?", id); err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		res, err := t.exec(ctx, "DELETE FROM users WHERE id = ?", id)
		if err != nil {
			return fmt.Errorf("delete user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return ids, err
}

// ListOrganizations lists root and its descendants by id.
func (s *DB) ListOrganizations(ctx context.Context, root, after int64, limit int) ([]Organization, bool, error) {
	return s.pageOrgs(ctx, "list organizations", "WHERE id > ? AND "+idInTree, limit, after, root)
}

// AllOrganizations lists every organization by id (the platform API).
func (s *DB) AllOrganizations(ctx context.Context, after int64, limit int) ([]Organization, bool, error) {
	return s.pageOrgs(ctx, "all organizations", "WHERE id > ?", limit, after)
}

// ListUsers lists the users of root and its descendants by id.
func (s *DB) ListUsers(ctx context.Context, root, after int64, limit int) ([]User, bool, error) {
	return s.pageUsers(ctx, "list users", "WHERE id > ? AND "+inTree, limit, after, root)
}

// AllUsers lists every user by id (the platform API).
func (s *DB) AllUsers(ctx context.Context, after int64, limit int) ([]User, bool, error) {
	return s.pageUsers(ctx, "all users", "WHERE id > ?", limit, after)
}

// page runs a list query with one extra row to learn whether more follow.
func page[T any](ctx context.Context, s *DB, op, query string, limit int, scan func(*sql.Rows) (T, error), args ...any) ([]T, bool, error) {
	rows, err := s.query(ctx, query+" ORDER BY id LIMIT ?", append(args, limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", op, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func scanOrg(row interface{ Scan(...any) error }) (Organization, error) {
	var o Organization
	var parent sql.NullInt64
	var created int64
	err := row.Scan(&o.ID, &parent, &o.Name, &created)
	o.ParentID, o.CreatedAt = parent.Int64, fromMS(created)
	return o, err
}

func (s *DB) pageOrgs(ctx context.Context, op, where string, limit int, args ...any) ([]Organization, bool, error) {
	return page(ctx, s, op, "SELECT id, parent_id, name, created_at FROM organizations "+where, limit, func(r *sql.Rows) (Organization, error) { return scanOrg(r) }, args...)
}

func (s *DB) pageUsers(ctx context.Context, op, where string, limit int, args ...any) ([]User, bool, error) {
	return page(ctx, s, op, "SELECT "+userCols+" FROM users "+where, limit, func(r *sql.Rows) (User, error) { return scanUser(r) }, args...)
}

// APITokenParent is the parent of the visitors a user's API token vouched
// for: a reset of the token, or deleting the user, revokes them.
func APITokenParent(userID int64) string { return "cred:api:" + strconv.FormatInt(userID, 10) }

// CredentialParent is the parent of the visitors a personal or bot token
// vouched for: deleting or resetting it revokes them.
func CredentialParent(kind string, id int64) string {
	return "cred:" + kind + ":" + strconv.FormatInt(id, 10)
}
