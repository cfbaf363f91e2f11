//go:build js && wasm

package jsbridge

import (
	"errors"
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
// text; "" for none), recording each request's URL, body and bearer.
type fakeHost struct {
	host   safejs.Value
	url    string
	body   safejs.Value
	bearer string
}

func newFakeHost(status int, body string, reject bool) *fakeHost {
	f := &fakeHost{host: newObject(map[string]any{})}
	method(f.host, "post", func(args []safejs.Value) any {
		f.url, _ = args[0].String()
		f.body = args[1]
		f.bearer, _ = args[2].String()
		return NewPromise(func() (any, error) {
			if reject {
				return nil, errors.New("TypeError: Failed to fetch")
			}
			res := newObject(map[string]any{"status": status})
			if body != "" {
				j, _ := global.Get("JSON")
				data, _ := j.Call("parse", body)
				res.Set("data", data)
			}
			return res, nil
		})
	})
	return f
}

func TestFetchBackend(t *testing.T) {
	const srv = "https://chat.example.com"
	ok := `{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":600,"entity_id":"e1","refresh_token":"ccr_2","identified":true}`

	f := newFakeHost(200, ok, false)
	b := &fetchBackend{host: f.host, server: srv, clientID: "c1"}
	ans, err := b.Identify("idtok", "ccr_1")
	if err != nil || !ans.Identified || ans.AccessToken != "eyJ.a.b" || ans.ExpiresIn != 600 || ans.RefreshToken != "ccr_2" {
		t.Fatalf("identify: %+v %v", ans, err)
	}
	if f.url != srv+"/customer/token" || str(f.body, "identity_token") != "idtok" || str(f.body, "refresh_token") != "ccr_1" ||
		str(f.body, "client_id") != "c1" || str(f.body, "response_type") != "token" || f.bearer != "" {
		t.Fatalf("identify sent %s %v %q", f.url, f.body, f.bearer)
	}
	if ans, _ := (&fetchBackend{host: newFakeHost(200, `{"access_token":"x","expires_in":5}`, false).host}).RequestToken(""); ans.Identified {
		t.Fatal("an answer without identified reads as identified")
	}

	f = newFakeHost(204, "", false)
	b = &fetchBackend{host: f.host, server: srv, clientID: "c1"}
	if err := b.Logout("eyJ.a.b", "ccr_2"); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if f.url != srv+"/customer/logout" || f.bearer != "eyJ.a.b" || str(f.body, "refresh_token") != "ccr_2" || str(f.body, "client_id") != "c1" {
		t.Fatalf("logout sent %s %q", f.url, f.bearer)
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
		{200, "", false, sdk.CodeInvalidRequest}, // not JSON
		{502, "", false, sdk.CodeServer},
		{0, "", true, sdk.CodeNetwork},
	} {
		_, err := (&fetchBackend{host: newFakeHost(tt.status, tt.body, tt.reject).host, server: srv}).Identify("idtok", "")
		if !sdk.IsCode(err, tt.code) {
			t.Errorf("%d %s: %v, want %s", tt.status, tt.body, err, tt.code)
		}
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
