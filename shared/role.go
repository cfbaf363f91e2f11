package shared

import "errors"

// Role is a position in the cascade guest < agent < bot < admin. A role
// holds every right of each lower role.
type Role uint8

// The zero Role is invalid so that a forgotten assignment never grants
// guest rights silently.
const (
	RoleInvalid Role = iota
	RoleGuest
	RoleAgent
	RoleBot
	RoleAdmin
)

// Roles lists every valid role in ascending order.
var Roles = []Role{RoleGuest, RoleAgent, RoleBot, RoleAdmin}

var roleNames = [...]string{"", "guest", "agent", "bot", "admin"}

// ErrUnknownRole is wrapped by ParseRole's error.
var ErrUnknownRole = errors.New("unknown role")

// String returns the role's scope word ("agent"), or "" for RoleInvalid.
func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return ""
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r >= RoleGuest && r <= RoleAdmin }

// Includes reports whether r holds the rights of other: the cascade.
func (r Role) Includes(other Role) bool { return r.Valid() && other.Valid() && r >= other }

// ParseRole reads a role word.
func ParseRole(s string) (Role, error) {
	for i, n := range roleNames {
		if i > 0 && n == s {
			return Role(i), nil
		}
	}
	return RoleInvalid, &WordError{Kind: "role", Word: s, err: ErrUnknownRole}
}

// MarshalText lets roles appear as words in JSON without this package
// importing encoding/json.
func (r Role) MarshalText() ([]byte, error) {
	if !r.Valid() {
		return nil, ErrUnknownRole
	}
	return []byte(r.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (r *Role) UnmarshalText(b []byte) error {
	v, err := ParseRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// WordError names the word that could not be read, so an API error can
// tell a person exactly what to fix.
type WordError struct {
	Kind string // "role", "scope"
	Word string
	Hint string
	err  error
}

func (e *WordError) Error() string {
	msg := "unknown " + e.Kind + " " + quote(e.Word)
	if e.Hint != "" {
		msg += ": " + e.Hint
	}
	return msg
}

func (e *WordError) Unwrap() error { return e.err }

// quote is a tiny strconv.Quote for words that are already printable;
// untrusted input is truncated so an error message cannot be made huge.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '?')
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}
