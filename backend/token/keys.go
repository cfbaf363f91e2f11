package token

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"chatauth/backend/sqlstore"
)

// Family names a key set. Agent and customer tokens never share a key.
type Family string

const (
	FamilyAgent    Family = "agent"
	FamilyCustomer Family = "customer"
	// FamilyIDToken signs OpenID Connect ID tokens and logout tokens with
	// RS256, the algorithm every relying party must support (OIDC Core
	// §15.1); FamilyIDTokenEdDSA signs them for clients that registered
	// id_token_signed_response_alg EdDSA. Neither ever signs an access
	// token, so an ID token can never be replayed as one (docs/oidc.md).
	FamilyIDToken      Family = "id_token"
	FamilyIDTokenEdDSA Family = "id_token_eddsa"
)

// Families lists every key family, each with its first key made by
// LoadKeys and rotated by Rotate.
var Families = []Family{FamilyAgent, FamilyCustomer, FamilyIDToken, FamilyIDTokenEdDSA}

// algOf is the one algorithm a family's keys sign with.
func algOf(f Family) string {
	if f == FamilyIDToken {
		return "RS256"
	}
	return "EdDSA"
}

// rsaBits is the ID-token key size: 2048 is what RFC 7518 §3.3 requires
// at least, and what every OIDC client library verifies.
const rsaBits = 2048

// KeyStore is what Keys needs of the database.
type KeyStore interface {
	Keys(ctx context.Context, now time.Time) ([]sqlstore.SigningKey, error)
	InsertKey(ctx context.Context, k sqlstore.SigningKey) error
	RotateKey(ctx context.Context, next sqlstore.SigningKey, verifyUntil time.Time) error
}

var _ KeyStore = (*sqlstore.DB)(nil)

type key struct {
	kid    string
	family Family
	alg    string // "EdDSA" or "RS256"
	// pub is an ed25519.PublicKey or *rsa.PublicKey, priv the matching
	// private key (ed25519.PrivateKey or *rsa.PrivateKey).
	pub         crypto.PublicKey
	priv        crypto.Signer
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
	for _, f := range Families {
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
	kid := string(f) + "-" + NewID()[:12]
	sk := sqlstore.SigningKey{KID: kid, Family: string(f), Alg: algOf(f), CreatedAt: k.Now(), SignsFrom: signsFrom}
	if sk.Alg == "RS256" {
		priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
		if err != nil {
			return sk, fmt.Errorf("generate key: %w", err)
		}
		// The public half in PKIX DER, the private half in PKCS #8
		// sealed like the Ed25519 seeds: the store never holds it in clear.
		pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			return sk, fmt.Errorf("generate key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return sk, fmt.Errorf("generate key: %w", err)
		}
		sk.PublicKey, sk.PrivateKey = pub, k.sealer.Seal(der, kid)
		return sk, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return sk, fmt.Errorf("generate key: %w", err)
	}
	sk.PublicKey, sk.PrivateKey = pub, k.sealer.Seal(priv.Seed(), kid)
	return sk, nil
}

// open unseals a stored key.
func (k *Keys) open(s sqlstore.SigningKey) (*key, error) {
	kk := &key{kid: s.KID, family: Family(s.Family), alg: s.Alg, signsFrom: s.SignsFrom, verifyUntil: s.VerifyUntil}
	if s.Alg != algOf(kk.family) {
		return nil, fmt.Errorf("load keys: key %s of family %s has algorithm %s, not %s", s.KID, s.Family, s.Alg, algOf(kk.family))
	}
	secret, err := k.sealer.Open(s.PrivateKey, s.KID)
	if err != nil {
		return nil, err
	}
	switch s.Alg {
	case "EdDSA":
		if len(s.PublicKey) != ed25519.PublicKeySize || len(secret) != ed25519.SeedSize {
			return nil, fmt.Errorf("load keys: key %s is damaged", s.KID)
		}
		kk.pub, kk.priv = ed25519.PublicKey(s.PublicKey), ed25519.NewKeyFromSeed(secret)
	case "RS256":
		priv, err := x509.ParsePKCS8PrivateKey(secret)
		rk, ok := priv.(*rsa.PrivateKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("load keys: key %s is damaged", s.KID)
		}
		kk.pub, kk.priv = &rk.PublicKey, rk
	default:
		return nil, fmt.Errorf("load keys: key %s has unsupported algorithm %s", s.KID, s.Alg)
	}
	return kk, nil
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
		kk, err := k.open(s)
		if err != nil {
			return err
		}
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

// JWKS returns the JSON Web Key Set of every key that verifies, every
// family, as served at /.well-known/jwks.json.
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
	var rsaKeys []json.RawMessage
	for _, s := range stored {
		if s.Alg == "RS256" {
			pub, err := x509.ParsePKIXPublicKey(s.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("load keys: key %s is damaged", s.KID)
			}
			// go-jose marshals n and e as RFC 7518 §6.3.1 wants them.
			b, err := jose.JSONWebKey{Key: pub, KeyID: s.KID, Algorithm: "RS256", Use: "sig"}.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("load keys: key %s: %w", s.KID, err)
			}
			rsaKeys = append(rsaKeys, b)
			continue
		}
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.PublicKey), Kid: s.KID, Alg: "EdDSA", Use: "sig"})
	}
	if len(rsaKeys) == 0 {
		return json.Marshal(set)
	}
	all := make([]json.RawMessage, 0, len(set.Keys)+len(rsaKeys))
	for _, j := range set.Keys {
		b, _ := json.Marshal(j)
		all = append(all, b)
	}
	return json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{append(all, rsaKeys...)})
}
