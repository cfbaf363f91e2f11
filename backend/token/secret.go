// Package token issues and verifies chatauth's credentials: the signing
// key sets and their rotation, JWT access tokens for the two families
// (AgentVerifier and CustomerVerifier are distinct types), and the opaque
// secrets (refresh and API tokens) that are stored only as hashes.
package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Secret is the master secret. Every other key (key encryption, session
// cookies) is derived from it with HKDF under its own label, so no two
// uses share key material.
type Secret struct{ b []byte }

// NewSecret wraps a configured secret.
func NewSecret(s string) Secret { return Secret{[]byte(s)} }

// LoadOrCreateSecretFile reads the secret stored at path, or writes a new
// random one there (mode 0600) when the file does not exist. The secret is
// never printed.
func LoadOrCreateSecretFile(path string) (Secret, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return Secret{}, false, fmt.Errorf("secret file %s is shorter than 32 characters; restore it from a backup or set CHATAUTH_SECRET", path)
		}
		return Secret{[]byte(s)}, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Secret{}, false, fmt.Errorf("read secret file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Secret{}, false, fmt.Errorf("create secret folder: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	s := hex.EncodeToString(raw[:])
	// O_EXCL: two processes starting at once must not overwrite each
	// other's secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateSecretFile(path)
	}
	if err != nil {
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return Secret{}, false, fmt.Errorf("write secret file: %w", err)
	}
	return Secret{[]byte(s)}, true, nil
}

// Derive returns n bytes of key material for label.
func (s Secret) Derive(label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, s.b, nil, "chatauth "+label, n)
	if err != nil {
		panic("hkdf: " + err.Error()) // only for n out of range: a programming error
	}
	return k
}

// Sealer encrypts private keys at rest with AES-256-GCM.
type Sealer struct{ aead cipher.AEAD }

// NewSealer derives the key-encryption key from the secret.
func NewSealer(s Secret) *Sealer {
	block, err := aes.NewCipher(s.Derive("signing key encryption", 32))
	if err != nil {
		panic(err) // 32-byte key: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Sealer{aead}
}

// ErrWrongSecret means stored keys were sealed under another secret.
var ErrWrongSecret = errors.New("the signing keys in the database were encrypted with a different CHATAUTH_SECRET; start with the secret they were made with")

// Seal encrypts plain, binding it to ad (the key id) so sealed keys cannot
// be swapped between rows.
func (s *Sealer) Seal(plain []byte, ad string) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(ad))
}

// Open decrypts what Seal made.
func (s *Sealer) Open(sealed []byte, ad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrWrongSecret
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, ErrWrongSecret
	}
	return out, nil
}
