package credential

import (
	"context"
	"crypto/subtle"
	"errors"
	"strconv"
	"strings"
	"time"

	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what Inspect and Use need of the database.
type Store interface {
	CredentialByHash(ctx context.Context, hash []byte) (domain.Credential, error)
	TouchCredential(ctx context.Context, id int64, t time.Time) (bool, error)
	UserByAPITokenHash(ctx context.Context, hash []byte) (domain.User, []byte, error)
	TouchAPIToken(ctx context.Context, userID int64, t time.Time) error
	UserByID(ctx context.Context, id int64) (domain.User, error)
	LookupRefresh(ctx context.Context, hash []byte) (domain.Family, domain.RefreshToken, error)
	Audit(ctx context.Context, e domain.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// Inspector classifies presented secrets.
type Inspector struct {
	Store     Store
	Agents    *token.AgentVerifier
	Customers *token.CustomerVerifier
	Now       func() time.Time
}

// ClaimsForUser are the claims a user's API token acts with: the user's
// role now and the first-party scopes, no session.
func ClaimsForUser(u domain.User) shared.AgentClaims {
	return shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Audience: shared.AudienceAgent, Org: u.OrgID,
		Scope: shared.Scope{Role: u.Role, API: shared.FirstParty}}
}

// Inspect says what raw is, and whether it works now. It spends nothing
// and records no use: asking about a refresh token does not rotate it.
// A *Invalid error means the secret does not work (Reason says why);
// any other error is a failure to check (the database is down).
func (in *Inspector) Inspect(ctx context.Context, raw string) (Credential, error) {
	switch {
	case raw == "":
		return Credential{}, invalid("", "no token was sent")
	case token.HasPrefix(raw, token.PrefixRefresh):
		return in.refresh(ctx, raw, Refresh)
	case token.HasPrefix(raw, token.PrefixCustomerRefresh):
		return in.refresh(ctx, raw, CustomerRefresh)
	case token.HasPrefix(raw, token.PrefixAPIToken):
		return in.apiToken(ctx, raw)
	case token.HasPrefix(raw, token.PrefixPersonal):
		return in.longLived(ctx, raw, "pat", Personal)
	case token.HasPrefix(raw, token.PrefixBot):
		return in.longLived(ctx, raw, "bot", Bot)
	case token.HasPrefix(raw, token.PrefixPlatform):
		return in.longLived(ctx, raw, "platform", Platform)
	}
	return in.JWT(raw)
}

// JWT inspects an access token of either family. It reads no database:
// the verifiers' caches and revocation set answer.
func (in *Inspector) JWT(raw string) (Credential, error) {
	ac, err := in.Agents.Verify(raw)
	if err == nil {
		c := Credential{Kind: Session, Agent: ac, IssuedAt: time.Unix(ac.IssuedAt, 0)}
		switch {
		case ac.ClientID != "" && strings.HasPrefix(ac.Subject, "client:"):
			c.Kind = ClientToken
		case ac.ClientID != "":
			c.Kind = OAuth
		}
		return c, nil
	}
	var ve *token.VerifyError
	if errors.As(err, &ve) && errors.Is(err, token.ErrWrongFamily) {
		return in.CustomerJWT(raw)
	}
	if ve != nil {
		return Credential{}, &Invalid{Reason: ve.Reason, Org: ve.Org, Err: err}
	}
	return Credential{}, &Invalid{Reason: "not a token of this server", Err: err}
}

// CustomerJWT inspects a customer access token.
func (in *Inspector) CustomerJWT(raw string) (Credential, error) {
	cc, err := in.Customers.Verify(raw)
	if err == nil {
		return Credential{Kind: Customer, Visitor: cc, IssuedAt: time.Unix(cc.IssuedAt, 0)}, nil
	}
	var ve *token.VerifyError
	if errors.As(err, &ve) {
		k := Customer
		if errors.Is(err, token.ErrWrongFamily) {
			k = ""
		}
		return Credential{}, &Invalid{Kind: k, Reason: ve.Reason, Org: ve.Org, Err: err}
	}
	return Credential{}, &Invalid{Kind: Customer, Reason: "not a token of this server", Err: err}
}

func (in *Inspector) now() time.Time {
	if in.Now != nil {
		return in.Now()
	}
	return time.Now()
}

func (in *Inspector) refresh(ctx context.Context, raw string, k Kind) (Credential, error) {
	fam, rt, err := in.Store.LookupRefresh(ctx, token.Hash(raw))
	now := in.now()
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return Credential{}, invalid(k, "unknown refresh token (never issued, or cleaned up after expiry)")
	case err != nil:
		return Credential{}, err
	case !fam.RevokedAt.IsZero():
		return Credential{}, &Invalid{Kind: k, Org: fam.OrgID, JKT: fam.JKT, Reason: "revoked " + token.Ago(now.Sub(fam.RevokedAt)) + " (" + fam.Reason + ")"}
	case !now.Before(rt.ExpiresAt):
		return Credential{}, &Invalid{Kind: k, Org: fam.OrgID, JKT: fam.JKT, Reason: "expired " + token.Ago(now.Sub(rt.ExpiresAt))}
	case !rt.RotatedAt.IsZero():
		return Credential{}, &Invalid{Kind: k, Org: fam.OrgID, JKT: fam.JKT, Reason: "already used " + token.Ago(now.Sub(rt.RotatedAt)) + "; refresh tokens work once, use the newest one (presenting this one again revokes the sign-in)"}
	}
	// A bound family's refresh tokens are bound like its access tokens:
	// whoever asks about one needs the key (docs/dpop.md).
	var cnf *shared.Confirmation
	if fam.JKT != "" {
		cnf = &shared.Confirmation{JKT: fam.JKT}
	}
	c := Credential{Kind: k, Family: fam.ID, ExpiresAt: rt.ExpiresAt, IssuedAt: rt.CreatedAt,
		Agent: shared.AgentClaims{Subject: fam.Subject, Org: fam.OrgID, ClientID: fam.ClientID, Session: fam.ID, Cnf: cnf}}
	if k == CustomerRefresh {
		c.Visitor = shared.CustomerClaims{Subject: fam.Subject, Org: fam.OrgID, ClientID: fam.ClientID, Session: fam.ID, Cnf: cnf}
		c.Agent.Scope = shared.Scope{Role: shared.RoleGuest, API: shared.FirstParty}
		return c, nil
	}
	c.Agent.Scope, _ = shared.ParseScope(fam.Scope)
	return c, nil
}

func (in *Inspector) apiToken(ctx context.Context, raw string) (Credential, error) {
	hash := token.Hash(raw)
	u, stored, err := in.Store.UserByAPITokenHash(ctx, hash)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return Credential{}, invalid(API, "revoked or reset: the user has a newer API token (see your profile), or it never existed")
	case err != nil:
		return Credential{}, err
	case subtle.ConstantTimeCompare(stored, hash) != 1:
		return Credential{}, invalid(API, "revoked or reset: the user has a newer API token")
	}
	return Credential{Kind: API, Agent: ClaimsForUser(u), LastUsedAt: u.APITokenUsedAt}, nil
}

var storedKind = map[Kind]string{Personal: "pat", Bot: "bot", Platform: "platform"}

func (in *Inspector) longLived(ctx context.Context, raw, kind string, k Kind) (Credential, error) {
	cr, err := in.Store.CredentialByHash(ctx, token.Hash(raw))
	switch {
	case errors.Is(err, domain.ErrNotFound), err == nil && cr.Kind != kind:
		return Credential{}, invalid(k, "revoked or reset (or never issued by this server)")
	case err != nil:
		return Credential{}, err
	}
	now := in.now()
	if !cr.ExpiresAt.IsZero() && !now.Before(cr.ExpiresAt) {
		return Credential{}, &Invalid{Kind: k, Org: cr.OrgID, Reason: "expired " + token.Ago(now.Sub(cr.ExpiresAt)) + "; create a new one"}
	}
	c := Credential{Kind: k, ID: cr.ID, Name: cr.Name, ExpiresAt: cr.ExpiresAt, IssuedAt: cr.CreatedAt, LastUsedAt: cr.LastUsedAt}
	id := strconv.FormatInt(cr.ID, 10)
	switch k {
	case Platform:
		c.Agent = shared.AgentClaims{Subject: "platform:" + id}
		return c, nil
	case Bot:
		c.Agent = shared.AgentClaims{Subject: "bot:" + id, Audience: shared.AudienceAgent, Org: cr.OrgID,
			Scope: shared.Scope{Role: shared.RoleBot, API: shared.FirstParty}}
		return c, nil
	}
	scope, err := shared.ParseScope(cr.Scope)
	if err != nil {
		return Credential{}, err
	}
	u, err := in.Store.UserByID(ctx, cr.UserID)
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return Credential{}, invalid(k, "the owner of this personal access token no longer exists")
	case err != nil:
		return Credential{}, err
	}
	if !u.Role.Includes(scope.Role) {
		scope.Role = u.Role // a demoted owner's token shrinks with them
	}
	c.Agent = shared.AgentClaims{Subject: strconv.FormatInt(u.ID, 10), Audience: shared.AudienceAgent, Org: u.OrgID, Scope: scope}
	return c, nil
}

// touchEvery bounds last-used writes for busy integrations.
const touchEvery = time.Minute

// Use records that c was used to authenticate a request: a long-lived
// credential's last use (at most once a minute; its first use goes to
// the audit log). Access tokens need nothing.
func (in *Inspector) Use(ctx context.Context, c Credential) error {
	switch c.Kind {
	case API, Personal, Bot, Platform:
	default:
		return nil // access tokens: nothing to record, and no clock read
	}
	now := in.now()
	if now.Sub(c.LastUsedAt) <= touchEvery {
		return nil
	}
	switch c.Kind {
	case API:
		id, _ := strconv.ParseInt(c.Agent.Subject, 10, 64)
		return in.Store.TouchAPIToken(ctx, id, now)
	case Personal, Bot, Platform:
		first, err := in.Store.TouchCredential(ctx, c.ID, now)
		if err != nil {
			return err
		}
		if first {
			in.Store.Audit(ctx, domain.AuditEvent{OrgID: c.Agent.Org, Actor: c.Agent.Subject, Event: "credential.first_use",
				Subject: storedKind[c.Kind] + ":" + strconv.FormatInt(c.ID, 10), Detail: c.Name})
		}
	}
	return nil
}

// InspectBasic inspects a personal access token sent as Basic and checks
// that its account_id is the token's.
func (in *Inspector) InspectBasic(ctx context.Context, h string) (Credential, error) {
	account, tok, err := ParsePATBasic(h)
	if err != nil {
		return Credential{}, invalid(Personal, err.Error())
	}
	if !token.HasPrefix(tok, token.PrefixPersonal) {
		return Credential{}, invalid(Personal, "the token in the Basic credential is not a personal access token (they start with "+token.PrefixPersonal+")")
	}
	c, err := in.Inspect(ctx, tok)
	if err != nil {
		return c, err
	}
	if c.Agent.Org != account {
		return Credential{}, invalid(Personal, "the account_id in the Basic credential is "+strconv.FormatInt(account, 10)+" but the token belongs to account "+strconv.FormatInt(c.Agent.Org, 10))
	}
	return c, nil
}
