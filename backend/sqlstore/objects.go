package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"chatauth/backend/notify"
)

// Column kinds of a generic table.
const (
	ColText = iota // TEXT NOT NULL DEFAULT ''
	ColRef         // nullable BIGINT naming another row
	ColInt         // BIGINT NOT NULL
)

// Column is one resource-specific column.
type Column struct {
	Name string
	Kind int
}

// Table describes a chat resource's table: the columns beside id,
// org_id, created_at and updated_at. Names come from code, never from a
// request, so they are safe to put into SQL.
type Table struct {
	Name    string
	Columns []Column
	// Announce, when set, is a reference column whose value a new row is
	// announced with on PostgreSQL: NOTIFY on AnnounceTopic in the
	// inserting transaction, so every process hears of the row exactly
	// when it is committed (messages → their conversation's streams).
	Announce      string
	AnnounceTopic string
	// AnnounceLock is the table Announce refers to. Its row is locked for
	// the insert on PostgreSQL, so rows of one parent commit in id order:
	// a reader that has seen id n never later finds a committed n-1 (ids
	// come from a sequence taken before commit, and two inserts could
	// otherwise commit in the other order).
	AnnounceLock string
}

// Object is a row of a generic table. Values hold string for ColText,
// *int64 (nil for NULL) for ColRef and int64 for ColInt.
type Object struct {
	ID        int64
	OrgID     int64
	Values    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// inTree restricts org_id to the organization root and its descendants.
// The recursive CTE runs the same on SQLite and PostgreSQL.
const inTree = "org_id IN (WITH RECURSIVE tree(id) AS (SELECT CAST(? AS BIGINT) UNION ALL SELECT o.id FROM organizations o JOIN tree ON o.parent_id = tree.id) SELECT id FROM tree)"

func (t Table) selectCols() string {
	var b strings.Builder
	b.WriteString("id, org_id, created_at, updated_at")
	for _, c := range t.Columns {
		b.WriteString(", ")
		b.WriteString(c.Name)
	}
	return b.String()
}

func (t Table) scan(row interface{ Scan(...any) error }) (Object, error) {
	o := Object{Values: make(map[string]any, len(t.Columns))}
	var created, updated int64
	dest := []any{&o.ID, &o.OrgID, &created, &updated}
	holders := make([]any, len(t.Columns))
	for i, c := range t.Columns {
		switch c.Kind {
		case ColText:
			holders[i] = new(string)
		case ColRef:
			holders[i] = new(sql.NullInt64)
		case ColInt:
			holders[i] = new(int64)
		}
		dest = append(dest, holders[i])
	}
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return o, ErrNotFound
		}
		return o, err
	}
	for i, c := range t.Columns {
		switch h := holders[i].(type) {
		case *string:
			o.Values[c.Name] = *h
		case *sql.NullInt64:
			if h.Valid {
				v := h.Int64
				o.Values[c.Name] = &v
			} else {
				o.Values[c.Name] = (*int64)(nil)
			}
		case *int64:
			o.Values[c.Name] = *h
		}
	}
	o.CreatedAt, o.UpdatedAt = fromMS(created), fromMS(updated)
	return o, nil
}

func sqlValue(v any) any {
	if p, ok := v.(*int64); ok {
		if p == nil {
			return nil
		}
		return *p
	}
	return v
}

// InsertObject stores a row in org with values (columns absent from
// values take their defaults).
func (s *DB) InsertObject(ctx context.Context, t Table, org int64, values map[string]any) (Object, error) {
	now := s.now()
	cols := []string{"org_id", "created_at", "updated_at"}
	args := []any{org, now, now}
	for _, c := range t.Columns {
		if v, ok := values[c.Name]; ok {
			cols = append(cols, c.Name)
			args = append(args, sqlValue(v))
		}
	}
	q := "INSERT INTO " + t.Name + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ") RETURNING " + t.selectCols()
	if t.Announce == "" || s.dialect != postgres {
		o, err := t.scan(s.queryRow(ctx, q, args...))
		if err != nil {
			return o, fmt.Errorf("insert %s: %w", t.Name, err)
		}
		return o, nil
	}
	var o Object
	err := s.tx(ctx, func(tx *Tx) error {
		if ref, _ := values[t.Announce].(*int64); ref != nil && t.AnnounceLock != "" {
			var one int
			if err := tx.queryRow(ctx, "SELECT 1 FROM "+t.AnnounceLock+" WHERE id = ? FOR UPDATE", *ref).Scan(&one); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		var err error
		if o, err = t.scan(tx.queryRow(ctx, q, args...)); err != nil {
			return err
		}
		ref, _ := o.Values[t.Announce].(*int64)
		if ref == nil {
			return nil
		}
		nq, nargs := notify.NotifySQL(t.AnnounceTopic, strconv.FormatInt(*ref, 10))
		_, err = tx.exec(ctx, nq, nargs...)
		return err
	})
	if err != nil {
		return o, fmt.Errorf("insert %s: %w", t.Name, err)
	}
	return o, nil
}

// GetObject fetches a row visible from the organization root: in root or
// one of its descendants. Anything else is ErrNotFound.
func (s *DB) GetObject(ctx context.Context, t Table, root, id int64) (Object, error) {
	o, err := t.scan(s.queryRow(ctx, "SELECT "+t.selectCols()+" FROM "+t.Name+" WHERE id = ? AND "+inTree, id, root))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return o, fmt.Errorf("get %s: %w", t.Name, err)
	}
	return o, err
}

// Filter narrows a list to rows whose column equals a value.
type Filter struct {
	Column string
	Value  any
}

// ListObjects returns up to limit rows visible from root with id > after,
// in id order, and whether more follow.
func (s *DB) ListObjects(ctx context.Context, t Table, root, after int64, limit int, filters ...Filter) ([]Object, bool, error) {
	q := "SELECT " + t.selectCols() + " FROM " + t.Name + " WHERE id > ? AND " + inTree
	args := []any{after, root}
	for _, f := range filters {
		q += " AND " + f.Column + " = ?"
		args = append(args, f.Value)
	}
	q += " ORDER BY id LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, false, fmt.Errorf("list %s: %w", t.Name, err)
	}
	defer rows.Close()
	out := make([]Object, 0, limit)
	for rows.Next() {
		o, err := t.scan(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list %s: %w", t.Name, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list %s: %w", t.Name, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// UpdateObject writes values to a row visible from root.
func (s *DB) UpdateObject(ctx context.Context, t Table, root, id int64, values map[string]any) (Object, error) {
	sets := []string{"updated_at = ?"}
	args := []any{s.now()}
	for _, c := range t.Columns {
		if v, ok := values[c.Name]; ok {
			sets = append(sets, c.Name+" = ?")
			args = append(args, sqlValue(v))
		}
	}
	args = append(args, id, root)
	o, err := t.scan(s.queryRow(ctx, "UPDATE "+t.Name+" SET "+strings.Join(sets, ", ")+" WHERE id = ? AND "+inTree+" RETURNING "+t.selectCols(), args...))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return o, fmt.Errorf("update %s: %w", t.Name, err)
	}
	return o, err
}

// DeleteObject removes a row visible from root (rows that reference it
// with ON DELETE CASCADE go with it).
func (s *DB) DeleteObject(ctx context.Context, t Table, root, id int64) error {
	res, err := s.exec(ctx, "DELETE FROM "+t.Name+" WHERE id = ? AND "+inTree, id, root)
	if err != nil {
		if isForeignKey(err) {
			return ErrInUse
		}
		return fmt.Errorf("delete %s: %w", t.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func isForeignKey(err error) bool {
	m := err.Error()
	return strings.Contains(m, "FOREIGN KEY constraint failed") || strings.Contains(m, "SQLSTATE 23503")
}

// InTree reports whether org is root or one of its descendants.
func (s *DB) InTree(ctx context.Context, root, org int64) (bool, error) {
	now, key := time.Now(), [2]int64{root, org}
	in, ok, gen := s.trees.get(key, now)
	if ok {
		return in, nil
	}
	var n int
	err := s.queryRow(ctx, "SELECT COUNT(*) FROM organizations WHERE id = ? AND "+strings.Replace(inTree, "org_id", "id", 1), org, root).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("org tree: %w", err)
	}
	s.trees.put(key, n > 0, gen, now)
	return n > 0, nil
}
