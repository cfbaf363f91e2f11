// Package apierr is chatauth's one application error: a string code (the
// error codes of docs/api.md, "Errors"), a message for the person calling,
// and an internal cause for the log only. Services return it; the HTTP
// layer maps codes to statuses in one table.
package apierr

import (
	"errors"
	"time"

	"chatauth/shared"
)

// Codes of the error body; the strings are shared.Err* so the SDK reads
// the same constants the server writes.
const (
	CodeInvalidToken      = shared.ErrInvalidToken
	CodeInsufficientScope = shared.ErrInsufficientScope
	CodeNotFound          = shared.ErrNotFound
	CodeInvalidRequest    = shared.ErrInvalidRequest
	CodeInvalidClient     = shared.ErrInvalidClient
	CodeTooManyRequests   = shared.ErrTooManyRequests
	CodeConflict          = shared.ErrConflict
	CodeTooLarge          = shared.ErrTooLarge
	CodeMethodNotAllowed  = shared.ErrMethodNotAllowed
	CodeInvalidCredential = shared.ErrInvalidCredential
	CodeForbidden         = shared.ErrForbidden
	CodeSignInRequired    = shared.ErrSignInRequired
	CodeUnavailable       = shared.ErrUnavailable
	CodeInternal          = shared.ErrInternal
)

// Error is returned by handlers and rendered by the HTTP error handler.
type Error struct {
	Code    string
	Message string
	// RetryAfter, when set, becomes the Retry-After header.
	RetryAfter time.Duration
	// Status, when set, overrides the code's status, and Headers are set
	// on the answer over the defaults: a DPoP refusal is 400 at a token
	// endpoint and 401 with a DPoP challenge at a resource (RFC 9449).
	Status  int
	Headers map[string]string
	// Internal is logged, never shown.
	Internal error
}

func (e *Error) Error() string {
	if e.Internal != nil {
		return e.Code + ": " + e.Message + ": " + e.Internal.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Internal }

// New makes an error with code and message.
func New(code, message string) *Error { return &Error{Code: code, Message: message} }

// InvalidToken is a 401 for anything wrong with the credential.
func InvalidToken(msg string) *Error { return New(CodeInvalidToken, msg) }

// InsufficientScope is a 403 for a valid credential without the rights.
func InsufficientScope(msg string) *Error { return New(CodeInsufficientScope, msg) }

// NotFound is a 404; objects of other organizations are not found either.
func NotFound(msg string) *Error { return New(CodeNotFound, msg) }

// InvalidRequest is a 400 whose message names the field.
func InvalidRequest(msg string) *Error { return New(CodeInvalidRequest, msg) }

// Conflict is a 409 (an email already taken, say).
func Conflict(msg string) *Error { return New(CodeConflict, msg) }

// TooManyRequests is a 429 with Retry-After.
func TooManyRequests(msg string, retry time.Duration) *Error {
	return &Error{Code: CodeTooManyRequests, Message: msg, RetryAfter: retry}
}

// Internal wraps an unexpected failure: the person sees a generic message
// and the request id, the log sees err.
func Internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: "something went wrong on our side; try again, and report the request id if it persists", Internal: err}
}

// As returns err as an *Error when it is one.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
