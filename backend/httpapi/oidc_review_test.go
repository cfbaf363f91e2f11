package httpapi_test

// Security review of the OpenID Provider (commit 0790812). Each test
// reproduces one finding and failed while the problem existed; all ten
// are fixed, and the tests keep them so.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// rvClaims decodes an ID token's payload without verifying it (the tests
// that need a verified one use w.login).
func rvClaims(t *testing.T, raw string) idClaims {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, err := base64URL(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c idClaims
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// rvSignedIn reports whether b still has a live sign-in, by asking
// prompt=none for conf.
func rvSignedIn(t *testing.T, w *oidcWorld, b *browser, conf *oauth2.Config) bool {
	t.Helper()
	v := oauth2.GenerateVerifier()
	pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"))))
	return pg.status == 302 && strings.Contains(pg.location, "code=")
}

// rvRefreshWorks reports whether tok's refresh token still mints tokens.
func rvRefreshWorks(w *oidcWorld, conf *oauth2.Config, tok *oauth2.Token) bool {
	_, err := conf.TokenSource(w.ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	return err == nil
}

// Finding 1. prompt=login and max_age are enforced only on the first GET
// (reauth needs action == ""): the login page they show carries the CSRF
// token and the request, and posting that form with action=approve
// instead of action=login answers a code from the old sign-in. Whoever
// sits at a browser with a stale session (the case prompt=login and
// max_age exist for) skips the password.
func TestOIDCReviewReauthSkippedByApprovePost(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		b := newBrowser(t, e)
		conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
		_, idt, _ := w.login(b, conf, "n")
		signedInAt := idClaimsOf(t, idt).AuthTime
		time.Sleep(1100 * time.Millisecond) // the sign-in is now older than max_age=0
		for name, opt := range map[string]oauth2.AuthCodeOption{
			"prompt=login": oauth2.SetAuthURLParam("prompt", "login"),
			"max_age=0":    oauth2.SetAuthURLParam("max_age", "0"),
		} {
			v := oauth2.GenerateVerifier()
			pg := b.get(w.local(conf.AuthCodeURL("s", opt, oauth2.S256ChallengeOption(v), oidc.Nonce("n2"))))
			if !strings.Contains(pg.body, `value="login"`) {
				t.Fatalf("%s: no sign-in page: %d %s", name, pg.status, pg.body)
			}
			res := b.submit(pg, map[string]string{"action": "approve"})
			if !strings.Contains(res.location, "code=") {
				continue
			}
			u, _ := url.Parse(res.location)
			tok, err := conf.Exchange(w.ctx, u.Query().Get("code"), oauth2.VerifierOption(v))
			if err != nil {
				t.Fatal(err)
			}
			at := rvClaims(t, tok.Extra("id_token").(string)).AuthTime
			t.Errorf("%s: the sign-in page's form posted with action=approve answered a code without a password; its ID token has auth_time %d, the old sign-in (%d)", name, at, signedInAt)
		}
	})
}

// Finding 2. end_session ends the grants of the session and the browser
// sign-in, but not the authorization codes issued in it: a code issued
// just before the logout (in the redirect, the browser history, a proxy
// log) is redeemed afterwards for a live grant (refresh token, userinfo)
// and an ID token naming the ended sid, and no back-channel logout will
// ever cover it.
func TestOIDCReviewCodeOutlivesEndSession(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		b := newBrowser(t, e)
		conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
		_, idt, raw := w.login(b, conf, "n")
		sid := idClaimsOf(t, idt).SID
		v := oauth2.GenerateVerifier()
		pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"))))
		u, _ := url.Parse(pg.location)
		code := u.Query().Get("code")
		if code == "" {
			t.Fatalf("no code: %d %s", pg.status, pg.location)
		}
		if lo := b.get("/oauth/end_session?id_token_hint=" + raw); lo.status != 200 || !strings.Contains(lo.body, "signed out") {
			t.Fatalf("end_session: %d %s", lo.status, lo.body)
		}
		if rvSignedIn(t, w, b, conf) {
			t.Fatal("still signed in after end_session")
		}
		tok, err := conf.Exchange(w.ctx, code, oauth2.VerifierOption(v))
		if err != nil {
			return // fixed: the code ended with its session
		}
		after := rvClaims(t, tok.Extra("id_token").(string))
		ui := e.Do("GET", "/oauth/userinfo", nil, "Authorization: Bearer "+tok.AccessToken)
		t.Fatalf("a code of the ended session was redeemed after logout: ID token sid %q (ended: %q), userinfo %d, refresh works: %v",
			after.SID, sid, ui.Status, rvRefreshWorks(w, conf, tok))
	})
}

// Finding 3. RP-Initiated Logout 1.0 §2: the OP MUST ask the End-User
// whether to log out when the id_token_hint does not belong to the current
// OP session. oauthEndSession ends the hint's session whenever its sid is
// not the browser's: any holder of a user's ID token (ID tokens are not
// confidential; they travel in end_session URLs, to APIs, in localStorage;
// expired up to 30 days is accepted) signs that user's browser out, with
// every grant made in it, from a browser that has no session at all.
func TestOIDCReviewHintEndsAnotherBrowsersSession(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		victim := newBrowser(t, e)
		conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
		tok, _, raw := w.login(victim, conf, "n")

		stranger := newBrowser(t, e) // no cookie, no session
		pg := stranger.get("/oauth/end_session?id_token_hint=" + raw)
		if !rvSignedIn(t, w, victim, conf) || !rvRefreshWorks(w, conf, tok) {
			t.Fatalf("a browser with no session signed the victim's browser out with only the victim's ID token, without asking anyone (end_session answered %d)", pg.status)
		}
	})
}

// Finding 4. A new sign-in in the same browser (prompt=login, max_age, or
// simply signing in again) starts a new browser session without ending
// the old one: the grants made under the old sid are never ended by a
// later end_session of this browser (with or without a hint of the new
// sign-in), and their clients never get a back-channel logout. The user
// signs out "everywhere" at RP B and stays signed in at RP A.
func TestOIDCReviewReloginOrphansEarlierGrants(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		b := newBrowser(t, e)
		conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
		tok1, idt1, _ := w.login(b, conf, "n1")

		// Step-up: prompt=login signs the same user in again.
		v := oauth2.GenerateVerifier()
		back := b.authorize(w.local(conf.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("n2"), oauth2.SetAuthURLParam("prompt", "login"))))
		tok2, err := conf.Exchange(w.ctx, back.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		raw2 := tok2.Extra("id_token").(string)
		sid1, sid2 := idClaimsOf(t, idt1).SID, rvClaims(t, raw2).SID

		if pg := b.get("/oauth/end_session?id_token_hint=" + raw2); pg.status != 200 {
			t.Fatalf("end_session: %d %s", pg.status, pg.body)
		}
		if rvSignedIn(t, w, b, conf) {
			t.Fatal("still signed in")
		}
		if rvRefreshWorks(w, conf, tok1) {
			t.Fatalf("the browser signed out, but the grant made before the re-sign-in (sid %s, now %s) still refreshes", sid1, sid2)
		}
	})
}

// Finding 5. The userinfo endpoint takes an unbound bearer token of a
// client that requires DPoP (requireProof(..., false)), where the agent
// API refuses it since the DPoP review (authenticateAgent looks the
// client's policy up).
func TestOIDCReviewUserinfoUnboundTokenOfDPoPRequiredClient(t *testing.T) {
	sqlstoretest.Each(t, func(t *testing.T, dsn string) {
		e := apptest.Start(t, dsn, nil)
		w := newOIDCWorld(t, e)
		tok, _, _ := w.login(newBrowser(t, e), w.conf(w.rp, oidc.ScopeOpenID, "email", "read"), "n")
		expect(t, e.Do("PATCH", "/api/v1/oauth/clients/"+w.rp, map[string]any{"dpop": "required"}, w.admin), 200, "")
		if r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(tok.AccessToken)); r.Status != 401 {
			t.Fatalf("precondition: the agent API answered %d", r.Status)
		}
		if r := e.Do("GET", "/oauth/userinfo", nil, apptest.Bearer(tok.AccessToken)); r.Status == 200 {
			t.Fatalf("userinfo released %s for an unbound token of a client that requires DPoP (the agent API refuses the same token)", r.Raw)
		}
	})
}

// Finding 6. An implicit grant asked with scope openid (the consent page
// lists the OIDC claims) is not recorded as made in the browser session,
// so end_session leaves its access token working, although docs/oidc.md
// says logout ends "every grant made with openid in it".
func TestOIDCReviewImplicitOpenIDGrantOutlivesEndSession(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	_, _, raw := w.login(b, w.conf(w.rp, oidc.ScopeOpenID, "read"), "n")
	imp := w.conf(w.rp, oidc.ScopeOpenID, "read", "chat")
	u := b.authorize(w.local(imp.AuthCodeURL("i", oauth2.SetAuthURLParam("response_type", "token"))))
	frag, _ := url.ParseQuery(u.Fragment)
	at := frag.Get("access_token")
	if at == "" {
		t.Fatalf("implicit: %s", u)
	}
	if r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(at)); r.Status != 200 {
		t.Fatalf("precondition: the implicit token works: %d %s", r.Status, r.Raw)
	}
	if pg := b.get("/oauth/end_session?id_token_hint=" + raw); pg.status != 200 {
		t.Fatalf("end_session: %d", pg.status)
	}
	if r := e.Do("GET", "/api/v1/conversations", nil, apptest.Bearer(at)); r.Status == 200 {
		t.Fatal("the implicit openid grant of the signed-out browser session still works")
	}
}

// Finding 7. max_age is multiplied into a time.Duration without a bound
// (signedInWithin): above 9223372036 seconds it overflows, negative or
// tiny, and a fresh session counts as too old (forced sign-in, or
// login_required under prompt=none). OIDC Core says a huge max_age means
// "any session".
func TestOIDCReviewMaxAgeOverflow(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	w.login(b, conf, "n")
	v := oauth2.GenerateVerifier()
	pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("max_age", "10000000000"))))
	if !strings.Contains(pg.location, "code=") {
		t.Fatalf("a session seconds old is older than max_age=10000000000 (~317 years): %d %s", pg.status, pg.location)
	}
}

// Finding 8. end_session's "given more than once" check reads
// Request.PostForm before anything parsed the body, so it is always empty
// for a POST: repeated body parameters pass and the first one wins (RFC
// 6749 §3.1 and the check's own intent).
func TestOIDCReviewEndSessionRepeatedPostParams(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	_, _, raw := w.login(b, w.conf(w.rp, oidc.ScopeOpenID, "read"), "n")
	res, err := b.c.PostForm(e.Srv.URL+"/oauth/end_session", url.Values{"id_token_hint": {raw}, "state": {"a", "b"}, "post_logout_redirect_uri": {postLogout}})
	if err != nil {
		t.Fatal(err)
	}
	if p := read(t, res); p.status != http.StatusBadRequest {
		t.Fatalf("state given twice in the body: %d %s", p.status, p.location)
	}
}

// Finding 9. OIDC Core §6.1/§6.2: an OP that does not support request
// objects (request_parameter_supported and request_uri_parameter_supported
// are false) MUST answer request_not_supported / request_uri_not_supported.
// The parameters are ignored instead, so whatever the RP put in the signed
// request object (max_age, a different nonce, prompt=login, ...) is
// silently dropped and a code is answered.
func TestOIDCReviewRequestObjectSilentlyIgnored(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	w.login(b, conf, "n")
	for param, code := range map[string]string{"request": "request_not_supported", "request_uri": "request_uri_not_supported"} {
		val := "eyJhbGciOiJub25lIn0.eyJtYXhfYWdlIjowLCJwcm9tcHQiOiJsb2dpbiJ9."
		if param == "request_uri" {
			val = "https://app.example.com/request.jwt"
		}
		v := oauth2.GenerateVerifier()
		pg := b.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam(param, val))))
		if !strings.Contains(pg.location, "error="+code) {
			t.Errorf("%s: want error=%s, got %d %s", param, code, pg.status, pg.location)
		}
	}
}

// Finding 10. id_token_hint on /oauth/authorize is ignored (OIDC Core
// §3.1.2.1): prompt=none with the ID token of user B, in a browser signed
// in as user A, silently answers a code for A. The RP asked "is B still
// signed in?" and gets a yes for somebody else.
func TestOIDCReviewAuthorizeIgnoresIDTokenHint(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	// B signs in in browser bb and gets an ID token.
	_, tokB := signInUser(t, w, e, conf, "Bea", "bea@example.com")
	hintB := tokB.Extra("id_token").(string)
	// A (the admin) in browser ba; prompt=none with B's hint.
	ba := newBrowser(t, e)
	_, idtA, _ := w.login(ba, conf, "a")
	v := oauth2.GenerateVerifier()
	pg := ba.get(w.local(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hintB))))
	if strings.Contains(pg.location, "code=") {
		t.Fatalf("prompt=none with the id_token_hint of user %s answered a code for user %s", rvClaims(t, hintB).Sub, idtA.Subject)
	}
}
