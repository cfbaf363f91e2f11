package sdk

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestParseRedirect(t *testing.T) {
	t.Parallel()
	ok := "https://shop.example.com/chat#access_token=eyJ.a.b&token_type=Bearer&expires_in=86400&entity_id=e1&state=s1"
	tests := []struct {
		name, url string
		code      string // "" for success
		check     func(Redirect) bool
	}{
		{"token", ok, "", func(r Redirect) bool {
			return r.AccessToken == "eyJ.a.b" && r.ExpiresIn == 86400 && r.EntityID == "e1" && r.State == "s1"
		}},
		{"bare fragment", "#access_token=x&token_type=bearer&expires_in=5", "", nil},
		{"scope with +", "#access_token=x&token_type=Bearer&expires_in=5&scope=agent+read", "", func(r Redirect) bool { return r.Scope == "agent read" }},
		{"scope with %20", "#access_token=x&token_type=Bearer&expires_in=5&scope=agent%20read", "", func(r Redirect) bool { return r.Scope == "agent read" }},
		{"literal plus", "#access_token=x&token_type=Bearer&expires_in=5&state=a%2Bb", "", func(r Redirect) bool { return r.State == "a+b" }},
		{"error", "#error=access_denied&error_description=the+user+denied&state=s", "", func(r Redirect) bool { return r.Error == "access_denied" && r.ErrorDescription == "the user denied" }},
		{"iss", ok + "&iss=https%3A%2F%2Fchat.example.com", "", func(r Redirect) bool { return r.Issuer == "https://chat.example.com" }},
		{"iss of an error", "#error=access_denied&iss=https://chat.example.com&state=s", "", func(r Redirect) bool { return r.Issuer == "https://chat.example.com" }},
		{"repeated iss", ok + "&iss=https://chat.example.com&iss=https://evil.example.com", CodeInvalidRequest, nil},
		{"unknown fields ignored", "#access_token=x&token_type=Bearer&expires_in=5&foo=bar", "", nil},
		{"both token and error", "#access_token=x&token_type=Bearer&expires_in=5&error=access_denied", CodeInvalidRequest, nil},
		{"double #", "https://x/#access_token=x#token_type=Bearer", CodeInvalidRequest, nil},
		{"repeated field", "#access_token=x&access_token=y&token_type=Bearer&expires_in=5", CodeInvalidRequest, nil},
		{"repeated expires_in", "#access_token=x&token_type=Bearer&expires_in=5&expires_in=6", CodeInvalidRequest, nil},
		{"missing token_type", "#access_token=x&expires_in=5", CodeInvalidRequest, nil},
		{"missing expires_in", "#access_token=x&token_type=Bearer", CodeInvalidRequest, nil},
		{"bad expires_in", "#access_token=x&token_type=Bearer&expires_in=-3", CodeInvalidRequest, nil},
		{"bad percent", "#access_token=%zz&token_type=Bearer&expires_in=5", CodeInvalidRequest, nil},
		{"truncated percent", "#access_token=x%2", CodeInvalidRequest, nil},
		{"no fragment", "https://shop.example.com/chat", CodeNoToken, nil},
		{"empty fragment", "https://shop.example.com/chat#", CodeNoToken, nil},
		{"neither", "#state=s", CodeNoToken, nil},
		{"huge", "#access_token=" + strings.Repeat("a", 20000), CodeInvalidRequest, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseRedirect(tt.url)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if tt.check != nil && !tt.check(r) {
					t.Fatalf("parsed %+v", r)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code {
				t.Fatalf("err %v, want code %s", err, tt.code)
			}
		})
	}
	if StripFragment(ok) != "https://shop.example.com/chat" {
		t.Fatal("StripFragment")
	}
}

// FuzzParseRedirect: never panics; a success always has a token or an
// error, never both, and a bounded size.
func FuzzParseRedirect(f *testing.F) {
	for _, s := range []string{
		"#access_token=eyJ.a.b&token_type=Bearer&expires_in=86400&entity_id=e1&state=s1",
		"#error=access_denied&error_description=no&state=s",
		"https://x/#a=b#c=d", "#%", "#+&&&=", "#access_token=%41&token_type=Bearer&expires_in=1",
		"#access_token=x&token_type=Bearer&expires_in=1&state=s&iss=https%3A%2F%2Fchat.example.com",
		"#error=access_denied&state=s&iss=https://chat.example.com&iss=https://evil.example.com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := ParseRedirect(in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if (r.AccessToken == "") == (r.Error == "") {
			t.Fatalf("token xor error violated: %+v", r)
		}
		if len(r.AccessToken) > len(in) {
			t.Fatal("decoded longer than input")
		}
		// The iss check takes exactly the issuer, whatever the fragment held.
		if err := checkIssuer(r.Issuer, testIssuer); (err == nil) != (r.Issuer == testIssuer) || (err != nil && !IsCode(err, CodeIssuerMismatch)) {
			t.Fatalf("checkIssuer(%q) = %v", r.Issuer, err)
		}
	})
}

func TestState(t *testing.T) {
	t.Parallel()
	n := byte(0)
	s := NewState(func(b []byte) {
		for i := range b {
			b[i] = n
			n += 37
		}
	})
	if len(s) != 24 || !CheckState(s, s) || CheckState(s, s+"x") || CheckState("", "") {
		t.Fatalf("state %q", s)
	}
}

func TestRefreshDelay(t *testing.T) {
	t.Parallel()
	day := 24 * Hour
	if d := RefreshDelay(day, 300*Second, 0); d != day-300*Second {
		t.Fatalf("plain: %v", d)
	}
	// Short tokens: the margin is clamped to half the lifetime.
	if d := RefreshDelay(6*Second, 300*Second, 0); d != 3*Second {
		t.Fatalf("clamped: %v", d)
	}
	// Jitter moves the refresh earlier by at most 10% of the margin.
	d := RefreshDelay(day, 300*Second, 0.999)
	if d >= day-300*Second || d < day-330*Second {
		t.Fatalf("jitter: %v", d)
	}
	if b := Backoff(10, 500*Millisecond, 30*Second, 0.999); b > 30*Second {
		t.Fatalf("backoff not capped: %v", b)
	}
	if b := Backoff(1, 500*Millisecond, 30*Second, 0); b != 100*Millisecond {
		t.Fatalf("backoff floor: %v", b)
	}
}

// fakeClock drives time and timers by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) AfterFunc(d Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); t.stopped = true; return true }
}

// advance moves time by d, firing due timers in order; fire=false
// models a sleeping laptop or a throttled background tab.
func (c *fakeClock) advance(d Duration, fire bool) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	rest := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) && fire {
			due = append(due, t)
		} else if !t.stopped {
			rest = append(rest, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// fakeServer issues tokens of a fixed life and counts requests.
type fakeServer struct {
	mu       sync.Mutex
	calls    int
	failures int // fail this many requests with a network error first
	life     int
	refresh  int
	lastRT   string
	withRT   int
	badRT    bool
	rtErr    error  // the answer to the next refresh-token request
	typ      string // the token_type answered; "" for Bearer
	// Identified visitors.
	identified  map[string]bool // refresh tokens of identified sessions
	identifyErr []error         // answers of the next Identify calls, then success
	anonErr     error           // answer to every anonymous request (identity_required)
	logoutErr   []error         // answers of the next Logout calls, then success
	log         []string        // what was asked, in order
}

func (s *fakeServer) issue(entity string, identified bool) Answer {
	s.refresh++
	s.lastRT = "ccr_" + itoa(s.refresh)
	if identified {
		if s.identified == nil {
			s.identified = map[string]bool{}
		}
		s.identified[s.lastRT] = true
	}
	typ := s.typ
	if typ == "" {
		typ = "Bearer"
	}
	return Answer{AccessToken: "tok" + itoa(s.refresh), TokenType: typ, ExpiresIn: s.life, EntityID: entity, RefreshToken: s.lastRT, Identified: identified}
}

func (s *fakeServer) RequestToken(rt string) (Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if rt == "" {
		s.log = append(s.log, "cookie")
	} else {
		s.log = append(s.log, "refresh:"+rt)
	}
	if s.failures > 0 {
		s.failures--
		return Answer{}, errorf(CodeNetwork, "offline")
	}
	if rt != "" {
		s.withRT++
		if s.badRT {
			s.badRT = false
			return Answer{}, errorf(CodeInvalidToken, "refresh token revoked")
		}
		if err := s.rtErr; err != nil {
			s.rtErr = nil
			return Answer{}, err
		}
	}
	if s.identified[rt] {
		return s.issue("user-42", true), nil
	}
	if s.anonErr != nil {
		return Answer{}, s.anonErr
	}
	return s.issue("e1", false), nil
}

func (s *fakeServer) Identify(id, merge string) (Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.log = append(s.log, "identify:"+id+","+merge)
	if len(s.identifyErr) > 0 {
		err := s.identifyErr[0]
		s.identifyErr = s.identifyErr[1:]
		if err != nil {
			return Answer{}, err
		}
	}
	return s.issue("user-42", true), nil
}

func (s *fakeServer) Logout(access Token, rt string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	scheme := ""
	if access.AccessToken != "" {
		scheme = access.TokenType + " "
	}
	s.log = append(s.log, "logout:"+scheme+access.AccessToken+","+rt)
	if len(s.logoutErr) > 0 {
		err := s.logoutErr[0]
		s.logoutErr = s.logoutErr[1:]
		return err
	}
	delete(s.identified, rt)
	return nil
}

func (s *fakeServer) asked() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.log, " ")
}

type memStore struct {
	mu sync.Mutex
	v  Refresh
}

func (m *memStore) Load() (Refresh, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v, nil
}
func (m *memStore) Save(v Refresh) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.v = v
	return nil
}

// testIssuer is the server the tests' Auth is configured with.
const testIssuer = "https://chat.example.com"

func newAuth(srv *fakeServer, clk *fakeClock, store RefreshStore, peers Peers) *Auth {
	return New(srv, store, peers, Options{RefreshMargin: 300 * Second, Now: clk.Now, AfterFunc: clk.AfterFunc,
		Random: func() float64 { return 0 }, Sleep: func(Duration) {}, Issuer: testIssuer})
}

func TestSingleFlight(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 3600}
	clk := &fakeClock{now: Time(1e12)}
	a := newAuth(srv, clk, &memStore{}, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); a.GetToken() }()
	}
	wg.Wait()
	if srv.calls != 1 {
		t.Fatalf("%d requests for 20 concurrent getToken", srv.calls)
	}
}

func TestRefreshAcrossExpiryBoundary(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 3600}
	clk := &fakeClock{now: Time(1e12)}
	a := newAuth(srv, clk, &memStore{}, nil)
	changes := 0
	a.OnChange(func(Token) { changes++ })
	tok, _ := a.GetToken()
	clk.advance(3600*Second-300*Second-Millisecond, true)
	if srv.refresh != 1 {
		t.Fatal("refreshed before the margin")
	}
	clk.advance(Millisecond, true)
	if srv.refresh != 2 || a.Current().AccessToken == tok.AccessToken || changes != 2 {
		t.Fatalf("refresh at the margin: %d refreshes, %d changes", srv.refresh, changes)
	}
	// Always a valid token across the old token's expiry.
	clk.advance(301*Second, true)
	if !a.HasToken() {
		t.Fatal("no token after the old one expired")
	}
	// The refresh token was used (and rotated) for the refreshes.
	if srv.withRT < 1 {
		t.Fatal("refresh token not used")
	}
}

// A skewed wall clock does not matter: expiry comes from expires_in on
// the local clock, never from the JWT's exp.
func TestClockSkewIsIrrelevant(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12).Add(-48 * Hour)} // two days behind the server
	a := newAuth(srv, clk, &memStore{}, nil)
	tok, _ := a.GetToken()
	if got := tok.ExpiresAt.Sub(clk.Now()); got != 600*Second {
		t.Fatalf("expires in %v", got)
	}
	if a.RefreshAt().Sub(clk.Now()) != 300*Second {
		t.Fatalf("refresh at %v", a.RefreshAt().Sub(clk.Now()))
	}
}

// A laptop that sleeps past the token's whole life: the timer never fired;
// the visibility check refreshes at once.
func TestSleepLongerThanLifetime(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12)}
	a := newAuth(srv, clk, &memStore{}, nil)
	a.GetToken()
	clk.advance(3*Hour, false)
	if a.HasToken() {
		t.Fatal("an expired token counts as held")
	}
	a.Check()
	if !a.HasToken() || srv.refresh != 2 {
		t.Fatalf("after wake: has=%v refreshes=%d", a.HasToken(), srv.refresh)
	}
}

func TestRetryWithBackoffAndFallback(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600, failures: 3}
	clk := &fakeClock{now: Time(1e12)}
	var waits []Duration
	a := New(srv, &memStore{}, nil, Options{Now: clk.Now, AfterFunc: clk.AfterFunc, Random: func() float64 { return 0.99 },
		Sleep: func(d Duration) { waits = append(waits, d) }})
	if _, err := a.GetToken(); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 3 || !(waits[0] < waits[1] && waits[1] < waits[2]) {
		t.Fatalf("backoff waits %v", waits)
	}
	// Too many failures: the error reaches the caller with its code.
	srv.failures = 100
	a.Invalidate()
	_, err := a.GetToken()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeNetwork {
		t.Fatalf("err %v", err)
	}
	// A revoked refresh token falls back to the cookie path.
	srv.failures, srv.badRT = 0, true
	if _, err := a.GetToken(); err != nil {
		t.Fatalf("fallback: %v", err)
	}
}

// tabs share one lock and one broadcast channel.
type tabs struct {
	mu   sync.Mutex
	all  []*Auth
	lock sync.Mutex
}

type tabPeer struct {
	t    *tabs
	self func() *Auth
}

func (p tabPeer) Publish(tok Token) {
	p.t.mu.Lock()
	others := append([]*Auth{}, p.t.all...)
	p.t.mu.Unlock()
	for _, a := range others {
		if a != p.self() {
			a.Receive(tok)
		}
	}
}

func (p tabPeer) PublishLogout() {
	p.t.mu.Lock()
	others := append([]*Auth{}, p.t.all...)
	p.t.mu.Unlock()
	for _, a := range others {
		if a != p.self() {
			a.ReceiveLogout()
		}
	}
}

func (p tabPeer) Exclusive(fn func() error) error {
	p.t.lock.Lock()
	defer p.t.lock.Unlock()
	return fn()
}

// Three tabs make about one refresh per token lifetime, not three.
func TestTabsShareOneRefresh(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12)}
	store := &memStore{}
	ts := &tabs{}
	var jit atomic.Int64
	for range 3 {
		var a *Auth
		a = New(srv, store, tabPeer{ts, func() *Auth { return a }}, Options{RefreshMargin: 300 * Second, Now: clk.Now, AfterFunc: clk.AfterFunc,
			Random: func() float64 { return float64(jit.Add(1)%10) / 10 }, Sleep: func(Duration) {}})
		ts.all = append(ts.all, a)
	}
	for _, a := range ts.all {
		a.GetToken()
	}
	for range 10 * 60 {
		clk.advance(10*Second, true)
	}
	// 6000 s at 600 s per token, refreshed every ~300 s: about 20.
	if srv.refresh > 24 {
		t.Fatalf("%d refreshes for 3 tabs over 20 half-lives", srv.refresh)
	}
	for i, a := range ts.all {
		if !a.HasToken() {
			t.Fatalf("tab %d has no token", i)
		}
	}
}

func TestHandleRedirect(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{now: Time(1e12)}
	a := newAuth(&fakeServer{life: 60}, clk, nil, nil)
	const iss = "&iss=https%3A%2F%2Fchat.example.com"
	if _, err := a.HandleRedirect("#access_token=x&token_type=Bearer&expires_in=60&state=other"+iss, "mine"); err == nil || err.(*Error).Code != CodeStateMismatch {
		t.Fatalf("state mismatch: %v", err)
	}
	if _, err := a.HandleRedirect("#error=access_denied&state=mine"+iss, "mine"); err == nil || err.(*Error).Code != CodeAccessDenied {
		t.Fatalf("denied: %v", err)
	}
	tok, err := a.HandleRedirect("#access_token=x&token_type=Bearer&expires_in=60&entity_id=e&state=mine"+iss, "mine")
	if err != nil || tok.EntityID != "e" || !a.HasToken() {
		t.Fatalf("%+v %v", tok, err)
	}
}
