package shared

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Scope
		wantErr error
		errHas  string
	}{
		{in: "agent read write chat", want: Scope{RoleAgent, FirstParty}},
		{in: "chat write read admin", want: Scope{RoleAdmin, FirstParty}},
		{in: "  guest   chat ", want: Scope{RoleGuest, ScopeChat}},
		{in: "bot", want: Scope{RoleBot, 0}},
		{in: "agent agent read read", want: Scope{RoleAgent, ScopeRead}},
		{in: "", wantErr: ErrNoRole},
		{in: "read write", wantErr: ErrNoRole},
		{in: "agent admin", wantErr: ErrTwoRoles, errHas: `"admin"`},
		{in: "agent delete", wantErr: ErrUnknownScope, errHas: `"delete"`},
		{in: "Agent", wantErr: ErrUnknownScope, errHas: `"Agent"`},
		{in: strings.Repeat("read ", 100), wantErr: ErrScopeTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseScope(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("err %q does not name %s", err, tt.errHas)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseScope(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestScopeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range Roles {
		for api := APIScope(0); api <= FirstParty; api++ {
			s := Scope{r, api}
			got, err := ParseScope(s.String())
			if err != nil || got != s {
				t.Errorf("round trip %q: %v, %v", s, got, err)
			}
		}
	}
}

// FuzzParseScope: the parser never panics, never accepts what it cannot
// format back, and its errors stay short whatever the input.
func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"agent read write chat", "guest", "admin admin", "read", "", "bot\tread\nwrite", "agent \x00", "é agent", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseScope(in)
		if err != nil {
			if len(err.Error()) > 200 {
				t.Fatalf("error message too long: %d", len(err.Error()))
			}
			return
		}
		if !s.Role.Valid() {
			t.Fatalf("accepted %q without a role", in)
		}
		again, err := ParseScope(s.String())
		if err != nil || again != s {
			t.Fatalf("%q → %v does not round-trip: %v %v", in, s, again, err)
		}
	})
}

func TestScopeWordsIsFieldsOfString(t *testing.T) {
	t.Parallel()
	for r := Role(0); r <= RoleAdmin+1; r++ {
		for api := APIScope(0); api < 16; api++ {
			sc := Scope{Role: r, API: api}
			if got, want := sc.Words(), strings.Fields(sc.String()); !slices.Equal(got, want) {
				t.Errorf("%#v: Words %q, Fields(String) %q", sc, got, want)
			}
		}
	}
}
