//go:build js && wasm

package jsbridge

import (
	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// fetchBackend calls the customer endpoints through host.post, the
// browser's fetch with credentials included: the server's visitor cookie
// is set by a token answer and cleared by a logout. The request is built
// and the answer parsed in chatauth.js, where the browser's fetch and
// JSON cost nothing: every Go function here weighs about a kilobyte of
// the wasm bundle.
//
// With DPoP on, host.post signs every request with the browser's key
// (chatauth.js holds it, in WebCrypto); post here decides what is sent
// again, with which nonce.
type fetchBackend struct {
	host             safejs.Value
	server, clientID string
	// nonce is the latest DPoP-Nonce the server answered, kept in
	// sessionStorage so a reload signs it too (sdk.Nonce).
	nonce *sdk.Nonce
}

func (b *fetchBackend) RequestToken(refresh string) (sdk.Answer, error) {
	body := map[string]any{"client_id": b.clientID, "response_type": "token"}
	if refresh != "" {
		body = map[string]any{"client_id": b.clientID, "grant_type": "refresh_token", "refresh_token": refresh}
	}
	return b.post("/customer/token", body, sdk.Token{})
}

func (b *fetchBackend) Identify(identity, merge string) (sdk.Answer, error) {
	body := map[string]any{"client_id": b.clientID, "response_type": "token", "identity_token": identity}
	if merge != "" {
		body["refresh_token"] = merge
	}
	return b.post("/customer/token", body, sdk.Token{})
}

// Logout also drops the browser's DPoP key, whatever the server said (the
// core drops the tokens all the same): the next visitor of this browser
// gets a new key, which nothing links to this session.
func (b *fetchBackend) Logout(access sdk.Token, refresh string) error {
	body := map[string]any{"client_id": b.clientID}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	_, err := b.post("/customer/logout", body, access)
	if p, ferr := b.host.Call("dpopForget"); ferr == nil {
		Await(p)
	}
	return err
}

// post sends body as JSON, with access under its scheme when given, and
// reads a token answer (a logout's 204 reads as an empty one). Asked for
// the server's nonce, it signs a new proof with it and sends once more.
func (b *fetchBackend) post(path string, body map[string]any, access sdk.Token) (sdk.Answer, error) {
	var data safejs.Value
	status := 0
	err := b.nonce.Send(func(nonce string) (int, string, string, error) {
		p, err := b.host.Call("post", b.server+path, newObject(body), access.AccessToken, access.TokenType, nonce)
		var res safejs.Value
		if err == nil {
			res, err = Await(p)
		}
		if err != nil {
			return 0, "", "", &sdk.Error{Code: sdk.CodeNetwork, Message: "cannot reach " + b.server + " (offline, or CORS: is this page's origin in the client's allowed_origins?)"}
		}
		status = int(num(res, "status"))
		data, _ = res.Get("data")
		return status, str(data, "error"), str(res, "nonce"), nil
	})
	if err != nil {
		return sdk.Answer{}, err
	}
	switch {
	case status == 0:
		// host.post could not sign: no key (IndexedDB failed to open).
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeDPoPUnavailable, Message: str(data, "message")}
	case status == 204:
		return sdk.Answer{}, nil
	case data.IsUndefined() && status < 500:
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeInvalidRequest, Message: "the server's answer is not JSON"}
	case status != 200:
		return sdk.Answer{}, sdk.ServerError(status, str(data, "error"), str(data, "message"))
	}
	return sdk.Answer{AccessToken: str(data, "access_token"), TokenType: str(data, "token_type"), ExpiresIn: int(num(data, "expires_in")),
		EntityID: str(data, "entity_id"), Scope: str(data, "scope"), RefreshToken: str(data, "refresh_token"), Identified: boolean(data, "identified")}, nil
}

// hostStore keeps the refresh token in IndexedDB through the small
// helpers chatauth.js passes in (host.idbGet and idbSet), as the record
// {token, identified}; idbSet of null deletes it.
type hostStore struct {
	host safejs.Value
	key  string
}

func (s *hostStore) Load() (sdk.Refresh, error) {
	p, err := s.host.Call("idbGet", s.key)
	if err != nil {
		return sdk.Refresh{}, err
	}
	v, err := Await(p)
	if err != nil || v.IsNull() || v.IsUndefined() {
		return sdk.Refresh{}, err
	}
	return sdk.Refresh{Token: str(v, "token"), Identified: boolean(v, "identified")}, nil
}

func (s *hostStore) Save(r sdk.Refresh) error {
	rec := safejs.Null()
	if r.Token != "" {
		rec = newObject(map[string]any{"token": r.Token, "identified": r.Identified})
	}
	p, err := s.host.Call("idbSet", s.key, rec)
	if err != nil {
		return err
	}
	_, err = Await(p)
	return err
}
