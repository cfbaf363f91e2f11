package credential

import (
	"time"

	"chatauth/backend/apierr"
	"chatauth/shared"
)

// The ceiling (docs/security.md, I1): a credential never creates one with
// more than it holds. Every minting service calls one of these before it
// mints; a refusal is a 403 that names the credential needed.

// describe names a kind for a person.
func (k Kind) describe() string {
	switch k {
	case Session:
		return "a sign-in's access token"
	case OAuth:
		return "an OAuth access token"
	case ClientToken:
		return "a client-credentials token"
	case API:
		return "a user API token"
	case Personal:
		return "a personal access token"
	case Bot:
		return "an agent bot's token"
	case Platform:
		return "a platform token"
	case Customer:
		return "a customer token"
	}
	return "this credential"
}

// LongLived allows minting a long-lived credential (a personal access
// token, the user API token, a bot token, an OAuth client secret, an
// identity or platform key) only from a first-party sign-in. An OAuth
// grant, a personal, API or bot token could otherwise turn its narrow or
// expiring rights into a permanent credential that survives its own
// revocation.
func LongLived(holder Credential, what string) error {
	if holder.FirstParty() {
		return nil
	}
	return apierr.New(apierr.CodeSignInRequired, what+" needs a first-party sign-in: use the access token from POST /api/v1/auth/token (the console's sign-in), not "+holder.Kind.describe())
}

// Within checks that want asks for no more than holder has: its role at
// most the holder's, its API scopes a subset of the holder's.
func Within(holder, want shared.Scope) error {
	if want.Role.Valid() && !holder.Role.Includes(want.Role) {
		return apierr.InsufficientScope("role " + want.Role.String() + " is more than this credential holds (role " + holder.Role.String() + ")")
	}
	if extra := want.API &^ holder.API; extra != 0 {
		return apierr.InsufficientScope("scope \"" + extra.String() + "\" is more than this credential holds (scope \"" + holder.String() + "\")")
	}
	return nil
}

// NotAfter caps a new credential's expiry at the holder's: zero means
// "no expiry", which only a holder without expiry may grant.
func NotAfter(holder Credential, want time.Time) (time.Time, error) {
	limit := holder.Expiry()
	switch {
	case limit.IsZero():
		return want, nil
	case want.IsZero(), want.After(limit):
		return limit, nil
	}
	return want, nil
}

// MayVouch allows a first-party agent-family credential to vouch for a
// visitor (a site's backend re-issuing its visitor's token) only when it
// may write messages: a read-only token must not get a visitor's voice.
// An OAuth app's token (code or implicit grant) never vouches: the
// consent a user gave the app lists no right to speak as the
// organization's visitors, and the agent API lets nobody do that.
func MayVouch(holder Credential) error {
	sc := holder.Agent.Scope
	switch holder.Kind {
	case Customer, CustomerRefresh, Refresh, Platform, "":
		return apierr.New(apierr.CodeForbidden, "vouching for an entity_id needs an agent-family token of the client's organization, not "+holder.Kind.describe())
	case OAuth:
		return apierr.New(apierr.CodeForbidden, "vouching for an entity_id needs a first-party credential of the organization (a sign-in, API, personal or bot token, or a client-credentials token of its own client), not an OAuth app's token")
	}
	// An agent's rights to write messages (the matrix lets guests write
	// too, but only in their own conversation).
	if !sc.Role.Includes(shared.RoleAgent) || !shared.Allowed(sc.Role, shared.Message, shared.Create) {
		return apierr.InsufficientScope("vouching for a visitor needs the rights to write messages: role agent or higher; this token has role " + sc.Role.String())
	}
	if need := shared.Required(shared.Message, shared.Create); !sc.API.Has(need) {
		return apierr.InsufficientScope("vouching for a visitor needs the rights to write messages: scope \"" + need.String() + "\"; this token has scope \"" + sc.String() + "\"")
	}
	return nil
}
