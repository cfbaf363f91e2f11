package oauth

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/shared"
)

// grantRefresh is RFC 6749 §6 with the rotation, reuse detection and
// grace rule of every refresh family (backend/refresh). scope may narrow
// the new access token, never widen it; the family keeps its original
// scope.
func (p *Provider) grantRefresh(ctx context.Context, client domain.Client, form url.Values, jkt string) (TokenResponse, error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return TokenResponse{}, ErrInvalidRequest.WithDescription("refresh_token is missing")
	}
	var (
		u     domain.User
		scope shared.Scope
	)
	// A bound grant is refreshed only by its key, and an unbound one is
	// bound by the first proof (RFC 9449, section 5), in the rotation.
	fam, next, err := p.Families.RotateBound(ctx, rt, jkt, func(fam domain.Family) error {
		if fam.Kind != FamilyKind || fam.ClientID != client.ID {
			return ErrInvalidGrant.WithDescription("refresh_token was issued to another client")
		}
		granted, err := shared.ParseScope(fam.Scope)
		if err != nil {
			return err
		}
		// The OIDC words of a refresh's scope (openid, …) are not API
		// scopes: the grant keeps its OIDC side as it was (docs/oidc.md).
		apiScope, _ := SplitScope(form.Get("scope"))
		if scope, err = narrow(granted, apiScope); err != nil {
			return err
		}
		// The client's scopes as they are now bind its old grants too.
		if scope, err = withinClient(scope, client); err != nil {
			return err
		}
		uid, _ := strconv.ParseInt(fam.Subject, 10, 64)
		u, err = p.Store.UserByID(ctx, uid)
		if notFound(err) {
			return ErrInvalidGrant.WithDescription("the user of this refresh_token no longer exists")
		}
		return err
	})
	switch {
	case errors.Is(err, refresh.ErrOtherKey):
		return TokenResponse{}, ErrInvalidDPoPProof.WithDescription("refresh_token is bound to a DPoP key; send a proof signed by that key")
	case errors.Is(err, refresh.ErrReused):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token was already used; for safety every token of this grant is now revoked. Authorize again")
	case errors.Is(err, refresh.ErrRevoked):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token was revoked; authorize again")
	case errors.Is(err, refresh.ErrExpired):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token expired; authorize again")
	case errors.Is(err, refresh.ErrUnknown):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token is not valid")
	case err != nil:
		return TokenResponse{}, err
	}
	t, err := p.access(fam.Subject, u.OrgID, client.ID, capRole(scope, u), fam.ID, jkt)
	t.RefreshToken = next
	if err != nil {
		return t, err
	}
	// A grant made with openid gets a fresh ID token (OIDC Core §12.2).
	a, ok, err := p.refreshOIDC(ctx, fam.ID)
	if ok && err == nil {
		t.IDToken, err = p.idToken(client, u, capRole(scope, u), a, t.AccessToken)
	}
	return t, err
}

// narrow applies a refresh request's scope to what was granted: it may
// narrow, never widen (docs/security.md, I1).
func narrow(granted shared.Scope, req string) (shared.Scope, error) {
	if req == "" {
		return granted, nil
	}
	role, api, err := shared.ParseRequestedScope(req)
	if err != nil {
		var we *shared.WordError
		if errors.As(err, &we) {
			return granted, ErrInvalidScope.WithDescription("unknown scope \"" + we.Word + "\"")
		}
		return granted, ErrInvalidScope.WithDescription(err.Error())
	}
	if extra := api &^ granted.API; extra != 0 {
		return granted, ErrInvalidScope.WithDescription("scope \"" + extra.String() + "\" was not granted; a refresh may narrow the scope, never widen it")
	}
	if role != shared.RoleInvalid && !granted.Role.Includes(role) {
		return granted, ErrInvalidScope.WithDescription("scope \"" + role.String() + "\" was not granted")
	}
	scope := granted
	scope.API = api
	if role != shared.RoleInvalid {
		scope.Role = role
	}
	return scope, nil
}

// withinClient narrows scope to the API scopes the client is registered
// for now: an admin narrowing a client's scopes narrows what its
// existing grants can mint (docs/security.md, I1).
func withinClient(scope shared.Scope, client domain.Client) (shared.Scope, error) {
	api, err := ParseClientScopes(splitScopes(client.Scopes))
	if err != nil {
		return scope, err
	}
	scope.API &= api
	if scope.API == 0 {
		return scope, ErrInvalidScope.WithDescription("none of the scopes of this grant is registered for the client any more; authorize again")
	}
	return scope, nil
}
