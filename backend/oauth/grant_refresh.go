package oauth

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// grantRefresh is RFC 6749 §6 with the rotation, reuse detection and grace
// window of agent sign-in (one implementation: sqlstore.Rotate). scope
// may narrow the new access token, never widen it; the family keeps its
// original scope.
func (p *Provider) grantRefresh(ctx context.Context, client sqlstore.Client, form url.Values) (TokenResponse, error) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return TokenResponse{}, ErrInvalidRequest.WithDescription("refresh_token is missing")
	}
	hash := token.Hash(rt)
	fam, _, err := p.Store.LookupRefresh(ctx, hash)
	if notFound(err) {
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token is not valid")
	}
	if err != nil {
		return TokenResponse{}, err
	}
	if fam.Kind != FamilyKind || fam.ClientID != client.ID {
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token was issued to another client")
	}
	granted, err := shared.ParseScope(fam.Scope)
	if err != nil {
		return TokenResponse{}, err
	}
	scope := granted
	if req := form.Get("scope"); req != "" {
		role, api, err := shared.ParseRequestedScope(req)
		if err != nil {
			var we *shared.WordError
			if errors.As(err, &we) {
				return TokenResponse{}, ErrInvalidScope.WithDescription("unknown scope \"" + we.Word + "\"")
			}
			return TokenResponse{}, ErrInvalidScope.WithDescription(err.Error())
		}
		if extra := api &^ granted.API; extra != 0 {
			return TokenResponse{}, ErrInvalidScope.WithDescription("scope \"" + extra.String() + "\" was not granted; a refresh may narrow the scope, never widen it")
		}
		if role != shared.RoleInvalid && !granted.Role.Includes(role) {
			return TokenResponse{}, ErrInvalidScope.WithDescription("scope \"" + role.String() + "\" was not granted")
		}
		scope.API = api
		if role != shared.RoleInvalid {
			scope.Role = role
		}
	}
	uid, _ := strconv.ParseInt(fam.Subject, 10, 64)
	u, err := p.Store.UserByID(ctx, uid)
	if notFound(err) {
		return TokenResponse{}, ErrInvalidGrant.WithDescription("the user of this refresh_token no longer exists")
	}
	if err != nil {
		return TokenResponse{}, err
	}
	next, nextHash := token.NewOpaque(token.PrefixRefresh)
	now := p.Now()
	_, err = p.Store.Rotate(ctx, hash, p.Grace, sqlstore.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(p.RefreshTTL)})
	switch {
	case errors.Is(err, sqlstore.ErrReused):
		p.Revocations.Add(fam.ID)
		p.Store.Audit(ctx, sqlstore.AuditEvent{OrgID: fam.OrgID, Event: "refresh.reuse_detected", Subject: "user:" + fam.Subject, Detail: "OAuth grant of client " + client.ID + " revoked"})
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token was already used; for safety every token of this grant is now revoked. Authorize again")
	case errors.Is(err, sqlstore.ErrRevoked):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token was revoked; authorize again")
	case errors.Is(err, sqlstore.ErrExpired):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token expired; authorize again")
	case notFound(err):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("refresh_token is not valid")
	case err != nil:
		return TokenResponse{}, err
	}
	t, err := p.access(fam.Subject, u.OrgID, client.ID, capRole(scope, u), fam.ID)
	t.RefreshToken = next
	return t, err
}
