package sdk

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
	if expected == "" || len(expected) != len(got) {
		return false
	}
	// Constant time in the content, as crypto/subtle would be; written out
	// because crypto/subtle pulls the FIPS module into the wasm bundle.
	var diff byte
	for i := 0; i < len(expected); i++ {
		diff |= expected[i] ^ got[i]
	}
	return diff == 0
}
