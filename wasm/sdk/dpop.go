package sdk

import "strings"

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
