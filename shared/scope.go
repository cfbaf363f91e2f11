package shared

import (
	"errors"
	"strings"
)

// APIScope limits what a token may do on behalf of its holder. Scopes form
// a set, held as bits.
type APIScope uint8

// The three API scopes of (docs/api.md, "Tokens and scopes").
const (
	ScopeRead  APIScope = 1 << iota // list, fetch
	ScopeWrite                      // create, update, delete
	ScopeChat                       // needed in addition for conversations and messages
)

// FirstParty is what password logins, user API tokens and bots carry.
const FirstParty = ScopeRead | ScopeWrite | ScopeChat

var apiScopeNames = []struct {
	s    APIScope
	name string
}{{ScopeRead, "read"}, {ScopeWrite, "write"}, {ScopeChat, "chat"}}

// Has reports whether every scope in want is in s.
func (s APIScope) Has(want APIScope) bool { return s&want == want }

// Words returns the scope words in canonical order.
func (s APIScope) Words() []string {
	var out []string
	for _, n := range apiScopeNames {
		if s&n.s != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (s APIScope) String() string { return strings.Join(s.Words(), " ") }

// ParseAPIScope reads one API scope word.
func ParseAPIScope(w string) (APIScope, error) {
	for _, n := range apiScopeNames {
		if n.name == w {
			return n.s, nil
		}
	}
	return 0, &WordError{Kind: "scope", Word: w, Hint: "use read, write or chat", err: ErrUnknownScope}
}

// Scope is the JWT scope claim: exactly one role and any API scopes,
// e.g. "agent read write chat".
type Scope struct {
	Role Role
	API  APIScope
}

// Errors of ParseScope; the returned error wraps one of them and names the
// offending word.
var (
	ErrUnknownScope = errors.New("unknown scope")
	ErrNoRole       = errors.New("scope names no role")
	ErrTwoRoles     = errors.New("scope names more than one role")
	ErrScopeTooLong = errors.New("scope string too long")
)

// MaxScopeLen bounds the scope string; the longest valid one is 26 bytes,
// so anything near this limit is an attack or a bug.
const MaxScopeLen = 256

// ParseScope reads a space-delimited scope string holding exactly one role
// and any API scopes. Repeated words are tolerated (RFC 6749 §3.3 calls the
// string a set). Unknown words are an error naming the word.
func ParseScope(s string) (Scope, error) {
	var out Scope
	role, api, err := parseWords(s)
	if err != nil {
		return out, err
	}
	if !role.Valid() {
		return out, ErrNoRole
	}
	out.Role, out.API = role, api
	return out, nil
}

// ParseRequestedScope reads a scope string as a client asks for it at an
// OAuth endpoint: the role is optional there (the user's own role applies),
// so only the API scopes and an optional role come back.
func ParseRequestedScope(s string) (Role, APIScope, error) {
	return parseWords(s)
}

func parseWords(s string) (Role, APIScope, error) {
	if len(s) > MaxScopeLen {
		return RoleInvalid, 0, ErrScopeTooLong
	}
	var role Role
	var api APIScope
	for _, w := range strings.Fields(s) {
		if r, err := ParseRole(w); err == nil {
			if role.Valid() && role != r {
				return RoleInvalid, 0, &WordError{Kind: "scope", Word: w, Hint: "a scope holds exactly one role", err: ErrTwoRoles}
			}
			role = r
			continue
		}
		a, err := ParseAPIScope(w)
		if err != nil {
			return RoleInvalid, 0, &WordError{Kind: "scope", Word: w, Hint: "use guest, agent, bot, admin, read, write or chat", err: ErrUnknownScope}
		}
		api |= a
	}
	return role, api, nil
}

// String formats the claim: the role first, then API scopes in canonical
// order. ParseScope(s.String()) == s for every valid s.
// Words returns the scope's words, role first: strings.Fields(s.String())
// without building a string to split it again.
func (s Scope) Words() []string {
	out := make([]string, 0, 1+len(apiScopeNames))
	if r := s.Role.String(); r != "" {
		out = append(out, r)
	}
	for _, n := range apiScopeNames {
		if s.API&n.s != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (s Scope) String() string {
	if api := s.API.String(); api != "" {
		return s.Role.String() + " " + api
	}
	return s.Role.String()
}

// Allows reports whether a token with this scope may do action on
// resource: the matrix must allow the role and the token must hold the
// API scopes the action needs.
func (s Scope) Allows(res Resource, act Action) bool {
	return Allowed(s.Role, res, act) && s.API.Has(Required(res, act))
}
