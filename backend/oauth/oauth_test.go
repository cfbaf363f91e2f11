package oauth

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"chatauth/backend/domain"
	"chatauth/shared"
)

var testClients = map[string]domain.Client{
	"pub":  {ID: "pub", Type: "public", RedirectURIs: []string{"https://a.example/cb"}},
	"conf": {ID: "conf", Type: "confidential", RedirectURIs: []string{"https://a.example/cb", "https://a.example/cb/"}},
}

func lookup(id string) (domain.Client, error) {
	c, ok := testClients[id]
	if !ok {
		return c, domain.ErrNotFound
	}
	return c, nil
}

// FuzzParseAuthorize: whatever the query, the parser never panics, and any
// answer it would redirect goes only to a registered URI.
func FuzzParseAuthorize(f *testing.F) {
	for _, s := range []string{
		"response_type=code&client_id=pub&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=x",
		"response_type=token&client_id=pub&redirect_uri=https%3A%2F%2Fa.example%2Fcb",
		"response_type=code&client_id=conf&redirect_uri=https%3A%2F%2Fa.example%2Fcb%2F",
		"response_type=code&client_id=conf",
		"client_id=pub&client_id=conf",
		"response_type=code&client_id=pub&redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
		"response_type=%00&client_id=pub&state=%ZZ",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, c, err := ParseAuthorize(q, lookup)
		var pe *PageError
		if errors.As(err, &pe) {
			return
		}
		registered := false
		for _, u := range c.RedirectURIs {
			registered = registered || u == r.RedirectURI
		}
		if !registered {
			t.Fatalf("would redirect to unregistered %q (err %v)", r.RedirectURI, err)
		}
		var oe *Error
		if err != nil && !errors.As(err, &oe) {
			t.Fatalf("unexpected error type %T", err)
		}
		if err != nil {
			to := r.ErrorRedirect(oe)
			if !strings.HasPrefix(to, r.RedirectURI) {
				t.Fatalf("error redirect %q leaves %q", to, r.RedirectURI)
			}
		}
	})
}

// FuzzParseBasic: the Basic credential parser never panics and round-trips
// what a client encodes.
func FuzzParseBasic(f *testing.F) {
	for _, s := range []string{"Basic YTpi", "Basic " + "Y2xpZW50JTNBaWQ6c2VjcmV0", "basic Og==", "Basic !!!", "Bearer x", "Basic YWJj"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		id, secret, err := ParseBasic(h)
		if err != nil {
			return
		}
		if len(id)+len(secret) > len(h) {
			t.Fatalf("decoded more than was sent")
		}
	})
}

func TestParseBasicDecodesFormEncoding(t *testing.T) {
	id, secret, err := ParseBasic("Basic " + "Y2xpZW50JTNBaWQ6c2VjJTJCcmV0") // client%3Aid:sec%2Bret
	if err != nil || id != "client:id" || secret != "sec+ret" {
		t.Fatalf("%q %q %v", id, secret, err)
	}
}

func TestPKCE(t *testing.T) {
	// RFC 7636 Appendix B.
	if !VerifyPKCE("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") {
		t.Fatal("RFC 7636 example does not verify")
	}
	if VerifyPKCE("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "short") {
		t.Fatal("short verifier accepted")
	}
}

func TestResolveScope(t *testing.T) {
	all := shared.FirstParty
	tests := []struct {
		req, want string
		role      shared.Role
		client    shared.APIScope
		err       string
	}{
		{"", "agent read write chat", shared.RoleAgent, all, ""},
		{"read", "agent read", shared.RoleAgent, all, ""},
		{"agent read", "agent read", shared.RoleAdmin, all, ""},
		{"admin read", "", shared.RoleAgent, all, "above your role"},
		{"write", "", shared.RoleAgent, shared.ScopeRead, "not allowed for this client"},
		{"read bogus", "", shared.RoleAgent, all, `"bogus"`},
		{"guest", "", shared.RoleAdmin, all, "visitors"},
	}
	for _, tt := range tests {
		got, err := ResolveScope(tt.req, tt.client, tt.role)
		if tt.err != "" {
			if !errors.Is(err, ErrInvalidScope) || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err %v, want %s", tt.req, err, tt.err)
			}
			continue
		}
		if err != nil || got.String() != tt.want {
			t.Errorf("%q: %v %v, want %s", tt.req, got, err, tt.want)
		}
	}
}

func TestSentinelsStayImmutable(t *testing.T) {
	_ = ErrInvalidGrant.WithDescription("one request's detail")
	if ErrInvalidGrant.Description != "" {
		t.Fatal("WithDescription mutated the sentinel")
	}
}
