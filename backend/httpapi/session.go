package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"html/template"
	"net/http"
	"strings"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// sessionName is the browser session of the sign-in and consent pages.
const sessionName = "chatauth_session"

// NewSessionStore makes the cookie store: values are signed (HMAC-SHA256)
// and encrypted (AES-256) by gorilla/securecookie with keys derived from
// the master secret. secure marks cookies Secure (issuer on https).
func NewSessionStore(hashKey, blockKey []byte, secure bool) *sessions.CookieStore {
	st := sessions.NewCookieStore(hashKey, blockKey)
	st.Options = &sessions.Options{Path: "/", MaxAge: 12 * 3600, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	st.MaxAge(12 * 3600)
	return st
}

func (s *Server) session(c echo.Context) *sessions.Session {
	// A cookie that no longer decodes (a rotated secret) yields a fresh
	// session rather than an error: the person just signs in again.
	sess, _ := s.Sessions.Get(c.Request(), sessionName)
	return sess
}

// csrfToken returns the session's CSRF token, making one when needed.
func csrfToken(sess *sessions.Session) string {
	if t, ok := sess.Values["csrf"].(string); ok && t != "" {
		return t
	}
	var b [32]byte
	rand.Read(b[:])
	t := base64.RawURLEncoding.EncodeToString(b[:])
	sess.Values["csrf"] = t
	return t
}

// checkCSRF compares the form's token with the session's in constant time.
func checkCSRF(c echo.Context, sess *sessions.Session) bool {
	want, _ := sess.Values["csrf"].(string)
	got := c.FormValue("csrf_token")
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// pageHeaders keep the sign-in and consent pages out of frames (no
// clickjacking of "Allow"), out of caches, and from leaking the URL.
func pageHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
}

func (s *Server) render(c echo.Context, status int, name string, data any) error {
	pageHeaders(c)
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	return c.HTML(status, b.String())
}

func (s *Server) errorPage(c echo.Context, status int, title, msg string) error {
	return s.render(c, status, "error", map[string]string{"Title": title, "Message": msg})
}
