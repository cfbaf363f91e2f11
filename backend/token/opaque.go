package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Prefixes of the opaque secrets this server makes. They tell a person (and
// the token debugger, and secret scanners) what a leaked string is without
// a database lookup.
const (
	PrefixRefresh         = "car_" // agent or OAuth refresh token
	PrefixCustomerRefresh = "ccr_" // customer refresh token
	PrefixAPIToken        = "cat_" // user API token (api_access_token)
	PrefixPersonal        = "cap_" // personal access token
	PrefixBot             = "cab_" // agent-bot token
	PrefixPlatform        = "cpl_" // platform token
	PrefixCode            = "cac_" // authorization code
	PrefixClientSecret    = "cas_" // OAuth client secret
)

// NewOpaque makes a secret with 256 bits of entropy and returns it with
// the hash that is all the database keeps.
func NewOpaque(prefix string) (secret string, hash []byte) {
	var b [32]byte
	rand.Read(b[:])
	secret = prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return secret, Hash(secret)
}

// Hash is SHA-256 of the whole secret. A fast hash is right here: the
// secrets are random, so there is nothing to brute-force.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// HasPrefix reports whether s looks like an opaque secret of kind prefix.
func HasPrefix(s, prefix string) bool { return strings.HasPrefix(s, prefix) }

// NewID returns a random URL-safe identifier (for jti, sid, kid).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
