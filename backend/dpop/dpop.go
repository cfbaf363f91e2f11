// Package dpop checks DPoP proofs (RFC 9449, docs/dpop.md): the signed
// statement a browser makes with a key it cannot export, on every request,
// that binds its tokens to that key. A token lifted out of the page (an
// XSS, an extension, a log) is then useless without the key.
package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"chatauth/backend/domain"
	"chatauth/shared"
)

// Algs are the proof algorithms accepted (and announced as
// dpop_signing_alg_values_supported): asymmetric only, never none or an
// HMAC, which a proof of possession cannot be.
var Algs = []string{"ES256", "EdDSA", "RS256"}

// Limits of a proof.
const (
	// MaxAge is how old a proof's iat may be; Ahead how far in the future
	// (clock skew). Its jti is remembered for that long.
	MaxAge = 5 * time.Minute
	Ahead  = 60 * time.Second
	// nonceSlot is how long a nonce is fresh; the previous one is still
	// taken, so a nonce lives 5 to 10 minutes.
	nonceSlot = 5 * time.Minute
	maxProof  = 8 << 10
)

// Codes of RFC 9449's errors, as the SDK reads them (shared/errcode.go).
const (
	CodeInvalidProof = shared.ErrInvalidDPoPProof
	CodeUseNonce     = shared.ErrUseDPoPNonce
)

// Error is a refused proof, in RFC 9449's terms. A use_dpop_nonce error
// carries the nonce to retry with.
type Error struct {
	Code        string
	Description string
	Nonce       string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(msg string) *Error {
	return &Error{Code: CodeInvalidProof, Description: "DPoP proof: " + msg}
}

// Replay remembers proof ids across processes (the database): a jti
// seen before under the same key is a replay.
type Replay interface {
	UseDPoPJTI(ctx context.Context, jkt, jti string, exp time.Time) error
}

// Checker verifies proofs.
type Checker struct {
	Replay Replay
	// NonceKey signs the server's nonces; RequireNonce makes the token
	// endpoints ask for one (RFC 9449, section 8).
	NonceKey     []byte
	RequireNonce bool
	Now          func() time.Time
}

// Request is what a proof must match.
type Request struct {
	// Proofs are the values of the DPoP header (exactly one is allowed).
	Proofs []string
	Method string
	// URL is the request's target as the client addresses it (the
	// issuer's base and the path); query and fragment do not count.
	URL string
	// AccessToken, on a resource request, is the token the proof must
	// name by hash (ath).
	AccessToken string
	// JKT, when set, is the key the token is bound to.
	JKT string
	// Nonce: the endpoint asks for a nonce (the token endpoints, when
	// RequireNonce).
	Nonce bool
	// Recorded: this very proof passed an earlier check of the same
	// request, which stored its jti (a backend vouching for a visitor
	// with a bound token proves the token endpoint and its token at once).
	Recorded bool
}

// Proof is a verified proof: JKT is its key's thumbprint (RFC 7638).
type Proof struct {
	JKT string
}

type claims struct {
	jwt.RegisteredClaims
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	ATH   string `json:"ath"`
	Nonce string `json:"nonce"`
}

// Check verifies the request's proof by RFC 9449, section 4.3; each
// refusal says which rule.
func (c *Checker) Check(ctx context.Context, r Request) (Proof, error) {
	switch {
	case len(r.Proofs) == 0:
		return Proof{}, invalid("missing; send a DPoP header with a proof (RFC 9449)")
	case len(r.Proofs) > 1:
		return Proof{}, invalid("more than one DPoP header")
	case len(r.Proofs[0]) > maxProof:
		return Proof{}, invalid("larger than 8 KB")
	}
	var jwk jose.JSONWebKey
	var cl claims
	parser := jwt.NewParser(jwt.WithValidMethods(Algs), jwt.WithoutClaimsValidation())
	tok, err := parser.ParseWithClaims(r.Proofs[0], &cl, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != "dpop+jwt" {
			return nil, invalid(`typ must be "dpop+jwt"`)
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, invalid("crit header: no extension is understood here (RFC 7515, section 4.1.11)")
		}
		raw, ok := t.Header["jwk"].(map[string]any)
		if !ok {
			return nil, invalid("no jwk header (the public key the proof is signed with)")
		}
		// Any private member, not just d: an RSA key's p or q is as
		// private (go-jose's IsPublic looks at d alone).
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := raw[m]; ok {
				return nil, invalid("jwk header holds a private key")
			}
		}
		b, _ := json.Marshal(raw)
		if err := jwk.UnmarshalJSON(b); err != nil {
			return nil, invalid("jwk header is not a JSON Web Key")
		}
		if !jwk.IsPublic() {
			return nil, invalid("jwk header holds a private key")
		}
		// 2048 to 4096 bits with the usual exponent: a larger modulus or
		// exponent only makes the server's verification slower.
		if k, ok := jwk.Key.(*rsa.PublicKey); ok && (k.N.BitLen() < 2048 || k.N.BitLen() > 4096 || k.E != 65537) {
			return nil, invalid("an RSA key must have 2048 to 4096 bits and exponent 65537")
		}
		return jwk.Key, nil
	})
	if err != nil {
		var de *Error
		switch {
		case tok != nil && tok.Method != nil && !contains(Algs, tok.Method.Alg()):
			return Proof{}, invalid("alg " + short(tok.Method.Alg()) + " is not accepted; use one of " + strings.Join(Algs, ", "))
		case errors.As(err, &de):
			return Proof{}, de
		case errors.Is(err, jwt.ErrTokenMalformed):
			return Proof{}, invalid("not a JWT")
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return Proof{}, invalid("signature does not verify with the jwk header")
		}
		return Proof{}, invalid("refused (" + err.Error() + ")")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return Proof{}, invalid("jwk header: " + err.Error())
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	now := c.Now()
	switch {
	case cl.ID == "" || len(cl.ID) > 255:
		return Proof{}, invalid("jti: required, at most 255 bytes")
	case cl.HTM != r.Method:
		return Proof{}, invalid("htm is " + short(cl.HTM) + ", this request is " + r.Method)
	case !sameTarget(cl.HTU, r.URL):
		return Proof{}, invalid("htu is " + short(cl.HTU) + ", this request is " + r.URL)
	case cl.IssuedAt == nil:
		return Proof{}, invalid("iat: required")
	case cl.IssuedAt.Time.After(now.Add(Ahead)):
		return Proof{}, invalid("iat is in the future; check the device's clock")
	case cl.IssuedAt.Time.Before(now.Add(-MaxAge)):
		return Proof{}, invalid("iat is more than 5 minutes old; sign a fresh proof for each request")
	}
	if r.AccessToken != "" {
		sum := sha256.Sum256([]byte(r.AccessToken))
		if cl.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return Proof{}, invalid("ath does not match the access token (base64url SHA-256 of it)")
		}
	}
	if r.JKT != "" && r.JKT != jkt {
		return Proof{}, invalid("signed with another key than the one the token is bound to")
	}
	if r.Nonce && c.RequireNonce && !c.nonceOK(cl.Nonce, now) {
		return Proof{}, &Error{Code: CodeUseNonce, Description: "DPoP proof: use the server's nonce (the DPoP-Nonce header of this answer)", Nonce: c.Nonce()}
	}
	if r.Recorded {
		return Proof{JKT: jkt}, nil
	}
	if err := c.Replay.UseDPoPJTI(ctx, jkt, cl.ID, cl.IssuedAt.Time.Add(MaxAge+Ahead)); errors.Is(err, domain.ErrConflict) {
		return Proof{}, invalid("jti already used; sign a fresh proof for each request")
	} else if err != nil {
		return Proof{}, err
	}
	return Proof{JKT: jkt}, nil
}

// Nonce is the server's current nonce: the time slot and its MAC, so any
// process of the deployment checks it without shared state.
func (c *Checker) Nonce() string { return c.nonceAt(c.Now()) }

func (c *Checker) nonceAt(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(t.Unix()/int64(nonceSlot/time.Second)))
	m := hmac.New(sha256.New, c.NonceKey)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (c *Checker) nonceOK(n string, now time.Time) bool {
	for _, t := range []time.Time{now, now.Add(-nonceSlot)} {
		if hmac.Equal([]byte(n), []byte(c.nonceAt(t))) {
			return true
		}
	}
	return false
}

// sameTarget compares two URLs as RFC 9449 says: scheme and host
// case-insensitively, default ports elided, the path exactly; query and
// fragment are ignored.
func sameTarget(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ua.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		host := strings.ToLower(u.Host)
		scheme := strings.ToLower(u.Scheme)
		host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme])
		p := u.EscapedPath()
		if p == "" {
			p = "/"
		}
		return scheme + "://" + host + p
	}
	return norm(ua) == norm(ub)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func short(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return `"` + s + `"`
}
