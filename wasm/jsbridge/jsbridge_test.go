//go:build js && wasm

package jsbridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// These run under Node through the Go toolchain's go_js_wasm_exec.

func TestPromiseRoundTrip(t *testing.T) {
	v, err := Await(NewPromise(func() (any, error) { return "ok", nil }))
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.String(); s != "ok" {
		t.Fatalf("resolved %q", s)
	}
	_, err = Await(NewPromise(func() (any, error) { return nil, &sdk.Error{Code: sdk.CodeNetwork, Message: "offline"} }))
	if err == nil {
		t.Fatal("rejection lost")
	}
	// A panic inside the work rejects instead of killing the runtime.
	_, err = Await(NewPromise(func() (any, error) { var m map[string]int; m["x"] = 1; return nil, nil }))
	if err == nil {
		t.Fatal("panic did not reject")
	}
}

func TestJSErrorCarriesCode(t *testing.T) {
	v := jsError(&sdk.Error{Code: sdk.CodeStateMismatch, Message: "nope"})
	if got := str(v, "code"); got != sdk.CodeStateMismatch {
		t.Fatalf("code %q", got)
	}
	if got := str(jsError(errors.New("x")), "code"); got != sdk.CodeInvalidRequest {
		t.Fatalf("default code %q", got)
	}
}

func TestEncoders(t *testing.T) {
	if got := queryEscape("a b/c"); got != "a%20b%2Fc" {
		t.Fatalf("queryEscape %s", got)
	}
	b := make([]byte, 16)
	randomBytes(b)
	if string(b) == string(make([]byte, 16)) {
		t.Fatal("no randomness")
	}
}

func TestBrowserClockAndTimers(t *testing.T) {
	t0 := now()
	if t0 <= 0 {
		t.Fatalf("now() = %d", t0)
	}
	fired := make(chan sdk.Time, 1)
	afterFunc(30*sdk.Millisecond, func() { fired <- now() })
	stopped := afterFunc(10*sdk.Millisecond, func() { t.Error("a stopped timer fired") })
	if !stopped() {
		t.Fatal("stop of a pending timer reported false")
	}
	if stopped() {
		t.Fatal("second stop reported true")
	}
	at := <-fired
	if d := at.Sub(t0); d < 25*sdk.Millisecond {
		t.Fatalf("fired after %d ms, want about 30", d)
	}
	// Let the stopped timer's moment pass.
	wait := make(chan struct{})
	afterFunc(30*sdk.Millisecond, func() { close(wait) })
	<-wait
}

// fakeHost is chatauth.js's host.post answering status and body (JSON
// text; "" for none), recording each request's URL, body, access token,
// scheme and DPoP nonce. Answers past the scripted ones repeat the last.
type fakeHost struct {
	host           safejs.Value
	url            string
	body           safejs.Value
	access, scheme string
	nonces         []string // the nonce each request was signed with
	answers        []fakeAnswer
	forgotten      int // dpopForget calls
}

type fakeAnswer struct {
	status int
	body   string
	nonce  string // DPoP-Nonce
	reject bool
}

func newFakeHost(status int, body string, reject bool) *fakeHost {
	return scriptedHost(fakeAnswer{status: status, body: body, reject: reject})
}

func scriptedHost(answers ...fakeAnswer) *fakeHost {
	f := &fakeHost{host: newObject(map[string]any{}), answers: answers}
	method(f.host, "post", func(args []safejs.Value) any {
		f.url, _ = args[0].String()
		f.body = args[1]
		f.access, _ = args[2].String()
		f.scheme, _ = args[3].String()
		nonce, _ := args[4].String()
		f.nonces = append(f.nonces, nonce)
		a := f.answers[min(len(f.nonces), len(f.answers))-1]
		return NewPromise(func() (any, error) {
			if a.reject {
				return nil, errors.New("TypeError: Failed to fetch")
			}
			res := newObject(map[string]any{"status": a.status, "nonce": a.nonce})
			if a.body != "" {
				j, _ := global.Get("JSON")
				data, _ := j.Call("parse", a.body)
				res.Set("data", data)
			}
			return res, nil
		})
	})
	method(f.host, "dpopForget", func([]safejs.Value) any {
		f.forgotten++
		return NewPromise(func() (any, error) { return nil, nil })
	})
	return f
}

// newFetchBackend keeps the server's DPoP nonce in kv (nil: in memory).
func newFetchBackend(host safejs.Value, server, clientID string, kv sdk.KV) *fetchBackend {
	return &fetchBackend{host: host, server: server, clientID: clientID, nonce: sdk.NewNonce(kv, server)}
}

func TestFetchBackend(t *testing.T) {
	const srv = "https://chat.example.com"
	ok := `{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":600,"entity_id":"e1","refresh_token":"ccr_2","identified":true}`

	f := newFakeHost(200, ok, false)
	b := newFetchBackend(f.host, srv, "c1", nil)
	ans, err := b.Identify("idtok", "ccr_1")
	if err != nil || !ans.Identified || ans.AccessToken != "eyJ.a.b" || ans.ExpiresIn != 600 || ans.RefreshToken != "ccr_2" {
		t.Fatalf("identify: %+v %v", ans, err)
	}
	if f.url != srv+"/customer/token" || str(f.body, "identity_token") != "idtok" || str(f.body, "refresh_token") != "ccr_1" ||
		str(f.body, "client_id") != "c1" || str(f.body, "response_type") != "token" || f.access != "" {
		t.Fatalf("identify sent %s %v %q", f.url, f.body, f.access)
	}
	if ans, _ := newFetchBackend(newFakeHost(200, `{"access_token":"x","expires_in":5}`, false).host, "", "", nil).RequestToken(""); ans.Identified {
		t.Fatal("an answer without identified reads as identified")
	}

	f = newFakeHost(204, "", false)
	b = newFetchBackend(f.host, srv, "c1", nil)
	if err := b.Logout(sdk.Token{AccessToken: "eyJ.a.b", TokenType: sdk.TypeDPoP}, "ccr_2"); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if f.url != srv+"/customer/logout" || f.access != "eyJ.a.b" || f.scheme != "DPoP" || str(f.body, "refresh_token") != "ccr_2" || str(f.body, "client_id") != "c1" {
		t.Fatalf("logout sent %s %s %q", f.url, f.scheme, f.access)
	}
	if f.forgotten != 1 {
		t.Fatalf("logout dropped the DPoP key %d times", f.forgotten)
	}
	// Offline: the key goes all the same, as the tokens do.
	f = newFakeHost(0, "", true)
	if err := newFetchBackend(f.host, srv, "", nil).Logout(sdk.Token{}, "ccr_2"); !sdk.IsCode(err, sdk.CodeNetwork) || f.forgotten != 1 {
		t.Fatalf("offline logout: %v, key dropped %d times", err, f.forgotten)
	}

	for _, tt := range []struct {
		status int
		body   string
		reject bool
		code   string
	}{
		{403, `{"error":"identity_required","message":"sign in"}`, false, sdk.CodeIdentityRequired},
		{401, `{"error":"invalid_identity_token","message":"aud is not this client_id"}`, false, sdk.CodeInvalidIdentity},
		{401, `{"error":"identity_token_expired","message":"expired 4 min ago"}`, false, sdk.CodeIdentityExpired},
		{401, `{"error":"invalid_token","message":"revoked"}`, false, sdk.CodeInvalidToken},
		{400, `{"error":"invalid_dpop_proof","message":"DPoP proof: htu is …"}`, false, sdk.CodeInvalidDPoPProof},
		{0, `{"error":"dpop_unavailable","message":"IndexedDB: denied"}`, false, sdk.CodeDPoPUnavailable},
		{200, "", false, sdk.CodeInvalidRequest}, // not JSON
		{502, "", false, sdk.CodeServer},
		{0, "", true, sdk.CodeNetwork},
	} {
		_, err := newFetchBackend(newFakeHost(tt.status, tt.body, tt.reject).host, srv, "", nil).Identify("idtok", "")
		if !sdk.IsCode(err, tt.code) {
			t.Errorf("%d %s: %v, want %s", tt.status, tt.body, err, tt.code)
		}
	}
}

// The token endpoint's nonce (RFC 9449, section 8): asked for it, the
// backend signs it and sends once more; the nonce of every answer is
// signed by the next request, which then needs no second round trip.
func TestFetchBackendNonce(t *testing.T) {
	const ok = `{"access_token":"eyJ.a.b","token_type":"DPoP","expires_in":600,"refresh_token":"ccr_2"}`
	const useNonce = `{"error":"use_dpop_nonce","message":"DPoP proof: use the server's nonce"}`
	f := scriptedHost(fakeAnswer{status: 400, body: useNonce, nonce: "n1"}, fakeAnswer{status: 200, body: ok, nonce: "n2"})
	b := newFetchBackend(f.host, "https://chat.example.com", "c1", nil)
	ans, err := b.RequestToken("")
	if err != nil || ans.TokenType != "DPoP" {
		t.Fatalf("token: %+v %v", ans, err)
	}
	if got := strings.Join(f.nonces, ","); got != ",n1" {
		t.Fatalf("signed nonces %q, want none then n1", got)
	}
	if _, err := b.RequestToken("ccr_2"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.nonces, ","); got != ",n1,n2" {
		t.Fatalf("signed nonces %q: the refresh should sign n2 at once", got)
	}

	// Asked again after signing it: once is enough; the error surfaces.
	f = scriptedHost(fakeAnswer{status: 400, body: useNonce, nonce: "n1"})
	_, err = newFetchBackend(f.host, "https://chat.example.com", "", nil).RequestToken("")
	if !sdk.IsCode(err, sdk.CodeInvalidDPoPProof) || len(f.nonces) != 2 {
		t.Fatalf("%v after %d requests", err, len(f.nonces))
	}
	// Asked without a nonce to sign: no point in sending again.
	f = scriptedHost(fakeAnswer{status: 400, body: useNonce}, fakeAnswer{status: 200, body: ok})
	_, err = newFetchBackend(f.host, "https://chat.example.com", "", nil).RequestToken("")
	if !sdk.IsCode(err, sdk.CodeInvalidDPoPProof) || len(f.nonces) != 1 {
		t.Fatalf("%v after %d requests", err, len(f.nonces))
	}
}

// The nonce outlives the page: a backend made after a reload, over the
// same sessionStorage, signs it in its first request.
func TestFetchBackendNonceInSessionStorage(t *testing.T) {
	const ok = `{"access_token":"eyJ.a.b","token_type":"DPoP","expires_in":600}`
	const useNonce = `{"error":"use_dpop_nonce","message":"DPoP proof: use the server's nonce"}`
	items := map[string]string{}
	storage := newObject(map[string]any{})
	method(storage, "getItem", func(args []safejs.Value) any {
		k, _ := args[0].String()
		if v, ok := items[k]; ok {
			return v
		}
		return safejs.Null()
	})
	method(storage, "setItem", func(args []safejs.Value) any {
		k, _ := args[0].String()
		items[k], _ = args[1].String()
		return nil
	})
	had, _ := global.Get("sessionStorage")
	global.Set("sessionStorage", storage)
	defer global.Set("sessionStorage", had)

	f := scriptedHost(fakeAnswer{status: 400, body: useNonce, nonce: "n1"}, fakeAnswer{status: 200, body: ok, nonce: "n1"})
	if _, err := newFetchBackend(f.host, "https://chat.example.com", "c1", sessionKV{}).RequestToken(""); err != nil {
		t.Fatal(err)
	}
	if items["chatauth_dpop_nonce:https://chat.example.com"] != "n1" {
		t.Fatalf("sessionStorage holds %v", items)
	}
	f = scriptedHost(fakeAnswer{status: 200, body: ok, nonce: "n1"})
	if _, err := newFetchBackend(f.host, "https://chat.example.com", "c1", sessionKV{}).RequestToken(""); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.nonces, ","); got != "n1" {
		t.Fatalf("after a reload signed %q, want n1 in the first request", got)
	}
}

func TestSiteIdentity(t *testing.T) {
	opts := newObject(map[string]any{})
	if siteIdentity(opts) != nil {
		t.Fatal("an identity without the option")
	}
	answer, fail := "idtok", false
	method(opts, "identity", func([]safejs.Value) any {
		return NewPromise(func() (any, error) {
			if fail {
				return nil, errors.New("the site is down")
			}
			return answer, nil
		})
	})
	identity := siteIdentity(opts)
	if got, err := identity(); got != "idtok" || err != nil {
		t.Fatalf("identity() = %q, %v", got, err)
	}
	fail = true
	if _, err := identity(); err == nil {
		t.Fatal("a rejection was lost")
	}
}
