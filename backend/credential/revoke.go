package credential

import (
	"context"
	"errors"
	"strconv"

	"chatauth/backend/domain"
	"chatauth/backend/refresh"
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
)

// The revocation cascade (docs/security.md, I2). Every credential records
// what it derives from: access tokens carry their session (sid): a
// refresh family for sign-ins and OAuth grants, a family row without
// refresh tokens for implicit grants, the client's epoch session for
// client-credentials tokens. Each event below revokes those sessions in
// the database and in this process's revocation set at once; the store
// announces them to every other process in the same transaction (NOTIFY
// on PostgreSQL), and each process also re-reads them now and then
// (token.Revocations.Poll).

// CascadeStore is what the cascade needs of the database.
type CascadeStore interface {
	RevokeFamilies(ctx context.Context, f sqlstore.FamilyFilter, reason string) ([]string, error)
	RevokeFamily(ctx context.Context, id, reason string) ([]string, error)
	RevokeSession(ctx context.Context, sid, kind, subject string, orgID int64, reason string) ([]string, error)
	EndClientTokens(ctx context.Context, id, reason string, remove bool) ([]string, error)
	DeleteUser(ctx context.Context, id int64) ([]string, error)
	CreateFamily(ctx context.Context, f *domain.Family, first domain.RefreshToken) error
	Family(ctx context.Context, id string) (domain.Family, error)
	DropCodes(ctx context.Context, userID int64, clientID string) error
	Audit(ctx context.Context, e domain.AuditEvent) error
}

var _ CascadeStore = (*sqlstore.DB)(nil)

// Cascade carries revocation events to every derived credential.
type Cascade struct {
	Store       CascadeStore
	Revocations *token.Revocations
	// SessionsEnded, when set, is told the sessions (of every kind) each
	// event ended, once they are revoked. The OpenID Provider hangs the
	// end of a browser sign-in on it (oauth.Provider.SessionsEnded: the
	// openid grants made in it end and their clients get a back-channel
	// logout), so every event that ends a sign-in does so the same way:
	// end_session, sign-out everywhere, a password or role change,
	// deleting the user.
	SessionsEnded func(ctx context.Context, ids []string) error
}

// revoked takes a store call's ended ids and error:
// c.revoked(ctx)(c.Store.RevokeFamily(…)).
func (c *Cascade) revoked(ctx context.Context) func(ids []string, err error) error {
	return func(ids []string, err error) error {
		c.Revocations.Add(ids...)
		if err == nil && len(ids) > 0 && c.SessionsEnded != nil {
			err = c.SessionsEnded(ctx, ids)
		}
		return err
	}
}

// SignOut ends one sign-in: its refresh family and every access token of
// it.
func (c *Cascade) SignOut(ctx context.Context, sid string) error {
	if sid == "" {
		return nil
	}
	return c.revoked(ctx)(c.Store.RevokeFamily(ctx, sid, "signed out"))
}

// CredentialEnded ends the visitor sessions a long-lived credential
// vouched for (parent: sqlstore.CredentialParent or APITokenParent), when
// it is deleted or reset.
func (c *Cascade) CredentialEnded(ctx context.Context, parent, reason string) error {
	return c.revoked(ctx)(c.Store.RevokeFamilies(ctx, sqlstore.FamilyFilter{Parent: parent}, reason))
}

// SignOutAll ends every first-party sign-in of a user, the browser
// sign-in of the authorization page included, and their unredeemed
// authorization codes. OAuth grants are the apps' and are ended where
// they are managed (or by a password or role change); only those made
// with openid in one of the browser sign-ins ended here end with it
// (through SessionsEnded), as they would by end_session.
func (c *Cascade) SignOutAll(ctx context.Context, userID int64) error {
	if err := c.revoked(ctx)(c.Store.RevokeFamilies(ctx, sqlstore.FamilyFilter{Kinds: []string{"agent", sqlstore.KindBrowser}, Subject: strconv.FormatInt(userID, 10)}, "signed out everywhere")); err != nil {
		return err
	}
	return c.Store.DropCodes(ctx, userID, "")
}

// StartBrowserSession records the browser sign-in of the authorization
// page as a session of the user, so the user's revocation events end it.
func (c *Cascade) StartBrowserSession(ctx context.Context, u domain.User) (string, error) {
	f := &domain.Family{ID: token.NewID(), Kind: sqlstore.KindBrowser, Subject: strconv.FormatInt(u.ID, 10), OrgID: u.OrgID}
	if err := c.Store.CreateFamily(ctx, f, domain.RefreshToken{}); err != nil {
		return "", err
	}
	return f.ID, nil
}

// BrowserSessionLive reports whether the browser sign-in sid of user uid
// still stands. A cookie from before sessions were recorded (no sid) does
// not.
func (c *Cascade) BrowserSessionLive(ctx context.Context, sid string, uid int64) (bool, error) {
	if sid == "" || c.Revocations.Revoked(sid) {
		return false, nil
	}
	f, err := c.Store.Family(ctx, sid)
	if errors.Is(err, domain.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return f.Kind == sqlstore.KindBrowser && f.Subject == strconv.FormatInt(uid, 10) && f.RevokedAt.IsZero(), nil
}

// UserChanged ends every sign-in, OAuth grant and implicit grant of a
// user whose password or role changed, except the session keep (the
// request that changed one's own password). Personal access tokens and
// the API token act with the user's role as it is now, so they shrink
// with a demotion instead of ending.
func (c *Cascade) UserChanged(ctx context.Context, userID int64, keep, reason string) error {
	if err := c.revoked(ctx)(c.Store.RevokeFamilies(ctx, sqlstore.FamilyFilter{Kinds: sqlstore.UserFamilyKinds, Subject: strconv.FormatInt(userID, 10), Except: keep}, reason)); err != nil {
		return err
	}
	// A code issued before the change would otherwise start a new grant.
	return c.Store.DropCodes(ctx, userID, "")
}

// DeleteUser deletes a user and, in the same transaction, every sign-in,
// grant and personal access token of theirs; the API token goes with the
// user's row.
func (c *Cascade) DeleteUser(ctx context.Context, userID int64) error {
	return c.revoked(ctx)(c.Store.DeleteUser(ctx, userID))
}

// ClientChanged ends every token a client holds or minted (its grants,
// implicit tokens, visitors and client-credentials tokens): the client
// was made public or its secret was reset.
func (c *Cascade) ClientChanged(ctx context.Context, clientID, reason string) error {
	return c.revoked(ctx)(c.Store.EndClientTokens(ctx, clientID, reason, false))
}

// VisitorSignedOut ends every session of a visitor (the site signed its
// user out everywhere).
func (c *Cascade) VisitorSignedOut(ctx context.Context, entityID string) error {
	return c.revoked(ctx)(c.Store.RevokeFamilies(ctx, sqlstore.FamilyFilter{Subject: entityID, Kinds: []string{refresh.KindCustomer}}, "signed out by the site"))
}

// AnonymousVisitorsEnded ends the sessions of a client's anonymous
// visitors, when the client starts to require identified ones.
func (c *Cascade) AnonymousVisitorsEnded(ctx context.Context, clientID string) error {
	return c.revoked(ctx)(c.Store.RevokeFamilies(ctx, sqlstore.FamilyFilter{ClientID: clientID, Kinds: []string{refresh.KindCustomer}, Anonymous: true}, "identity required"))
}

// DeleteClient deletes a client and ends every token it holds or minted.
func (c *Cascade) DeleteClient(ctx context.Context, clientID string) error {
	return c.revoked(ctx)(c.Store.EndClientTokens(ctx, clientID, "client deleted", true))
}

// EndSession ends the session of one access token that has no refresh
// family of its own (a client-credentials token revoked at /oauth/revoke).
func (c *Cascade) EndSession(ctx context.Context, sid, kind, subject string, org int64, reason string) error {
	return c.revoked(ctx)(c.Store.RevokeSession(ctx, sid, kind, subject, org, reason))
}
