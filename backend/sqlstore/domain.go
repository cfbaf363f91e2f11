package sqlstore

import "chatauth/backend/domain"

// The domain types the store persists, under the names its queries use.
// They are defined in backend/domain; callers use them from there.
type (
	User         = domain.User
	Organization = domain.Organization
	Client       = domain.Client
	Family       = domain.Family
	RefreshToken = domain.RefreshToken
	Customer     = domain.Customer
	Credential   = domain.Credential
	Code         = domain.Code
	AuditEvent   = domain.AuditEvent
)

// The domain's errors, as the store returns them.
var (
	ErrNotFound = domain.ErrNotFound
	ErrConflict = domain.ErrConflict
	ErrRevoked  = domain.ErrRevoked
	ErrExpired  = domain.ErrExpired
	ErrReused   = domain.ErrReused
	ErrOtherKey = domain.ErrOtherKey
	ErrCodeUsed = domain.ErrCodeUsed
	ErrInUse    = domain.ErrInUse
	ErrLimit    = domain.ErrLimit
)

// NormalizeEmail is domain.NormalizeEmail.
func NormalizeEmail(e string) string { return domain.NormalizeEmail(e) }
