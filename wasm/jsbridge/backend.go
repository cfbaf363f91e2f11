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
type fetchBackend struct {
	host             safejs.Value
	server, clientID string
}

func (b *fetchBackend) RequestToken(refresh string) (sdk.Answer, error) {
	body := map[string]any{"client_id": b.clientID, "response_type": "token"}
	if refresh != "" {
		body = map[string]any{"client_id": b.clientID, "grant_type": "refresh_token", "refresh_token": refresh}
	}
	return b.post("/customer/token", body, "")
}

func (b *fetchBackend) Identify(identity, merge string) (sdk.Answer, error) {
	body := map[string]any{"client_id": b.clientID, "response_type": "token", "identity_token": identity}
	if merge != "" {
		body["refresh_token"] = merge
	}
	return b.post("/customer/token", body, "")
}

func (b *fetchBackend) Logout(access, refresh string) error {
	body := map[string]any{"client_id": b.clientID}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	_, err := b.post("/customer/logout", body, access)
	return err
}

// post sends body as JSON and reads a token answer (a logout's 204 reads
// as an empty one).
func (b *fetchBackend) post(path string, body map[string]any, bearer string) (sdk.Answer, error) {
	p, err := b.host.Call("post", b.server+path, newObject(body), bearer)
	var res safejs.Value
	if err == nil {
		res, err = Await(p)
	}
	if err != nil {
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeNetwork, Message: "cannot reach " + b.server + " (offline, or CORS: is this page's origin in the client's allowed_origins?)"}
	}
	status := int(num(res, "status"))
	data, _ := res.Get("data")
	switch {
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
