//go:build js && wasm

package jsbridge

import (
	"math/rand/v2"

	"github.com/hack-pad/safejs"

	"chatauth/wasm/sdk"
)

// Register installs globalThis.__chatauthNew(options, host), which
// chatauth.js calls to make the object behind init().
func Register() error {
	fn, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		return newAuth(arg(args, 0), arg(args, 1))
	})
	if err != nil {
		return err
	}
	return global.Set("__chatauthNew", fn)
}

func tokenObject(t sdk.Token) safejs.Value {
	if t.AccessToken == "" {
		return safejs.Null()
	}
	return newObject(map[string]any{"accessToken": t.AccessToken, "tokenType": t.TokenType, "expiresAt": epochMS(t.ExpiresAt),
		"entityId": t.EntityID, "scope": t.Scope, "identified": t.Identified})
}

// method adds a Go function as a method of obj; it stays for the page's
// life, as the object does.
func method(obj safejs.Value, name string, fn func(args []safejs.Value) any) {
	f, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any { return fn(args) })
	if err == nil {
		obj.Set(name, f)
	}
}

func newAuth(opts, host safejs.Value) any {
	server, clientID, flow := str(opts, "serverUrl"), str(opts, "clientId"), str(opts, "flow")
	redirectURI := str(opts, "redirectUri")
	margin := num(opts, "refreshMargin")
	if margin <= 0 {
		margin = 300
	}
	if flow == "" {
		flow = "cookie"
	}
	var a *sdk.Auth
	peers := newPeers(clientID, func(t sdk.Token) { a.Receive(t) }, func() { a.ReceiveLogout() })
	a = sdk.New(&fetchBackend{host: host, server: server, clientID: clientID, nonce: sdk.NewNonce(sessionKV{}, server)}, &hostStore{host: host, key: "refresh:" + server + ":" + clientID}, peers,
		sdk.Options{RefreshMargin: sdk.Duration(margin * 1000), Random: rand.Float64, Now: now, AfterFunc: afterFunc,
			Identity: siteIdentity(opts), Issuer: server})

	o := newObject(map[string]any{})
	method(o, "getToken", func([]safejs.Value) any {
		return NewPromise(func() (any, error) {
			if flow == "redirect" && !a.HasToken() {
				if err := a.CheckSilently(); err != nil {
					return nil, startRedirect(server, clientID, redirectURI)
				}
			}
			t, err := a.GetToken()
			if err != nil {
				return nil, err
			}
			return tokenObject(t), nil
		})
	})
	method(o, "hasToken", func([]safejs.Value) any { return a.HasToken() })
	method(o, "invalidate", func([]safejs.Value) any { a.Invalidate(); return nil })
	method(o, "onTokenChange", func(args []safejs.Value) any {
		cb := arg(args, 0)
		if cb.Type() != safejs.TypeFunction {
			return jsError(&sdk.Error{Code: sdk.CodeInvalidRequest, Message: "onTokenChange needs a function"})
		}
		a.OnChange(func(t sdk.Token) { cb.Invoke(tokenObject(t)) })
		return nil
	})
	method(o, "handleRedirect", func(args []safejs.Value) any {
		u := arg(args, 0)
		return NewPromise(func() (any, error) {
			url := ""
			if u.Type() == safejs.TypeString {
				url, _ = u.String()
			} else if loc, err := global.Get("location"); err == nil {
				url = str(loc, "href")
			}
			key := "chatauth_state:" + clientID
			expected := sessionKV{}.Get(key)
			t, err := a.HandleRedirect(url, expected)
			sessionRemove(key)
			stripFragment(url)
			if err != nil {
				return nil, err
			}
			return tokenObject(t), nil
		})
	})
	method(o, "logout", func([]safejs.Value) any {
		return NewPromise(func() (any, error) { return nil, a.Logout() })
	})
	method(o, "refreshCount", func([]safejs.Value) any { return a.Refreshes() })
	// resend(status, wwwAuthenticate, dpopNonce) is sdk.Resend for
	// chatauth.js's fetch and event stream: "nonce", "token" or "".
	method(o, "resend", func(args []safejs.Value) any {
		status, _ := arg(args, 0).Int()
		www, _ := arg(args, 1).String()
		nonce, _ := arg(args, 2).String()
		return sdk.Resend(status, "", www, nonce)
	})
	// error(status, code, message) is the Error, with its stable code,
	// for a refused request of chatauth.js (the event stream).
	method(o, "error", func(args []safejs.Value) any {
		status, _ := arg(args, 0).Int()
		code, _ := arg(args, 1).String()
		msg, _ := arg(args, 2).String()
		return jsError(sdk.ServerError(status, code, msg))
	})
	watchVisibility(a)
	return o
}

// siteIdentity is the site's identity option, which chatauth.js wraps
// into an async function resolving to the token or ""; nil when the site
// gave none.
func siteIdentity(opts safejs.Value) func() (string, error) {
	fn, err := opts.Get("identity")
	if err != nil || fn.Type() != safejs.TypeFunction {
		return nil
	}
	return func() (string, error) {
		p, err := fn.Invoke()
		if err == nil {
			p, err = Await(p)
		}
		if err != nil {
			return "", err
		}
		return p.String()
	}
}

// watchVisibility re-checks the schedule when the tab becomes visible or
// the browser comes back online: background tabs throttle timers, and a
// laptop may sleep through the refresh.
func watchVisibility(a *sdk.Auth) {
	check, err := safejs.FuncOf(func(safejs.Value, []safejs.Value) any {
		go a.Check()
		return nil
	})
	if err != nil {
		return
	}
	if doc, err := global.Get("document"); err == nil && !doc.IsUndefined() {
		doc.Call("addEventListener", "visibilitychange", check)
	}
	global.Call("addEventListener", "online", check)
}

func session() safejs.Value {
	s, err := global.Get("sessionStorage")
	if err != nil {
		return safejs.Undefined()
	}
	return s
}

// sessionKV is sessionStorage as an sdk.KV: it lasts the tab, reloads
// included. Where it is missing or throws (storage disabled), Get finds
// nothing and Set keeps nothing.
type sessionKV struct{}

func (sessionKV) Get(key string) string {
	s := session()
	if s.IsUndefined() {
		return ""
	}
	v, err := s.Call("getItem", key)
	if err != nil || v.Type() != safejs.TypeString {
		return ""
	}
	out, _ := v.String()
	return out
}

func (sessionKV) Set(key, value string) {
	if s := session(); !s.IsUndefined() {
		s.Call("setItem", key, value)
	}
}

func sessionRemove(key string) {
	if s := session(); !s.IsUndefined() {
		s.Call("removeItem", key)
	}
}

// stripFragment removes the token from the address bar and history.
func stripFragment(url string) {
	h, err := global.Get("history")
	if err != nil || h.IsUndefined() {
		return
	}
	loc, err := global.Get("location")
	if err != nil || str(loc, "href") != url {
		return
	}
	h.Call("replaceState", safejs.Null(), "", sdk.StripFragment(url))
}

// startRedirect sends the page to /customer/authorize with a new state
// kept in sessionStorage for handleRedirect to check.
func startRedirect(server, clientID, redirectURI string) error {
	state := sdk.NewState(randomBytes)
	sessionKV{}.Set("chatauth_state:"+clientID, state)
	u := server + "/customer/authorize?response_type=token&client_id=" + queryEscape(clientID) + "&state=" + state
	if redirectURI != "" {
		u += "&redirect_uri=" + queryEscape(redirectURI)
	}
	loc, err := global.Get("location")
	if err == nil {
		loc.Call("assign", u)
	}
	return &sdk.Error{Code: sdk.CodeNoToken, Message: "redirecting to sign the visitor in; call handleRedirect() when the page loads again"}
}

func queryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b = append(b, c)
		} else {
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// randomBytes fills b from the browser's CSPRNG (crypto.getRandomValues):
// Go's crypto/rand would add its whole FIPS module to the bundle.
func randomBytes(b []byte) {
	c, err := global.Get("crypto")
	if err != nil {
		panic("chatauth: no crypto.getRandomValues in this browser")
	}
	u8, _ := global.Get("Uint8Array")
	arr, err := u8.New(len(b))
	if err == nil {
		_, err = c.Call("getRandomValues", arr)
	}
	if err == nil {
		_, err = safejs.CopyBytesToGo(b, arr)
	}
	if err != nil {
		panic("chatauth: crypto.getRandomValues failed: " + err.Error())
	}
}
