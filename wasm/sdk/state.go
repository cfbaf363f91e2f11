package sdk

import "crypto/subtle"

const stateAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// NewState makes an unguessable state value from 24 random bytes (the
// browser's crypto.getRandomValues, passed in as random).
func NewState(random func([]byte)) string {
	var b [24]byte
	random(b[:])
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = stateAlphabet[c&63]
	}
	return string(out)
}

// CheckState compares the state we stored with the one that came back,
// in constant time; an empty expected state never matches.
func CheckState(expected, got string) bool {
	return expected != "" && subtle.ConstantTimeCompare([]byte(expected), []byte(got)) == 1
}
