package oauth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"chatauth/backend/domain"
	"chatauth/backend/token"
)

// ClientAuth is how a token-endpoint caller identified itself.
type ClientAuth struct {
	ID     string
	Secret string
	Basic  bool // sent as HTTP Basic (answer invalid_client with a Basic challenge)
}

// ParseBasic reads an RFC 6749 §2.3.1 Basic credential: base64 of
// form-urlencoded id ":" form-urlencoded secret.
func ParseBasic(header string) (id, secret string, err error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", errors.New("not a Basic credential")
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
	if err != nil {
		return "", "", errors.New("Basic credential is not valid base64")
	}
	rawID, rawSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("Basic credential has no ':' between client_id and client_secret")
	}
	if id, err = url.QueryUnescape(rawID); err != nil || !utf8.ValidString(id) {
		return "", "", errors.New("client_id in the Basic credential is not form-urlencoded UTF-8")
	}
	if secret, err = url.QueryUnescape(rawSecret); err != nil || !utf8.ValidString(secret) {
		return "", "", errors.New("client_secret in the Basic credential is not form-urlencoded UTF-8")
	}
	return id, secret, nil
}

// ReadClientAuth takes client authentication from the Authorization
// header or the form body, never both (RFC 6749 §2.3).
func ReadClientAuth(authorization string, form url.Values) (ClientAuth, *Error) {
	bodyID, bodySecret := form.Get("client_id"), form.Get("client_secret")
	if len(form["client_id"]) > 1 || len(form["client_secret"]) > 1 {
		return ClientAuth{}, ErrInvalidRequest.WithDescription("client_id or client_secret given more than once")
	}
	if authorization != "" {
		id, secret, err := ParseBasic(authorization)
		if err != nil {
			return ClientAuth{Basic: true}, ErrInvalidClient.WithDescription(err.Error())
		}
		if bodySecret != "" {
			return ClientAuth{Basic: true}, ErrInvalidRequest.WithDescription("send client credentials once: in the Authorization header or in the body, not both")
		}
		if bodyID != "" && bodyID != id {
			return ClientAuth{Basic: true}, ErrInvalidRequest.WithDescription("client_id in the body differs from the one in the Authorization header")
		}
		return ClientAuth{ID: id, Secret: secret, Basic: true}, nil
	}
	if bodyID == "" {
		return ClientAuth{}, ErrInvalidClient.WithDescription("client authentication is missing: send client_id (and client_secret for confidential clients) as HTTP Basic or in the body")
	}
	return ClientAuth{ID: bodyID, Secret: bodySecret}, nil
}

// AuthenticateClient finds the client and checks its secret in constant
// time, under the guess throttle (per client and per IP, across
// processes). Public clients authenticate by id alone.
func (p *Provider) AuthenticateClient(ctx context.Context, ca ClientAuth, ip string) (domain.Client, error) {
	c, err := p.Store.Client(ctx, ca.ID)
	if errors.Is(err, domain.ErrNotFound) {
		return c, ErrInvalidClient.WithDescription("no client with client_id \"" + clip(ca.ID) + "\" is registered")
	}
	if err != nil {
		return c, err
	}
	if c.Type == "public" {
		if ca.Secret != "" {
			return c, ErrInvalidClient.WithDescription("this is a public client: it has no secret, so send none")
		}
		return c, nil
	}
	if ca.Secret == "" {
		return c, ErrInvalidClient.WithDescription("this is a confidential client: send its client_secret")
	}
	// Client secrets are 256-bit: the fast check (this process's blocks)
	// is enough, and every wrong guess is still counted in the database.
	keys := p.Guesses.Keys("client", c.ID, ip)
	if err := p.Guesses.CheckFast(keys); err != nil {
		return c, err
	}
	if subtle.ConstantTimeCompare(token.Hash(ca.Secret), c.SecretHash) != 1 {
		return c, p.Guesses.Fail(ctx, keys, c.OrgID, "too many wrong client secrets from "+ip, ErrInvalidClient.WithDescription("client authentication failed: wrong client_secret"))
	}
	return c, nil
}
