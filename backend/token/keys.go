package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"chatauth/backend/sqlstore"
)

// Family names a key set. Agent and customer tokens never share a key.
type Family string

const (
	FamilyAgent    Family = "agent"
	FamilyCustomer Family = "customer"
)

// KeyStore is what Keys needs of the database.
type KeyStore interface {
	Keys(ctx context.Context, now time.Time) ([]sqlstore.SigningKey, error)
	InsertKey(ctx context.Context, k sqlstore.SigningKey) error
	RotateKey(ctx context.Context, next sqlstore.SigningKey, verifyUntil time.Time) error
}

var _ KeyStore = (*sqlstore.DB)(nil)

type key struct {
	kid         string
	family      Family
	pub         ed25519.PublicKey
	priv        ed25519.PrivateKey
	signsFrom   time.Time
	verifyUntil time.Time
}

// Keys holds both families' Ed25519 keys in memory, loaded from the store
// and reloaded when the store may have changed (another process rotated).
type Keys struct {
	store  KeyStore
	sealer *Sealer
	Now    func() time.Time

	mu       sync.RWMutex
	byKID    map[string]*key
	ordered  map[Family][]*key // by signsFrom, oldest first
	jwks     []byte
	loadedAt time.Time
}

// LoadKeys loads the key sets, creating a first key for each family that
// has none. A new installation's first keys sign at once.
func LoadKeys(ctx context.Context, store KeyStore, sealer *Sealer, now func() time.Time) (*Keys, error) {
	k := &Keys{store: store, sealer: sealer, Now: now}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	for _, f := range []Family{FamilyAgent, FamilyCustomer} {
		k.mu.RLock()
		n := len(k.ordered[f])
		k.mu.RUnlock()
		if n > 0 {
			continue
		}
		sk, err := k.newKey(f, k.Now())
		if err != nil {
			return nil, err
		}
		if err := store.InsertKey(ctx, sk); err != nil {
			return nil, fmt.Errorf("create first %s key: %w", f, err)
		}
	}
	return k, k.Reload(ctx)
}

func (k *Keys) newKey(f Family, signsFrom time.Time) (sqlstore.SigningKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return sqlstore.SigningKey{}, fmt.Errorf("generate key: %w", err)
	}
	kid := string(f) + "-" + NewID()[:12]
	return sqlstore.SigningKey{
		KID: kid, Family: string(f), Alg: "EdDSA",
		PublicKey: pub, PrivateKey: k.sealer.Seal(priv.Seed(), kid),
		CreatedAt: k.Now(), SignsFrom: signsFrom,
	}, nil
}

// Reload reads the key sets from the store.
func (k *Keys) Reload(ctx context.Context) error {
	now := k.Now()
	stored, err := k.store.Keys(ctx, now)
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	byKID := make(map[string]*key, len(stored))
	ordered := map[Family][]*key{}
	for _, s := range stored {
		if s.Alg != "EdDSA" || len(s.PublicKey) != ed25519.PublicKeySize {
			return fmt.Errorf("load keys: key %s has unsupported algorithm %s", s.KID, s.Alg)
		}
		seed, err := k.sealer.Open(s.PrivateKey, s.KID)
		if err != nil {
			return err
		}
		if len(seed) != ed25519.SeedSize {
			return fmt.Errorf("load keys: key %s is damaged", s.KID)
		}
		kk := &key{kid: s.KID, family: Family(s.Family), pub: ed25519.PublicKey(s.PublicKey), priv: ed25519.NewKeyFromSeed(seed), signsFrom: s.SignsFrom, verifyUntil: s.VerifyUntil}
		byKID[kk.kid] = kk
		ordered[kk.family] = append(ordered[kk.family], kk)
	}
	for _, ks := range ordered {
		sort.SliceStable(ks, func(i, j int) bool { return ks[i].signsFrom.Before(ks[j].signsFrom) })
	}
	jwks, err := buildJWKS(stored)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.byKID, k.ordered, k.jwks, k.loadedAt = byKID, ordered, jwks, now
	k.mu.Unlock()
	return nil
}

// ReloadIfStale reloads when the last load is older than maxAge. The
// verifier calls it on an unknown kid, so a key rotated by another process
// is picked up without a restart, and a flood of garbage kids costs at most
// one query per maxAge.
func (k *Keys) ReloadIfStale(ctx context.Context, maxAge time.Duration) bool {
	k.mu.RLock()
	stale := k.Now().Sub(k.loadedAt) >= maxAge
	k.mu.RUnlock()
	if !stale {
		return false
	}
	return k.Reload(ctx) == nil
}

// ErrNoSigningKey means a family has no key that may sign yet.
var ErrNoSigningKey = errors.New("no signing key is active yet")

// signer returns the newest key of f whose publish delay has passed.
func (k *Keys) signer(f Family) (*key, error) {
	now := k.Now()
	k.mu.RLock()
	defer k.mu.RUnlock()
	ks := k.ordered[f]
	for i := len(ks) - 1; i >= 0; i-- {
		if !ks[i].signsFrom.After(now) {
			return ks[i], nil
		}
	}
	return nil, ErrNoSigningKey
}

func (k *Keys) lookup(kid string) (*key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	kk, ok := k.byKID[kid]
	if ok && !kk.verifyUntil.IsZero() && !k.Now().Before(kk.verifyUntil) {
		return nil, false
	}
	return kk, ok
}

// Rotate adds a new key to family f that signs after publishDelay, and
// lets the current keys verify until the new key has signed for maxTTL
// (by then every token they signed has expired).
func (k *Keys) Rotate(ctx context.Context, f Family, publishDelay, maxTTL time.Duration) (string, time.Time, error) {
	now := k.Now()
	next, err := k.newKey(f, now.Add(publishDelay))
	if err != nil {
		return "", time.Time{}, err
	}
	if err := k.store.RotateKey(ctx, next, next.SignsFrom.Add(maxTTL+time.Minute)); err != nil {
		return "", time.Time{}, err
	}
	return next.KID, next.SignsFrom, k.Reload(ctx)
}

// JWKS returns the JSON Web Key Set of every key that verifies, both
// families, as served at /.well-known/jwks.json.
func (k *Keys) JWKS() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

func buildJWKS(stored []sqlstore.SigningKey) ([]byte, error) {
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, s := range stored {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.PublicKey), Kid: s.KID, Alg: "EdDSA", Use: "sig"})
	}
	return json.Marshal(set)
}
