package sdk

import "chatauth/shared"

// Stable error codes, as JavaScript sees them in Error.code.
const (
	CodeStateMismatch  = "state_mismatch"         // the redirect's state is not the one we sent
	CodeAccessDenied   = "access_denied"          // the server or the user refused
	CodeNetwork        = "network"                // no answer from the server (offline, DNS, CORS)
	CodeInvalidClient  = shared.ErrInvalidClient  // client_id unknown or origin not allowed
	CodeInvalidToken   = shared.ErrInvalidToken   // the server refused the credential
	CodeInvalidRequest = shared.ErrInvalidRequest // a bad option or a malformed redirect
	CodeServer         = "server_error"           // the server failed (5xx)
	CodeRateLimited    = "rate_limited"           // 429: too many new visitors from this address
	CodeNoToken        = "no_token"               // nothing in the redirect, or no way to get a token
	// CodeIssuerMismatch: a redirect's iss (RFC 9207) is missing or names
	// another server than serverUrl; its token or error is not taken.
	CodeIssuerMismatch = "issuer_mismatch"

	// Identified visitors: the server's codes, passed through as they are.
	CodeIdentityRequired = shared.ErrIdentityRequired // 403: the client accepts only visitors the site identified
	CodeInvalidIdentity  = shared.ErrInvalidIdentity  // 401: the identity token was refused; the message says why
	CodeIdentityExpired  = shared.ErrIdentityExpired  // 401: the identity token is past its exp
	// CodeIdentityUnavailable: the site's identity() threw or rejected.
	CodeIdentityUnavailable = "identity_unavailable"

	// DPoP (dpop.go): the server's codes (RFC 9449, section 12.2), which
	// backend/dpop writes from the same constants.
	CodeInvalidDPoPProof = shared.ErrInvalidDPoPProof // the server refused the proof: serverUrl is not its CHATAUTH_ISSUER, a skewed clock, a lost key
	CodeUseDPoPNonce     = shared.ErrUseDPoPNonce     // the server wants its nonce in the proof; the SDK signs it and sends again, once
	// CodeDPoPUnavailable: this browser cannot keep a DPoP key (no
	// WebCrypto or no IndexedDB), and the app did not opt out with
	// init({dpop: false}).
	CodeDPoPUnavailable = "dpop_unavailable"
)

// Error is an SDK error with a stable code and a message for a developer.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, msg string) *Error { return &Error{Code: code, Message: msg} }

// ServerError maps a failed HTTP answer (status, and the "error" and
// "message" fields of its JSON body) to an SDK error.
func ServerError(status int, code, message string) *Error {
	if message == "" {
		message = "the server answered " + itoa(status)
	}
	switch {
	case code == shared.ErrIdentityRequired, code == shared.ErrInvalidIdentity, code == shared.ErrIdentityExpired:
		// Before the status rules: these 401s and 403s are not about the
		// credential or the client, and the SDK acts on each differently.
		return errorf(code, message)
	case code == CodeInvalidDPoPProof, code == CodeUseDPoPNonce:
		// A nonce still wanted after the SDK signed it is no better than
		// a refused proof; both are 400 at the token endpoint and 401 at
		// a resource, where invalid_token would hide the reason.
		return errorf(CodeInvalidDPoPProof, message)
	case status == 429:
		return errorf(CodeRateLimited, message)
	case status >= 500:
		return errorf(CodeServer, message)
	case status == 401:
		return errorf(CodeInvalidToken, message)
	case code == shared.ErrInvalidClient, status == 403:
		return errorf(CodeInvalidClient, message)
	case code == "access_denied":
		return errorf(CodeAccessDenied, message)
	}
	return errorf(CodeInvalidRequest, message)
}

// IsCode reports whether err is an SDK error with that code. A type
// assertion, not errors.As: the SDK never wraps its errors, and errors.As
// would bring reflection into the bundle.
func IsCode(err error, code string) bool {
	e, ok := err.(*Error)
	return ok && e.Code == code
}

// Retryable reports whether trying again later may succeed.
func Retryable(err error) bool {
	e, ok := err.(*Error)
	return ok && (e.Code == CodeNetwork || e.Code == CodeServer || e.Code == CodeRateLimited)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
