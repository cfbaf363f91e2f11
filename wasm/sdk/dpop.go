package sdk

import (
	"strings"
	"sync"
)

// DPoP (RFC 9449, docs/dpop.md) binds the visitor's tokens to a key the
// browser made as non-extractable: a token lifted out of the page is
// refused anywhere that key is not. The proofs are signed in chatauth.js
// (WebCrypto is an async browser API, and the bundle stays smaller
// without ECDSA in Go); which scheme a token goes under and when a
// refused request is sent again are decided here.

// Token types of a token answer; each is also the Authorization scheme
// its access token is sent under.
const (
	TypeBearer = "Bearer"
	TypeDPoP   = "DPoP"
)

// Scheme is the Authorization scheme for an access token of type
// tokenType: DPoP for a token bound to the browser's key (RFC 9449,
// section 7.1), which the server refuses as a bearer token; Bearer for
// anything else (the server gave no binding). Token types compare
// case-insensitively (RFC 6749, section 5.1).
func Scheme(tokenType string) string {
	// ASCII case folding by hand: strings.EqualFold brings Unicode's
	// folding tables into the bundle.
	if len(tokenType) == len(TypeDPoP) {
		same := true
		for i := 0; i < len(TypeDPoP); i++ {
			same = same && tokenType[i]|0x20 == TypeDPoP[i]|0x20
		}
		if same {
			return TypeDPoP
		}
	}
	return TypeBearer
}

// What to do with a refused request (Resend).
const (
	ResendNo    = ""      // the answer stands
	ResendNonce = "nonce" // sign a new proof with the answer's DPoP-Nonce and send it again
	ResendToken = "token" // a resource refused the access token: get a new one and send again
)

// Resend says whether a request is worth sending again, and how; the
// caller does each kind at most once. status is the answer's, code the
// "error" of its JSON body ("" where the caller leaves the body to the
// app), wwwAuthenticate and nonce its WWW-Authenticate and DPoP-Nonce.
//
// RFC 9449, section 8: "the authorization server responds with an HTTP
// 400 (Bad Request) ... "error" parameter ... "use_dpop_nonce" ... and
// provides the nonce value ... in a DPoP-Nonce HTTP header". Section 9,
// at a resource: 401 with WWW-Authenticate: DPoP error="use_dpop_nonce"
// and the header. Without the header a new proof could do no better.
//
// Any other 401 of a resource means the access token no longer works
// there: it expired, was revoked (a logout in another tab), or its proof
// was refused because the key changed. A new token, obtained under the
// cross-tab lock with the key the site's tabs share, may.
func Resend(status int, code, wwwAuthenticate, nonce string) string {
	switch {
	case nonce != "" && status == 400 && code == CodeUseDPoPNonce,
		nonce != "" && status == 401 && (strings.Contains(wwwAuthenticate, `error="`+CodeUseDPoPNonce+`"`) || strings.Contains(wwwAuthenticate, "error="+CodeUseDPoPNonce)):
		return ResendNonce
	case status == 401 && code == "":
		return ResendToken
	}
	return ResendNo
}

// KV is a small store of strings that lasts as long as the tab
// (sessionStorage in browsers); Get of an unknown key is "".
type KV interface {
	Get(key string) string
	Set(key, value string)
}

// maxNonce bounds what a stored nonce may be: the server's are 32
// characters, and anything else found in storage is not worth signing.
const maxNonce = 256

// Nonce is the latest DPoP-Nonce of one server. The token requests sign
// it, which saves the round trip of a use_dpop_nonce while it is fresh
// (RFC 9449, section 8: the server "MAY supply a new nonce value ... in
// a DPoP-Nonce HTTP header" of any answer). It is kept in kv under the
// server's base URL, so a reload signs it at once instead of paying
// that round trip on every page load; a stale one costs no more than
// none would, as the server then answers use_dpop_nonce with a fresh
// one and Send tries once more.
type Nonce struct {
	kv  KV
	key string

	mu sync.Mutex
	v  string
}

// NewNonce keeps the nonce of the server at base (init's serverUrl) in
// kv; nil keeps it in memory only.
func NewNonce(kv KV, base string) *Nonce {
	return &Nonce{kv: kv, key: "chatauth_dpop_nonce:" + base}
}

// Get returns the latest nonce, "" when none is known.
func (n *Nonce) Get() string {
	n.mu.Lock()
	if n.v == "" && n.kv != nil {
		if v := n.kv.Get(n.key); len(v) <= maxNonce {
			n.v = v
		}
	}
	v := n.v
	n.mu.Unlock()
	return v
}

// Set records a nonce the server answered; "" (an answer without one)
// changes nothing.
func (n *Nonce) Set(v string) {
	if v == "" || len(v) > maxNonce {
		return
	}
	n.mu.Lock()
	old := n.v
	n.v = v
	n.mu.Unlock()
	if v != old && n.kv != nil {
		n.kv.Set(n.key, v)
	}
}

// Send makes a request of a token endpoint with do, which signs nonce
// into its proof and returns the answer's status, the "error" of its
// body and its DPoP-Nonce. The answer's nonce is kept; asked for it
// (Resend), Send signs it and sends once more, and that answer stands.
// err, no answer at all, ends it.
func (n *Nonce) Send(do func(nonce string) (status int, code, answerNonce string, err error)) error {
	for try := 0; ; try++ {
		status, code, got, err := do(n.Get())
		if err != nil {
			return err
		}
		n.Set(got)
		if try > 0 || Resend(status, code, "", got) != ResendNonce {
			return nil
		}
	}
}
