package oauth

import (
	"net/url"

	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// grantClientCredentials is RFC 6749 §4.4, for confidential clients only.
// The token's subject is the client itself, with role bot at most, in the
// client's organization; no refresh token (§4.4.3).
func (p *Provider) grantClientCredentials(client domain.Client, form url.Values, jkt string) (TokenResponse, error) {
	if client.Type != "confidential" {
		return TokenResponse{}, ErrUnauthorizedClient.WithDescription("client_credentials is only for confidential clients; a public client cannot keep a secret. Use authorization_code with PKCE")
	}
	api, err := ParseClientScopes(splitScopes(client.Scopes))
	if err != nil {
		return TokenResponse{}, err
	}
	scope, err := ResolveScope(form.Get("scope"), api, shared.RoleBot)
	if err != nil {
		return TokenResponse{}, err
	}
	// The session names the client's current epoch (so deleting the client,
	// resetting its secret or making it public ends every such token) and
	// this token (so /oauth/revoke can end it alone).
	return p.access("client:"+client.ID, client.OrgID, client.ID, scope, sqlstore.ClientCredentialsSession(client.ID, client.CCEpoch)+"."+token.NewID()[:12], jkt)
}
