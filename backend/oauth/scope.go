package oauth

import (
	"errors"
	"strings"

	"chatauth/shared"
)

// ParseClientScopes reads the API scopes a client is registered for.
func ParseClientScopes(words []string) (shared.APIScope, error) {
	var s shared.APIScope
	for _, w := range words {
		a, err := shared.ParseAPIScope(w)
		if err != nil {
			return 0, err
		}
		s |= a
	}
	return s, nil
}

// ResolveScope decides the scope of a token: the API scopes requested
// (all the client's when none are), never more than the client is
// registered for; the role requested, never above the user's own (the
// user's own when none is). Errors are invalid_scope and name the word.
func ResolveScope(requested string, client shared.APIScope, userRole shared.Role) (shared.Scope, error) {
	role, api, err := shared.ParseRequestedScope(requested)
	if err != nil {
		var we *shared.WordError
		if errors.As(err, &we) {
			return shared.Scope{}, ErrInvalidScope.WithDescription("unknown scope \"" + we.Word + "\"; this server knows read, write, chat and the roles agent, bot, admin")
		}
		return shared.Scope{}, ErrInvalidScope.WithDescription(err.Error())
	}
	if api == 0 && role == shared.RoleInvalid {
		api = client
	}
	if extra := api &^ client; extra != 0 {
		return shared.Scope{}, ErrInvalidScope.WithDescription("scope \"" + extra.String() + "\" is not allowed for this client; it is registered for \"" + client.String() + "\"")
	}
	if role == shared.RoleInvalid {
		role = userRole
	}
	if role == shared.RoleGuest {
		return shared.Scope{}, ErrInvalidScope.WithDescription("scope \"guest\" is for website visitors; request read, write or chat")
	}
	if !userRole.Includes(role) {
		return shared.Scope{}, ErrInvalidScope.WithDescription("scope \"" + role.String() + "\" is above your role " + userRole.String())
	}
	return shared.Scope{Role: role, API: api}, nil
}

func splitScopes(s string) []string { return strings.Fields(s) }
