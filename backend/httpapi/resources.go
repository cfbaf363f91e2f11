package httpapi

import (
	"context"
	"encoding/json"
	"net/mail"
	"sort"
	"strconv"
	"strings"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/notify"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

type fieldKind int

const (
	kindString fieldKind = iota
	kindEnum
	kindRef
	kindBool
	kindEmail
)

// field is one client-visible field of a chat resource.
type field struct {
	name     string
	kind     fieldKind
	required bool     // on create
	max      int      // characters, for strings
	enum     []string // for kindEnum; enum[0] is the default
	server   bool     // set by the server, shown but never written by clients
	fixed    bool     // written at create only
	ref      *resourceSpec
	refUsers bool // kindRef to a user
}

// resourceSpec describes a chat resource served by the generic handlers.
type resourceSpec struct {
	res    shared.Resource
	path   string // plural path segment
	table  sqlstore.Table
	fields []field
}

func spec(res shared.Resource, path string, fields ...field) *resourceSpec {
	rs := &resourceSpec{res: res, path: path, fields: fields, table: sqlstore.Table{Name: path}}
	for _, f := range fields {
		kind := sqlstore.ColText
		switch f.kind {
		case kindRef:
			kind = sqlstore.ColRef
		case kindBool:
			kind = sqlstore.ColInt
		}
		rs.table.Columns = append(rs.table.Columns, sqlstore.Column{Name: f.name, Kind: kind})
	}
	return rs
}

func text(name string, max int, required bool) field {
	return field{name: name, kind: kindString, max: max, required: required}
}

var (
	groupSpec   = spec(shared.Group, "groups", text("name", 200, true), text("description", 2000, false))
	contactSpec = spec(shared.Contact, "contacts", text("name", 200, true), field{name: "email", kind: kindEmail, max: 254}, text("phone", 50, false))
	convSpec    = spec(shared.Conversation, "conversations",
		field{name: "contact_id", kind: kindRef, ref: contactSpec},
		field{name: "status", kind: kindEnum, enum: []string{"open", "resolved"}},
		field{name: "assignee_id", kind: kindRef, refUsers: true},
		text("subject", 500, false),
		field{name: "customer_id", server: true},
	)
	messageSpec = spec(shared.Message, "messages",
		field{name: "conversation_id", kind: kindRef, server: true},
		text("content", 10000, true),
		// incoming is the visitor's: only the customer API writes it;
		// createMessage refuses it from agents, and fixed keeps an update
		// from flipping an outgoing message to it.
		field{name: "message_type", kind: kindEnum, enum: []string{"outgoing", "incoming"}, fixed: true},
		field{name: "private", kind: kindBool, fixed: true},
		field{name: "sender_type", server: true},
		field{name: "sender_id", server: true},
	)
	_             = announce(messageSpec, "conversation_id", "conversations")
	knowledgeSpec = spec(shared.KnowledgeItem, "knowledge_items", text("title", 500, true), text("body", 50000, true))
	formSpec      = spec(shared.Form, "forms", text("name", 200, true), text("description", 2000, false))
	serviceSpec   = spec(shared.Service, "services", text("name", 200, true), text("description", 2000, false))
)

// announce makes new rows of rs known to every process by the reference
// column col (on PostgreSQL, in the inserting transaction): new messages
// wake their conversation's event streams everywhere.
func announce(rs *resourceSpec, col, parent string) bool {
	rs.table.Announce, rs.table.AnnounceTopic, rs.table.AnnounceLock = col, notify.TopicMessage, parent
	return true
}

func (rs *resourceSpec) field(name string) (field, bool) {
	for _, f := range rs.fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// parse reads a create or update body against the spec. Every failure
// names the field.
func (rs *resourceSpec) parse(raw map[string]json.RawMessage, create bool) (map[string]any, error) {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range keys {
		f, ok := rs.field(k)
		switch {
		case !ok:
			return nil, apierr.InvalidRequest(k + ": unknown field; " + rs.res.String() + " fields are " + rs.writable())
		case f.server:
			return nil, apierr.InvalidRequest(k + ": set by the server; leave it out")
		case f.fixed && !create:
			return nil, apierr.InvalidRequest(k + ": cannot be changed after the " + rs.res.String() + " is created")
		}
		v, err := f.decode(raw[k])
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	if create {
		for _, f := range rs.fields {
			if _, ok := out[f.name]; !ok && f.required {
				return nil, apierr.InvalidRequest(f.name + ": required")
			}
			if _, ok := out[f.name]; !ok && f.kind == kindEnum {
				out[f.name] = f.enum[0]
			}
		}
	}
	return out, nil
}

func (rs *resourceSpec) writable() string {
	var names []string
	for _, f := range rs.fields {
		if !f.server {
			names = append(names, f.name)
		}
	}
	return strings.Join(names, ", ")
}

func (f field) decode(raw json.RawMessage) (any, error) {
	isNull := string(raw) == "null"
	switch f.kind {
	case kindRef:
		if isNull {
			return (*int64)(nil), nil
		}
		var n int64
		if err := json.Unmarshal(raw, &n); err != nil || n <= 0 {
			return nil, apierr.InvalidRequest(f.name + ": must be a positive id or null")
		}
		return &n, nil
	case kindBool:
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, apierr.InvalidRequest(f.name + ": must be true or false")
		}
		if b {
			return int64(1), nil
		}
		return int64(0), nil
	}
	if isNull {
		if f.required || f.kind == kindEnum {
			return nil, apierr.InvalidRequest(f.name + ": must not be null")
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, apierr.InvalidRequest(f.name + ": must be a string")
	}
	s = strings.TrimSpace(s)
	if f.required && s == "" {
		return nil, apierr.InvalidRequest(f.name + ": must not be empty")
	}
	if err := maxLen(f.name, s, f.max); f.max > 0 && err != nil {
		return nil, err
	}
	switch f.kind {
	case kindEnum:
		for _, e := range f.enum {
			if s == e {
				return s, nil
			}
		}
		return nil, apierr.InvalidRequest(f.name + ": must be one of " + strings.Join(f.enum, ", "))
	case kindEmail:
		if s != "" {
			if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
				return nil, apierr.InvalidRequest(f.name + ": not an email address")
			}
		}
	}
	return s, nil
}

// render shows an object as JSON.
func (rs *resourceSpec) render(o sqlstore.Object) map[string]any {
	m := make(map[string]any, len(rs.fields)+4)
	m["id"] = o.ID
	m["account_id"] = o.OrgID
	for _, f := range rs.fields {
		v := o.Values[f.name]
		switch f.kind {
		case kindBool:
			m[f.name] = v == int64(1)
		case kindRef:
			if p, _ := v.(*int64); p != nil {
				m[f.name] = *p
			} else {
				m[f.name] = nil
			}
		default:
			m[f.name] = v
		}
	}
	m["created_at"] = o.CreatedAt.UTC().Format(time.RFC3339Nano)
	m["updated_at"] = o.UpdatedAt.UTC().Format(time.RFC3339Nano)
	return m
}

// checkRefs makes sure every referenced object exists in the caller's
// organization tree, so nobody can link to another tenant's data.
func (s *Server) checkRefs(ctx context.Context, rs *resourceSpec, root int64, values map[string]any) error {
	for _, f := range rs.fields {
		p, ok := values[f.name].(*int64)
		if !ok || p == nil {
			continue
		}
		var err error
		switch {
		case f.ref != nil:
			_, err = s.Store.GetObject(ctx, f.ref.table, root, *p)
		case f.refUsers:
			_, err = s.Store.UserInTree(ctx, root, *p)
		default:
			continue
		}
		if err == domain.ErrNotFound {
			return apierr.InvalidRequest(f.name + ": no such object " + strconv.FormatInt(*p, 10) + " in your organization")
		}
		if err != nil {
			return apierr.Internal(err)
		}
	}
	return nil
}
