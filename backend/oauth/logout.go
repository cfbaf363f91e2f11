package oauth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"chatauth/backend/domain"
	"chatauth/backend/token"
)

// Logout (docs/oidc.md): OpenID Connect RP-Initiated Logout 1.0 ends the
// authorize page's browser session and the grants made in it; Back-Channel
// Logout 1.0 then tells each client that registered a
// backchannel_logout_uri, with a signed logout token.

// EndBrowserSession ends the browser sign-in sid. The cascade then calls
// SessionsEnded, which ends the grants made in it with openid and tells
// their clients.
func (p *Provider) EndBrowserSession(ctx context.Context, sid string) error {
	return p.Cascade.SignOut(ctx, sid)
}

// SessionsEnded is the revocation cascade's hook
// (credential.Cascade.SessionsEnded), and the one place a browser
// sign-in's end reaches OpenID Connect, whatever ended it (end_session,
// sign-out everywhere, a password or role change, the user's deletion):
// of the sessions ids, the browser sign-ins' grants made with openid end
// too (their access and refresh tokens: docs/security.md, I2 and I6), and
// each client with a backchannel_logout_uri is told once per sign-in, in
// the background. Ids of other sessions match no grant.
func (p *Provider) SessionsEnded(ctx context.Context, ids []string) error {
	grants, err := p.Store.OIDCGrantsOfSessions(ctx, ids)
	if err != nil {
		return err
	}
	told := map[[2]string]bool{}
	for _, g := range grants {
		// Already revoked by the event itself for a password change or a
		// deletion; this is then a no-op.
		if err := p.Cascade.SignOut(ctx, g.FamilyID); err != nil {
			return err
		}
		if key := [2]string{g.ClientID, g.BrowserSID}; told[key] {
			continue
		} else {
			told[key] = true
		}
		client, err := p.Store.Client(ctx, g.ClientID)
		if notFound(err) {
			continue // deleted: its tokens ended with it
		}
		if err != nil {
			return err
		}
		if client.BackchannelLogoutURI != "" && p.Backchannel != nil {
			p.Backchannel.Send(client, strconv.FormatInt(g.UserID, 10), g.BrowserSID)
		}
	}
	return nil
}

// Backchannel posts logout tokens to clients (Back-Channel Logout 1.0
// §2.5), each on its own goroutine, retried with backoff: a client that
// is briefly down still learns of the logout, and the person signing out
// never waits for it.
type Backchannel struct {
	Issuer *token.Issuer
	// Client makes the requests; it should refuse private addresses and
	// redirects (the URI is the client's, registered by an admin), as the
	// identity key-set fetcher does.
	Client *http.Client
	Log    *slog.Logger
	// Attempts (default 4) and Backoff (default 1 s, doubled each time)
	// shape the retries.
	Attempts int
	Backoff  time.Duration

	wg sync.WaitGroup
}

// logoutTokenTTL: a logout token is used at once; two minutes cover the
// retries and a client's clock skew.
const logoutTokenTTL = 2 * time.Minute

// Send signs a logout token for client about user sub and session sid and
// posts it in the background.
func (b *Backchannel) Send(client domain.Client, sub, sid string) {
	tok, err := b.Issuer.LogoutToken(client.ID, sub, sid, client.IDTokenAlg, logoutTokenTTL)
	if err != nil {
		b.Log.Error("back-channel logout: sign logout token", "client", client.ID, "err", err)
		return
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.deliver(client.ID, client.BackchannelLogoutURI, tok)
	}()
}

// Wait waits for every delivery under way (tests, shutdown).
func (b *Backchannel) Wait() { b.wg.Wait() }

func (b *Backchannel) deliver(clientID, uri, tok string) {
	attempts, backoff := b.Attempts, b.Backoff
	if attempts <= 0 {
		attempts = 4
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	body := url.Values{"logout_token": {tok}}.Encode()
	var err error
	for i := 1; i <= attempts; i++ {
		var retry bool
		retry, err = b.post(uri, body)
		if err == nil {
			b.Log.Info("back-channel logout delivered", "client", clientID, "uri", uri, "attempt", i)
			return
		}
		if !retry {
			break
		}
		if i < attempts {
			time.Sleep(backoff)
			backoff *= 2
		}
	}
	b.Log.Warn("back-channel logout not delivered", "client", clientID, "uri", uri, "err", err)
}

// post sends one logout token. A 400 is the client refusing the token
// (§2.8), which a retry would not change; anything else but 200 or 204,
// or no answer, is tried again.
func (b *Backchannel) post(uri, body string) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := b.Client.Do(req)
	if err != nil {
		return true, err
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
	switch {
	case res.StatusCode == http.StatusOK || res.StatusCode == http.StatusNoContent:
		return false, nil
	case res.StatusCode == http.StatusBadRequest:
		return false, errors.New("the client refused the logout token (400)")
	}
	return true, errors.New("the client answered " + res.Status)
}
