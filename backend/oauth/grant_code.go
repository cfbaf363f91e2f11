package oauth

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"chatauth/backend/domain"
	"chatauth/backend/token"
	"chatauth/shared"
)

// grantCode is RFC 6749 §4.1.3 with RFC 7636 §4.6: the code is valid,
// unused, unexpired, issued to this client for this redirect_uri, and the
// verifier matches the challenge. A code used twice revokes what its first
// use produced (§4.1.2).
func (p *Provider) grantCode(ctx context.Context, client domain.Client, form url.Values, jkt string) (TokenResponse, error) {
	code := form.Get("code")
	if code == "" {
		return TokenResponse{}, ErrInvalidRequest.WithDescription("code is missing")
	}
	familyID := token.NewID()
	c, err := p.Store.RedeemCode(ctx, token.Hash(code), familyID, func(c domain.Code) error {
		if c.ClientID != client.ID {
			return ErrInvalidGrant.WithDescription("code was issued to another client")
		}
		if !p.Now().Before(c.ExpiresAt) {
			return ErrInvalidGrant.WithDescription("code expired " + token.Ago(p.Now().Sub(c.ExpiresAt)) + "; codes live " + p.CodeTTL.String() + ", so exchange them right after the redirect")
		}
		if uri := form.Get("redirect_uri"); uri != c.RedirectURI {
			if uri == "" {
				return ErrInvalidGrant.WithDescription("redirect_uri is missing; send the same redirect_uri as in the authorization request")
			}
			return ErrInvalidGrant.WithDescription("redirect_uri does not match the authorization request exactly (trailing slash included)")
		}
		verifier := form.Get("code_verifier")
		switch {
		case c.CodeChallenge != "" && verifier == "":
			return ErrInvalidGrant.WithDescription("code_verifier is missing; the authorization request sent a code_challenge")
		case c.CodeChallenge != "" && !VerifyPKCE(c.CodeChallenge, verifier):
			return ErrInvalidGrant.WithDescription("code_verifier does not match the code_challenge (S256)")
		case c.CodeChallenge == "" && verifier != "":
			return ErrInvalidGrant.WithDescription("code_verifier sent, but the authorization request had no code_challenge")
		}
		// Also refused before the code is used up: a grant whose scopes
		// the client no longer has.
		sc, err := shared.ParseScope(c.Scope)
		if err != nil {
			return err
		}
		_, err = withinClient(sc, client)
		return err
	})
	switch {
	case notFound(err):
		return TokenResponse{}, ErrInvalidGrant.WithDescription("code is not valid; start the authorization again")
	case errors.Is(err, domain.ErrCodeUsed):
		p.Cascade.Revocations.Add(c.Ended...)
		p.Store.Audit(ctx, domain.AuditEvent{OrgID: c.OrgID, Event: "code.reuse_detected", Subject: "client:" + client.ID, Detail: "tokens of the code revoked"})
		return TokenResponse{}, ErrInvalidGrant.WithDescription("code was already used; for safety the tokens it produced are revoked. Codes work once")
	case err != nil:
		return TokenResponse{}, err // the check's RFC 6749 error, or a failure
	}
	u, err := p.Store.UserByID(ctx, c.UserID)
	if notFound(err) {
		return TokenResponse{}, ErrInvalidGrant.WithDescription("the user who approved this code no longer exists")
	}
	if err != nil {
		return TokenResponse{}, err
	}
	scope, err := shared.ParseScope(c.Scope)
	if err != nil {
		return TokenResponse{}, err
	}
	scope = capRole(scope, u)
	if scope, err = withinClient(scope, client); err != nil {
		return TokenResponse{}, err
	}
	fam := &domain.Family{ID: familyID, Kind: FamilyKind, Subject: strconv.FormatInt(u.ID, 10), OrgID: u.OrgID, ClientID: client.ID, Scope: scope.String(), JKT: jkt}
	refresh, err := p.Families.Start(ctx, fam, token.PrefixRefresh)
	if err != nil {
		return TokenResponse{}, err
	}
	t, err := p.access(strconv.FormatInt(u.ID, 10), u.OrgID, client.ID, scope, familyID, jkt)
	t.RefreshToken = refresh
	if err != nil {
		return t, err
	}
	// OpenID Connect: a code issued with openid also answers an ID token
	// (docs/oidc.md).
	a, ok, err := p.grantOIDC(ctx, c, familyID)
	if err != nil {
		return TokenResponse{}, err
	}
	if err := p.signInStands(ctx, c.BrowserSID, c.UserID, familyID); err != nil {
		return TokenResponse{}, err
	}
	if ok {
		t.IDToken, err = p.idToken(client, u, scope, a, t.AccessToken)
	}
	return t, err
}
