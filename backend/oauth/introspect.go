package oauth

import (
	"context"
	"errors"
	"net/url"

	"chatauth/backend/credential"
	"chatauth/shared"
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
	// Cnf is a bound token's key (RFC 9449, section 6.2).
	Cnf *shared.Confirmation `json:"cnf,omitempty"`
}

// Introspect answers RFC 7662 for an authenticated confidential client,
// about tokens issued to it (docs/security.md, I4). A public client's id
// is published in every page that embeds it, so it proves nothing; and
// a client learns nothing about another client's tokens or first-party
// ones: those are "inactive" to it.
func (p *Provider) Introspect(ctx context.Context, authorization, ip string, form url.Values) (Introspection, error) {
	ca, oerr := ReadClientAuth(authorization, form)
	if oerr != nil {
		return Introspection{}, oerr
	}
	client, err := p.AuthenticateClient(ctx, ca, ip)
	if err != nil {
		return Introspection{}, err
	}
	if client.Type != "confidential" {
		return Introspection{}, ErrUnauthorizedClient.WithDescription("introspection is for confidential clients, which authenticate with a secret; a public client_id proves nothing")
	}
	raw := form.Get("token")
	if raw == "" {
		return Introspection{}, ErrInvalidRequest.WithDescription("token is missing")
	}
	c, err := p.Inspector.Inspect(ctx, raw)
	var inv *credential.Invalid
	switch {
	case errors.As(err, &inv):
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, err
	}
	return introspection(c, client.ID), nil
}

// introspection is RFC 7662's view of c for the client clientID.
func introspection(c credential.Credential, clientID string) Introspection {
	switch c.Kind {
	case credential.OAuth, credential.ClientToken:
		a := c.Agent
		if a.ClientID != clientID {
			return Introspection{}
		}
		return Introspection{Active: true, Scope: a.Scope.String(), ClientID: a.ClientID, Sub: a.Subject, Exp: a.Expiry, Iat: a.IssuedAt, Aud: a.Audience, Iss: a.Issuer, TokenType: tokenType(a.Cnf), Org: a.Org, Cnf: a.Cnf}
	case credential.Customer:
		v := c.Visitor
		if v.ClientID != clientID {
			return Introspection{}
		}
		return Introspection{Active: true, Scope: v.Scope().String(), ClientID: v.ClientID, Sub: v.Subject, Exp: v.Expiry, Iat: v.IssuedAt, Aud: v.Audience, Iss: v.Issuer, TokenType: tokenType(v.Cnf), Org: v.Org, Cnf: v.Cnf}
	case credential.Refresh, credential.CustomerRefresh:
		a := c.Agent
		if a.ClientID != clientID {
			return Introspection{}
		}
		return Introspection{Active: true, Scope: a.Scope.String(), ClientID: a.ClientID, Sub: a.Subject, Exp: c.ExpiresAt.Unix(), Iat: c.IssuedAt.Unix(), TokenType: "refresh_token", Org: a.Org, Cnf: a.Cnf}
	}
	return Introspection{}
}

// tokenType is an access token's token_type as RFC 7662 and RFC 9449,
// section 6.2, name it: a bound token says so, with its cnf beside it, so
// a resource server asking here does not take it as a bearer token.
func tokenType(cnf *shared.Confirmation) string {
	if cnf != nil {
		return "DPoP"
	}
	return "Bearer"
}

// Revoke is RFC 7009: a refresh token ends its grant (the family and its
// access tokens); an access token ends its session (its grant, or for a
// client-credentials token that token alone). Unknown and invalid tokens
// answer success (§2.2), and so do another client's or first-party
// tokens, which are left alone: the answer tells nothing about them.
//
// proof checks the request's DPoP proof against a bound token's key: a
// public client proves nothing by its client_id, which every page that
// embeds it shows, so a bound token lifted out of the page cannot end
// its owner's session either. Without a valid proof the answer is the
// same success, and nothing is revoked.
func (p *Provider) Revoke(ctx context.Context, authorization, ip string, proof func(jkt string) error, form url.Values) error {
	ca, oerr := ReadClientAuth(authorization, form)
	if oerr != nil {
		return oerr
	}
	client, err := p.AuthenticateClient(ctx, ca, ip)
	if err != nil {
		return err
	}
	raw := form.Get("token")
	if raw == "" {
		return ErrInvalidRequest.WithDescription("token is missing")
	}
	c, err := p.Inspector.Inspect(ctx, raw)
	var inv *credential.Invalid
	switch {
	case errors.As(err, &inv):
		return nil
	case err != nil:
		return err
	}
	switch c.Kind {
	case credential.Refresh, credential.CustomerRefresh, credential.OAuth, credential.ClientToken, credential.Customer:
	default:
		return nil // not a client's token: nothing a client may revoke
	}
	a := c.Agent
	if c.Kind == credential.Customer {
		a = shared.AgentClaims{Subject: c.Visitor.Subject, Org: c.Visitor.Org, ClientID: c.Visitor.ClientID, Session: c.Visitor.Session}
	}
	if a.ClientID != client.ID {
		// Another client's (or a first-party) token is left alone and
		// answered like an unknown one: a different answer would tell a
		// public client_id whether a stolen token still works.
		return nil
	}
	if a.Session == "" {
		return nil
	}
	cnf := a.Cnf
	if c.Kind == credential.Customer {
		cnf = c.Visitor.Cnf
	}
	if jkt := shared.BoundKey(cnf); jkt != "" && client.Type != "confidential" && proof(jkt) != nil {
		return nil
	}
	if _, err := p.Store.Family(ctx, a.Session); err == nil {
		return p.Families.Revoke(ctx, a.Session, "revoked by client")
	} else if !notFound(err) {
		return err
	}
	return p.Cascade.EndSession(ctx, a.Session, "client_credentials", a.Subject, a.Org, "revoked by client")
}
