package oauth

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// loopback hosts may use plain http (RFC 8252 §7.3; local development).
func loopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// ValidateRedirectURI checks a URI a client registers: absolute, https (or
// http on a loopback host), no fragment (RFC 6749 §3.1.2), no user info.
func ValidateRedirectURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || !u.IsAbs() || u.Host == "":
		return errors.New("must be an absolute URL such as https://app.example.com/callback")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("must not contain a fragment (#)")
	case u.User != nil:
		return errors.New("must not contain user info")
	case u.Scheme == "https":
	case u.Scheme == "http" && loopback(u.Host):
	default:
		return errors.New("must use https (plain http is allowed only for localhost and 127.0.0.1)")
	}
	if len(s) > 2000 {
		return errors.New("is too long")
	}
	return nil
}

// ValidateOrigin checks an allowed origin: scheme://host[:port] exactly,
// as browsers send it in the Origin header. "*" is refused: credentialed
// CORS must name origins.
func ValidateOrigin(s string) error {
	if s == "*" {
		return errors.New(`"*" is not allowed: name each origin, e.g. https://www.example.com`)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must be an origin: scheme://host[:port] with no path, e.g. https://www.example.com")
	}
	if u.Scheme == "http" && !loopback(u.Host) {
		return errors.New("must use https (plain http is allowed only for localhost and 127.0.0.1)")
	}
	if strings.ToLower(s) != s {
		return errors.New("must be lower case, as browsers send it")
	}
	return nil
}
