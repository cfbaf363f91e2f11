//go:build js && wasm

package jsbridge

import (
	"errors"
	"testing"

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
	if got := jsonString("a\"b\\c\n"); got != `"a\"b\\c\u000a"` {
		t.Fatalf("jsonString %s", got)
	}
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
