package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"
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

	mu   sync.Mutex
	sets map[string]*jwksEntry
}

type jwksEntry struct {
	keys      []jose.JSONWebKey
	fetched   time.Time
	tried     time.Time
	lastError error
	// missed is the last fetch for a kid the set lacked.
	missed time.Time
}

const (
	jwksTTL      = 10 * time.Minute
	jwksMinRetry = 30 * time.Second
	jwksMaxBytes = 64 << 10
)

// NewJWKS is a key-set cache whose fetches go only to public addresses,
// over https, within 5 seconds, unless allowPrivate (a site on the same
// private network as chatauth).
func NewJWKS(allowPrivate bool, now func() time.Time) *JWKS {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, _ := net.SplitHostPort(address)
			if ip := net.ParseIP(host); ip == nil || !public(ip) {
				return fmt.Errorf("%s is not a public address (set CHATAUTH_IDENTITY_PRIVATE_JWKS=1 to allow private ones)", host)
			}
			return nil
		}
	}
	t := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 5 * time.Second, MaxIdleConnsPerHost: 2}
	return &JWKS{Client: &http.Client{Transport: t, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("redirects are not followed; register the final URL")
	}}, Now: now}
}

var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}

func public(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || cgnat.Contains(ip))
}

// keys returns the set at uri, fetching it when it is older than the TTL,
// when it lacks kid (and was not fetched in the last 30 s), or when force.
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
		// Failed a moment ago: answer that, not another fetch.
		err := e.lastError
		j.mu.Unlock()
		return nil, err
	}
	keys := e.keys
	j.mu.Unlock()
	if !stale {
		return keys, nil
	}
	fetched, err := j.fetch(ctx, uri)
	j.mu.Lock()
	defer j.mu.Unlock()
	e.tried, e.lastError = now, err
	if err != nil {
		if keys != nil && now.Sub(e.fetched) < 24*time.Hour {
			return keys, nil // the site is down: the set we had still holds
		}
		return nil, err
	}
	e.keys, e.fetched = fetched, now
	return fetched, nil
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
		if k.IsPublic() && k.KeyID != "" {
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
