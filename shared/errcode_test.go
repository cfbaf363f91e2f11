package shared

import "testing"

// The codes are wire values that deployed SDKs compare against: a
// constant renamed here must not change what the server writes. The DPoP
// ones are RFC 9449's (section 12.2), which other clients know too. (Two
// constants of one value would not compile here: duplicate map keys.)
func TestErrorCodesAreStable(t *testing.T) {
	t.Parallel()
	codes := map[string]string{
		ErrInvalidToken: "invalid_token", ErrInvalidRequest: "invalid_request", ErrInvalidClient: "invalid_client",
		ErrForbidden: "forbidden", ErrIdentityRequired: "identity_required", ErrInvalidIdentity: "invalid_identity_token",
		ErrIdentityExpired: "identity_token_expired", ErrInvalidDPoPProof: "invalid_dpop_proof", ErrUseDPoPNonce: "use_dpop_nonce",
	}
	for got, want := range codes {
		if got != want {
			t.Errorf("code %q, want %q", got, want)
		}
	}
}
