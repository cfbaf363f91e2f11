package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

var idInTree = strings.Replace(inTree, "org_id", "id", 1)

// OrganizationInTree fetches organization id when it is root or one of its
// descendants.
func (s *DB) OrganizationInTree(ctx context.Context, root, id int64) (Organization, error) {
	var o Organization
	var parent sql.NullInt64
	var created int64
	err := s.queryRow(ctx, "SELECT id, parent_id, name, created_at FROM organizations WHERE id = ? AND "+idInTree, id, root).Scan(&o.ID, &parent, &o.Name, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return o, ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("organization in tree: %w", err)
	}
	o.ParentID, o.CreatedAt = parent.Int64, fromMS(created)
	return o, nil
}

// ListOrganizations lists root and its descendants by id.
func (s *DB) ListOrganizations(ctx context.Context, root, after int64, limit int) ([]Organization, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT id, parent_id, name, created_at FROM organizations WHERE id > ? AND "+idInTree+" ORDER BY id LIMIT ?"), after, root, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list organizations: %w", err)
	}
	defer rows.Close()
	var out []Organization
	for rows.Next() {
		var o Organization
		var parent sql.NullInt64
		var created int64
		if err := rows.Scan(&o.ID, &parent, &o.Name, &created); err != nil {
			return nil, false, fmt.Errorf("list organizations: %w", err)
		}
		o.ParentID, o.CreatedAt = parent.Int64, fromMS(created)
		out = append(out, o)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
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

// ListUsers lists the users of root and its descendants by id.
func (s *DB) ListUsers(ctx context.Context, root, after int64, limit int) ([]User, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+userCols+" FROM users WHERE id > ? AND "+inTree+" ORDER BY id LIMIT ?"), after, root, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
}

// DeleteUser removes a user and ends every sign-in of theirs; it returns
// the ended sessions so the caller can revoke their access tokens at once.
func (s *DB) DeleteUser(ctx context.Context, id int64) ([]string, error) {
	ids, err := s.RevokeSubjectFamilies(ctx, "agent", fmt.Sprint(id), "", "user deleted")
	if err != nil {
		return nil, err
	}
	res, err := s.exec(ctx, "DELETE FROM users WHERE id = ?", id)
	if err != nil {
		return ids, fmt.Errorf("delete user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ids, ErrNotFound
	}
	return ids, nil
}

// AllOrganizations lists every organization by id (the platform API).
func (s *DB) AllOrganizations(ctx context.Context, after int64, limit int) ([]Organization, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT id, parent_id, name, created_at FROM organizations WHERE id > ? ORDER BY id LIMIT ?"), after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("all organizations: %w", err)
	}
	defer rows.Close()
	var out []Organization
	for rows.Next() {
		var o Organization
		var parent sql.NullInt64
		var created int64
		if err := rows.Scan(&o.ID, &parent, &o.Name, &created); err != nil {
			return nil, false, err
		}
		o.ParentID, o.CreatedAt = parent.Int64, fromMS(created)
		out = append(out, o)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
}

// AllUsers lists every user by id (the platform API).
func (s *DB) AllUsers(ctx context.Context, after int64, limit int) ([]User, bool, error) {
	rows, err := s.db.QueryContext(ctx, s.q("SELECT "+userCols+" FROM users WHERE id > ? ORDER BY id LIMIT ?"), after, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("all users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, u)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, rows.Err()
}
