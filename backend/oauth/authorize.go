package oauth

import (
	"net/url"
	"strconv"
	"strings"

	"chatauth/backend/domain"
)

// AuthorizeRequest is a validated /oauth/authorize or
// /customer/authorize request.
type AuthorizeRequest struct {
	ResponseType  string // "code" or "token"
	ClientID      string
	RedirectURI   string // resolved: the registered URI to send the answer to
	State         string
	Scope         string // as requested, resolved against the user later
	CodeChallenge string
	Prompt        string // as sent: space-separated none, login, consent (HasPrompt)
	// OpenID Connect (docs/oidc.md). OIDC holds the OIDC scopes asked
	// (openid, profile, email), which Scope no longer carries; Nonce is
	// echoed in the ID token; MaxAge is the max_age in seconds, -1 when
	// absent; LoginHint prefills the sign-in page.
	OIDC      []string
	Nonce     string
	MaxAge    int64
	LoginHint string
	// IDTokenHint is an ID token this server issued earlier, naming the
	// user the client expects to be signed in (OIDC Core §3.1.2.1); the
	// authorize handler verifies it against the browser's sign-in.
	IDTokenHint string
	// Issuer, when set, is added to every response as iss (RFC 9207),
	// so a client can tell which server answered.
	Issuer string
}

// HasPrompt reports whether the prompt parameter holds word.
func (r AuthorizeRequest) HasPrompt(word string) bool {
	for _, w := range strings.Fields(r.Prompt) {
		if w == word {
			return true
		}
	}
	return false
}

// OpenID reports whether the request is an OpenID Connect one.
func (r AuthorizeRequest) OpenID() bool { return hasWord(r.OIDC, ScopeOpenID) }

// UseFragment reports whether answers go in the fragment (implicit).
func (r AuthorizeRequest) UseFragment() bool { return r.ResponseType == "token" }

// maxParam bounds every parameter so a hostile URL costs nothing.
const maxParam = 2048

// single returns the one value of a parameter; repeated parameters are an
// error (RFC 6749 §3.1).
func single(q url.Values, name string) (string, bool) {
	v := q[name]
	switch len(v) {
	case 0:
		return "", true
	case 1:
		return v[0], len(v[0]) <= maxParam
	}
	return "", false
}

// ParseAuthorize validates an authorize request in two stages. First the
// client and the redirect URI: an error there is a *PageError, shown to the
// person and never redirected. Then everything else: an error there is an
// *Error to send back to the redirect URI (the returned request is usable
// for that). lookup finds a client by id.
func ParseAuthorize(q url.Values, lookup func(id string) (domain.Client, error)) (AuthorizeRequest, domain.Client, error) {
	var r AuthorizeRequest
	id, ok := single(q, "client_id")
	if !ok {
		return r, domain.Client{}, &PageError{"Invalid request", "client_id is given more than once or is too long."}
	}
	if id == "" {
		return r, domain.Client{}, &PageError{"Invalid request", "client_id is missing. The link that brought you here is incomplete; tell the app's developer."}
	}
	client, err := lookup(id)
	if err != nil {
		return r, client, &PageError{"Unknown application", "No OAuth client with client_id \"" + clip(id) + "\" is registered on this server. Check the client_id in the app's settings."}
	}
	r.ClientID = client.ID
	uri, ok := single(q, "redirect_uri")
	if !ok {
		return r, client, &PageError{"Invalid request", "redirect_uri is given more than once or is too long."}
	}
	switch {
	case uri == "" && len(client.RedirectURIs) == 1:
		r.RedirectURI = client.RedirectURIs[0]
	case uri == "":
		return r, client, &PageError{"Invalid request", "redirect_uri is missing, and the application registered more than one, so we cannot tell where to send you."}
	default:
		found := false
		for _, reg := range client.RedirectURIs {
			if reg == uri { // exact match, trailing slash included (RFC 9700 §2.1)
				found = true
			}
		}
		if !found {
			return r, client, &PageError{"Redirect URI not registered", "The application asked to send you to \"" + clip(uri) + "\", which is not one of its registered redirect URIs (they must match exactly, trailing slash included). Nothing was sent there."}
		}
		r.RedirectURI = uri
	}

	// From here on, errors go back to the application.
	var bad []string
	get := func(name string) string {
		v, ok := single(q, name)
		if !ok {
			bad = append(bad, name)
		}
		return v
	}
	r.State = get("state")
	r.ResponseType = get("response_type")
	r.Scope, r.OIDC = SplitScope(get("scope"))
	r.CodeChallenge = get("code_challenge")
	method := get("code_challenge_method")
	r.Prompt = get("prompt")
	r.Nonce = get("nonce")
	maxAge := get("max_age")
	r.LoginHint = get("login_hint")
	r.MaxAge = -1
	// An ID token can be long (RS256, many claims): bounded like a form.
	if v := q["id_token_hint"]; len(v) > 1 || (len(v) == 1 && len(v[0]) > 4*maxParam) {
		bad = append(bad, "id_token_hint")
	} else if len(v) == 1 {
		r.IDTokenHint = v[0]
	}
	if len(bad) > 0 {
		return r, client, ErrInvalidRequest.WithDescription(strings.Join(bad, ", ") + " given more than once or too long")
	}
	// OIDC Core §6.1 and §6.2: what the client put in a request object
	// (a stricter max_age, another nonce, prompt=login) must not be
	// silently dropped.
	if _, ok := q["request"]; ok {
		return r, client, ErrRequestNotSupported.WithDescription("request objects are not supported (request_parameter_supported is false); send the parameters in the query")
	}
	if _, ok := q["request_uri"]; ok {
		return r, client, ErrRequestURINotSupported.WithDescription("request_uri is not supported (request_uri_parameter_supported is false); send the parameters in the query")
	}
	switch r.ResponseType {
	case "code":
		if r.CodeChallenge == "" && client.Type == "public" {
			return r, client, ErrInvalidRequest.WithDescription("public clients must use PKCE: send code_challenge and code_challenge_method=S256")
		}
	case "token":
		if client.Type != "public" {
			return r, client, ErrUnauthorizedClient.WithDescription("response_type=token (implicit) is only for public clients; a confidential client uses response_type=code")
		}
		// A redirect cannot carry a DPoP proof: its token would be a
		// bearer token the client said it does not want.
		if client.DPoP == domain.DPoPRequired {
			return r, client, ErrAccessDenied.WithDescription("this client requires DPoP-bound tokens, which the implicit flow cannot give; use response_type=code with PKCE and a DPoP proof at the token endpoint")
		}
	case "":
		return r, client, ErrInvalidRequest.WithDescription("response_type is missing; use code or token")
	default:
		return r, client, ErrUnsupportedResponseType.WithDescription("response_type \"" + clip(r.ResponseType) + "\" is not supported; use code or token")
	}
	if r.CodeChallenge != "" || method != "" {
		if method != "S256" {
			return r, client, ErrInvalidRequest.WithDescription("code_challenge_method must be S256")
		}
		if !validChallenge(r.CodeChallenge) {
			return r, client, ErrInvalidRequest.WithDescription("code_challenge must be the base64url (no padding) SHA-256 of the code_verifier: 43 characters")
		}
		if r.ResponseType == "token" {
			return r, client, ErrInvalidRequest.WithDescription("PKCE applies to response_type=code only")
		}
	}
	for _, w := range strings.Fields(r.Prompt) {
		switch w {
		case "none", "login", "consent":
		case "select_account":
			// One account per browser: there is nothing to choose from
			// (OIDC Core §3.1.2.6).
			return r, client, ErrAccountSelectionRequired.WithDescription("prompt=select_account is not supported: this server signs in one account per browser; sign out (end_session) to switch accounts")
		default:
			return r, client, ErrInvalidRequest.WithDescription("prompt must be none, login, consent or select_account (space-separated), not \"" + clip(w) + "\"")
		}
	}
	if r.HasPrompt("none") && len(strings.Fields(r.Prompt)) > 1 {
		return r, client, ErrInvalidRequest.WithDescription("prompt=none cannot be combined with other prompt values (OIDC Core §3.1.2.1)")
	}
	if maxAge != "" {
		n, err := strconv.ParseInt(maxAge, 10, 64)
		if err != nil || n < 0 {
			return r, client, ErrInvalidRequest.WithDescription("max_age must be a number of seconds, 0 or more")
		}
		r.MaxAge = n
	}
	return r, client, nil
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// Redirect builds the URL that answers r: params in the query for code,
// in the fragment for token. state is added when the request had one.
func (r AuthorizeRequest) Redirect(params url.Values) string {
	if r.State != "" {
		params.Set("state", r.State)
	}
	if r.Issuer != "" {
		params.Set("iss", r.Issuer)
	}
	if r.UseFragment() {
		base := r.RedirectURI
		if i := strings.IndexByte(base, '#'); i >= 0 {
			base = base[:i]
		}
		return base + "#" + params.Encode()
	}
	u, err := url.Parse(r.RedirectURI)
	if err != nil {
		return r.RedirectURI
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	u.Fragment = ""
	return u.String()
}

// ErrorRedirect is Redirect for an error.
func (r AuthorizeRequest) ErrorRedirect(e *Error) string {
	p := url.Values{"error": {e.Code}}
	if e.Description != "" {
		p.Set("error_description", e.Description)
	}
	return r.Redirect(p)
}
