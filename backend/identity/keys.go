// Package identity verifies a site's word for its logged-in users
// (docs/identity.md): the identity keys of a widget client, and the
// identity tokens (JWTs) the site's backend signs with them. What an
// identified visitor may do is customerauth's business; this package
// only says whether a token is good and, when it is not, why.
package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/token"
)

// MaxKeys is how many identity keys a client may have at once: two, so a
// site adds its next key, switches its signer, then deletes the old one.
const MaxKeys = 2

// The algorithms an identity token may be signed with, by key. Each key
// verifies exactly one (a jwks_uri key each of its own), so a token can
// never choose how it is checked.
const (
	HS256 = "HS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
	RS256 = "RS256"
)

// CreateRequest is the body of POST /api/v1/oauth/clients/{id}/identity_keys:
// exactly one of Alg ("HS256": chatauth generates a secret), JWK (the
// site's public key) or JWKSURI (the site's key set).
type CreateRequest struct {
	Alg     string          `json:"alg"`
	JWK     json.RawMessage `json:"jwk"`
	JWKSURI string          `json:"jwks_uri"`
}

// Sealer encrypts an HS256 secret at rest: verifying an HMAC needs the
// secret itself, so unlike every other secret it cannot be kept as a
// hash (docs/security.md). token.Sealer is one.
type Sealer interface {
	Seal(plain []byte, ad string) []byte
	Open(sealed []byte, ad string) ([]byte, error)
}

var _ Sealer = (*token.Sealer)(nil)

func sealAD(clientID, kid string) string { return "identity:" + clientID + ":" + kid }

// NewKey validates req and makes the key for client; secret is the HS256
// secret, to be shown once. A jwks_uri is fetched once here, so a wrong
// address is refused now rather than at the first sign-in.
func (v *Verifier) NewKey(ctx context.Context, req CreateRequest, client domain.Client) (domain.IdentityKey, string, error) {
	k := domain.IdentityKey{ClientID: client.ID, OrgID: client.OrgID}
	given := 0
	for _, set := range []bool{req.Alg != "", len(req.JWK) > 0 && string(req.JWK) != "null", req.JWKSURI != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return k, "", apierr.InvalidRequest(`send exactly one of alg ("HS256": chatauth makes a secret), jwk (your public key) or jwks_uri (your key set)`)
	}
	switch {
	case req.Alg != "":
		if req.Alg != HS256 {
			return k, "", apierr.InvalidRequest(`alg: only "HS256" is generated here; for ES256, EdDSA or RS256 send your public key as jwk (or your key set as jwks_uri)`)
		}
		raw := make([]byte, 32)
		rand.Read(raw)
		secret := "ids_" + base64.RawURLEncoding.EncodeToString(raw)
		k.Kind, k.Alg, k.KID = domain.IdentitySecret, HS256, "hs_"+token.NewID()[:16]
		k.Secret = v.Sealer.Seal([]byte(secret), sealAD(client.ID, k.KID))
		return k, secret, nil
	case req.JWKSURI != "":
		if err := checkJWKSURI(req.JWKSURI); err != nil {
			return k, "", err
		}
		if _, err := v.JWKS.keys(ctx, req.JWKSURI, "", true); err != nil {
			return k, "", apierr.InvalidRequest("jwks_uri: " + err.Error())
		}
		k.Kind, k.JWKSURI, k.KID = domain.IdentityJWKSURI, req.JWKSURI, "set_"+token.NewID()[:16]
		return k, "", nil
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(req.JWK); err != nil {
		return k, "", apierr.InvalidRequest("jwk: not a JSON Web Key (" + err.Error() + ")")
	}
	if !jwk.IsPublic() {
		return k, "", apierr.InvalidRequest("jwk: contains a private key; send only the public key (and keep the private one on your server)")
	}
	alg, err := keyAlg(jwk)
	if err != nil {
		return k, "", apierr.InvalidRequest("jwk: " + err.Error())
	}
	k.KID = jwk.KeyID
	if k.KID == "" {
		tp, err := jwk.Thumbprint(crypto.SHA256)
		if err != nil {
			return k, "", apierr.InvalidRequest("jwk: " + err.Error())
		}
		k.KID = base64.RawURLEncoding.EncodeToString(tp)
	}
	if len(k.KID) > 128 || strings.ContainsAny(k.KID, "\x00\n") {
		return k, "", apierr.InvalidRequest("jwk: kid: at most 128 characters")
	}
	pub, _ := jwk.Public().MarshalJSON()
	k.Kind, k.Alg, k.JWK = domain.IdentityJWK, alg, string(pub)
	return k, "", nil
}

// keyAlg is the one algorithm a public key verifies: ES256 for P-256,
// EdDSA for Ed25519, RS256 for RSA of at least 2048 bits. A key that names
// another alg, or a use other than sig, is refused.
func keyAlg(jwk jose.JSONWebKey) (string, error) {
	var alg string
	switch pub := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return "", errors.New("an EC key must be on P-256 (ES256)")
		}
		alg = ES256
	case ed25519.PublicKey:
		alg = EdDSA
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return "", errors.New("an RSA key must have at least 2048 bits")
		}
		alg = RS256
	default:
		return "", errors.New("use an EC P-256 (ES256), Ed25519 (EdDSA) or RSA (RS256) public key")
	}
	if jwk.Algorithm != "" && jwk.Algorithm != alg {
		return "", errors.New("alg " + quote(jwk.Algorithm) + " does not fit this key, which verifies " + alg)
	}
	if jwk.Use != "" && jwk.Use != "sig" {
		return "", errors.New(`use must be "sig"`)
	}
	return alg, nil
}

func checkJWKSURI(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "":
		return apierr.InvalidRequest("jwks_uri: not an absolute URL")
	case u.Scheme != "https":
		return apierr.InvalidRequest("jwks_uri: must be https")
	case u.User != nil || u.Fragment != "":
		return apierr.InvalidRequest("jwks_uri: no user info or fragment")
	case len(raw) > 2000:
		return apierr.InvalidRequest("jwks_uri: at most 2000 characters")
	}
	return nil
}

// Public is a key as the API shows it: never the secret.
func Public(k domain.IdentityKey) map[string]any {
	m := map[string]any{"kid": k.KID, "kind": k.Kind, "created_at": k.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")}
	if k.Alg != "" {
		m["alg"] = k.Alg
	}
	if k.JWK != "" {
		m["jwk"] = json.RawMessage(k.JWK)
	}
	if k.JWKSURI != "" {
		m["jwks_uri"] = k.JWKSURI
	}
	return m
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}
