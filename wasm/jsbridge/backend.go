//go:build js && wasm

package jsbridge

import (
	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// fetchBackend calls POST /customer/token with the browser's fetch.
type fetchBackend struct {
	server, clientID string
}

func (b fetchBackend) RequestToken(refresh string) (sdk.Answer, error) {
	body := `{"client_id":` + jsonString(b.clientID) + `,"response_type":"token"}`
	if refresh != "" {
		body = `{"client_id":` + jsonString(b.clientID) + `,"grant_type":"refresh_token","refresh_token":` + jsonString(refresh) + `}`
	}
	headers := newObject(map[string]any{"Content-Type": "application/json"})
	init := newObject(map[string]any{"method": "POST", "credentials": "include", "body": body, "cache": "no-store"})
	init.Set("headers", headers)
	p, err := global.Call("fetch", b.server+"/customer/token", init)
	if err != nil {
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeNetwork, Message: "fetch failed: " + err.Error()}
	}
	res, err := Await(p)
	if err != nil {
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeNetwork, Message: "cannot reach " + b.server + " (offline, or CORS: is this page's origin in the client's allowed_origins?)"}
	}
	status := int(num(res, "status"))
	jp, err := res.Call("json")
	var data safejs.Value
	if err == nil {
		data, err = Await(jp)
	}
	if err != nil {
		if status >= 500 || status == 0 {
			return sdk.Answer{}, &sdk.Error{Code: sdk.CodeServer, Message: "the server answered " + itoa(status)}
		}
		return sdk.Answer{}, &sdk.Error{Code: sdk.CodeInvalidRequest, Message: "the server's answer is not JSON"}
	}
	if status != 200 {
		return sdk.Answer{}, sdk.ServerError(status, str(data, "error"), str(data, "message"))
	}
	return sdk.Answer{AccessToken: str(data, "access_token"), TokenType: str(data, "token_type"), ExpiresIn: int(num(data, "expires_in")),
		EntityID: str(data, "entity_id"), Scope: str(data, "scope"), RefreshToken: str(data, "refresh_token")}, nil
}

func itoa(n int) string { return formatInt(n) }

func formatInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// hostStore keeps the refresh token in IndexedDB through the small
// helpers chatauth.js passes in (host.idbGet, host.idbSet).
type hostStore struct {
	host safejs.Value
	key  string
}

func (s hostStore) Load() (string, error) {
	p, err := s.host.Call("idbGet", s.key)
	if err != nil {
		return "", err
	}
	v, err := Await(p)
	if err != nil || v.Type() != safejs.TypeString {
		return "", err
	}
	return v.String()
}

func (s hostStore) Save(tok string) error {
	p, err := s.host.Call("idbSet", s.key, tok)
	if err != nil {
		return err
	}
	_, err = Await(p)
	return err
}
