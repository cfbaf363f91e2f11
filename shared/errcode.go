package shared

// Error codes of the JSON error body {"error": code, "message": …}
// (docs/api.md, "Errors"). The server writes them and the SDK reads
// them, so both compile against these constants: a client tells errors
// apart by code, never by the wording of the message.
const (
	ErrInvalidToken      = "invalid_token"
	ErrInsufficientScope = "insufficient_scope"
	ErrNotFound          = "not_found"
	ErrInvalidRequest    = "invalid_request"
	// ErrInvalidClient: the client_id is unknown (400). A page whose origin
	// is not in the client's allowed_origins gets ErrForbidden (403).
	ErrInvalidClient     = "invalid_client"
	ErrTooManyRequests   = "too_many_requests"
	ErrConflict          = "conflict"
	ErrTooLarge          = "request_too_large"
	ErrMethodNotAllowed  = "method_not_allowed"
	ErrInvalidCredential = "invalid_credentials"
	ErrForbidden         = "forbidden"
	// ErrSignInRequired: minting a long-lived credential needs a
	// first-party sign-in, not the credential that was sent.
	ErrSignInRequired = "sign_in_required"
	ErrUnavailable    = "service_unavailable"
	ErrInternal       = "internal_error"

	// Identified visitors (docs/identity.md).
	//
	// ErrIdentityRequired (403): the widget's client accepts only visitors
	// the site has identified; an anonymous visitor, token or session is
	// refused everywhere. The widget shows "please sign in on the site".
	ErrIdentityRequired = "identity_required"
	// ErrInvalidIdentity (401): the identity_token was refused; the
	// message says why (unknown kid, wrong aud, bad signature, jti used…).
	ErrInvalidIdentity = "invalid_identity_token"
	// ErrIdentityExpired (401): the identity_token is past its exp; the
	// SDK asks the site for a fresh one, once.
	ErrIdentityExpired = "identity_token_expired"

	// DPoP (RFC 9449, section 12.2; docs/dpop.md): 400 at a token
	// endpoint, 401 with a DPoP challenge at a resource.
	//
	// ErrInvalidDPoPProof: the proof was refused (bad signature, wrong
	// htu or htm, replayed jti, a key other than the token's).
	ErrInvalidDPoPProof = "invalid_dpop_proof"
	// ErrUseDPoPNonce: the proof must sign the server's nonce, which the
	// answer's DPoP-Nonce header carries; the SDK signs it and sends the
	// request again, once.
	ErrUseDPoPNonce = "use_dpop_nonce"
)
