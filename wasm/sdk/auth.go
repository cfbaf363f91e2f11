package sdk

import "sync"

// Token is the SDK's token record. ExpiresAt is local: the moment the
// token was received plus the server's expires_in.
type Token struct {
	AccessToken string
	TokenType   string
	EntityID    string
	Scope       string
	ExpiresAt   Time
	ReceivedAt  Time
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
}

// Backend asks the server for a token: with a refresh token, or with
// none (the cookie path).
type Backend interface {
	RequestToken(refreshToken string) (Answer, error)
}

// RefreshStore keeps the customer refresh token (IndexedDB in browsers).
type RefreshStore interface {
	Load() (string, error)
	Save(token string) error
}

// Peers are the other tabs of the site (BroadcastChannel and Web Locks).
type Peers interface {
	// Publish tells the other tabs about a new token.
	Publish(t Token)
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
	var err error
	if a.peers != nil {
		err = a.peers.Exclusive(run)
	} else {
		err = run()
	}
	return out, err
}

// request asks the server, retrying what may succeed later with capped
// exponential backoff. A stored refresh token is tried first: it works
// whether or not third-party cookies reach the server, and it keeps the
// same visitor where the cookie path would create a new one.
func (a *Auth) request(attempts int) (Token, error) {
	var last error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			a.opt.Sleep(Backoff(attempt-1, a.opt.BaseBackoff, a.opt.MaxBackoff, a.opt.Random()))
		}
		refresh := ""
		if a.store != nil {
			refresh, _ = a.store.Load()
		}
		ans, err := a.backend.RequestToken(refresh)
		if err != nil && refresh != "" {
			if e, ok := err.(*Error); ok && e.Code == CodeInvalidToken {
				// The refresh token is spent or revoked; the cookie may
				// still know the visitor.
				ans, err = a.backend.RequestToken("")
			}
		}
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

func (a *Auth) accept(ans Answer) Token {
	now := a.opt.Now()
	t := Token{AccessToken: ans.AccessToken, TokenType: ans.TokenType, EntityID: ans.EntityID, Scope: ans.Scope,
		ReceivedAt: now, ExpiresAt: now.Add(Duration(ans.ExpiresIn) * Second)}
	if t.TokenType == "" {
		t.TokenType = "Bearer"
	}
	if ans.RefreshToken != "" && a.store != nil {
		a.store.Save(ans.RefreshToken)
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

// Adopt sets a token from a redirect.
func (a *Auth) Adopt(r Redirect) Token {
	now := a.opt.Now()
	t := Token{AccessToken: r.AccessToken, TokenType: "Bearer", EntityID: r.EntityID, Scope: r.Scope, ReceivedAt: now, ExpiresAt: now.Add(Duration(r.ExpiresIn) * Second)}
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

// HandleRedirect parses a redirect URL, checks its state against
// expected, and adopts the token. Error answers become *Error with the
// server's code mapped to a stable one.
func (a *Auth) HandleRedirect(url, expected string) (Token, error) {
	r, err := ParseRedirect(url)
	if err != nil {
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
