package httpapi_test

import (
	"strings"
	"testing"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// A refusal of a customer endpoint the SDK calls must reach the page as
// the JSON error it is, with the headers the SDK acts on (the DPoP nonce,
// the challenge), when the page's origin is one a client allows; for any
// other origin the browser must keep hiding it. Over the real router.
func TestCustomerRefusalsCarryCORS(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newCustomerWorld(t, e)
		const other = "https://other.example.com" // allowed by another client only
		expect(t, e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Other", "client_type": "public", "redirect_uris": []string{other + "/chat"}, "allowed_origins": []string{other}}, w.admin), 201, "")

		k := newDPoPKey(t)
		bound, _ := boundVisitor(t, w, k)
		tok := bound.Str("access_token")
		plain := w.visitorToken(map[string]any{"response_type": "token"})
		expect(t, plain, 200, "")

		tests := []struct {
			name         string
			method, path string
			body         any
			headers      func() []string // fresh proofs per call
			status       int
			code         string
			header       string // a header the refusal must carry (and expose)
			// ownClient: the refusal comes after the client's own origin
			// check, so a page of another client's origin is refused
			// (readably) for its origin instead.
			ownClient bool
		}{
			{"logout without credentials", "POST", "/customer/logout", map[string]any{"client_id": w.client}, nil, 401, "invalid_token", "WWW-Authenticate", false},
			{"logout with an unknown refresh token", "POST", "/customer/logout", map[string]any{"refresh_token": "ccr_nope"}, nil, 401, "invalid_token", "WWW-Authenticate", false},
			{"logout of a bound session without its proof", "POST", "/customer/logout", map[string]any{"refresh_token": bound.Str("refresh_token")}, nil, 400, "invalid_dpop_proof", "", false},
			{"logout with a bad token", "POST", "/customer/logout", nil, func() []string { return []string{apptest.Bearer("eyJ.not.atoken")} }, 401, "invalid_token", "WWW-Authenticate", false},
			{"API without a token", "GET", "/customer/api/v1/me", nil, nil, 401, "invalid_token", "WWW-Authenticate", false},
			{"API with a bad token", "GET", "/customer/api/v1/me", nil, func() []string { return []string{apptest.Bearer("eyJ.not.atoken")} }, 401, "invalid_token", "WWW-Authenticate", false},
			{"API: bound token as bearer", "GET", "/customer/api/v1/me", nil, func() []string { return []string{apptest.Bearer(tok)} }, 401, "invalid_token", "WWW-Authenticate", true},
			{"API: another key's proof", "GET", "/customer/api/v1/me", nil, func() []string {
				return []string{"Authorization: DPoP " + tok, "DPoP: " + newDPoPKey(t).proof(t, "GET", "/customer/api/v1/me", tok, "", nil)}
			}, 401, "invalid_dpop_proof", "WWW-Authenticate", true},
			{"token: unknown client", "POST", "/customer/token", map[string]any{"client_id": "nope", "response_type": "token"}, nil, 400, "invalid_client", "", false},
			{"token: malformed body", "POST", "/customer/token", "{", nil, 400, "invalid_request", "", false},
			{"token: the server's nonce wanted", "POST", "/customer/token", map[string]any{"client_id": w.client, "response_type": "token"}, func() []string {
				return []string{"DPoP: " + k.proof(t, "POST", "/customer/token", "", "", nil)}
			}, 400, "use_dpop_nonce", "DPoP-Nonce", true},
		}
		for _, tt := range tests {
			do := func(origin string) apptest.Response {
				t.Helper()
				h := []string{"Origin: " + origin}
				if tt.headers != nil {
					h = append(h, tt.headers()...)
				}
				r := e.Do(tt.method, tt.path, tt.body, h...)
				status, code, header := tt.status, tt.code, tt.header
				if tt.ownClient && origin != shop {
					status, code, header = 403, "forbidden", ""
				}
				if r.Status != status || r.Str("error") != code {
					t.Fatalf("%s from %s: %d %s, want %d %s", tt.name, origin, r.Status, r.Raw, status, code)
				}
				if header != "" && r.Header.Get(header) == "" {
					t.Fatalf("%s: no %s: %v", tt.name, header, r.Header)
				}
				return r
			}
			for _, origin := range []string{shop, other} {
				r := do(origin)
				h := r.Header
				if h.Get("Access-Control-Allow-Origin") != origin || h.Get("Access-Control-Allow-Credentials") != "true" {
					t.Fatalf("%s from %s: no CORS: %v", tt.name, origin, h)
				}
				exposed := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
				for _, name := range []string{"dpop-nonce", "www-authenticate"} {
					if !strings.Contains(exposed, name) {
						t.Fatalf("%s: %s not exposed: %q", tt.name, name, exposed)
					}
				}
				if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
					t.Fatalf("%s: no Vary: Origin: %v", tt.name, h)
				}
			}
			r := do("https://evil.example.com")
			for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
				if v := r.Header.Get(name); v != "" {
					t.Fatalf("%s from a disallowed origin: %s: %s", tt.name, name, v)
				}
			}
		}

		// The request's own client still decides a success: a page of
		// another client's origin reads why it was refused, not the
		// visitor's data.
		r := e.Do("GET", "/customer/api/v1/me", nil, "Origin: "+other, apptest.Bearer(plain.Str("access_token")))
		want(t, "another client's origin", r, 403, "forbidden")
		if r.Header.Get("Access-Control-Allow-Origin") != other || r.Str("entity_id") != "" {
			t.Fatalf("another client's origin: %v %s", r.Header, r.Raw)
		}
		r = e.Do("GET", "/customer/api/v1/me", nil, "Origin: "+shop, apptest.Bearer(plain.Str("access_token")))
		expect(t, r, 200, "")
		if r.Header.Get("Access-Control-Allow-Origin") != shop {
			t.Fatalf("success without CORS: %v", r.Header)
		}
	})
}
