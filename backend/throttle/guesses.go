package throttle

import (
	"context"
	"strconv"
	"strings"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
)

// Auditor records an account lock; *sqlstore.DB is one.
type Auditor interface {
	Audit(ctx context.Context, e domain.AuditEvent) error
}

// Guesses applies the default rules to one kind of secret guess (a
// sign-in, a current_password, a client secret, a personal access
// token) and answers in the API's terms: a 429 with Retry-After while
// blocked, an audit event when an account is locked.
type Guesses struct {
	Guard *Guard
	Audit Auditor
}

// Keys are the three keys of one guess at account from ip: the IP, the
// account from that IP, the account from everywhere.
func (g *Guesses) Keys(kind, account, ip string) []Key {
	return []Key{{Name: IP(ip), Rule: PerIP}, {Name: AccountIP(kind, account, ip), Rule: PerAccountIP}, {Name: Account(kind, account), Rule: PerAccount}}
}

// IPKeys is the key of a guess that names no account (a secret looked up
// by its hash: a wrong one belongs to nobody).
func (g *Guesses) IPKeys(ip string) []Key { return []Key{{Name: IP(ip), Rule: PerIP}} }

func tooMany(wait time.Duration) error {
	return apierr.TooManyRequests("too many failed attempts; wait "+roundUp(wait)+" and try again", wait)
}

func roundUp(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	switch {
	case secs == 60:
		return "a minute"
	case secs < 120:
		return strconv.FormatInt(secs, 10) + "s"
	}
	return strconv.FormatInt((secs+59)/60, 10) + " minutes"
}

// Check answers a 429 while any key is blocked, on any process.
func (g *Guesses) Check(ctx context.Context, keys []Key) error {
	wait, err := g.Guard.Check(ctx, keys...)
	if err != nil {
		return apierr.Internal(err)
	}
	if wait > 0 {
		return tooMany(wait)
	}
	return nil
}

// CheckFast is Check from this process's memory alone, for high-entropy
// secrets presented on every request (see Guard.CheckFast).
func (g *Guesses) CheckFast(keys []Key) error {
	if wait := g.Guard.CheckFast(keys...); wait > 0 {
		return tooMany(wait)
	}
	return nil
}

// Fail counts a wrong guess and returns answer, the refusal the caller
// would give anyway. A lock of an account is audited with detail.
func (g *Guesses) Fail(ctx context.Context, keys []Key, org int64, detail string, answer error) error {
	locked, err := g.Guard.Fail(ctx, keys...)
	if err != nil {
		return apierr.Internal(err)
	}
	for _, k := range locked {
		if !strings.HasPrefix(k.Name, "acct") || g.Audit == nil {
			continue
		}
		d := detail + "; this address is blocked for the account until the " + k.Rule.Window.String() + " window ends"
		if k.Rule.Lock > 0 {
			d = detail + "; the account is locked for " + roundUp(k.Rule.Lock)
		}
		g.Audit.Audit(ctx, domain.AuditEvent{OrgID: org, Event: "login.lockout", Subject: k.Name, Detail: d})
	}
	return answer
}

// Reset forgets the account keys after a right guess; the IP key keeps
// counting, so one right password does not reset a spray from that IP.
func (g *Guesses) Reset(ctx context.Context, keys []Key) {
	var acct []Key
	for _, k := range keys {
		if !strings.HasPrefix(k.Name, "ip") {
			acct = append(acct, k)
		}
	}
	g.Guard.Reset(ctx, acct...)
}
