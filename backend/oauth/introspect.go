package oauth

import (
	"context"
	"net/url"
	"strings"

	"chatauth/backend/token"
)

// Introspection is RFC 7662 §2.2's answer. Inactive tokens answer only
// {"active": false}, as the RFC requires.
type Introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Org       int64  `json:"org,omitempty"`
}

// Introspect answers for an access or refresh token of this server,
// for an authenticated client of the token's organization tree.
func (p *Provider) Introspect(ctx context.Context, authorization string, form url.Values) (Introspection, error) {
	ca, oerr := ReadClientAuth(authorization, form)
	if oerr != nil {
		return Introspection{}, oerr
	}
	client, err := p.AuthenticateClient(ctx, ca)
	if err != nil {
		return Introspection{}, err
	}
	raw := form.Get("token")
	if raw == "" {
		return Introspection{}, ErrInvalidRequest.WithDescription("token is missing")
	}
	info := p.inspect(ctx, raw)
	if !info.Active {
		return Introspection{}, nil
	}
	// A client may only learn about tokens of its own organization tree.
	if ok, err := p.Store.InTree(ctx, client.OrgID, info.Org); err != nil || !ok {
		return Introspection{}, err
	}
	return info, nil
}

func (p *Provider) inspect(ctx context.Context, raw string) Introspection {
	if strings.HasPrefix(raw, token.PrefixRefresh) || strings.HasPrefix(raw, token.PrefixCustomerRefresh) {
		fam, rt, err := p.Store.LookupRefresh(ctx, token.Hash(raw))
		now := p.Now()
		if err != nil || !fam.RevokedAt.IsZero() || !rt.RotatedAt.IsZero() || !now.Before(rt.ExpiresAt) {
			return Introspection{}
		}
		return Introspection{Active: true, Scope: fam.Scope, ClientID: fam.ClientID, Sub: fam.Subject, Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), TokenType: "refresh_token", Org: fam.OrgID}
	}
	if c, err := p.Agents.Verify(raw); err == nil {
		return Introspection{Active: true, Scope: c.Scope.String(), ClientID: c.ClientID, Sub: c.Subject, Exp: c.Expiry, Iat: c.IssuedAt, Aud: c.Audience, Iss: c.Issuer, TokenType: "access_token", Org: c.Org}
	}
	if c, err := p.Customers.Verify(raw); err == nil {
		return Introspection{Active: true, Scope: c.Scope().String(), ClientID: c.ClientID, Sub: c.Subject, Exp: c.Expiry, Iat: c.IssuedAt, Aud: c.Audience, Iss: c.Issuer, TokenType: "access_token", Org: c.Org}
	}
	return Introspection{}
}

// Revoke is RFC 7009: a refresh token ends its family; an access token
// ends its session (family or, for tokens without one, the session id).
// Unknown and invalid tokens answer success (§2.2).
func (p *Provider) Revoke(ctx context.Context, authorization string, form url.Values) error {
	ca, oerr := ReadClientAuth(authorization, form)
	if oerr != nil {
		return oerr
	}
	client, err := p.AuthenticateClient(ctx, ca)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return ErrInvalidRequest.WithDescription("token is missing")
	}
	if strings.HasPrefix(raw, token.PrefixRefresh) || strings.HasPrefix(raw, token.PrefixCustomerRefresh) {
		fam, _, err := p.Store.LookupRefresh(ctx, token.Hash(raw))
		if notFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if fam.ClientID != client.ID {
			return ErrUnauthorizedClient.WithDescription("this token was issued to another client")
		}
		if err := p.Store.RevokeFamily(ctx, fam.ID, "revoked by client"); err != nil {
			return err
		}
		p.Revocations.Add(fam.ID)
		return nil
	}
	c, err := p.Agents.Verify(raw)
	if err != nil {
		return nil
	}
	if c.ClientID != client.ID {
		return ErrUnauthorizedClient.WithDescription("this token was issued to another client")
	}
	if c.Session == "" {
		return nil
	}
	if _, err := p.Store.Family(ctx, c.Session); err == nil {
		err = p.Store.RevokeFamily(ctx, c.Session, "revoked by client")
		if err != nil {
			return err
		}
	} else if notFound(err) {
		if err := p.Store.RevokeSession(ctx, c.Session, "session", c.Subject, c.Org, "revoked by client"); err != nil {
			return err
		}
	} else {
		return err
	}
	p.Revocations.Add(c.Session)
	return nil
}

// Metadata is RFC 8414's document for issuer.
func Metadata(issuer string) map[string]any {
	return map[string]any{
		"issuer":                                        issuer,
		"authorization_endpoint":                        issuer + "/oauth/authorize",
		"token_endpoint":                                issuer + "/oauth/token",
		"introspection_endpoint":                        issuer + "/oauth/introspect",
		"revocation_endpoint":                           issuer + "/oauth/revoke",
		"jwks_uri":                                      issuer + "/.well-known/jwks.json",
		"response_types_supported":                      []string{"code", "token"},
		"grant_types_supported":                         []string{"authorization_code", "implicit", "refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":              []string{"S256"},
		"scopes_supported":                              []string{"read", "write", "chat", "agent", "bot", "admin"},
		"response_modes_supported":                      []string{"query", "fragment"},
		"prompt_values_supported":                       []string{"none", "login", "consent"},
	}
}
