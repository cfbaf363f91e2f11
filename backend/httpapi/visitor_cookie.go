package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
)

// VisitorCookies seal the visitor's cookie (customerCookie): which
// visitor, session and client it is. gorilla/securecookie signs
// (HMAC-SHA256) and encrypts (AES-256) it as before; the value inside is
// a short text record instead of a gob-encoded session map, because
// decoding gob was a sixth of a returning visitor's server time. A
// cookie of the earlier format is still read, and is rewritten in the
// new one on its next answer.
type VisitorCookies struct {
	codec   *securecookie.SecureCookie
	legacy  *sessions.CookieStore
	options sessions.Options
}

// NewCustomerSessionStore makes the visitor cookies with keys derived
// from the master secret. secure (an https issuer) makes the cookie
// Secure and SameSite=None, so the widget on another site can send it.
func NewCustomerSessionStore(hashKey, blockKey []byte, secure bool, maxAge time.Duration) *VisitorCookies {
	opts := sessions.Options{Path: "/customer", MaxAge: int(maxAge / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode}
	if secure {
		opts.Secure, opts.SameSite = true, http.SameSiteNoneMode
	}
	codec := securecookie.New(hashKey, blockKey)
	codec.SetSerializer(securecookie.NopEncoder{})
	codec.MaxAge(opts.MaxAge)
	legacy := sessions.NewCookieStore(hashKey, blockKey)
	legacy.MaxAge(opts.MaxAge)
	return &VisitorCookies{codec: codec, legacy: legacy, options: opts}
}

// visitorCookie is what the cookie says; zero when there is none (or it
// does not decode: a rotated secret, a forgery).
type visitorCookie struct {
	Entity, SID, Client string
	Day                 int64 // Unix day of the last write
	Present             bool  // a cookie of this client was sent
	// legacy: it came under the one name every client shared before
	// (customerCookie), and moves to the client's own on the next write.
	legacy bool
}

// cookieName is the visitor cookie of one widget client. Every client
// (every tenant's site) has its own: a page of another tenant, visited
// in the same browser, cannot replace it with a cross-site
// POST /customer/token (docs/security.md, "Visitor cookie"). A digest of
// the client_id keeps the name a valid cookie token whatever the id.
func cookieName(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return customerCookie + "_" + base64.RawURLEncoding.EncodeToString(sum[:9])
}

// Read decodes the request's visitor cookie of client clientID.
func (v *VisitorCookies) Read(r *http.Request, clientID string) visitorCookie {
	name := cookieName(clientID)
	ck, err := r.Cookie(name)
	if err != nil {
		// A cookie from before each client had its own, if it is this
		// client's.
		if ck, err = r.Cookie(customerCookie); err != nil {
			return visitorCookie{}
		}
		out := v.decode(customerCookie, ck.Value)
		if out.Client != clientID {
			return visitorCookie{}
		}
		out.Present, out.legacy = true, true
		return out
	}
	out := v.decode(name, ck.Value)
	out.Present = true
	return out
}

// decode reads a cookie value of the given name: the text record, or the
// gob-encoded session map of the earliest format.
func (v *VisitorCookies) decode(name, value string) visitorCookie {
	var out visitorCookie
	var raw []byte
	if err := v.codec.Decode(name, value, &raw); err == nil {
		parts := strings.SplitN(string(raw), "\n", 4)
		if len(parts) == 4 {
			out.Entity, out.SID, out.Client = parts[0], parts[1], parts[2]
			out.Day, _ = strconv.ParseInt(parts[3], 10, 64)
		}
		return out
	}
	if name != customerCookie {
		return out
	}
	values := map[any]any{}
	if err := securecookie.DecodeMulti(customerCookie, value, &values, v.legacy.Codecs...); err == nil {
		out.Entity, _ = values["entity_id"].(string)
		out.SID, _ = values["sid"].(string)
		out.Client, _ = values["client_id"].(string)
	}
	return out
}

// Write sets the cookie of client vc.Client to vc, unless it says so
// already and was written today (a write slides its expiry; encoding it
// is a good part of a returning visitor's cost).
func (v *VisitorCookies) Write(w http.ResponseWriter, had, vc visitorCookie) error {
	vc.Day = time.Now().Unix() / 86400
	if had.Present && !had.legacy && had.Entity == vc.Entity && had.SID == vc.SID && had.Client == vc.Client && had.Day == vc.Day {
		return nil
	}
	name := cookieName(vc.Client)
	enc, err := v.codec.Encode(name, []byte(vc.Entity+"\n"+vc.SID+"\n"+vc.Client+"\n"+strconv.FormatInt(vc.Day, 10)))
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(name, enc, &v.options))
	if had.legacy {
		v.expire(w, customerCookie)
	}
	return nil
}

// Clear removes the visitor cookie had (a visitor's sign-out).
func (v *VisitorCookies) Clear(w http.ResponseWriter, had visitorCookie) {
	if had.legacy {
		v.expire(w, customerCookie)
		return
	}
	v.expire(w, cookieName(had.Client))
}

func (v *VisitorCookies) expire(w http.ResponseWriter, name string) {
	opts := v.options
	opts.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(name, "", &opts))
}
