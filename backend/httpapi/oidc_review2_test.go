package httpapi_test

// Second security review of the OpenID Provider: the fixes of commit
// eaa32f0. Each test reproduced one finding and failed while the problem
// existed; all are fixed. (Finding 4, IPv6 forms embedding IPv4, is in
// backend/egress's TestPublic.)

import (
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore/sqlstoretest"
)

// Finding 1. end_session skips the confirmation whenever the hint's sub
// is the signed-in user, without comparing the hint's sid with this
// browser's sign-in. RP-Initiated Logout 1.0 §2: the OP MUST ask "if the
// supplied ID Token does not belong to the current OP session with the
// RP". Any ID token of the user (from their phone, from a sign-in ended
// weeks ago: 30 days past exp are taken, issued to any client) in a link
// on any site (a top-level GET carries the SameSite=Lax cookie) signs
// this browser out at once, with every grant made in it at every client,
// and back-channel logouts. docs/oidc.md says "an ID token someone got
// hold of cannot sign anybody out".
func TestOIDCReview2EndSessionHintOfAnotherSessionSkipsConfirmation(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")

	// The user's sign-in on another device: its ID token is the leaked one.
	phone := newBrowser(t, e)
	_, idtPhone, rawPhone := w.login(phone, conf, "p")

	laptop := newBrowser(t, e)
	tok, idtLaptop, _ := w.login(laptop, conf, "l")
	if idClaimsOf(t, idtPhone).SID == idClaimsOf(t, idtLaptop).SID {
		t.Fatal("precondition: two browsers share a sid")
	}
	// A link on another site navigates the laptop to end_session with the
	// phone's ID token.
	pg := laptop.get("/oauth/end_session?id_token_hint=" + rawPhone)
	if !rvSignedIn(t, w, laptop, conf) || !rvRefreshWorks(w, conf, tok) {
		t.Fatalf("an ID token of another sign-in (sid %s) signed this browser (sid %s) out without asking (end_session answered %d, confirmation form shown: %v)",
			idClaimsOf(t, idtPhone).SID, idClaimsOf(t, idtLaptop).SID, pg.status, strings.Contains(pg.body, `value="logout"`))
	}
}

// Finding 1, second form: the hint of a sign-in that already ended in
// this very browser (the RP kept it, a log has it) ends the next one.
func TestOIDCReview2EndSessionStaleHintEndsNewSignIn(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	b := newBrowser(t, e)
	_, _, old := w.login(b, conf, "n1")
	if pg := b.get("/oauth/end_session?id_token_hint=" + old); pg.status != 200 {
		t.Fatalf("end_session: %d", pg.status)
	}
	tok, idt, _ := w.login(b, conf, "n2") // a new sign-in, a new sid
	if rvClaims(t, old).SID == idClaimsOf(t, idt).SID {
		t.Fatal("precondition: the new sign-in has the old sid")
	}
	pg := b.get("/oauth/end_session?id_token_hint=" + old)
	if !rvSignedIn(t, w, b, conf) || !rvRefreshWorks(w, conf, tok) {
		t.Fatalf("the ID token of an ended sign-in signed the next one out without asking (end_session answered %d)", pg.status)
	}
}

// Finding 2. The "fresh" digest outlives the request it was made for: it
// is cleared only when a code or token is answered, not on deny, not on
// an abandoned consent page, not on an error. The same authorization URL
// opened again later (browser history, a second click, the RP retrying
// with the same state) skips prompt=login / max_age, and the consent
// answers a code from the earlier sign-in. docs/security.md: "its digest
// kept in the session cookie until the answer is issued".
func TestOIDCReview2FreshSurvivesDeny(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	w.login(b, w.conf(w.rp, oidc.ScopeOpenID, "read"), "n")

	// A step-up for more scope: prompt=login, max_age=0.
	step := w.conf(w.rp, oidc.ScopeOpenID, "read", "chat")
	v := oauth2.GenerateVerifier()
	authURL := w.local(step.AuthCodeURL("st", oauth2.S256ChallengeOption(v), oidc.Nonce("n2"),
		oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0")))
	pg := b.get(authURL)
	if !strings.Contains(pg.body, `value="login"`) {
		t.Fatalf("no sign-in page: %d %s", pg.status, pg.body)
	}
	pg = b.submit(pg, map[string]string{"action": "login", "email": apptest.AdminEmail, "password": apptest.AdminPassword})
	if !strings.Contains(pg.body, `value="deny"`) {
		t.Fatalf("no consent page: %d %s", pg.status, pg.body)
	}
	if res := b.submit(pg, map[string]string{"action": "deny"}); !strings.Contains(res.location, "error=access_denied") {
		t.Fatalf("deny: %d %s", res.status, res.location)
	}
	// Later, the same URL again.
	pg = b.get(authURL)
	if strings.Contains(pg.body, `value="login"`) {
		return // fixed
	}
	res := b.submit(pg, map[string]string{"action": "approve"})
	t.Fatalf("after a denied prompt=login/max_age=0 request, opening it again skipped the password (page had approve: %v; approving answered %d %s)",
		strings.Contains(pg.body, `value="approve"`), res.status, res.location)
}

// Finding 3. id_token_hint at /oauth/authorize is taken from any client
// (its aud is not compared with client_id; OIDC Core §3.1.2.1: a hint of
// the End-User's session "with the Client"), and it is compared with the
// signed-in user before anything else (consent, organization). A client
// the visitor never authorized, holding ID tokens issued to other clients,
// learns under prompt=none which user the browser is signed in as:
// consent_required for the right hint, login_required "the signed-in user
// is not the one id_token_hint names" for the others.
func TestOIDCReview2HintOracleForForeignClient(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	conf := w.conf(w.rp, oidc.ScopeOpenID, "read")
	hintBea := rv2Hint(signInUser(t, w, e, conf, "Bea", "bea@example.com"))
	b := newBrowser(t, e)
	_, _, hintAdmin := w.login(b, conf, "n")

	// Another client, never authorized by this user.
	r := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "Tracker", "client_type": "public", "redirect_uris": []string{redirectURI}, "scopes": []string{"read"}}, w.admin)
	expect(t, r, 201, "")
	other := w.conf(r.Str("client_id"), oidc.ScopeOpenID, "read")
	probe := func(hint string) string {
		v := oauth2.GenerateVerifier()
		pg := b.get(w.local(other.AuthCodeURL("s", oauth2.S256ChallengeOption(v), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hint))))
		u, _ := url.Parse(pg.location)
		return u.Query().Get("error") + ": " + u.Query().Get("error_description")
	}
	a, bea := probe(hintAdmin), probe(hintBea)
	if a != bea && !strings.HasPrefix(a, "invalid_request") {
		t.Fatalf("a client the user never authorized tells by the answer which of the ID tokens it holds (issued to another client) is the signed-in user's:\n admin's hint: %s\n Bea's hint:   %s", a, bea)
	}
}

// Finding 5. Codes without openid did not name their sign-in, so a grant
// made from one after the sign-in ended (end_session, or a password
// change racing the exchange) survived it. Every code names its sign-in
// now, and every grant is checked against it once recorded.
func TestOIDCReview2PlainCodeEndsWithSignIn(t *testing.T) {
	t.Parallel()
	e := apptest.Start(t, sqlstoretest.SQLite(t), nil)
	w := newOIDCWorld(t, e)
	b := newBrowser(t, e)
	_, _, raw := w.login(b, w.conf(w.rp, oidc.ScopeOpenID, "read"), "n")
	plain := w.conf(w.rp, "read")
	v := oauth2.GenerateVerifier()
	u := b.authorize(w.local(plain.AuthCodeURL("s", oauth2.S256ChallengeOption(v))))
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", u)
	}
	if pg := b.get("/oauth/end_session?id_token_hint=" + raw); pg.status != 200 {
		t.Fatalf("end_session: %d %s", pg.status, pg.body)
	}
	if tok, err := plain.Exchange(w.ctx, code, oauth2.VerifierOption(v)); err == nil {
		t.Fatalf("a code without openid of the ended sign-in was redeemed: %v", tok.AccessToken != "")
	} else if !strings.Contains(err.Error(), "invalid_grant") {
		t.Fatalf("want invalid_grant: %v", err)
	}
}

func rv2Hint(_ *browser, tok *oauth2.Token) string { return tok.Extra("id_token").(string) }
