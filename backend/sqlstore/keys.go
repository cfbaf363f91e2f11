package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"chatauth/backend/notify"
)

// SigningKey is one stored key. PrivateKey is sealed by the token package
// before it reaches the store; the store never sees it in clear.
type SigningKey struct {
	KID         string
	Family      string // "agent" or "customer"
	Alg         string
	PublicKey   []byte
	PrivateKey  []byte // sealed
	CreatedAt   time.Time
	SignsFrom   time.Time
	VerifyUntil time.Time // zero while the key is current
}

// InsertKey stores a new key.
func (s *DB) InsertKey(ctx context.Context, k SigningKey) error {
	_, err := s.exec(ctx, "INSERT INTO signing_keys (kid, family, alg, public_key, private_key, created_at, signs_from, verify_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		k.KID, k.Family, k.Alg, k.PublicKey, k.PrivateKey, s.ms(k.CreatedAt), s.ms(k.SignsFrom), nullMS(k.VerifyUntil))
	if isUnique(err) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("insert key: %w", err)
	}
	return s.announce(ctx, notify.TopicKeys, "")
}

// Rotate stores next and schedules every other current key of its family
// to stop verifying at verifyUntil, in one transaction.
func (s *DB) RotateKey(ctx context.Context, next SigningKey, verifyUntil time.Time) error {
	return s.tx(ctx, func(t *Tx) error {
		if _, err := t.exec(ctx, "UPDATE signing_keys SET verify_until = ? WHERE family = ? AND verify_until IS NULL", s.ms(verifyUntil), next.Family); err != nil {
			return fmt.Errorf("rotate key: %w", err)
		}
		if _, err := t.exec(ctx, "INSERT INTO signing_keys (kid, family, alg, public_key, private_key, created_at, signs_from, verify_until) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
			next.KID, next.Family, next.Alg, next.PublicKey, next.PrivateKey, s.ms(next.CreatedAt), s.ms(next.SignsFrom)); err != nil {
			return fmt.Errorf("rotate key: %w", err)
		}
		// Every process reloads its keys on commit (PostgreSQL).
		return t.announce(ctx, notify.TopicKeys, "")
	})
}

// Keys lists every key that still verifies at now, oldest first.
func (s *DB) Keys(ctx context.Context, now time.Time) ([]SigningKey, error) {
	rows, err := s.query(ctx, "SELECT kid, family, alg, public_key, private_key, created_at, signs_from, verify_until FROM signing_keys WHERE verify_until IS NULL OR verify_until > ? ORDER BY created_at, kid", s.ms(now))
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var created, from int64
		var until sql.NullInt64
		if err := rows.Scan(&k.KID, &k.Family, &k.Alg, &k.PublicKey, &k.PrivateKey, &created, &from, &until); err != nil {
			return nil, fmt.Errorf("keys: %w", err)
		}
		k.CreatedAt, k.SignsFrom, k.VerifyUntil = fromMS(created), fromMS(from), fromNullMS(until)
		out = append(out, k)
	}
	return out, rows.Err()
}
