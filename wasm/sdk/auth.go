package sdk

import "sync"

// Token is the SDK's token record. ExpiresAt is local: the moment the
// token was received plus the server's expires_in.
type Token struct {
	AccessToken string
	// TokenType is the scheme AccessToken goes under: TypeDPoP when the
	// server bound it to the browser's key, else TypeBearer (Scheme).
	TokenType string
	EntityID  string
	Scope     string
	// Identified: the site vouched for this visitor with an identity
	// token, so the same entity_id follows the site's user to any device.
	Identified bool
	ExpiresAt  Time
	ReceivedAt Time
}

// Valid reports whether the token can be used at now.
func (t Token) Valid(now Time) bool { return t.AccessToken != "" && now.Before(t.ExpiresAt) }

// Answer is a token answer of POST /customer/token, as the bridge reads it.
type Answer struct {
	AccessToken  string
	TokenType    string
	ExpiresIn    int
	EntityID     string
	Scope        string
	RefreshToken string
	Identified   bool
}

// Backend is the server's customer token endpoints.
type Backend interface {
	// RequestToken asks with a refresh token, or with none (the cookie
	// path).
	RequestToken(refreshToken string) (Answer, error)
	// Identify exchanges the site's identity token for the identified
	// visitor's token; merge is the anonymous visitor's refresh token (or
	// ""), whose open conversation then moves to the identified visitor.
	Identify(identityToken, merge string) (Answer, error)
	// Logout ends the visitor's session on the server (POST
	// /customer/logout) with whichever of the two is not empty: the
	// access token (a zero Token for none) goes under its scheme
	// (TokenType).
	Logout(access Token, refreshToken string) error
}

// Refresh is the stored refresh token and whether its session is an
// identified visitor's.
type Refresh struct {
	Token      string
	Identified bool
}

// RefreshStore keeps the customer refresh token (IndexedDB in browsers).
type RefreshStore interface {
	Load() (Refresh, error)
	// Save stores r; the zero Refresh forgets the stored one.
	Save(r Refresh) error
}

// Peers are the other tabs of the site (BroadcastChannel and Web Locks).
type Peers interface {
	// Publish tells the other tabs about a new token.
	Publish(t Token)
	// PublishLogout tells the other tabs that the visitor logged out, so
	// they drop their token too.
	PublishLogout()
	// Exclusive runs fn while no other tab runs its own Exclusive fn, so
	// one tab refreshes and the others wait and then see its result.
	Exclusive(fn func() error) error
}

// Options tune the SDK; zero values take the defaults, except Now and
// AfterFunc, which the host must give: the core has no clock of its own,
// because Go's time package alone adds a tenth to the wasm bundle.
type Options struct {
	RefreshMargin Duration // default 300 s
	MaxAttempts   int      // default 5
	BaseBackoff   Duration // default 500 ms
	MaxBackoff    Duration // default 30 s
	Now           func() Time
	Random        func() float64
	// AfterFunc runs f once after d unless stop is called first.
	AfterFunc func(d Duration, f func()) (stop func() bool)
	// Sleep waits d between retries; the default uses AfterFunc.
	Sleep func(d Duration)
	// Identity asks the site for an identity token of its signed-in user:
	// "" when nobody is signed in. Nil: the site has no identified
	// visitors. It is called only inside Peers.Exclusive, so the site's
	// endpoint sees one request at a time however many tabs are open.
	Identity func() (string, error)
	// Issuer is the server's issuer, its public base URL without
	// trailing slashes (init's serverUrl): a redirect is taken only when
	// its iss is exactly that (RFC 9207, issuer.go). Empty: none is.
	Issuer string
}

// Auth owns the visitor's token.
type Auth struct {
	opt     Options
	backend Backend
	store   RefreshStore
	peers   Peers
	flight  flight

	mu        sync.Mutex
	tok       Token
	refreshAt Time
	stopTimer func() bool
	listeners []func(Token)
	refreshes int
}

// New makes an Auth. peers may be nil (a single tab).
func New(b Backend, store RefreshStore, peers Peers, opt Options) *Auth {
	if opt.RefreshMargin == 0 {
		opt.RefreshMargin = 300 * Second
	}
	if opt.MaxAttempts == 0 {
		opt.MaxAttempts = 5
	}
	if opt.BaseBackoff == 0 {
		opt.BaseBackoff = 500 * Millisecond
	}
	if opt.MaxBackoff == 0 {
		opt.MaxBackoff = 30 * Second
	}
	if opt.Now == nil || opt.AfterFunc == nil {
		panic("sdk.New: Options.Now and Options.AfterFunc are required")
	}
	if opt.Random == nil {
		opt.Random = func() float64 { return 0.5 }
	}
	if opt.Sleep == nil {
		after := opt.AfterFunc
		opt.Sleep = func(d Duration) {
			done := make(chan struct{})
			after(d, func() { close(done) })
			<-done
		}
	}
	return &Auth{opt: opt, backend: b, store: store, peers: peers}
}

// Current returns the token held now, valid or not.
func (a *Auth) Current() Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tok
}

// HasToken reports whether a usable token is held, without the network.
func (a *Auth) HasToken() bool { return a.Current().Valid(a.opt.Now()) }

// Refreshes counts the tokens this tab obtained from the server.
func (a *Auth) Refreshes() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshes
}

// OnChange registers cb for every new token and every invalidation (an
// empty Token).
func (a *Auth) OnChange(cb func(Token)) {
	a.mu.Lock()
	a.listeners = append(a.listeners, cb)
	a.mu.Unlock()
}

func (a *Auth) due(now Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.tok.Valid(now) || !now.Before(a.refreshAt)
}

// GetToken returns a valid token, fetching one when none is held.
// Concurrent calls share one request.
func (a *Auth) GetToken() (Token, error) {
	if t := a.Current(); t.Valid(a.opt.Now()) {
		return t, nil
	}
	return a.flight.do(func() (Token, error) { return a.obtain(a.opt.MaxAttempts) })
}

// Check refreshes when the schedule says so. The bridge calls it from
// the timer and again on visibilitychange and online, because background
// tabs throttle timers and a laptop may sleep past a token's whole life.
func (a *Auth) Check() {
	if !a.due(a.opt.Now()) {
		return
	}
	a.flight.do(func() (Token, error) { return a.obtain(a.opt.MaxAttempts) })
}

// exclusive runs fn under the cross-tab lock, or alone in a single tab.
func (a *Auth) exclusive(fn func() error) error {
	if a.peers != nil {
		return a.peers.Exclusive(fn)
	}
	return fn()
}

// obtain gets a token under the cross-tab lock: if another tab refreshed
// while we waited for the lock, its token (received through Receive) is
// used and no request is made.
func (a *Auth) obtain(attempts int) (Token, error) {
	var out Token
	run := func() error {
		if now := a.opt.Now(); !a.due(now) {
			out = a.Current()
			return nil
		}
		t, err := a.request(attempts)
		if err != nil {
			return err
		}
		out = t
		return nil
	}
	err := a.exclusive(run)
	return out, err
}

// request asks the server, retrying what may succeed later with capped
// exponential backoff.
func (a *Auth) request(attempts int) (Token, error) {
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			a.opt.Sleep(Backoff(attempt-1, a.opt.BaseBackoff, a.opt.MaxBackoff, a.opt.Random()))
		}
		ans, err := a.ask()
		if err == nil {
			return a.accept(ans), nil
		}
		last = err
		if !Retryable(err) {
			return Token{}, err
		}
	}
	return Token{}, last
}

// ask makes one attempt. A stored refresh token is tried first: it works
// whether or not third-party cookies reach the server, and it keeps the
// same visitor where the cookie path would create a new one. On a site
// with identified visitors only an identified session's refresh token
// comes first: an anonymous visitor may have signed in on the site since,
// so the site is asked, and a signed-in user's token carries the
// anonymous refresh token along, to merge the open conversation.
func (a *Auth) ask() (Answer, error) {
	var stored Refresh
	if a.store != nil {
		stored, _ = a.store.Load()
	}
	if stored.Token != "" && (stored.Identified || a.opt.Identity == nil) {
		ans, err := a.backend.RequestToken(stored.Token)
		if !spent(err) {
			return ans, err
		}
		// Spent, revoked or bound to a lost key: start over as if nothing
		// were stored.
		stored = Refresh{}
	}
	if a.opt.Identity != nil {
		ans, err := a.identify(stored.Token)
		if err != errSignedOut {
			return ans, err
		}
	}
	if stored.Token != "" {
		ans, err := a.backend.RequestToken(stored.Token)
		if !spent(err) {
			return ans, err
		}
	}
	// The cookie may still know the visitor.
	return a.backend.RequestToken("")
}

// spent reports whether the server refused the refresh token itself:
// spent or revoked (invalid_token), or bound to a DPoP key this browser
// no longer has (invalid_dpop_proof: its storage was cleared, or a
// logout replaced the key). The cookie or the site's identity may still
// get a token. A proof refused for any other reason (serverUrl is not
// the server's issuer, a skewed clock) is refused there too, and that
// error reaches the app.
func spent(err error) bool { return IsCode(err, CodeInvalidToken) || IsCode(err, CodeInvalidDPoPProof) }

// errSignedOut: the site says nobody is signed in; go on anonymously.
var errSignedOut = errorf(CodeNoToken, "the site's identity() returned no token")

// identify asks the site for an identity token and exchanges it. An
// expired one (the site's clock, or a token fetched long before it was
// used) is fetched once more; more would loop on a site that always signs
// stale tokens.
func (a *Auth) identify(merge string) (Answer, error) {
	var err error
	for try := 0; try < 2; try++ {
		id, ierr := a.opt.Identity()
		if ierr != nil {
			return Answer{}, errorf(CodeIdentityUnavailable, "the site's identity() failed: "+ierr.Error())
		}
		if id == "" {
			return Answer{}, errSignedOut
		}
		// A merge token whose session is over is no error: the server
		// brings along only what it proves.
		var ans Answer
		ans, err = a.backend.Identify(id, merge)
		if !IsCode(err, CodeIdentityExpired) {
			return ans, err
		}
	}
	return Answer{}, err
}

func (a *Auth) accept(ans Answer) Token {
	now := a.opt.Now()
	// The token type is the scheme the token goes under: the app's
	// fetch and the bridge's logout send "<TokenType> <AccessToken>".
	t := Token{AccessToken: ans.AccessToken, TokenType: Scheme(ans.TokenType), EntityID: ans.EntityID, Scope: ans.Scope,
		Identified: ans.Identified, ReceivedAt: now, ExpiresAt: now.Add(Duration(ans.ExpiresIn) * Second)}
	if ans.RefreshToken != "" && a.store != nil {
		a.store.Save(Refresh{Token: ans.RefreshToken, Identified: ans.Identified})
	}
	a.mu.Lock()
	a.refreshes++
	a.mu.Unlock()
	a.set(t)
	if a.peers != nil {
		a.peers.Publish(t)
	}
	return t
}

// Receive adopts a token another tab obtained, when it outlives ours.
func (a *Auth) Receive(t Token) {
	if !t.Valid(a.opt.Now()) {
		return
	}
	a.mu.Lock()
	newer := t.ExpiresAt.After(a.tok.ExpiresAt)
	a.mu.Unlock()
	if newer {
		a.set(t)
	}
}

// ReceiveLogout drops the token after another tab logged out; the
// listeners see the empty Token, as after Invalidate.
func (a *Auth) ReceiveLogout() { a.Invalidate() }

// Adopt sets a token from a redirect.
func (a *Auth) Adopt(r Redirect) Token {
	now := a.opt.Now()
	// A redirect carries no DPoP proof: its token is a bearer token.
	t := Token{AccessToken: r.AccessToken, TokenType: TypeBearer, EntityID: r.EntityID, Scope: r.Scope, ReceivedAt: now, ExpiresAt: now.Add(Duration(r.ExpiresIn) * Second)}
	a.set(t)
	if a.peers != nil {
		a.peers.Publish(t)
	}
	return t
}

// set installs t, schedules its refresh and tells the listeners.
func (a *Auth) set(t Token) {
	life := t.ExpiresAt.Sub(t.ReceivedAt)
	a.mu.Lock()
	a.tok = t
	a.refreshAt = t.ReceivedAt.Add(RefreshDelay(life, a.opt.RefreshMargin, a.opt.Random()))
	if a.stopTimer != nil {
		a.stopTimer()
	}
	delay := a.refreshAt.Sub(a.opt.Now())
	a.stopTimer = a.opt.AfterFunc(max(delay, 0), func() { a.Check() })
	ls := append([]func(Token){}, a.listeners...)
	a.mu.Unlock()
	for _, cb := range ls {
		cb(t)
	}
}

// RefreshAt is when the held token is due for refresh.
func (a *Auth) RefreshAt() Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshAt
}

// Invalidate drops the token; the next GetToken fetches anew.
func (a *Auth) Invalidate() {
	a.mu.Lock()
	a.tok, a.refreshAt = Token{}, 0
	if a.stopTimer != nil {
		a.stopTimer()
		a.stopTimer = nil
	}
	ls := append([]func(Token){}, a.listeners...)
	a.mu.Unlock()
	for _, cb := range ls {
		cb(Token{})
	}
}

// HandleRedirect parses a redirect URL, checks its iss against the
// server's issuer and its state against expected, and adopts the token.
// Error answers become *Error with the server's code mapped to a stable
// one; an error answer of another server (or without iss) is
// CodeIssuerMismatch, since its code is not the server's word either.
func (a *Auth) HandleRedirect(url, expected string) (Token, error) {
	r, err := ParseRedirect(url)
	if err != nil {
		return Token{}, err
	}
	if err := checkIssuer(r.Issuer, a.opt.Issuer); err != nil {
		return Token{}, err
	}
	if !CheckState(expected, r.State) {
		return Token{}, errorf(CodeStateMismatch, "the redirect's state does not match the one this page sent; start the sign-in again")
	}
	if r.Error != "" {
		msg := r.ErrorDescription
		if msg == "" {
			msg = r.Error
		}
		switch r.Error {
		case "access_denied":
			return Token{}, errorf(CodeAccessDenied, msg)
		case "unauthorized_client", "invalid_client":
			return Token{}, errorf(CodeInvalidClient, msg)
		case "server_error", "temporarily_unavailable":
			return Token{}, errorf(CodeServer, msg)
		}
		return Token{}, errorf(CodeInvalidRequest, r.Error+": "+msg)
	}
	return a.Adopt(r), nil
}

// CheckSilently tries to get a token without any user-visible step (the
// cookie or a stored refresh token), once, without retries. The redirect
// flow uses it before sending the page away.
func (a *Auth) CheckSilently() error {
	if a.HasToken() {
		return nil
	}
	_, err := a.flight.do(func() (Token, error) { return a.obtain(1) })
	return err
}

// logoutAttempts bounds the retries of a logout the server did not
// answer: the page usually waits for logout() before it navigates.
const logoutAttempts = 2

// Logout ends the visitor's session on the server, forgets the stored
// refresh token and the held token, and tells the other tabs, which drop
// theirs. It runs under the cross-tab lock, so no tab is halfway through
// a refresh that would store a token of the ended session afterwards.
// The local state goes even when the server cannot be reached (the error
// is returned then): a visitor who asked to leave is not kept.
func (a *Auth) Logout() error {
	var out error
	lerr := a.exclusive(func() error {
		access := a.Current()
		if !access.Valid(a.opt.Now()) {
			access = Token{}
		}
		var stored Refresh
		if a.store != nil {
			stored, _ = a.store.Load()
		}
		for attempt := 1; attempt <= logoutAttempts; attempt++ {
			if attempt > 1 {
				a.opt.Sleep(Backoff(attempt-1, a.opt.BaseBackoff, a.opt.MaxBackoff, a.opt.Random()))
			}
			out = a.backend.Logout(access, stored.Token)
			if !Retryable(out) {
				break
			}
		}
		if IsCode(out, CodeInvalidToken) {
			// The session had already ended (another device, a revocation).
			out = nil
		}
		if a.store != nil {
			a.store.Save(Refresh{})
		}
		a.Invalidate()
		if a.peers != nil {
			a.peers.PublishLogout()
		}
		return nil
	})
	if out == nil {
		out = lerr
	}
	return out
}
