package credential

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// Errors of ParsePATBasic, each with a message a person can act on.
var (
	ErrBasicEncoding = errors.New("Basic credential is not valid base64; send base64(account_id:token)")
	ErrBasicEscaped  = errors.New("Basic credential has %3A where the ':' between account_id and token should be; encode the colon as a plain ':' before base64")
	ErrBasicNoColon  = errors.New("Basic credential has no ':'; send base64(account_id:token)")
	ErrBasicAccount  = errors.New("Basic credential's user part must be your numeric account_id (see GET /api/v1/profile)")
)

// ParsePATBasic reads a personal-access-token credential,
// "Basic base64(account_id:token)" (LiveChat's form).
func ParsePATBasic(header string) (account int64, token string, err error) {
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return 0, "", ErrBasicEncoding
	}
	rest = strings.TrimSpace(rest)
	if len(rest) > 1024 {
		return 0, "", ErrBasicEncoding
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(rest); err != nil {
			return 0, "", ErrBasicEncoding
		}
	}
	user, secret, ok := strings.Cut(string(raw), ":")
	if !ok {
		if strings.Contains(strings.ToUpper(string(raw)), "%3A") {
			return 0, "", ErrBasicEscaped
		}
		return 0, "", ErrBasicNoColon
	}
	id, err := strconv.ParseInt(user, 10, 64)
	if err != nil || id <= 0 {
		return 0, "", ErrBasicAccount
	}
	return id, secret, nil
}
