package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/backend/oauth"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

func (s *Server) oauthRoutes() {
	e := s.e
	e.GET("/oauth/authorize", s.oauthAuthorize)
	e.POST("/oauth/authorize", s.oauthAuthorize)
	e.POST("/oauth/token", s.oauthToken, s.tokenCORS)
	e.POST("/oauth/introspect", s.oauthIntrospect)
	e.POST("/oauth/revoke", s.oauthRevoke, s.tokenCORS)
	e.OPTIONS("/oauth/token", s.tokenPreflight)
	e.OPTIONS("/oauth/revoke", s.tokenPreflight)
	e.GET("/.well-known/oauth-authorization-server", s.oauthMetadata)
	// OpenID Connect (docs/oidc.md).
	e.GET("/.well-known/openid-configuration", s.oauthMetadata)
	e.GET("/oauth/userinfo", s.oauthUserInfo)
	e.POST("/oauth/userinfo", s.oauthUserInfo)
	e.GET("/oauth/end_session", s.oauthEndSession)
	e.POST("/oauth/end_session", s.oauthEndSession)
}

// scopeWords says in plain words what a consent grants.
func scopeWords(sc shared.Scope) []string {
	out := []string{"act with your role: " + sc.Role.String()}
	if sc.API.Has(shared.ScopeRead) {
		out = append(out, "read your organization's data (contacts, knowledge items, …)")
	}
	if sc.API.Has(shared.ScopeWrite) {
		out = append(out, "create, change and delete data")
	}
	if sc.API.Has(shared.ScopeChat) {
		out = append(out, "read and answer conversations")
	}
	return out
}

// oauthAuthorize is /oauth/authorize: GET starts (or silently completes)
// an authorization; POST carries the sign-in and consent forms, which
// repeat the original request in a hidden field and are re-validated.
func (s *Server) oauthAuthorize(c echo.Context) error {
	r, ctx := c.Request(), c.Request().Context()
	post := r.Method == http.MethodPost
	q := c.QueryParams()
	raw := r.URL.RawQuery
	if post {
		raw = c.FormValue("request")
		var err error
		if q, err = url.ParseQuery(raw); err != nil {
			return s.errorPage(c, http.StatusBadRequest, "Invalid request", "The form was damaged. Go back to the application and start again.")
		}
	}
	req, client, err := oauth.ParseAuthorize(q, func(id string) (domain.Client, error) { return s.Store.Client(ctx, id) })
	// Every answer names this server (RFC 9207), errors included.
	req.Issuer = s.Issuer
	var pe *oauth.PageError
	var oe *oauth.Error
	switch {
	case errors.As(err, &pe):
		return s.errorPage(c, http.StatusBadRequest, pe.Title, pe.Message)
	case errors.As(err, &oe):
		return s.redirect(c, req.ErrorRedirect(oe))
	case err != nil:
		return err
	}
	sess := s.session(c)
	action := ""
	if post {
		if !checkCSRF(c, sess) {
			return s.errorPage(c, http.StatusForbidden, "This form has expired", "For your safety the form could not be accepted (its security token did not match). Go back to the application and start again.")
		}
		action = c.FormValue("action")
	}
	page := map[string]any{"Client": client, "Action": "/oauth/authorize", "Request": raw}

	var user *domain.User
	switch action {
	case "login":
		u, err := s.Auth.CheckPassword(ctx, c.FormValue("email"), c.FormValue("password"), c.RealIP())
		if err != nil {
			ae, _ := apierr.As(err)
			if ae == nil || ae.Code == apierr.CodeInternal {
				return err
			}
			page["Error"], page["Email"], page["CSRF"] = ae.Message, c.FormValue("email"), csrfToken(sess)
			return s.render(c, statusOf[ae.Code], "login", page)
		}
		// A new sign-in gets a new CSRF token.
		delete(sess.Values, "csrf")
		sid, err := s.browserSignIn(ctx, sess, u)
		if err != nil {
			return apierr.Internal(err)
		}
		// auth_time of the ID tokens of this sign-in (OIDC Core §2), and
		// what max_age is measured against. fresh marks the request this
		// sign-in was made for: its consent form may then follow without
		// signing in again, even under prompt=login or max_age=0.
		now := s.now().Unix()
		sess.Values["uid"], sess.Values["sid"], sess.Values["auth_time"] = u.ID, sid, now
		sess.Values["fresh"] = freshMark(raw, sid, now)
		// Saved now: whatever the request answers next, an error
		// included, the browser holds the sign-in it just made (and not
		// the earlier user's, which browserSignIn may have ended).
		if err := sess.Save(r, c.Response()); err != nil {
			return err
		}
		user = &u
	case "deny":
		delete(sess.Values, "fresh")
		if err := sess.Save(r, c.Response()); err != nil {
			return err
		}
		return s.redirect(c, req.ErrorRedirect(oauth.ErrAccessDenied.WithDescription("the user denied the request")))
	case "approve", "":
	default:
		return s.errorPage(c, http.StatusBadRequest, "Invalid request", "Unknown form action.")
	}
	// prompt=login, a sign-in older than max_age, or an id_token_hint of
	// another user than the signed-in one sign in again (OIDC Core
	// §3.1.2.1), on every step of the request: posting the sign-in
	// page's form with action=approve instead of a password does not
	// skip it. Only a sign-in made for this very request (fresh) does.
	hintSub, err := s.hintSubject(req)
	if err != nil {
		return s.redirect(c, req.ErrorRedirect(err.(*oauth.Error)))
	}
	uid, _ := sess.Values["uid"].(int64)
	reauthWhy := ""
	switch {
	case req.HasPrompt("login"):
		reauthWhy = "prompt=login asks for a new sign-in"
	case req.MaxAge >= 0 && !signedInWithin(sess, s.now(), req.MaxAge):
		reauthWhy = "the user signed in longer ago than max_age=" + strconv.FormatInt(req.MaxAge, 10) + " seconds and must sign in again"
	case hintSub != "" && uid != 0 && hintSub != strconv.FormatInt(uid, 10):
		reauthWhy = "the signed-in user is not the one id_token_hint names"
	}
	reauth := user == nil && reauthWhy != "" && !s.freshFor(sess, raw)
	if uid != 0 && user == nil && !reauth {
		sid, _ := sess.Values["sid"].(string)
		live, err := s.Cascade.BrowserSessionLive(ctx, sid, uid)
		if err != nil {
			return apierr.Internal(err)
		}
		if u, err := s.Store.UserByID(ctx, uid); err == nil && live {
			user = &u
		} else {
			delete(sess.Values, "uid")
			delete(sess.Values, "sid")
			delete(sess.Values, "auth_time")
		}
	}
	if user == nil {
		if req.HasPrompt("none") {
			if sid, _ := sess.Values["sid"].(string); reauth {
				// The reason only for a sign-in that still stands.
				if live, err := s.Cascade.BrowserSessionLive(ctx, sid, uid); err != nil {
					return apierr.Internal(err)
				} else if live {
					return s.redirect(c, req.ErrorRedirect(oauth.ErrLoginRequired.WithDescription(reauthWhy)))
				}
			}
			return s.redirect(c, req.ErrorRedirect(oauth.ErrLoginRequired.WithDescription("the user is not signed in")))
		}
		if page["Email"] == nil && req.LoginHint != "" {
			// login_hint prefills the email (OIDC Core §3.1.2.1); the
			// person can still change it.
			page["Email"] = req.LoginHint
		}
		page["CSRF"] = csrfToken(sess)
		if err := sess.Save(r, c.Response()); err != nil {
			return err
		}
		return s.render(c, http.StatusOK, "login", page)
	}
	if ok, err := s.Store.InTree(ctx, client.OrgID, user.OrgID); err != nil {
		return err
	} else if !ok {
		if req.HasPrompt("none") {
			return s.redirect(c, req.ErrorRedirect(oauth.ErrInteractionRequired.WithDescription("the signed-in user's organization cannot authorize this client")))
		}
		return s.errorPage(c, http.StatusForbidden, "Not available for your account", "This application belongs to another organization, so your account cannot authorize it.")
	}
	api, err := oauth.ParseClientScopes(strings.Fields(client.Scopes))
	if err != nil {
		return err
	}
	scope, err := oauth.ResolveScope(req.Scope, api, user.Role)
	if errors.As(err, &oe) {
		return s.redirect(c, req.ErrorRedirect(oe))
	} else if err != nil {
		return err
	}
	// A consent covers the API scope and, for OpenID Connect, the claims
	// released: asking for email later asks again.
	consentKey := scope.String()
	if req.OpenID() {
		consentKey += " " + strings.Join(req.OIDC, " ")
	}
	if action == "approve" {
		if err := s.Store.RememberConsent(ctx, user.ID, client.ID, consentKey); err != nil {
			return err
		}
	} else {
		consented, err := s.Store.HasConsent(ctx, user.ID, client.ID, consentKey)
		if err != nil {
			return err
		}
		if !consented || req.HasPrompt("consent") {
			if req.HasPrompt("none") {
				return s.redirect(c, req.ErrorRedirect(oauth.ErrConsentRequired.WithDescription("the user has not approved this client for scope \""+consentKey+"\"")))
			}
			page["CSRF"], page["User"], page["Scopes"] = csrfToken(sess), user, scopeWords(scope)
			if req.OpenID() {
				page["Claims"] = claimWords(req.OIDC)
			}
			if u, err := url.Parse(req.RedirectURI); err == nil {
				page["RedirectHost"] = u.Host
			}
			if err := sess.Save(r, c.Response()); err != nil {
				return err
			}
			return s.render(c, http.StatusOK, "consent", page)
		}
	}
	// The sign-in made for this request is spent with its answer.
	delete(sess.Values, "fresh")
	if err := sess.Save(r, c.Response()); err != nil {
		return err
	}
	sid, _ := sess.Values["sid"].(string)
	bs := oauth.Session{SID: sid, AuthTime: authTime(sess)}
	if req.ResponseType == "token" {
		params, err := s.OAuth.IssueImplicit(ctx, req, *user, scope, bs)
		if err != nil {
			return s.oauthAnswerFail(c, req, err)
		}
		return s.redirect(c, req.Redirect(params))
	}
	code, err := s.OAuth.IssueCode(ctx, req, *user, scope, bs)
	if err != nil {
		return err
	}
	return s.redirect(c, req.Redirect(url.Values{"code": {code}}))
}

// oauthAnswerFail sends an authorization's RFC 6749 error back to the
// client; other failures are the server's.
func (s *Server) oauthAnswerFail(c echo.Context, req oauth.AuthorizeRequest, err error) error {
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return s.redirect(c, req.ErrorRedirect(oe))
	}
	return err
}

// browserSignIn records u's sign-in in this browser and returns its
// session id. One browser holds one sign-in: the same user signing in
// again (prompt=login, max_age) keeps the session, so the grants made in
// it stay under one sid and one end_session ends them all; another user
// signing in ends the earlier user's sign-in first, with its grants.
func (s *Server) browserSignIn(ctx context.Context, sess *sessions.Session, u domain.User) (string, error) {
	old, _ := sess.Values["sid"].(string)
	if old != "" {
		if uid, _ := sess.Values["uid"].(int64); uid == u.ID {
			live, err := s.Cascade.BrowserSessionLive(ctx, old, uid)
			if err != nil || live {
				return old, err
			}
		} else if err := s.OAuth.EndBrowserSession(ctx, old); err != nil {
			return "", err
		}
	}
	// The browser sign-in is a session like any other: a password or
	// role change, sign-out everywhere or deleting the user ends it
	// (docs/security.md, I2).
	return s.Cascade.StartBrowserSession(ctx, u)
}

// hintSubject verifies an authorize request's id_token_hint, issued to
// the requesting client, and returns the user it names ("" without a
// hint). Expired ID tokens are taken, as
// at end_session: the hint names a user, it grants nothing.
func (s *Server) hintSubject(req oauth.AuthorizeRequest) (string, error) {
	if req.IDTokenHint == "" {
		return "", nil
	}
	claims, err := s.OAuth.Issuer.VerifyIDTokenHint(req.IDTokenHint, hintMaxExpired)
	if err != nil {
		return "", oauth.ErrInvalidRequest.WithDescription("id_token_hint is not an ID token of this server (" + strings.TrimPrefix(err.Error(), token.ErrBadIDTokenHint.Error()+": ") + ")")
	}
	// The hint is about the user's session with this client (OIDC Core
	// §3.1.2.1): one issued to another client would let this one ask
	// who is signed in with tokens it should never have held.
	for _, a := range claims.Audience {
		if a == req.ClientID {
			return claims.Subject, nil
		}
	}
	return "", oauth.ErrInvalidRequest.WithDescription("id_token_hint was issued to another client; send an ID token this client received")
}

// freshTTL is how long a sign-in made for a request lets that request's
// consent form through without signing in again: the form is filled in
// minutes, and an abandoned one must not skip prompt=login later.
const freshTTL = 10 * time.Minute

// freshMark names, in the session cookie, the authorization request (its
// query as sent, by digest) that the sign-in sid at authTime was made for.
func freshMark(raw, sid string, authTime int64) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:16]) + "|" + sid + "|" + strconv.FormatInt(authTime, 10)
}

// freshFor reports whether the browser's current sign-in was made for
// request raw, less than freshTTL ago.
func (s *Server) freshFor(sess *sessions.Session, raw string) bool {
	mark, _ := sess.Values["fresh"].(string)
	sid, _ := sess.Values["sid"].(string)
	at, _ := sess.Values["auth_time"].(int64)
	return mark != "" && sid != "" && mark == freshMark(raw, sid, at) && s.now().Sub(time.Unix(at, 0)) < freshTTL
}

// now is the authorization server's clock (tests may set it).
func (s *Server) now() time.Time { return s.OAuth.Now() }

// authTime is when the browser session signed in; zero for a cookie
// from before it was recorded.
func authTime(sess *sessions.Session) time.Time {
	if t, ok := sess.Values["auth_time"].(int64); ok && t > 0 {
		return time.Unix(t, 0)
	}
	return time.Time{}
}

// signedInWithin reports whether the browser session signed in at most
// maxAge seconds before now (max_age, OIDC Core §3.1.2.1). A session of
// unknown age is not.
func signedInWithin(sess *sessions.Session, now time.Time, maxAge int64) bool {
	at := authTime(sess)
	if at.IsZero() {
		return false
	}
	// A max_age past what a Duration holds (292 years) asks nothing.
	if maxAge > int64(math.MaxInt64/time.Second) {
		return true
	}
	return now.Sub(at) <= time.Duration(maxAge)*time.Second
}

// claimWords says in plain words what an OpenID Connect consent shares.
func claimWords(oidc []string) []string {
	out := []string{"confirm who you are (your user id, organization and role)"}
	for _, w := range oidc {
		switch w {
		case oauth.ScopeProfile:
			out = append(out, "see your name (claims name, updated_at)")
		case oauth.ScopeEmail:
			out = append(out, "see your email address (claims email, email_verified)")
		}
	}
	return out
}

// redirect answers 302 to a GET and 303 to a form POST, so the browser
// follows with a GET either way.
func (s *Server) redirect(c echo.Context, to string) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	if c.Request().Method == http.MethodPost {
		return c.Redirect(http.StatusSeeOther, to)
	}
	return c.Redirect(http.StatusFound, to)
}

// oauthForm reads an RFC 6749 form body; parameters in the query string
// are not accepted at the token endpoints. It parses the body alone:
// r.ParseForm would also parse the query and copy every value into a
// second map, a tenth of the work of a client-credentials request that
// nothing reads.
func oauthForm(c echo.Context) (url.Values, error) {
	r := c.Request()
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, oauth.ErrInvalidRequest.WithDescription("send the body form-encoded (Content-Type: application/x-www-form-urlencoded), as RFC 6749 requires; JSON is not accepted here")
	}
	body, err := io.ReadAll(r.Body) // frame bounds it to maxBody
	if err != nil {
		return nil, oauth.ErrInvalidRequest.WithDescription("the form body could not be read; it may be at most " + strconv.Itoa(maxBody/1024) + " KB")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// The parser's error quotes part of the body, which may be a
		// secret: say what is wrong without it.
		return nil, oauth.ErrInvalidRequest.WithDescription("the form body is not valid application/x-www-form-urlencoded: check for a bad %-escape or a ';' separator")
	}
	for k, vs := range form {
		valid := utf8.ValidString(k) && !strings.ContainsRune(k, 0)
		for _, v := range vs {
			valid = valid && utf8.ValidString(v) && !strings.ContainsRune(v, 0)
		}
		if !valid {
			return nil, formNotUTF8(string(body))
		}
	}
	return form, nil
}

// formNotUTF8 names the first parameter of a form body whose name or
// value is not UTF-8 once percent-decoded. url.ParseQuery would pass the
// bytes through and the value would be compared or stored as sent; the
// description never repeats a value, which may be a secret.
func formNotUTF8(body string) error {
	for body != "" {
		var pair string
		pair, body, _ = strings.Cut(body, "&")
		k, v, _ := strings.Cut(pair, "=")
		k, _ = url.QueryUnescape(k) // ParseQuery has accepted every escape
		v, _ = url.QueryUnescape(v)
		switch {
		case !utf8.ValidString(k) || strings.ContainsRune(k, 0):
			return oauth.ErrInvalidRequest.WithDescription("a parameter name is not valid UTF-8 after percent-decoding; send text as UTF-8")
		case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
			if len(k) > 64 {
				k = k[:64] + "…"
			}
			return oauth.ErrInvalidRequest.WithDescription(headerSafe(k) + ": not valid UTF-8, or holds a NUL, after percent-decoding; send text as UTF-8")
		}
	}
	return oauth.ErrInvalidRequest.WithDescription("the form body is not valid UTF-8 after percent-decoding; send text as UTF-8")
}

// oauthFail turns an error into an RFC 6749 answer; anything that is not
// already an oauth.Error is logged and answered as server_error.
func (s *Server) oauthFail(c echo.Context, err error) error {
	var oe *oauth.Error
	if ae, ok := apierr.As(err); ok && ae.Code == apierr.CodeTooManyRequests && !errors.As(err, &oe) {
		// Too many wrong client secrets: RFC 6749 has no code for it, so
		// the answer is a 429 with Retry-After and invalid_client.
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(1, int(ae.RetryAfter/time.Second))))
		oe = &oauth.Error{Code: oauth.ErrInvalidClient.Code, Description: ae.Message, Status: http.StatusTooManyRequests}
	} else if msg, ok := sqlstore.Unavailable(err); ok && !errors.As(err, &oe) {
		s.log.Error("oauth endpoint: database unavailable", "path", c.Request().URL.Path, "err", err)
		oe = oauth.ErrTemporarilyUnavailable.WithDescription(msg)
		c.Response().Header().Set("Retry-After", "1")
	} else if !errors.As(err, &oe) {
		id := c.Response().Header().Get(echo.HeaderXRequestID)
		s.log.Error("oauth endpoint failed", "request_id", id, "path", c.Request().URL.Path, "err", err)
		oe = oauth.ErrServerError.WithDescription("something went wrong on our side; try again (request id " + id + ")")
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	if oe.Code == oauth.ErrInvalidClient.Code && c.Request().Header.Get("Authorization") != "" {
		h.Set("WWW-Authenticate", `Basic realm="chatauth"`)
	}
	body := map[string]string{"error": oe.Code}
	if oe.Description != "" {
		body["error_description"] = oe.Description
	}
	return c.JSON(oe.Status, body)
}

func (s *Server) oauthToken(c echo.Context) error {
	form, err := oauthForm(c)
	if err != nil {
		return s.oauthFail(c, err)
	}
	if s.DPoP.RequireNonce {
		c.Response().Header().Set("DPoP-Nonce", s.DPoP.Nonce())
	}
	proof := func() (string, error) {
		proofs := c.Request().Header.Values("DPoP")
		if len(proofs) == 0 {
			return "", nil
		}
		p, err := s.DPoP.Check(c.Request().Context(), dpop.Request{Proofs: proofs, Method: http.MethodPost, URL: s.target(c), Nonce: true})
		var de *dpop.Error
		if errors.As(err, &de) {
			return "", &oauth.Error{Code: de.Code, Status: http.StatusBadRequest, Description: de.Description}
		}
		return p.JKT, err
	}
	t, err := s.OAuth.Token(c.Request().Context(), c.Request().Header.Get("Authorization"), c.RealIP(), proof, form)
	if err != nil {
		return s.oauthFail(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	return writeJSON(c, http.StatusOK, (*tokenAnswer)(&t))
}

// tokenAnswer is oauth.TokenResponse, which it converts from, with the
// same fields and tags; it appends itself, since the token endpoint is
// what machine clients call most.
type tokenAnswer oauth.TokenResponse

func (t *tokenAnswer) appendJSON(b []byte) (_ []byte, ok bool) {
	if !jsonPlain(t.AccessToken) || !jsonPlain(t.TokenType) || !jsonPlain(t.RefreshToken) || !jsonPlain(t.Scope) || !jsonPlain(t.IDToken) {
		return b, false
	}
	b = append(b, `{"access_token":"`...)
	b = append(b, t.AccessToken...)
	b = append(b, `","token_type":"`...)
	b = append(b, t.TokenType...)
	b = append(b, `","expires_in":`...)
	b = strconv.AppendInt(b, t.ExpiresIn, 10)
	if t.RefreshToken != "" {
		b = append(b, `,"refresh_token":"`...)
		b = append(b, t.RefreshToken...)
		b = append(b, '"')
	}
	b = append(b, `,"scope":"`...)
	b = append(b, t.Scope...)
	if t.IDToken != "" {
		b = append(b, `","id_token":"`...)
		b = append(b, t.IDToken...)
	}
	return append(b, "\"}\n"...), true
}

func (s *Server) oauthIntrospect(c echo.Context) error {
	form, err := oauthForm(c)
	if err != nil {
		return s.oauthFail(c, err)
	}
	info, err := s.OAuth.Introspect(c.Request().Context(), c.Request().Header.Get("Authorization"), c.RealIP(), form)
	if err != nil {
		return s.oauthFail(c, err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, info)
}

func (s *Server) oauthRevoke(c echo.Context) error {
	form, err := oauthForm(c)
	if err != nil {
		return s.oauthFail(c, err)
	}
	proof := func(jkt string) error {
		_, err := s.DPoP.Check(c.Request().Context(), dpop.Request{Proofs: c.Request().Header.Values("DPoP"), Method: c.Request().Method, URL: s.target(c), JKT: jkt})
		return err
	}
	if err := s.OAuth.Revoke(c.Request().Context(), c.Request().Header.Get("Authorization"), c.RealIP(), proof, form); err != nil {
		return s.oauthFail(c, err)
	}
	return c.NoContent(http.StatusOK)
}

func (s *Server) oauthMetadata(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	return c.JSON(http.StatusOK, oauth.Metadata(s.Issuer))
}

// oauthUserInfo is OpenID Connect Core §5.3: the claims of the access
// token's grant. Errors follow RFC 6750 §3: 401 invalid_token, 403
// insufficient_scope, each with a WWW-Authenticate challenge.
func (s *Server) oauthUserInfo(c echo.Context) error {
	tok, dpopScheme, sent, err := presented(c)
	switch {
	case err != nil:
		return s.userinfoFail(c, dpopScheme, oauth.ErrInvalidToken.WithDescription("send the access token as Authorization: Bearer <token> (or DPoP <token> with a proof)"))
	case !sent:
		// RFC 6750 §3.1: a request with no credentials gets the bare
		// challenge.
		return s.userinfoFail(c, false, &oauth.Error{Status: http.StatusUnauthorized})
	}
	cred, err := s.Inspector.JWT(tok)
	if err != nil {
		var inv *credential.Invalid
		if errors.As(err, &inv) {
			return s.userinfoFail(c, dpopScheme, oauth.ErrInvalidToken.WithDescription(inv.Reason))
		}
		return err
	}
	if cred.Kind != credential.OAuth {
		return s.userinfoFail(c, dpopScheme, oauth.ErrInsufficientScope.WithDescription("this is not an OAuth access token from an authorization with scope openid"))
	}
	required, err := s.clientRequiresDPoP(c.Request().Context(), cred.Agent)
	if err != nil {
		return err
	}
	if err := s.requireProof(c, tok, dpopScheme, shared.BoundKey(cred.Agent.Cnf), required); err != nil {
		return err
	}
	claims, err := s.OAuth.UserInfo(c.Request().Context(), cred.Agent)
	var oe *oauth.Error
	if errors.As(err, &oe) {
		return s.userinfoFail(c, dpopScheme, oe)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, claims)
}

func (s *Server) userinfoFail(c echo.Context, dpopScheme bool, oe *oauth.Error) error {
	scheme := `Bearer realm="chatauth"`
	if dpopScheme {
		scheme = dpopChallenge
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	if oe.Code == "" {
		h.Set("WWW-Authenticate", scheme)
		return c.NoContent(oe.Status)
	}
	ch := scheme + `, error="` + oe.Code + `"`
	if oe.Code == oauth.ErrInsufficientScope.Code {
		ch += `, scope="openid"`
	}
	h.Set("WWW-Authenticate", ch+`, error_description="`+headerSafe(oe.Description)+`"`)
	return c.JSON(oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
}

// hintMaxExpired is how long after its exp an ID token is still taken as
// an id_token_hint: relying parties log out with the ID token of a long
// session, and the hint only names whom to sign out.
const hintMaxExpired = 30 * 24 * time.Hour

// oauthEndSession is OpenID Connect RP-Initiated Logout 1.0: it ends the
// authorize page's browser sign-in and the grants made in it (with a
// back-channel logout to their clients), then sends the browser to a
// registered post_logout_redirect_uri with state, or shows a "signed
// out" page. Without a valid id_token_hint the person confirms first,
// so a link on another site cannot sign anybody out.
func (s *Server) oauthEndSession(c echo.Context) error {
	ctx := c.Request().Context()
	// PostForm is empty until the body is parsed.
	if err := c.Request().ParseForm(); err != nil {
		return s.errorPage(c, http.StatusBadRequest, "Invalid request", "the form could not be read.")
	}
	for _, name := range []string{"id_token_hint", "post_logout_redirect_uri", "state", "client_id"} {
		if len(c.QueryParams()[name]) > 1 || (c.Request().Method == http.MethodPost && len(c.Request().PostForm[name]) > 1) {
			return s.errorPage(c, http.StatusBadRequest, "Invalid request", name+" is given more than once.")
		}
	}
	hint, back, state, clientID := c.FormValue("id_token_hint"), c.FormValue("post_logout_redirect_uri"), c.FormValue("state"), c.FormValue("client_id")
	var (
		claims token.IDClaims
		client domain.Client
		known  bool
	)
	if hint != "" {
		var err error
		if claims, err = s.OAuth.Issuer.VerifyIDTokenHint(hint, hintMaxExpired); err != nil {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "id_token_hint is not an ID token of this server ("+strings.TrimPrefix(err.Error(), token.ErrBadIDTokenHint.Error()+": ")+"). Nothing was signed out.")
		}
		if len(claims.Audience) != 1 {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "id_token_hint must name one client in aud.")
		}
		if clientID != "" && clientID != claims.Audience[0] {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "client_id does not match the aud of id_token_hint.")
		}
		clientID = claims.Audience[0]
	}
	if clientID != "" {
		var err error
		client, err = s.Store.Client(ctx, clientID)
		if errors.Is(err, domain.ErrNotFound) {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "client_id "+quoteShort(clientID)+" is not a registered client.")
		}
		if err != nil {
			return err
		}
		known = true
	}
	if back != "" {
		if !known {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "post_logout_redirect_uri needs id_token_hint or client_id, to know whose registered URIs to match.")
		}
		found := false
		for _, u := range client.PostLogoutRedirectURIs {
			found = found || u == back // exact, like redirect_uri
		}
		if !found {
			return s.errorPage(c, http.StatusBadRequest, "Invalid logout request", "post_logout_redirect_uri "+quoteShort(back)+" is not one of the client's registered post_logout_redirect_uris (they must match exactly). Nothing was sent there.")
		}
	}
	sess := s.session(c)
	uid, _ := sess.Values["uid"].(int64)
	sid, _ := sess.Values["sid"].(string)
	// Only this browser's sign-in ends, never the hint's session
	// elsewhere: ID tokens are not secrets, so a hint alone must not sign
	// anybody out. A hint issued in this very sign-in (its sid) ends it
	// at once; otherwise (no hint, another user's, one of the user's
	// other devices or of an earlier sign-in) the person confirms first
	// (RP-Initiated Logout 1.0 §2), so a link on another site cannot sign
	// them out. One browser holds one sign-in (browserSignIn), so its
	// grants all sit under sid.
	hintUID, _ := strconv.ParseInt(claims.Subject, 10, 64)
	ofThisSignIn := hint != "" && claims.SID != "" && claims.SID == sid && hintUID == uid
	if sid != "" && !ofThisSignIn {
		confirmed := c.Request().Method == http.MethodPost && c.FormValue("action") == "logout" && checkCSRF(c, sess)
		if !confirmed {
			page := map[string]any{"CSRF": csrfToken(sess), "Back": back, "State": state, "ClientID": clientID}
			if known {
				page["Client"] = client.Name
			}
			if err := sess.Save(c.Request(), c.Response()); err != nil {
				return err
			}
			return s.render(c, http.StatusOK, "logout", page)
		}
	}
	if sid != "" {
		if err := s.OAuth.EndBrowserSession(ctx, sid); err != nil {
			return err
		}
		delete(sess.Values, "uid")
		delete(sess.Values, "sid")
		delete(sess.Values, "auth_time")
		delete(sess.Values, "csrf")
		delete(sess.Values, "fresh")
		if err := sess.Save(c.Request(), c.Response()); err != nil {
			return err
		}
	}
	if back != "" {
		u, err := url.Parse(back)
		if err != nil {
			return err
		}
		if state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		return s.redirect(c, u.String())
	}
	return s.render(c, http.StatusOK, "signed_out", nil)
}
