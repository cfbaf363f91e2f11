// Package customerauth issues customer (website visitor) tokens (docs/api.md, "Customers (website visitors)"):
// a new visitor, a returning visitor proven by the customer cookie, a
// customer refresh token for browsers that block third-party cookies, and
// an entity_id vouched for by an agent of the same organization. Customer
// tokens are signed by the customer key set and carry aud
// chatauth:customer; nothing here can mint an agent token.
package customerauth

import (
	"context"
	"errors"
	"strconv"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/domain"
	"chatauth/backend/identity"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what customer sign-in needs of the database.
type Store interface {
	CreateCustomer(ctx context.Context, c *domain.Customer) error
	Customer(ctx context.Context, entityID string) (domain.Customer, error)
	InTree(ctx context.Context, root, org int64) (bool, error)
	Identify(ctx context.Context, c *domain.Customer) (bool, error)
	IdentityKeyLive(ctx context.Context, clientID, kid string) (bool, error)
	IdentifiedCustomer(ctx context.Context, c domain.Customer) (domain.Customer, error)
	AdoptConversations(ctx context.Context, org int64, from, to string) ([]int64, error)
	Family(ctx context.Context, id string) (domain.Family, error)
	Audit(ctx context.Context, e domain.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// FamilyKind marks customer refresh families.
const FamilyKind = refresh.KindCustomer

// Service issues customer tokens.
type Service struct {
	Store    Store
	Issuer   *token.Issuer
	Families *refresh.Families
	Cascade  *credential.Cascade
	TTL      time.Duration
	// IdentityTTL bounds an identified session (default IdentityTTL).
	IdentityTTL time.Duration
	Now         func() time.Time
}

// Answer is the body of every customer token answer.
type Answer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	EntityID     string `json:"entity_id"`
	RefreshToken string `json:"refresh_token"`
	// Identified: the site vouched for the visitor (docs/identity.md).
	Identified bool `json:"identified,omitempty"`
	// Session is the refresh family, kept in the customer cookie.
	Session string `json:"-"`
}

func (s *Service) answer(c domain.Customer, fam domain.Family, rt string) (Answer, error) {
	ttl := refresh.AccessTTL(fam, s.TTL, s.Now())
	identified := sqlstore.IsIdentityParent(fam.Parent)
	claims := shared.CustomerClaims{Subject: c.EntityID, Org: c.OrgID, ClientID: fam.ClientID, Session: fam.ID, Identified: identified}
	typ := "Bearer"
	if fam.JKT != "" {
		claims.Cnf, typ = &shared.Confirmation{JKT: fam.JKT}, "DPoP"
	}
	tok, _, err := s.Issuer.Customer(claims, ttl)
	if err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return Answer{AccessToken: tok, TokenType: typ, ExpiresIn: int64(ttl / time.Second), EntityID: c.EntityID, RefreshToken: rt, Identified: identified, Session: fam.ID}, nil
}

// ErrIdentityRequired refuses an anonymous visitor of a client that
// accepts only identified ones.
var ErrIdentityRequired = apierr.New(shared.ErrIdentityRequired, "this widget only accepts visitors signed in on the site: sign in on the site, then the chat starts (the site sends an identity_token, docs/identity.md)")

// newFamily starts a visitor session; until, when set, is its hard end
// and parent the credential it derives from (both set when a credential
// vouched for the visitor).
func (s *Service) newFamily(ctx context.Context, c domain.Customer, clientID string, until time.Time, parent, jkt string) (Answer, error) {
	if c.Identified() && !sqlstore.IsIdentityParent(parent) {
		return Answer{}, errIdentified // no anonymous session of an identified visitor
	}
	f := &domain.Family{Kind: FamilyKind, Subject: c.EntityID, OrgID: c.OrgID, ClientID: clientID, Scope: "guest", ExpiresAt: until, Parent: parent, JKT: jkt}
	rt, err := s.Families.Start(ctx, f, token.PrefixCustomerRefresh)
	if err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return s.answer(c, *f, rt)
}

// New creates a visitor in the client's organization; jkt, when set, is
// the DPoP key its session is bound to (so is every jkt below).
func (s *Service) New(ctx context.Context, client domain.Client, jkt string) (Answer, error) {
	if client.IdentityRequired {
		return Answer{}, ErrIdentityRequired
	}
	c := &domain.Customer{EntityID: token.NewID(), OrgID: client.OrgID, ClientID: client.ID}
	if err := s.Store.CreateCustomer(ctx, c); err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return s.newFamily(ctx, *c, client.ID, time.Time{}, "", jkt)
}

// Continue is the cookie path: the cookie proves the visitor, so a fresh
// token is issued for the same entity_id, and a refresh token is added to
// the cookie's family (a new family when that one was revoked).
func (s *Service) Continue(ctx context.Context, client domain.Client, entityID, sid, jkt string) (Answer, error) {
	if sid == "" {
		return Answer{}, ErrUnknownVisitor
	}
	if client.IdentityRequired {
		return Answer{}, ErrIdentityRequired
	}
	fam, rt, err := s.Families.AddBound(ctx, sid, token.PrefixCustomerRefresh, jkt, func(fam domain.Family) error {
		if fam.Kind != FamilyKind || fam.ClientID != client.ID || fam.Subject != entityID {
			return errForeignFamily
		}
		if sqlstore.IsIdentityParent(fam.Parent) {
			// An identified session is not continued on the cookie alone:
			// the browser may be someone else's now that the site signed
			// its user out (docs/identity.md, "Merging").
			return errForeignFamily
		}
		return nil
	})
	switch {
	case err == nil:
		// A live session of this visitor at this client: the visitor is
		// known without reading it again.
		return s.answer(domain.Customer{EntityID: fam.Subject, OrgID: fam.OrgID}, fam, rt)
	case errors.Is(err, errForeignFamily), errors.Is(err, refresh.ErrRevoked), errors.Is(err, refresh.ErrUnknown), errors.Is(err, refresh.ErrExpired),
		// Bound to a key this request does not prove: the page lost its
		// key (its storage was cleared), so it is a new visitor.
		errors.Is(err, refresh.ErrOtherKey):
		// The cookie's session is over. It was revoked (a reused refresh
		// token, a vouching credential or the client ended it), or it
		// expired or was purged: the cookie alone does not start it again,
		// or whoever holds a cookie minted for a stolen token would be the
		// visitor again (docs/security.md, I2). The caller starts a new
		// visitor.
		return Answer{}, ErrUnknownVisitor
	}
	return Answer{}, apierr.Internal(err)
}

// errIdentified refuses any way into an identified visitor other than an
// identity token: vouching, a cookie, an anonymous session.
var errIdentified = apierr.New(apierr.CodeForbidden, "this visitor is identified by the site; only the site's identity_token signs them in (docs/identity.md)")

// errForeignFamily: a cookie's session is not this visitor's at this
// client (it cannot be, the cookie is sealed; this is defence in depth).
var errForeignFamily = errors.New("session of another visitor or client")

// ErrUnknownVisitor is answered when a cookie or vouched entity_id names
// no visitor of the client's organization.
var ErrUnknownVisitor = apierr.NotFound("no visitor with this entity_id in the client's organization")

func (s *Service) customerOf(ctx context.Context, client domain.Client, entityID string) (domain.Customer, error) {
	c, err := s.Store.Customer(ctx, entityID)
	if errors.Is(err, domain.ErrNotFound) {
		return c, ErrUnknownVisitor
	}
	if err != nil {
		return c, apierr.Internal(err)
	}
	if ok, err := s.Store.InTree(ctx, client.OrgID, c.OrgID); err != nil {
		return c, apierr.Internal(err)
	} else if !ok {
		return c, ErrUnknownVisitor
	}
	return c, nil
}

// Vouch issues a token for an existing visitor on the word of an
// agent-family credential of the same organization that may write
// messages: a site's backend re-issuing its visitor's token (LiveChat's
// entity_id flow; discouraged, see docs/api.md). The visitor's session
// ends no later than the vouching credential (docs/security.md, I1).
func (s *Service) Vouch(ctx context.Context, client domain.Client, entityID string, holder credential.Credential, jkt string) (Answer, error) {
	if err := credential.MayVouch(holder); err != nil {
		return Answer{}, err
	}
	if ok, err := s.Store.InTree(ctx, holder.Agent.Org, client.OrgID); err != nil {
		return Answer{}, apierr.Internal(err)
	} else if !ok {
		return Answer{}, apierr.New(apierr.CodeForbidden, "the agent token belongs to another organization than client_id")
	}
	c, err := s.customerOf(ctx, client, entityID)
	if err != nil {
		return Answer{}, err
	}
	if c.Identified() {
		return Answer{}, errIdentified
	}
	if client.IdentityRequired {
		return Answer{}, ErrIdentityRequired
	}
	until, _ := credential.NotAfter(holder, time.Time{})
	return s.newFamily(ctx, c, client.ID, until, holder.Parent(), jkt)
}

// Refresh rotates a customer refresh token (no cookie needed), with the
// reuse detection and grace rule of every other refresh.
func (s *Service) Refresh(ctx context.Context, client domain.Client, rt, jkt string) (Answer, error) {
	if !token.HasPrefix(rt, token.PrefixCustomerRefresh) {
		return Answer{}, apierr.InvalidToken("refresh_token is not a customer refresh token of this server (they start with " + token.PrefixCustomerRefresh + ")")
	}
	fam, next, err := s.Families.RotateBound(ctx, rt, jkt, func(fam domain.Family) error {
		if fam.Kind != FamilyKind || fam.ClientID != client.ID {
			return apierr.InvalidToken("refresh_token was issued to another client_id")
		}
		if client.IdentityRequired && !sqlstore.IsIdentityParent(fam.Parent) {
			return ErrIdentityRequired
		}
		return nil
	})
	if err != nil {
		return Answer{}, refresh.APIError(err, "start again with POST /customer/token")
	}
	// The family is this client's visitor session: the visitor is known.
	return s.answer(domain.Customer{EntityID: fam.Subject, OrgID: fam.OrgID}, fam, next)
}

// Anonymous is what a browser that signs in on the site brings of its
// anonymous visit: its cookie's session and the refresh token it holds.
// Either proves the anonymous visitor whose open conversations move to the
// identified one.
type Anonymous struct {
	SID          string
	RefreshToken string
}

// Identify signs in the visitor the site vouched for with a verified
// identity token: one visitor per (widget client, site user id), whichever
// device or browser. A live session of the same visitor in this browser
// (its cookie) gets a new token; otherwise a session starts, derived from
// the key that verified the token (deleting the key ends it) and ending
// after IdentityTTL at the latest (then the SDK asks the site again, so a
// user the site removed does not chat on). An anonymous visitor proven by
// from brings their open conversations along and their session ends;
// nothing is ever matched by email.
func (s *Service) Identify(ctx context.Context, client domain.Client, id identity.Identity, from Anonymous, jkt string) (Answer, error) {
	c := domain.Customer{EntityID: token.NewID(), OrgID: client.OrgID, ClientID: client.ID,
		ExternalID: id.Subject, Name: id.Name, Email: id.Email, EmailVerified: id.EmailVerified}
	created, err := s.Store.Identify(ctx, &c)
	if err != nil {
		return Answer{}, apierr.Internal(err)
	}
	parent := sqlstore.IdentityParent(client.ID, id.KID)
	merged, err := s.adopt(ctx, client, c, from, jkt)
	if err != nil {
		return Answer{}, err
	}
	var ans Answer
	if from.SID != "" {
		fam, rt, err := s.Families.AddBound(ctx, from.SID, token.PrefixCustomerRefresh, jkt, func(fam domain.Family) error {
			if fam.Kind != FamilyKind || fam.ClientID != client.ID || fam.Subject != c.EntityID || fam.Parent != parent {
				return errForeignFamily
			}
			return nil
		})
		if err == nil {
			if ans, err = s.answer(c, fam, rt); err != nil {
				return Answer{}, err
			}
		}
	}
	if ans.Session == "" {
		if created || merged > 0 {
			detail := "site user " + id.Subject
			if merged > 0 {
				detail += "; brought " + strconv.Itoa(merged) + " open conversation(s) from their anonymous visit"
			}
			s.Store.Audit(ctx, domain.AuditEvent{OrgID: c.OrgID, Event: "visitor.identified", Subject: "visitor:" + c.EntityID, Detail: detail})
		}
		if ans, err = s.newFamily(ctx, c, client.ID, s.Now().Add(s.identityTTL()), parent, jkt); err != nil {
			return Answer{}, err
		}
	}
	// The key may have been deleted since it verified the token: its
	// deletion revoked the sessions it had started, not this one, which
	// must not outlive it either.
	if live, err := s.Store.IdentityKeyLive(ctx, client.ID, identity.Record(id.KID)); err != nil || !live {
		s.Families.Revoke(ctx, ans.Session, "identity key deleted")
		if err != nil {
			return Answer{}, apierr.Internal(err)
		}
		return Answer{}, apierr.New(shared.ErrInvalidIdentity, "identity_token: the key that signed it was just deleted; sign with the client's other key")
	}
	return ans, nil
}

// SignOutIdentified ends every session of the visitor the site knows as
// sub at client (the site's word: a verified identity token).
func (s *Service) SignOutIdentified(ctx context.Context, client domain.Client, sub string) error {
	c := domain.Customer{OrgID: client.OrgID, ClientID: client.ID, ExternalID: sub}
	found, err := s.Store.IdentifiedCustomer(ctx, c)
	if errors.Is(err, domain.ErrNotFound) {
		return nil // never signed in: nothing to end
	}
	if err != nil {
		return apierr.Internal(err)
	}
	if err := s.Cascade.VisitorSignedOut(ctx, found.EntityID); err != nil {
		return apierr.Internal(err)
	}
	return nil
}

// IdentityTTL is the longest an identified session lasts without a new
// identity token, when Service.IdentityTTL is unset.
const IdentityTTL = 7 * 24 * time.Hour

func (s *Service) identityTTL() time.Duration {
	if s.IdentityTTL > 0 {
		return s.IdentityTTL
	}
	return IdentityTTL
}

// adopt moves the open conversations of the anonymous visitor from
// proves into c and ends that visitor's session. A session that is
// identified (as anyone), revoked, past its hard end, of another client or
// of c itself brings nothing. A spent refresh token presented here is
// treated as everywhere else: as reuse, which ends its session. A session
// bound to a DPoP key moves only with a proof of that key: a lifted
// refresh token must not carry a visitor's chat into a thief's account.
func (s *Service) adopt(ctx context.Context, client domain.Client, c domain.Customer, from Anonymous, jkt string) (int, error) {
	var fams []domain.Family
	now := s.Now()
	if from.SID != "" {
		if fam, err := s.Store.Family(ctx, from.SID); err == nil {
			fams = append(fams, fam)
		}
	}
	if from.RefreshToken != "" && token.HasPrefix(from.RefreshToken, token.PrefixCustomerRefresh) {
		fam, rt, err := s.Families.Lookup(ctx, from.RefreshToken)
		switch {
		case err != nil, fam.Kind != FamilyKind:
		case !rt.RotatedAt.IsZero() && (rt.Dead || now.Sub(rt.RotatedAt) > s.Families.Grace):
			if err := s.Families.Revoke(ctx, fam.ID, "refresh token reused"); err != nil {
				return 0, apierr.Internal(err)
			}
		case fam.JKT != "" && fam.JKT != jkt:
		case rt.RotatedAt.IsZero() && now.Before(rt.ExpiresAt):
			fams = append(fams, fam)
		}
	}
	moved := 0
	for _, fam := range fams {
		if fam.Kind != FamilyKind || fam.ClientID != client.ID || !fam.RevokedAt.IsZero() || (fam.JKT != "" && fam.JKT != jkt) ||
			(!fam.ExpiresAt.IsZero() && !now.Before(fam.ExpiresAt)) ||
			sqlstore.IsIdentityParent(fam.Parent) || fam.Subject == c.EntityID {
			continue
		}
		anon, err := s.Store.Customer(ctx, fam.Subject)
		if err != nil || anon.Identified() || anon.OrgID != c.OrgID {
			continue
		}
		ids, err := s.Store.AdoptConversations(ctx, c.OrgID, anon.EntityID, c.EntityID)
		if err != nil {
			return moved, apierr.Internal(err)
		}
		moved += len(ids)
		if err := s.Families.Revoke(ctx, fam.ID, "visitor signed in on the site"); err != nil {
			return moved, apierr.Internal(err)
		}
	}
	return moved, nil
}
