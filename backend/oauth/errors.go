// Package oauth is chatauth's OAuth 2.0 authorization server logic (RFC
// 6749, 6750, 7009, 7636, 7662, 8414): parsing and validating authorize
// requests, PKCE, scope resolution, client authentication, and the grants,
// each as parse → validate → create steps that test without HTTP. The
// HTTP adapters and the sign-in and consent pages live in httpapi.
package oauth

import "chatauth/shared"

// Error is an RFC 6749 §5.2 error. The package's sentinels are never
// mutated: WithDescription returns a copy, so one request's description
// cannot leak into another's answer.
type Error struct {
	Code        string
	Description string
	Status      int
}

func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Is matches errors by code, so errors.Is(err, ErrInvalidGrant) holds for
// any description.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// WithDescription returns a copy carrying a description for the person
// reading the error.
func (e *Error) WithDescription(d string) *Error {
	c := *e
	c.Description = d
	return &c
}

// The errors of RFC 6749 §4.1.2.1, §4.2.2.1 and §5.2, and OpenID Connect's
// prompt=none answers.
var (
	ErrInvalidRequest          = &Error{Code: "invalid_request", Status: 400}
	ErrInvalidClient           = &Error{Code: "invalid_client", Status: 401}
	ErrInvalidGrant            = &Error{Code: "invalid_grant", Status: 400}
	ErrUnauthorizedClient      = &Error{Code: "unauthorized_client", Status: 400}
	ErrUnsupportedGrantType    = &Error{Code: "unsupported_grant_type", Status: 400}
	ErrUnsupportedResponseType = &Error{Code: "unsupported_response_type", Status: 400}
	ErrInvalidScope            = &Error{Code: "invalid_scope", Status: 400}
	ErrAccessDenied            = &Error{Code: "access_denied", Status: 403}
	ErrServerError             = &Error{Code: "server_error", Status: 500}
	// ErrTemporarilyUnavailable is RFC 6749's answer when the database is
	// down, full or read-only: the client should retry later.
	ErrTemporarilyUnavailable = &Error{Code: "temporarily_unavailable", Status: 503}
	ErrLoginRequired          = &Error{Code: "login_required", Status: 400}
	ErrConsentRequired        = &Error{Code: "consent_required", Status: 400}
	// OpenID Connect Core §3.1.2.6's other authorize errors, and RFC
	// 6750 §3.1's answer of a resource (userinfo) to a token without the
	// scope it needs.
	ErrInteractionRequired      = &Error{Code: "interaction_required", Status: 400}
	ErrAccountSelectionRequired = &Error{Code: "account_selection_required", Status: 400}
	ErrInsufficientScope        = &Error{Code: "insufficient_scope", Status: 403}
	ErrInvalidToken             = &Error{Code: "invalid_token", Status: 401}
	// ErrInvalidDPoPProof and ErrUseDPoPNonce are RFC 9449's.
	ErrInvalidDPoPProof = &Error{Code: shared.ErrInvalidDPoPProof, Status: 400}
	ErrUseDPoPNonce     = &Error{Code: shared.ErrUseDPoPNonce, Status: 400}
	// OIDC Core §6: this server takes no request objects, and says so
	// rather than dropping what the client put in one.
	ErrRequestNotSupported    = &Error{Code: "request_not_supported", Status: 400}
	ErrRequestURINotSupported = &Error{Code: "request_uri_not_supported", Status: 400}
)

// PageError is an authorize error that must not be redirected (an unknown
// client or an unvalidated redirect_uri, RFC 6749 §4.1.2.1): it is shown
// to the person on an error page instead.
type PageError struct {
	Title   string
	Message string
}

func (e *PageError) Error() string { return e.Title + ": " + e.Message }
