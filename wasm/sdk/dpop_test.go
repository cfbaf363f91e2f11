package sdk

import "testing"

func TestScheme(t *testing.T) {
	t.Parallel()
	for typ, want := range map[string]string{"DPoP": TypeDPoP, "dpop": TypeDPoP, "DPOP": TypeDPoP, "Bearer": TypeBearer, "bearer": TypeBearer, "": TypeBearer, "mac": TypeBearer} {
		if got := Scheme(typ); got != want {
			t.Errorf("Scheme(%q) = %q, want %q", typ, got, want)
		}
	}
}

// When a refused request is sent again, as RFC 9449 sections 8 and 9 say.
func TestResend(t *testing.T) {
	t.Parallel()
	const challenge = `DPoP algs="ES256 EdDSA RS256", error="use_dpop_nonce", error_description="DPoP proof: use the server's nonce"`
	tests := []struct {
		name           string
		status         int
		code, www, non string
		want           string
	}{
		{"token endpoint asks for its nonce", 400, CodeUseDPoPNonce, "", "n1", ResendNonce},
		{"token endpoint asks without giving one", 400, CodeUseDPoPNonce, "", "", ResendNo},
		{"token endpoint refuses the proof", 400, CodeInvalidDPoPProof, "", "n1", ResendNo},
		{"token endpoint refuses the refresh token", 401, CodeInvalidToken, "", "n1", ResendNo},
		{"token endpoint answers", 200, "", "", "n1", ResendNo},
		{"resource asks for its nonce", 401, "", challenge, "n2", ResendNonce},
		{"resource asks, unquoted", 401, "", `DPoP error=use_dpop_nonce`, "n2", ResendNonce},
		{"resource asks without giving one: a new token", 401, "", challenge, "", ResendToken},
		{"resource refuses the proof: a new token", 401, "", `DPoP algs="ES256", error="invalid_dpop_proof"`, "n2", ResendToken},
		{"resource refuses the token", 401, "", `Bearer error="invalid_token"`, "", ResendToken},
		{"resource: forbidden", 403, "", "", "", ResendNo},
		{"resource: ok, with a nonce", 200, "", "", "n2", ResendNo},
		{"a 400 that names the nonce only in its text", 400, "invalid_request", challenge, "n1", ResendNo},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Resend(tt.status, tt.code, tt.www, tt.non); got != tt.want {
				t.Fatalf("Resend(%d, %q, %q, %q) = %q, want %q", tt.status, tt.code, tt.www, tt.non, got, tt.want)
			}
		})
	}
}

func TestDPoPServerErrors(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		status int
		code   string
	}{{400, "invalid_dpop_proof"}, {401, "invalid_dpop_proof"}, {400, "use_dpop_nonce"}} {
		if got := ServerError(tt.status, tt.code, "htu is …").Code; got != CodeInvalidDPoPProof {
			t.Errorf("%d %s: %s, want %s", tt.status, tt.code, got, CodeInvalidDPoPProof)
		}
	}
	for _, code := range []string{CodeInvalidDPoPProof, CodeDPoPUnavailable} {
		if Retryable(errorf(code, "m")) {
			t.Errorf("%s is retried", code)
		}
	}
}

// A bound answer's token goes under the DPoP scheme, in this tab, in the
// others, and at logout.
func TestDPoPBoundToken(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600, typ: "dpop"}
	clk := &fakeClock{now: Time(1e12)}
	ts := &tabs{}
	for range 2 {
		var a *Auth
		a = New(srv, &memStore{}, tabPeer{ts, func() *Auth { return a }}, Options{Now: clk.Now, AfterFunc: clk.AfterFunc, Sleep: func(Duration) {}})
		ts.all = append(ts.all, a)
	}
	tok, err := ts.all[0].GetToken()
	if err != nil || tok.TokenType != TypeDPoP {
		t.Fatalf("token %+v, %v", tok, err)
	}
	if other := ts.all[1].Current(); other.TokenType != TypeDPoP || other.AccessToken != tok.AccessToken {
		t.Fatalf("the other tab got %+v", other)
	}
	if err := ts.all[0].Logout(); err != nil {
		t.Fatal(err)
	}
	if got := srv.asked(); got != "cookie logout:DPoP "+tok.AccessToken+","+srv.lastRT {
		t.Fatalf("asked %q", got)
	}
}

// A stored refresh token bound to a key the browser lost is refused with
// invalid_dpop_proof: the SDK starts over, as for a spent one. A proof
// the server refuses everywhere (serverUrl is not its issuer) reaches the
// app with its code, after one request per path and no retries.
func TestDPoPRefusedProofs(t *testing.T) {
	t.Parallel()
	refused := errorf(CodeInvalidDPoPProof, "DPoP proof: signed with another key than the one the token is bound to")
	tests := []struct {
		name       string
		identity   []string
		identified bool // the stored session is
		rtErr      error
		anonErr    error
		want       string
		wantErr    string
	}{
		{name: "lost key: the cookie", rtErr: refused, want: "refresh:stored cookie"},
		{name: "lost key of an identified session: the site's identity anew", identified: true, identity: []string{"id1"}, rtErr: refused,
			want: "refresh:stored identify:id1,"},
		{name: "refused everywhere", anonErr: errorf(CodeInvalidDPoPProof, `DPoP proof: htu is "http://localhost:8080/customer/token"`),
			want: "refresh:stored cookie", wantErr: CodeInvalidDPoPProof},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeServer{life: 600, rtErr: tt.rtErr, anonErr: tt.anonErr}
			clk := &fakeClock{now: Time(1e12)}
			store := &memStore{v: Refresh{Token: "stored", Identified: tt.identified}}
			a := newAuth(srv, clk, store, nil)
			if tt.identity != nil {
				a = newIdentified(srv, clk, store, nil, &siteIdentity{tokens: tt.identity})
			}
			_, err := a.GetToken()
			if got := srv.asked(); got != tt.want {
				t.Fatalf("asked %q, want %q", got, tt.want)
			}
			if tt.wantErr != "" {
				wantCode(t, err, tt.wantErr)
			} else if err != nil {
				t.Fatal(err)
			}
		})
	}
}
