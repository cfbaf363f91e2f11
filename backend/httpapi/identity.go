package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/backend/identity"
	"chatauth/backend/throttle"
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

// identifiedPerMinute bounds identified sign-ins per client address: an
// office of signed-in users reloading pages stays far below it.
const identifiedPerMinute = 300

// identifiedVisitor is POST /customer/token with an identity_token. Bad
// signatures are guesses at a key, throttled per address and per client
// from that address (no lock of the client as a whole, which anyone could
// trigger to keep a site's users out of the chat).
func (s *Server) identifiedVisitor(c echo.Context, client domain.Client, req customerTokenRequest, ck visitorCookie, jkt string) (customerauth.Answer, error) {
	ctx := c.Request().Context()
	ip := c.RealIP()
	// Not the sign-in rules' account keys: a stranger's bad guesses must
	// not read as an agent's locked account in the audit log.
	keys := []throttle.Key{{Name: throttle.IP(ip), Rule: throttle.PerIP}, {Name: "identity:" + client.ID + "@" + throttle.IP(ip), Rule: throttle.PerAccountIP}}
	// Each identified sign-in without a session adds rows (a session, a
	// jti): bounded per address, like new anonymous visitors.
	if wait := s.Creations.Blocked("identify:"+ip, identifiedPerMinute); wait > 0 {
		return customerauth.Answer{}, apierr.TooManyRequests("too many sign-ins from this address; try again in a minute", wait)
	}
	s.Creations.Fail("identify:" + ip)
	id, err := s.verifyIdentity(c, client, req.IdentityToken, keys)
	if err != nil {
		return customerauth.Answer{}, err
	}
	from := customerauth.Anonymous{RefreshToken: req.RefreshToken}
	if ck.Client == client.ID {
		from.SID = ck.SID
	}
	return s.CustomerAuth.Identify(ctx, client, id, from, jkt)
}

// verifyIdentity verifies an identity token under the guess throttle's
// keys: a bad signature counts.
func (s *Server) verifyIdentity(c echo.Context, client domain.Client, raw string, keys []throttle.Key) (identity.Identity, error) {
	ctx := c.Request().Context()
	if err := s.Guesses.CheckFast(keys); err != nil {
		return identity.Identity{}, err
	}
	id, err := s.Identity.Verify(ctx, client, raw)
	var bad *identity.BadSignature
	if errors.As(err, &bad) {
		return id, s.Guesses.Fail(ctx, keys, client.OrgID, "", bad.Err)
	}
	return id, err
}

// identityLogout is POST /customer/identity_logout: the site's backend
// ends every chatauth session of one of its users at this client (the
// user signed out everywhere, was deleted or banned), with an identity
// token for that user, as for a sign-in. It needs no agent credential:
// whoever can sign the token could sign the user in as well.
func (s *Server) identityLogout(c echo.Context) error {
	noStore(c)
	var req struct {
		ClientID      string `json:"client_id"`
		IdentityToken string `json:"identity_token"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	client, err := s.customerClient(c, req.ClientID)
	if err != nil {
		return err
	}
	ip := c.RealIP()
	keys := []throttle.Key{{Name: throttle.IP(ip), Rule: throttle.PerIP}, {Name: "identity:" + client.ID + "@" + throttle.IP(ip), Rule: throttle.PerAccountIP}}
	id, err := s.verifyIdentity(c, client, req.IdentityToken, keys)
	if err != nil {
		return err
	}
	if err := s.CustomerAuth.SignOutIdentified(c.Request().Context(), client, id.Subject); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
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
	tok, dpopScheme, sent, err := presented(c)
	if err != nil {
		return err
	}
	switch {
	case sent:
		cred, err := s.Inspector.CustomerJWT(tok)
		if err != nil {
			return invalidErr(err)
		}
		if err := s.requireProof(c, tok, dpopScheme, shared.BoundKey(cred.Visitor.Cnf), false); err != nil {
			return err
		}
		sid, clientID = cred.Visitor.Session, cred.Visitor.ClientID
	case req.RefreshToken != "":
		keys := s.Guesses.IPKeys(c.RealIP())
		if err := s.Guesses.CheckFast(keys); err != nil {
			return err
		}
		fam, _, err := s.CustomerAuth.Families.Lookup(ctx, req.RefreshToken)
		if err != nil || fam.Kind != customerauth.FamilyKind {
			return s.Guesses.Fail(ctx, keys, 0, "", apierr.InvalidToken("refresh_token: not a customer refresh token of this server; nothing to sign out"))
		}
		// A bound session is signed out only by its key's holder.
		if fam.JKT != "" {
			if _, err := s.DPoP.Check(ctx, dpop.Request{Proofs: c.Request().Header.Values("DPoP"), Method: c.Request().Method, URL: s.target(c), JKT: fam.JKT}); err != nil {
				return dpopError(err, false)
			}
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
	if ck := s.CustomerSessions.Read(c.Request(), clientID); ck.Present {
		s.CustomerSessions.Clear(c.Response(), ck)
	}
	return c.NoContent(http.StatusNoContent)
}
