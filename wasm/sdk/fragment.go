package sdk

import (
	"strconv"
	"strings"
)

// Redirect is what an implicit-grant redirect carries (docs/api.md, "OAuth 2.0" and "Customers (website visitors)").
type Redirect struct {
	AccessToken      string
	TokenType        string
	ExpiresIn        int
	EntityID         string
	Scope            string
	State            string
	Issuer           string // iss (RFC 9207): which server answered
	Error            string
	ErrorDescription string
}

// maxRedirect bounds what we parse; a real fragment is under 2 KB.
const maxRedirect = 16 << 10

// ParseRedirect reads the fragment of a redirect URL (or a bare fragment
// starting with '#'). It accepts either a token answer or an error
// answer, never both, and refuses repeated fields, a second '#', bad
// percent-encoding and oversized input. '+' decodes to a space, as the
// server encodes with application/x-www-form-urlencoded.
func ParseRedirect(url string) (Redirect, error) {
	var r Redirect
	if len(url) > maxRedirect {
		return r, errorf(CodeInvalidRequest, "redirect URL is too long to be ours")
	}
	i := strings.IndexByte(url, '#')
	if i < 0 {
		return r, errorf(CodeNoToken, "the URL has no fragment; nothing to handle")
	}
	frag := url[i+1:]
	if strings.IndexByte(frag, '#') >= 0 {
		return r, errorf(CodeInvalidRequest, "the URL has more than one '#'")
	}
	if frag == "" {
		return r, errorf(CodeNoToken, "the fragment is empty")
	}
	seen := map[string]bool{}
	for _, pair := range strings.Split(frag, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := unescape(k)
		if err != nil {
			return r, err
		}
		val, err := unescape(v)
		if err != nil {
			return r, err
		}
		var dst *string
		switch key {
		case "access_token":
			dst = &r.AccessToken
		case "token_type":
			dst = &r.TokenType
		case "entity_id":
			dst = &r.EntityID
		case "scope":
			dst = &r.Scope
		case "state":
			dst = &r.State
		case "iss":
			dst = &r.Issuer
		case "error":
			dst = &r.Error
		case "error_description":
			dst = &r.ErrorDescription
		case "expires_in":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return r, errorf(CodeInvalidRequest, "expires_in is not a positive number")
			}
			if seen[key] {
				return r, errorf(CodeInvalidRequest, "expires_in appears twice")
			}
			seen[key], r.ExpiresIn = true, n
			continue
		default:
			continue // unknown fields are the server's business
		}
		if seen[key] {
			return r, errorf(CodeInvalidRequest, key+" appears twice")
		}
		seen[key], *dst = true, val
	}
	switch {
	case r.AccessToken != "" && r.Error != "":
		return r, errorf(CodeInvalidRequest, "the fragment holds both a token and an error")
	case r.Error != "":
		return r, nil
	case r.AccessToken == "":
		return r, errorf(CodeNoToken, "the fragment holds neither access_token nor error")
	case !isBearer(r.TokenType):
		return r, errorf(CodeInvalidRequest, "token_type must be Bearer")
	case r.ExpiresIn == 0:
		return r, errorf(CodeInvalidRequest, "expires_in is missing")
	}
	return r, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape is form-urlencoding's decoder: %XX and '+'.
func unescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) {
				return "", errorf(CodeInvalidRequest, "bad percent-encoding in the fragment")
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", errorf(CodeInvalidRequest, "bad percent-encoding in the fragment")
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// StripFragment returns url without its fragment (for history.replaceState).
func StripFragment(url string) string {
	if i := strings.IndexByte(url, '#'); i >= 0 {
		return url[:i]
	}
	return url
}

// isBearer compares ASCII case-insensitively: strings.EqualFold would
// link Unicode's case tables into the bundle for one six-letter word.
func isBearer(s string) bool {
	const want = "bearer"
	if len(s) != len(want) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 != want[i] {
			return false
		}
	}
	return true
}
