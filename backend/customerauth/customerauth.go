// Package customerauth issues customer (website visitor) tokens (SPEC §8):
// a new visitor, a returning visitor proven by the customer cookie, a
// customer refresh token for browsers that block third-party cookies, and
// an entity_id vouched for by an agent of the same organization. Customer
// tokens are signed by the customer key set and carry aud
// chatauth:customer; nothing here can mint an agent token.
package customerauth

import (
	"context"
	"errors"
	"time"

	"chatauth/backend/apierr"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// Store is what customer sign-in needs of the database.
type Store interface {
	CreateCustomer(ctx context.Context, c *sqlstore.Customer) error
	Customer(ctx context.Context, entityID string) (sqlstore.Customer, error)
	CreateFamily(ctx context.Context, f *sqlstore.Family, first sqlstore.RefreshToken) error
	AddRefreshToken(ctx context.Context, familyID string, rt sqlstore.RefreshToken) error
	LookupRefresh(ctx context.Context, hash []byte) (sqlstore.Family, sqlstore.RefreshToken, error)
	Rotate(ctx context.Context, hash []byte, grace time.Duration, next sqlstore.RefreshToken) (sqlstore.Family, error)
	InTree(ctx context.Context, root, org int64) (bool, error)
	Audit(ctx context.Context, e sqlstore.AuditEvent) error
}

var _ Store = (*sqlstore.DB)(nil)

// FamilyKind marks customer refresh families.
const FamilyKind = "customer"

// Service issues customer tokens.
type Service struct {
	Store       Store
	Issuer      *token.Issuer
	Revocations *token.Revocations
	TTL         time.Duration
	RefreshTTL  time.Duration
	Grace       time.Duration
	Now         func() time.Time
}

// Answer is the body of every customer token answer.
type Answer struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	EntityID     string `json:"entity_id"`
	RefreshToken string `json:"refresh_token"`
	// Session is the refresh family, kept in the customer cookie.
	Session string `json:"-"`
}

func (s *Service) answer(c sqlstore.Customer, clientID, sid, refresh string) (Answer, error) {
	tok, _, err := s.Issuer.Customer(shared.CustomerClaims{Subject: c.EntityID, Org: c.OrgID, ClientID: clientID, Session: sid}, s.TTL)
	if err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return Answer{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(s.TTL / time.Second), EntityID: c.EntityID, RefreshToken: refresh, Session: sid}, nil
}

func (s *Service) newFamily(ctx context.Context, c sqlstore.Customer, clientID string) (Answer, error) {
	refresh, hash := token.NewOpaque(token.PrefixCustomerRefresh)
	now := s.Now()
	f := &sqlstore.Family{ID: token.NewID(), Kind: FamilyKind, Subject: c.EntityID, OrgID: c.OrgID, ClientID: clientID, Scope: "guest"}
	if err := s.Store.CreateFamily(ctx, f, sqlstore.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL)}); err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return s.answer(c, clientID, f.ID, refresh)
}

// New creates a visitor in the client's organization.
func (s *Service) New(ctx context.Context, client sqlstore.Client) (Answer, error) {
	c := &sqlstore.Customer{EntityID: token.NewID(), OrgID: client.OrgID, ClientID: client.ID}
	if err := s.Store.CreateCustomer(ctx, c); err != nil {
		return Answer{}, apierr.Internal(err)
	}
	return s.newFamily(ctx, *c, client.ID)
}

// Continue is the cookie path: the cookie proves the visitor, so a fresh
// token is issued for the same entity_id, and a refresh token is added to
// the cookie's family (a new family when that one was revoked).
func (s *Service) Continue(ctx context.Context, client sqlstore.Client, entityID, sid string) (Answer, error) {
	c, err := s.customerOf(ctx, client, entityID)
	if err != nil {
		return Answer{}, err
	}
	if sid != "" {
		refresh, hash := token.NewOpaque(token.PrefixCustomerRefresh)
		now := s.Now()
		err := s.Store.AddRefreshToken(ctx, sid, sqlstore.RefreshToken{Hash: hash, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL)})
		if err == nil {
			return s.answer(c, client.ID, sid, refresh)
		}
		if !errors.Is(err, sqlstore.ErrRevoked) && !errors.Is(err, sqlstore.ErrNotFound) {
			return Answer{}, apierr.Internal(err)
		}
	}
	return s.newFamily(ctx, c, client.ID)
}

// ErrUnknownVisitor is answered when a cookie or vouched entity_id names
// no visitor of the client's organization.
var ErrUnknownVisitor = apierr.NotFound("no visitor with this entity_id in the client's organization")

func (s *Service) customerOf(ctx context.Context, client sqlstore.Client, entityID string) (sqlstore.Customer, error) {
	c, err := s.Store.Customer(ctx, entityID)
	if errors.Is(err, sqlstore.ErrNotFound) {
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

// Vouch issues a token for an existing visitor on the word of an agent
// (role agent or higher) of the same organization: a site's backend
// re-issuing its visitor's token (LiveChat's entity_id flow).
func (s *Service) Vouch(ctx context.Context, client sqlstore.Client, entityID string, agent shared.AgentClaims) (Answer, error) {
	if !agent.Scope.Role.Includes(shared.RoleAgent) {
		return Answer{}, apierr.New(apierr.CodeForbidden, "only an agent, bot or admin token may vouch for an entity_id")
	}
	if ok, err := s.Store.InTree(ctx, agent.Org, client.OrgID); err != nil {
		return Answer{}, apierr.Internal(err)
	} else if !ok {
		return Answer{}, apierr.New(apierr.CodeForbidden, "the agent token belongs to another organization than client_id")
	}
	c, err := s.customerOf(ctx, client, entityID)
	if err != nil {
		return Answer{}, err
	}
	return s.newFamily(ctx, c, client.ID)
}

// Refresh rotates a customer refresh token (no cookie needed), with the
// reuse detection and grace window of every other refresh.
func (s *Service) Refresh(ctx context.Context, client sqlstore.Client, refresh string) (Answer, error) {
	if !token.HasPrefix(refresh, token.PrefixCustomerRefresh) {
		return Answer{}, apierr.InvalidToken("refresh_token is not a customer refresh token of this server (they start with " + token.PrefixCustomerRefresh + ")")
	}
	hash := token.Hash(refresh)
	fam, _, err := s.Store.LookupRefresh(ctx, hash)
	if errors.Is(err, sqlstore.ErrNotFound) {
		return Answer{}, apierr.InvalidToken("refresh_token is unknown; get a new token with POST /customer/token")
	}
	if err != nil {
		return Answer{}, apierr.Internal(err)
	}
	if fam.Kind != FamilyKind || fam.ClientID != client.ID {
		return Answer{}, apierr.InvalidToken("refresh_token was issued to another client_id")
	}
	next, nextHash := token.NewOpaque(token.PrefixCustomerRefresh)
	now := s.Now()
	_, err = s.Store.Rotate(ctx, hash, s.Grace, sqlstore.RefreshToken{Hash: nextHash, CreatedAt: now, ExpiresAt: now.Add(s.RefreshTTL)})
	switch {
	case errors.Is(err, sqlstore.ErrReused):
		s.Revocations.Add(fam.ID)
		s.Store.Audit(ctx, sqlstore.AuditEvent{OrgID: fam.OrgID, Event: "refresh.reuse_detected", Subject: "customer:" + fam.Subject, Detail: "visitor's tokens revoked"})
		return Answer{}, apierr.InvalidToken("refresh_token was already used; for safety this visitor's tokens are revoked. Start again with POST /customer/token")
	case errors.Is(err, sqlstore.ErrRevoked):
		return Answer{}, apierr.InvalidToken("refresh_token revoked; start again with POST /customer/token")
	case errors.Is(err, sqlstore.ErrExpired):
		return Answer{}, apierr.InvalidToken("refresh_token expired; start again with POST /customer/token")
	case errors.Is(err, sqlstore.ErrNotFound):
		return Answer{}, apierr.InvalidToken("refresh_token is unknown")
	case err != nil:
		return Answer{}, apierr.Internal(err)
	}
	c, err := s.customerOf(ctx, client, fam.Subject)
	if err != nil {
		return Answer{}, err
	}
	return s.answer(c, client.ID, fam.ID, next)
}
