package sdk

import "testing"

// RFC 9207: a redirect is taken only when its iss is the configured
// server's issuer, by simple string comparison (section 2.4); every other
// answer, token or error, is refused with CodeIssuerMismatch, before the
// state and the answer are looked at.
func TestHandleRedirectIssuer(t *testing.T) {
	t.Parallel()
	const token = "#access_token=x&token_type=Bearer&expires_in=60&entity_id=e&state=mine"
	const denied = "#error=access_denied&error_description=no&state=mine"
	tests := []struct {
		name, issuer, url string
		code              string // "" for a token
	}{
		{"token from the server", testIssuer, token + "&iss=https%3A%2F%2Fchat.example.com", ""},
		{"iss first", testIssuer, "#iss=https://chat.example.com&" + token[1:], ""},
		{"iss spelt differently", testIssuer, token + "&iss=HTTPS%3A%2F%2FChat.Example.com", CodeIssuerMismatch},
		{"iss with a default port", testIssuer, token + "&iss=https%3A%2F%2Fchat.example.com%3A443", CodeIssuerMismatch},
		{"iss with a path", testIssuer, token + "&iss=https%3A%2F%2Fchat.example.com%2Fchat", CodeIssuerMismatch},
		{"error from the server", testIssuer, denied + "&iss=https%3A%2F%2Fchat.example.com", CodeAccessDenied},
		{"token from another server", testIssuer, token + "&iss=https%3A%2F%2Fevil.example.com", CodeIssuerMismatch},
		{"error from another server", testIssuer, denied + "&iss=https%3A%2F%2Fevil.example.com", CodeIssuerMismatch},
		{"another port", testIssuer, token + "&iss=https%3A%2F%2Fchat.example.com%3A8443", CodeIssuerMismatch},
		{"another scheme", testIssuer, token + "&iss=http%3A%2F%2Fchat.example.com", CodeIssuerMismatch},
		{"a longer host", testIssuer, token + "&iss=https%3A%2F%2Fchat.example.com.evil.example", CodeIssuerMismatch},
		{"empty iss", testIssuer, token + "&iss=", CodeIssuerMismatch},
		{"no iss", testIssuer, token, CodeIssuerMismatch},
		{"no iss on an error", testIssuer, denied, CodeIssuerMismatch},
		{"another server, wrong state too", testIssuer, "#access_token=x&token_type=Bearer&expires_in=60&state=other&iss=https://evil.example.com", CodeIssuerMismatch},
		{"no configured issuer", "", token + "&iss=https%3A%2F%2Fchat.example.com", CodeIssuerMismatch},
		{"malformed fragment first", testIssuer, token + "&iss=a&iss=b", CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := &fakeClock{now: Time(1e12)}
			a := New(&fakeServer{life: 60}, nil, nil, Options{Now: clk.Now, AfterFunc: clk.AfterFunc, Issuer: tt.issuer})
			tok, err := a.HandleRedirect(tt.url, "mine")
			if tt.code == "" {
				if err != nil || tok.AccessToken != "x" || !a.HasToken() {
					t.Fatalf("%+v %v", tok, err)
				}
				return
			}
			if !IsCode(err, tt.code) {
				t.Fatalf("err %v, want code %s", err, tt.code)
			}
			if a.HasToken() {
				t.Fatal("a refused redirect's token was taken")
			}
			if e := err.(*Error); tt.code == CodeIssuerMismatch && len(e.Message) > 400 {
				t.Fatalf("message too long: %d", len(e.Message))
			}
		})
	}
}

// A page sent back with a huge iss gets a bounded message.
func TestIssuerMismatchMessageIsClipped(t *testing.T) {
	t.Parallel()
	long := "https://" + string(make([]byte, 5000))
	err := checkIssuer(long, testIssuer)
	if !IsCode(err, CodeIssuerMismatch) || len(err.Error()) > 400 {
		t.Fatalf("%d: %v", len(err.Error()), IsCode(err, CodeIssuerMismatch))
	}
}
