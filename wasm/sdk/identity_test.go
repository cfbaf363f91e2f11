package sdk

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// siteIdentity is the site's identity(): it hands out the tokens in
// order ("" is "nobody signed in") and counts calls, and how many ran at
// once.
type siteIdentity struct {
	mu             sync.Mutex
	tokens         []string
	err            error
	calls, running int
	maxRunning     int
	wait           chan struct{} // when set, each call blocks until it is closed
	fallback       string
}

func (s *siteIdentity) identity() (string, error) {
	s.mu.Lock()
	s.calls++
	s.running++
	s.maxRunning = max(s.maxRunning, s.running)
	wait := s.wait
	s.mu.Unlock()
	if wait != nil {
		<-wait
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	if s.err != nil {
		return "", s.err
	}
	if len(s.tokens) == 0 {
		return s.fallback, nil
	}
	t := s.tokens[0]
	s.tokens = s.tokens[1:]
	return t, nil
}

func (s *siteIdentity) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func newIdentified(srv *fakeServer, clk *fakeClock, store RefreshStore, peers Peers, site *siteIdentity) *Auth {
	return New(srv, store, peers, Options{RefreshMargin: 300 * Second, Now: clk.Now, AfterFunc: clk.AfterFunc,
		Random: func() float64 { return 0 }, Sleep: func(Duration) {}, Identity: site.identity})
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("err %v, want code %s", err, code)
	}
}

// Which request the SDK makes for each combination of what is stored and
// what the site's identity() says.
func TestIdentityPaths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		stored     Refresh
		identity   []string // nil: the site has no identity()
		anonErr    error
		idErr      []error
		want       string // the server's log
		wantErr    string
		idCalls    int
		identified bool // the token is identified
	}{
		{name: "signed in, nothing stored", identity: []string{"id1"}, want: "identify:id1,", idCalls: 1, identified: true},
		{name: "signed in, anonymous session stored: merged", stored: Refresh{Token: "anon"}, identity: []string{"id1"},
			want: "identify:id1,anon", idCalls: 1, identified: true},
		{name: "identified session stored: refreshed, no identity()", stored: Refresh{Token: "ccr_0", Identified: true}, identity: []string{"id1"},
			want: "refresh:ccr_0", idCalls: 0, identified: true},
		{name: "not signed in, anonymous session stored", stored: Refresh{Token: "anon"}, identity: []string{""},
			want: "refresh:anon", idCalls: 1},
		{name: "not signed in, nothing stored: the cookie", identity: []string{""}, want: "cookie", idCalls: 1},
		{name: "no identity(): today's path", stored: Refresh{Token: "anon"}, want: "refresh:anon"},
		{name: "expired identity token: asked once more", identity: []string{"old", "new"},
			idErr: []error{errorf(CodeIdentityExpired, "exp passed")}, want: "identify:old, identify:new,", idCalls: 2, identified: true},
		{name: "expired twice: the error, no third ask", identity: []string{"old", "older"},
			idErr: []error{errorf(CodeIdentityExpired, "exp passed"), errorf(CodeIdentityExpired, "exp passed")},
			want:  "identify:old, identify:older,", wantErr: CodeIdentityExpired, idCalls: 2},
		{name: "refused identity token: surfaced, not retried", identity: []string{"forged"},
			idErr: []error{errorf(CodeInvalidIdentity, "signature does not match")}, want: "identify:forged,", wantErr: CodeInvalidIdentity, idCalls: 1},
		{name: "identity required: one cookie request, no loop", identity: []string{""}, anonErr: errorf(CodeIdentityRequired, "sign in"),
			want: "cookie", wantErr: CodeIdentityRequired, idCalls: 1},
		{name: "identity required, anonymous session stored: no loop", stored: Refresh{Token: "anon"}, identity: []string{""},
			anonErr: errorf(CodeIdentityRequired, "sign in"), want: "refresh:anon", wantErr: CodeIdentityRequired, idCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeServer{life: 600, anonErr: tt.anonErr, identifyErr: tt.idErr, identified: map[string]bool{}}
			if tt.stored.Identified {
				srv.identified[tt.stored.Token] = true
			}
			clk := &fakeClock{now: Time(1e12)}
			store := &memStore{v: tt.stored}
			var a *Auth
			site := &siteIdentity{tokens: tt.identity}
			if tt.identity != nil {
				a = newIdentified(srv, clk, store, nil, site)
			} else {
				a = newAuth(srv, clk, store, nil)
			}
			tok, err := a.GetToken()
			if got := srv.asked(); got != tt.want {
				t.Fatalf("asked %q, want %q", got, tt.want)
			}
			if site.count() != tt.idCalls {
				t.Fatalf("identity() called %d times, want %d", site.count(), tt.idCalls)
			}
			if tt.wantErr != "" {
				wantCode(t, err, tt.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Identified != tt.identified {
				t.Fatalf("identified %v, want %v", tok.Identified, tt.identified)
			}
			if st, _ := store.Load(); st.Token != srv.lastRT || st.Identified != tt.identified {
				t.Fatalf("stored %+v after %s", st, srv.lastRT)
			}
		})
	}
}

func TestIdentityUnavailable(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	site := &siteIdentity{err: errors.New("TypeError: Failed to fetch")}
	a := newIdentified(srv, &fakeClock{now: Time(1e12)}, &memStore{}, nil, site)
	_, err := a.GetToken()
	wantCode(t, err, CodeIdentityUnavailable)
	if srv.asked() != "" || site.count() != 1 {
		t.Fatalf("asked %q after identity() threw, %d calls", srv.asked(), site.count())
	}
}

// An identified session that ended (revoked, expired) sends the SDK back
// to the site for a new identity token.
func TestIdentifiedSessionEndedAsksTheSiteAgain(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600, badRT: true}
	site := &siteIdentity{tokens: []string{"id1"}}
	a := newIdentified(srv, &fakeClock{now: Time(1e12)}, &memStore{v: Refresh{Token: "dead", Identified: true}}, nil, site)
	tok, err := a.GetToken()
	if err != nil || !tok.Identified {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := srv.asked(); got != "refresh:dead identify:id1," {
		t.Fatalf("asked %q", got)
	}
}

// Three tabs needing a token at once: the site's identity endpoint is
// asked once, never concurrently; the others get the token through the
// channel.
func TestIdentityOnceAcrossTabs(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12)}
	store := &memStore{}
	site := &siteIdentity{fallback: "id", wait: make(chan struct{})}
	ts := &tabs{}
	for range 3 {
		var a *Auth
		a = newIdentified(srv, clk, store, tabPeer{ts, func() *Auth { return a }}, site)
		ts.all = append(ts.all, a)
	}
	var wg sync.WaitGroup
	toks := make([]Token, len(ts.all))
	for i, a := range ts.all {
		wg.Add(1)
		go func() { defer wg.Done(); toks[i], _ = a.GetToken() }()
	}
	// Hold the first identity() open while the other tabs contend.
	for site.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(site.wait)
	wg.Wait()
	if site.maxRunning != 1 || site.count() != 1 {
		t.Fatalf("identity() ran %d times, %d at once", site.count(), site.maxRunning)
	}
	for i, tok := range toks {
		if !tok.Identified || tok.AccessToken != toks[0].AccessToken {
			t.Fatalf("tab %d: %+v", i, tok)
		}
	}
}

// Logout ends the session on the server with the held tokens, forgets
// both here, and the other tabs drop theirs; the next token starts over.
func TestLogout(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12)}
	store := &memStore{}
	site := &siteIdentity{tokens: []string{"id1", "id2"}}
	ts := &tabs{}
	var seen [2][]Token
	for i := range 2 {
		var a *Auth
		a = newIdentified(srv, clk, store, tabPeer{ts, func() *Auth { return a }}, site)
		a.OnChange(func(t Token) { seen[i] = append(seen[i], t) })
		ts.all = append(ts.all, a)
	}
	tab1, tab2 := ts.all[0], ts.all[1]
	tok, err := tab1.GetToken()
	if err != nil || !tab2.HasToken() {
		t.Fatalf("first token: %v; tab 2 has it: %v", err, tab2.HasToken())
	}
	rt := srv.lastRT
	if err := tab1.Logout(); err != nil {
		t.Fatal(err)
	}
	if got := srv.asked(); got != "identify:id1, logout:Bearer "+tok.AccessToken+","+rt {
		t.Fatalf("asked %q", got)
	}
	if st, _ := store.Load(); st != (Refresh{}) {
		t.Fatalf("refresh token kept: %+v", st)
	}
	for i, a := range ts.all {
		if a.HasToken() {
			t.Fatalf("tab %d still has a token", i+1)
		}
		if last := seen[i][len(seen[i])-1]; last.AccessToken != "" {
			t.Fatalf("tab %d: no empty token after logout: %+v", i+1, seen[i])
		}
	}
	// Starting over asks the site again.
	tok2, err := tab2.GetToken()
	if err != nil || site.count() != 2 || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("after logout: %+v %v, %d identity() calls", tok2, err, site.count())
	}
}

func TestLogoutFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		errs    []error
		wantErr string
		calls   int
	}{
		{"already ended on the server", []error{errorf(CodeInvalidToken, "revoked")}, "", 1},
		{"one network failure, then answered", []error{errorf(CodeNetwork, "offline")}, "", 2},
		{"offline: local state dropped anyway", []error{errorf(CodeNetwork, "offline"), errorf(CodeNetwork, "offline")}, CodeNetwork, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &fakeServer{life: 600, logoutErr: tt.errs}
			store := &memStore{}
			a := newAuth(srv, &fakeClock{now: Time(1e12)}, store, nil)
			if _, err := a.GetToken(); err != nil {
				t.Fatal(err)
			}
			err := a.Logout()
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				wantCode(t, err, tt.wantErr)
			}
			srv.mu.Lock()
			n := 0
			for _, l := range srv.log {
				if len(l) > 7 && l[:7] == "logout:" {
					n++
				}
			}
			srv.mu.Unlock()
			if n != tt.calls {
				t.Fatalf("%d logout requests, want %d", n, tt.calls)
			}
			if st, _ := store.Load(); a.HasToken() || st.Token != "" {
				t.Fatalf("local state kept: token %v, stored %+v", a.HasToken(), st)
			}
		})
	}
}

// An expired access token is not sent (the server would refuse the
// request for it); the refresh token alone names the session.
func TestLogoutWithExpiredAccessToken(t *testing.T) {
	t.Parallel()
	srv := &fakeServer{life: 600}
	clk := &fakeClock{now: Time(1e12)}
	a := newAuth(srv, clk, &memStore{}, nil)
	a.GetToken()
	clk.advance(700*Second, false)
	if err := a.Logout(); err != nil {
		t.Fatal(err)
	}
	if got := srv.asked(); got != "cookie logout:,"+srv.lastRT {
		t.Fatalf("asked %q", got)
	}
}

func TestServerErrorCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status     int
		code, want string
	}{
		{403, "identity_required", CodeIdentityRequired},
		{401, "invalid_identity_token", CodeInvalidIdentity},
		{401, "identity_token_expired", CodeIdentityExpired},
		{401, "invalid_token", CodeInvalidToken},
		{403, "forbidden", CodeInvalidClient},
		{400, "invalid_client", CodeInvalidClient},
		{429, "too_many_requests", CodeRateLimited},
		{503, "service_unavailable", CodeServer},
		{400, "invalid_request", CodeInvalidRequest},
	}
	for _, tt := range tests {
		if got := ServerError(tt.status, tt.code, "m").Code; got != tt.want {
			t.Errorf("%d %s: %s, want %s", tt.status, tt.code, got, tt.want)
		}
	}
	for _, code := range []string{CodeIdentityRequired, CodeInvalidIdentity, CodeIdentityExpired, CodeIdentityUnavailable} {
		if Retryable(errorf(code, "m")) {
			t.Errorf("%s is retried", code)
		}
	}
}
