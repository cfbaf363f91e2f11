package sdk

// The server is named by its issuer, its public base URL
// (CHATAUTH_ISSUER), which is also what init's serverUrl must be: the
// DPoP proofs name it (htu), and the server's discovery documents
// (/.well-known/openid-configuration, oauth-authorization-server) give
// it as "issuer". The SDK compares against the configured serverUrl
// rather than fetching discovery: a fetch would only confirm what the
// configured URL already says, for a request more on every redirect.

// checkIssuer is RFC 9207's defence against mix-up attacks for a
// redirect answer: "Clients MUST ... compare the value of the iss
// parameter against the issuer identifier of the authorization server
// where the authorization request was sent", and "this comparison MUST
// use simple string comparison as defined in Section 6.2.1 of
// [RFC3986]" (section 2.4), before anything of the answer is used. So
// no case folding or port dropping: want is serverUrl without trailing
// slashes (chatauth.js cuts them), as the server cuts them from
// CHATAUTH_ISSUER. A chatauth server puts iss in every answer, errors
// included, so a missing one is refused too: an answer without it did
// not come from the server (or a proxy cut it), and taking it would be
// exactly the mix-up that iss exists to prevent.
func checkIssuer(got, want string) error {
	const again = "; start the sign-in again, and check that init's serverUrl is the server's CHATAUTH_ISSUER"
	switch {
	case got == "":
		return errorf(CodeIssuerMismatch, "the redirect carries no iss (RFC 9207), which a chatauth server always sends"+again)
	case got != want:
		if len(got) > 100 {
			got = got[:100] + "…"
		}
		return errorf(CodeIssuerMismatch, "the redirect's iss is "+got+", not serverUrl "+want+" (RFC 9207)"+again)
	}
	return nil
}
