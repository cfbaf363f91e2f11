package shared

import (
	"strings"
	"testing"
)

// specMatrix is the table of (docs/api.md, "Permission matrix") verbatim. The test reads it and checks the
// Matrix data against every cell, so the data and the contract cannot drift.
const specMatrix = `
| list organizations, groups, users | - | - | + | + |
| list conversations, contacts, knowledge items | - | + | + | + |
| list messages, forms | - | - | + | + |
| list services | - | - | - | + |
| fetch organization, group, user | - | - | + | + |
| fetch user (self), conversation | + | + | + | + |
| fetch message, contact | - | - | + | + |
| fetch knowledge item | - | + | + | + |
| fetch form, service | - | - | - | + |
| create organization, group, user, service | - | - | - | + |
| create conversation, knowledge item | - | + | + | + |
| create message | + | + | + | + |
| create contact, form | - | - | + | + |
| update organization, group, user, conversation, service | - | - | - | + |
| update user (self) | + | + | + | + |
| update message, contact, form | - | - | + | + |
| update knowledge item | - | + | + | + |
| delete knowledge item | - | - | + | + |
| delete anything else | - | - | - | + |
`

var plural = map[string]string{
	"organizations": "organization", "groups": "group", "users": "user",
	"conversations": "conversation", "contacts": "contact", "knowledge items": "knowledge item",
	"messages": "message", "forms": "form", "services": "service",
}

type cell struct {
	res Resource
	act Action
}

func parseSpecMatrix(t *testing.T) map[cell][4]bool {
	t.Helper()
	byName := map[string]Resource{}
	for _, r := range Resources {
		byName[r.String()] = r
	}
	actByName := map[string]Action{}
	for _, a := range Actions {
		actByName[a.String()] = a
	}
	want := map[cell][4]bool{}
	for _, line := range strings.Split(strings.TrimSpace(specMatrix), "\n") {
		cols := strings.Split(strings.Trim(line, "| "), "|")
		if len(cols) != 5 {
			t.Fatalf("bad spec row %q", line)
		}
		var allowed [4]bool
		for i := range 4 {
			allowed[i] = strings.TrimSpace(cols[i+1]) == "+"
		}
		head := strings.TrimSpace(cols[0])
		verb, rest, _ := strings.Cut(head, " ")
		act, ok := actByName[verb]
		if !ok {
			t.Fatalf("unknown action in %q", head)
		}
		if rest == "anything else" {
			for _, r := range Resources {
				if r == Self {
					continue // the self record is never deleted through the API
				}
				if _, seen := want[cell{r, act}]; !seen {
					want[cell{r, act}] = allowed
				}
			}
			continue
		}
		for _, name := range strings.Split(rest, ",") {
			name = strings.TrimSpace(name)
			if s, ok := plural[name]; ok {
				name = s
			}
			r, ok := byName[name]
			if !ok {
				t.Fatalf("unknown resource %q in %q", name, head)
			}
			want[cell{r, act}] = allowed
		}
	}
	return want
}

func TestMatrixMatchesSpec(t *testing.T) {
	t.Parallel()
	want := parseSpecMatrix(t)
	for _, res := range Resources {
		for _, act := range Actions {
			exp, inSpec := want[cell{res, act}]
			for i, role := range Roles {
				got := Allowed(role, res, act)
				if got != (inSpec && exp[i]) {
					t.Errorf("Allowed(%v, %v, %v) = %v, SPEC says %v", role, act, res, got, inSpec && exp[i])
				}
			}
		}
	}
	if len(want) != len(Matrix) {
		t.Errorf("SPEC has %d cells groups, Matrix has %d rules", len(want), len(Matrix))
	}
}

func TestRequiredScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		res  Resource
		act  Action
		want APIScope
	}{
		{Contact, List, ScopeRead},
		{Contact, Create, ScopeWrite},
		{Conversation, Fetch, ScopeRead | ScopeChat},
		{Message, Create, ScopeWrite | ScopeChat},
		{Message, Delete, ScopeWrite | ScopeChat},
	}
	for _, tt := range tests {
		if got := Required(tt.res, tt.act); got != tt.want {
			t.Errorf("Required(%v,%v) = %v, want %v", tt.res, tt.act, got, tt.want)
		}
	}
	s := Scope{Role: RoleAgent, API: ScopeRead | ScopeWrite}
	if s.Allows(Conversation, List) {
		t.Error("a token without chat may not list conversations")
	}
	if !s.Allows(Contact, List) {
		t.Error("agent read may list contacts")
	}
}

func TestRoleCascade(t *testing.T) {
	t.Parallel()
	for i, a := range Roles {
		for j, b := range Roles {
			if got := a.Includes(b); got != (i >= j) {
				t.Errorf("%v.Includes(%v) = %v", a, b, got)
			}
		}
		if RoleInvalid.Includes(a) || a.Includes(RoleInvalid) {
			t.Errorf("invalid role must include nothing and be included by nothing")
		}
	}
}

func TestCustomerAllowedIsGuestColumnPlusStartingAChat(t *testing.T) {
	t.Parallel()
	for _, res := range Resources {
		for _, act := range Actions {
			want := Allowed(RoleGuest, res, act) || (res == Conversation && act == Create)
			if got := CustomerAllowed(res, act); got != want {
				t.Errorf("CustomerAllowed(%v, %v) = %v", res, act, got)
			}
		}
	}
}
