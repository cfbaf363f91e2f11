package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"chatauth/backend/egress"
)

// JWKS fetches and caches the key sets of sites that publish theirs
// (jwks_uri): kept 10 minutes, fetched again sooner when a token names a
// kid the cached set lacks (the site rotated), at most every 30 s per set
// so that tokens with made-up kids cannot make us hammer the site.
type JWKS struct {
	// Client fetches the sets; the default refuses private and loopback
	// addresses (NewJWKS).
	Client *http.Client
	Now    func() time.Time
	// Ledger records, in the database every process shares, which kids
	// of each set sign visitors in (Verifier.Verify, before the session
	// starts). Nil records nothing.
	Ledger Ledger
	// Fetched is told, after every successful fetch, the kids the set at
	// uri holds: the sessions that recorded kids it lacks signed in must
	// end (the site removed those keys). Every process compares with the
	// Ledger, not with a set it fetched before, so a process that never
	// held the old set (it restarted, or never needed it) ends them too.
	// A failed fetch, an empty set or one without a usable key is not a
	// fetch: it never calls Fetched.
	Fetched func(ctx context.Context, uri string, kids []string)

	mu   sync.Mutex
	sets map[string]*jwksEntry
}

type jwksEntry struct {
	keys      []jose.JSONWebKey
	fetched   time.Time
	tried     time.Time
	lastError error
	// missed is the last fetch for a kid the set lacked; inflight is
	// closed when the fetch under way ends.
	missed   time.Time
	inflight chan struct{}
}

const (
	jwksTTL      = 10 * time.Minute
	jwksMinRetry = 30 * time.Second
	jwksMaxBytes = 64 << 10
)

// NewJWKS is a key-set cache whose fetches go only to public addresses,
// within 5 seconds and without redirects, unless allowPrivate (a site on
// the same private network as chatauth).
func NewJWKS(allowPrivate bool, now func() time.Time) *JWKS {
	return &JWKS{Client: egress.Client(allowPrivate, "CHATAUTH_IDENTITY_PRIVATE_JWKS"), Now: now}
}

// keys returns the set at uri, fetching it when it is older than the TTL,
// when it lacks kid (and was not fetched for a missing kid in the last
// 30 s), or when force. One fetch per set runs at a time; the others wait
// for it. A failed fetch answers the set fetched before, for up to a day:
// a site that is down, or a caller that hangs up mid-fetch, must not sign
// the site's users out.
func (j *JWKS) keys(ctx context.Context, uri, kid string, force bool) ([]jose.JSONWebKey, error) {
	now := j.Now()
	j.mu.Lock()
	if j.sets == nil {
		j.sets = map[string]*jwksEntry{}
	}
	e := j.sets[uri]
	if e == nil {
		e = &jwksEntry{}
		j.sets[uri] = e
	}
	stale := force || now.Sub(e.fetched) > jwksTTL
	if !stale && kid != "" && !hasKID(e.keys, kid) && now.Sub(e.missed) > jwksMinRetry {
		stale, e.missed = true, now
	}
	if stale && !force && now.Sub(e.tried) < jwksMinRetry && e.lastError != nil {
		stale = false // failed a moment ago: no new fetch yet
	}
	if !stale {
		keys, err := e.keys, e.lastError
		j.mu.Unlock()
		if keys != nil {
			return keys, nil
		}
		if err == nil {
			err = errors.New("the key set was not fetched yet")
		}
		return nil, err
	}
	wait := e.inflight
	if wait == nil {
		wait = make(chan struct{})
		e.inflight = wait
		j.mu.Unlock()
		// Not the caller's context: its cancellation would count as the
		// site's failure. The client's own timeout bounds the fetch.
		fetched, err := j.fetch(context.WithoutCancel(ctx), uri)
		j.mu.Lock()
		e.tried, e.lastError, e.inflight = now, err, nil
		if err == nil {
			e.keys, e.fetched = fetched, now
		}
		close(wait)
		if err == nil && j.Fetched != nil {
			j.mu.Unlock()
			kids := make([]string, len(fetched))
			for i, k := range fetched {
				kids[i] = k.KeyID
			}
			j.Fetched(context.WithoutCancel(ctx), uri, kids)
			j.mu.Lock()
		}
	}
	j.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if e.lastError != nil && (e.keys == nil || now.Sub(e.fetched) > 24*time.Hour) {
		return nil, e.lastError
	}
	return e.keys, nil
}

// Ledger is what ending the sessions of removed keys needs of the
// database (sqlstore.DB).
type Ledger interface {
	// SawSetKID records that kid of the key set registered as identity
	// key record of client signs a visitor in; ErrNotFound when the
	// record was deleted meanwhile.
	SawSetKID(ctx context.Context, clientID, record, kid string) error
}

func hasKID(keys []jose.JSONWebKey, kid string) bool {
	for _, k := range keys {
		if k.KeyID == kid {
			return true
		}
	}
	return false
}

func (j *JWKS) fetch(ctx context.Context, uri string) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	res, err := j.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("could not fetch the key set: %w", errors.Unwrap(err))
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the key set answered HTTP %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("could not read the key set: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, errors.New("the key set is larger than 64 KB")
	}
	return parseSet(body)
}

// parseSet reads a site's JWK set: its public signing keys with a kid.
func parseSet(body []byte) ([]jose.JSONWebKey, error) {
	// Key by key, so that one key of a type we do not use (an encryption
	// key, a new kty) does not make the whole set unreadable.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("not a JWK set (%v)", err)
	}
	var out []jose.JSONWebKey
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(raw) != nil {
			continue
		}
		// A kid the database could not store (NUL, not UTF-8) could
		// not be recorded, so its sessions could not end with it.
		if k.IsPublic() && k.KeyID != "" && printable(k.KeyID) && len(k.KeyID) <= 255 {
			if _, err := keyAlg(k); err == nil {
				out = append(out, k)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the key set has no usable public signing key with a kid (ES256 P-256, EdDSA Ed25519 or RS256 ≥ 2048 bits)")
	}
	return out, nil
}
