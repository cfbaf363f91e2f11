// Package dpoptest gives tests DPoP keys and proofs (RFC 9449) as a
// client holds and signs them: a Key whose public half travels as the
// proof's jwk header, and a Proof that Key.Sign turns into the compact
// JWT of a DPoP header. Proofs are signed with golang-jwt and the keys
// marshalled and thumbprinted with go-jose, as the server parses them.
//
// It imports nothing of chatauth, so the dpop package's own tests can use
// it as well as the HTTP and browser tests.
package dpoptest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// Key is a DPoP key pair.
type Key struct {
	// Private signs the proofs: an *ecdsa.PrivateKey (ES256) or an
	// *rsa.PrivateKey (RS256).
	Private crypto.Signer
	// JWK is the public key as the proof's jwk header carries it.
	JWK map[string]any
	// JKT is its RFC 7638 thumbprint (SHA-256, base64url): the cnf.jkt of
	// the tokens bound to it.
	JKT    string
	method jwt.SigningMethod
}

// NewKey makes a P-256 key, signing ES256: what the SDK makes in the
// browser.
func NewKey(tb testing.TB) Key {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("dpoptest: generate key: %v", err)
	}
	return newKey(tb, priv, jwt.SigningMethodES256)
}

// NewRSAKey makes an RSA key of bits, signing RS256.
func NewRSAKey(tb testing.TB, bits int) Key {
	tb.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatalf("dpoptest: generate RSA key: %v", err)
	}
	return newKey(tb, priv, jwt.SigningMethodRS256)
}

func newKey(tb testing.TB, priv crypto.Signer, m jwt.SigningMethod) Key {
	tb.Helper()
	pub := jose.JSONWebKey{Key: priv.Public()}
	return Key{Private: priv, JWK: JWKMap(tb, pub), JKT: thumbprint(tb, pub), method: m}
}

// Proof is what a DPoP proof states. Method and URL become htm and htu;
// the rest is optional.
type Proof struct {
	Method string
	URL    string
	// AccessToken, when set, is named by ath (its SHA-256, base64url), as
	// every proof sent with a bound access token must.
	AccessToken string
	// Nonce, when set, is the server's nonce (use_dpop_nonce).
	Nonce string
	// JTI is the proof's id; empty, a random one.
	JTI string
	// IssuedAt is iat; zero, now.
	IssuedAt time.Time
	// Edit, when set, changes the header or the claims just before
	// signing: a test's way to break one rule at a time.
	Edit func(header, claims map[string]any)
}

// Sign returns p signed with k: the value of a DPoP header.
func (k Key) Sign(tb testing.TB, p Proof) string {
	tb.Helper()
	jti := p.JTI
	if jti == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			tb.Fatalf("dpoptest: jti: %v", err)
		}
		jti = hex.EncodeToString(b[:])
	}
	iat := p.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	claims := jwt.MapClaims{"jti": jti, "htm": p.Method, "htu": p.URL, "iat": iat.Unix()}
	if p.AccessToken != "" {
		claims["ath"] = ATH(p.AccessToken)
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	j := jwt.NewWithClaims(k.method, claims)
	j.Header["typ"] = "dpop+jwt"
	j.Header["jwk"] = k.JWK
	if p.Edit != nil {
		p.Edit(j.Header, claims)
	}
	s, err := j.SignedString(k.Private)
	if err != nil {
		tb.Fatalf("dpoptest: sign proof: %v", err)
	}
	return s
}

// ATH is the ath claim naming an access token (RFC 9449, section 4.2).
func ATH(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKMap is k marshalled as a JSON object, as a jwk header holds it.
func JWKMap(tb testing.TB, k jose.JSONWebKey) map[string]any {
	tb.Helper()
	raw, err := k.MarshalJSON()
	if err != nil {
		tb.Fatalf("dpoptest: marshal JWK: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatalf("dpoptest: JWK: %v", err)
	}
	return m
}

// Thumbprint is RFC 7638's thumbprint of a public JWK given as a JSON
// object (e.g. one a browser exported).
func Thumbprint(tb testing.TB, jwk map[string]any) string {
	tb.Helper()
	raw, err := json.Marshal(jwk)
	if err != nil {
		tb.Fatalf("dpoptest: JWK: %v", err)
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		tb.Fatalf("dpoptest: parse JWK: %v", err)
	}
	return thumbprint(tb, k)
}

func thumbprint(tb testing.TB, k jose.JSONWebKey) string {
	tb.Helper()
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatalf("dpoptest: thumbprint: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp)
}

// BoundTo is the cnf.jkt of an access token, read from its payload
// without verifying it; "" when the token is not bound.
func BoundTo(tb testing.TB, accessToken string) string {
	tb.Helper()
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		tb.Fatalf("dpoptest: not a JWT: %q", accessToken)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatalf("dpoptest: JWT payload: %v", err)
	}
	var claims struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		tb.Fatalf("dpoptest: JWT payload: %v", err)
	}
	return claims.Cnf.JKT
}
