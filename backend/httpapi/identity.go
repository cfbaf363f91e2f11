package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/domain"
	"chatauth/backend/identity"
	"chatauth/shared"
)

// Identified visitors (docs/identity.md): a widget client's identity keys
// (admins, like the rest of the client), the identity token on POST
// /customer/token, and the visitor's sign-out.

func (s *Server) identityKeyRoutes(v1 *echo.Group) {
	const p = "/api/v1"
	s.agentRoute(v1, p, "GET", "/oauth/clients/:id/identity_keys", shared.Organization, shared.Update, s.listIdentityKeys)
	s.agentRoute(v1, p, "POST", "/oauth/clients/:id/identity_keys", shared.Organization, shared.Update, s.createIdentityKey)
	s.agentRoute(v1, p, "DELETE", "/oauth/clients/:id/identity_keys/:kid", shared.Organization, shared.Update, s.deleteIdentityKey)
}

func (s *Server) listIdentityKeys(c echo.Context) error {
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	keys, err := s.Store.IdentityKeys(c.Request().Context(), cl.ID)
	if err != nil {
		return apierr.Internal(err)
	}
	out := listPage{Data: make([]any, len(keys))}
	for i, k := range keys {
		out.Data[i] = identity.Public(k)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) createIdentityKey(c echo.Context) error {
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	// Whoever holds an identity key can be any of the site's users in the
	// chat: it is minted only on a first-party sign-in (docs/security.md, I1).
	if err := credential.LongLived(AgentFrom(c).Cred, "adding an identity key"); err != nil {
		return err
	}
	var req identity.CreateRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	k, secret, err := s.Identity.NewKey(ctx, req, cl)
	if err != nil {
		return err
	}
	switch err := s.Store.CreateIdentityKey(ctx, &k, identity.MaxKeys); {
	case errors.Is(err, domain.ErrLimit):
		return apierr.Conflict("client_id " + quoteShort(cl.ID) + " has two identity keys already; delete the one you rotate away from first (DELETE /api/v1/oauth/clients/{id}/identity_keys/{kid})")
	case errors.Is(err, domain.ErrConflict):
		return apierr.Conflict("jwk: kid " + quoteShort(k.KID) + " is already an identity key of this client")
	case err != nil:
		return apierr.Internal(err)
	}
	s.audit(c, cl.OrgID, "identity_key.created", "client:"+cl.ID, "kid "+k.KID+" ("+k.Kind+")")
	out := identity.Public(k)
	if secret != "" {
		out["secret"] = secret
	}
	noStore(c)
	return c.JSON(http.StatusCreated, out)
}

// deleteIdentityKey revokes a key, and with it the visitor sessions its
// tokens started: the SDK asks the site for a new identity token, signed
// with the key that remains.
func (s *Server) deleteIdentityKey(c echo.Context) error {
	if err := credential.LongLived(AgentFrom(c).Cred, "deleting an identity key"); err != nil {
		return err
	}
	cl, err := s.clientInTree(c)
	if err != nil {
		return err
	}
	kid := c.Param("kid")
	ids, err := s.Store.DeleteIdentityKey(c.Request().Context(), cl.ID, kid)
	s.Cascade.Revocations.Add(ids...)
	if errors.Is(err, domain.ErrNotFound) {
		return apierr.NotFound("identity key " + quoteShort(kid) + " of client " + quoteShort(cl.ID) + " not found")
	}
	if err != nil {
		return apierr.Internal(err)
	}
	s.audit(c, cl.OrgID, "identity_key.revoked", "client:"+cl.ID, "kid "+kid)
	return c.NoContent(http.StatusNoContent)
}

// identifiedVisitor is POST /customer/token with an identity_token. Bad
// signatures are guesses at a key, throttled per address and per client
// from that address (no lock of the client as a whole, which anyone could
// trigger to keep a site's users out of the chat).
func (s *Server) identifiedVisitor(c echo.Context, client domain.Client, req customerTokenRequest, ck visitorCookie) (customerauth.Answer, error) {
	ctx := c.Request().Context()
	keys := s.Guesses.Keys("identity", client.ID, c.RealIP())[:2] // the IP, the client from the IP
	if err := s.Guesses.CheckFast(keys); err != nil {
		return customerauth.Answer{}, err
	}
	id, err := s.Identity.Verify(ctx, client, req.IdentityToken)
	var bad *identity.BadSignature
	if errors.As(err, &bad) {
		return customerauth.Answer{}, s.Guesses.Fail(ctx, keys, client.OrgID, "", bad.Err)
	}
	if err != nil {
		return customerauth.Answer{}, err
	}
	from := customerauth.Anonymous{RefreshToken: req.RefreshToken}
	if ck.Client == client.ID {
		from.SID = ck.SID
	}
	return s.CustomerAuth.Identify(ctx, client, id, from)
}

// customerLogout is POST /customer/logout: the visitor's sign-out. It ends
// the session of the access token (Authorization) or of the refresh token
// (body), so every tab's tokens stop, and clears the cookie. Signing out
// twice is not an error.
func (s *Server) customerLogout(c echo.Context) error {
	noStore(c)
	var req struct {
		ClientID     string `json:"client_id"`
		RefreshToken string `json:"refresh_token"`
	}
	if c.Request().ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	var sid, clientID string
	tok, sent, err := bearer(c)
	if err != nil {
		return err
	}
	switch {
	case sent:
		cred, err := s.Inspector.CustomerJWT(tok)
		if err != nil {
			return invalidErr(err)
		}
		sid, clientID = cred.Visitor.Session, cred.Visitor.ClientID
	case req.RefreshToken != "":
		fam, _, err := s.CustomerAuth.Families.Lookup(ctx, req.RefreshToken)
		if err != nil || fam.Kind != customerauth.FamilyKind {
			return apierr.InvalidToken("refresh_token: not a customer refresh token of this server; nothing to sign out")
		}
		sid, clientID = fam.ID, fam.ClientID
	default:
		return apierr.InvalidToken("no credentials; send Authorization: Bearer <customer token>, or the refresh_token in the body")
	}
	if req.ClientID != "" && req.ClientID != clientID {
		return apierr.InvalidRequest("client_id: the token was issued to another client_id")
	}
	client, err := s.Store.Client(ctx, clientID)
	if err != nil && !errors.Is(err, domain.ErrNotFound) {
		return apierr.Internal(err)
	}
	if err := allowOrigin(c, client); err != nil {
		return err
	}
	if err := s.CustomerAuth.Families.Revoke(ctx, sid, "visitor signed out"); err != nil && !errors.Is(err, domain.ErrNotFound) {
		return apierr.Internal(err)
	}
	if ck := s.CustomerSessions.Read(c.Request()); ck.Present {
		s.CustomerSessions.Clear(c.Response())
	}
	return c.NoContent(http.StatusNoContent)
}
