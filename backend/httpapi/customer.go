package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/customerauth"
	"chatauth/backend/directory"
	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/backend/hub"
	"chatauth/backend/oauth"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

// customerCookie is the visitor's session on the issuer's domain. It is
// a third-party cookie on the host site, hence SameSite=None; Secure on
// https; on plain-http development setups browsers refuse that pair, so
// it is SameSite=Lax there.
const customerCookie = "chatauth_customer"

// Visitors created per client IP per minute: enough for an office behind
// one NAT, too few to fill the database.
const creationsPerMinute = 60

func (s *Server) customerRoutes() {
	e := s.e
	e.OPTIONS("/customer/*", s.customerPreflight)
	// The endpoints a page calls answer refusals with CORS (customerCORS).
	// Not identity_logout, which the site's backend calls, nor authorize,
	// a navigation.
	e.POST("/customer/token", s.customerToken, s.customerCORS)
	e.POST("/customer/logout", s.customerLogout, s.customerCORS)
	e.POST("/customer/identity_logout", s.identityLogout)
	e.GET("/customer/authorize", s.customerAuthorize)
	g := e.Group("/customer/api/v1")
	const p = "/customer/api/v1"
	s.customerRoute(g, p, "GET", "/me", shared.Self, shared.Fetch, s.customerMe)
	s.customerRoute(g, p, "PATCH", "/me", shared.Self, shared.Update, s.customerPatchMe)
	s.customerRoute(g, p, "POST", "/conversations", shared.Conversation, shared.Create, s.customerStartChat)
	s.customerRoute(g, p, "GET", "/conversations/:id", shared.Conversation, shared.Fetch, s.customerConversation)
	s.customerRoute(g, p, "POST", "/conversations/:id/messages", shared.Message, shared.Create, s.customerSend)
	s.customerRoute(g, p, "GET", "/conversations/:id/events", shared.Conversation, shared.Fetch, s.customerEvents)
}

func (s *Server) customerRoute(g *echo.Group, prefix, method, path string, res shared.Resource, act shared.Action, h echo.HandlerFunc) {
	s.table = append(s.table, Route{Method: method, Path: prefix + path, Resource: res, Action: act, Family: "customer"})
	if !shared.CustomerAllowed(res, act) {
		panic("customer route " + path + " is not allowed for customers by the matrix")
	}
	g.Add(method, path, h, s.customerCORS, s.RequireCustomer)
}

const ctxCustomer = "chatauth.customer"

// CustomerFrom returns the authenticated visitor.
func CustomerFrom(c echo.Context) *shared.CustomerClaims {
	v, _ := c.Get(ctxCustomer).(*shared.CustomerClaims)
	return v
}

// RequireCustomer authenticates a customer token (Authorization: Bearer;
// on the events stream also ?access_token=, since EventSource cannot send
// headers) and applies the token's client's allowed origins.
func (s *Server) RequireCustomer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, dpopScheme, sent, err := presented(c)
		if err != nil {
			return err
		}
		if !sent && strings.HasSuffix(c.Path(), "/events") {
			tok, sent = c.QueryParam("access_token"), c.QueryParam("access_token") != ""
		}
		if !sent {
			if c.Request().Header.Get(headerAPIToken) != "" {
				return apierr.InvalidToken("api_access_token is an agent credential; the customer API needs a customer token (POST /customer/token)")
			}
			return apierr.InvalidToken("no credentials; send Authorization: Bearer <customer token> (from POST /customer/token)")
		}
		cred, err := s.Inspector.CustomerJWT(tok)
		if err != nil {
			return invalidErr(err)
		}
		claims := cred.Visitor
		// The client is memoized: this is a map read on most requests.
		client, err := s.Store.Client(c.Request().Context(), claims.ClientID)
		if err != nil && !errors.Is(err, domain.ErrNotFound) {
			return apierr.Internal(err)
		}
		if err := allowOrigin(c, client); err != nil {
			return err
		}
		if client.IdentityRequired && !claims.Identified {
			return customerauth.ErrIdentityRequired
		}
		if err := s.requireProof(c, tok, dpopScheme, shared.BoundKey(claims.Cnf), client.DPoP == domain.DPoPRequired); err != nil {
			return err
		}
		c.Set(ctxCustomer, &claims)
		return next(c)
	}
}

// allowOrigin answers CORS for client: the request's Origin must be one
// of its allowed_origins exactly; then (and only then) the CORS headers
// name that origin and allow credentials. Never "*".
func allowOrigin(c echo.Context, client domain.Client) error {
	origin := c.Request().Header.Get("Origin")
	if origin == "" {
		return nil
	}
	for _, o := range client.AllowedOrigins {
		if o == origin {
			corsAllow(c.Response().Header(), origin)
			return nil
		}
	}
	return apierr.New(apierr.CodeForbidden, "origin "+quoteShort(origin)+" is not in the allowed_origins of client_id "+quoteShort(client.ID)+"; add it to the client in the console (or PUT /api/v1/oauth/clients/{id})")
}

// corsAllow lets the page of origin read the answer, its cookie sent,
// and the headers the SDK acts on: the challenge, a backoff and the
// DPoP nonce.
func corsAllow(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After, DPoP-Nonce")
}

// customerCORS makes the refusals of the customer endpoints readable by
// the page that asked. The handlers allow an origin once they know the
// request's client (allowOrigin); an error returned before that (no
// token or a bad one, an unknown client_id, a DPoP refusal with its
// DPoP-Nonce, a malformed body) would reach the page as an opaque
// network error, and the SDK could read neither the code nor the nonce.
// A refusal names the origin when some client allows it, the rule of the
// preflight the browser already passed; a success still needs the
// request's own client to list it. Only the error path pays the lookup.
func (s *Server) customerCORS(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		if err == nil {
			return nil
		}
		origin := c.Request().Header.Get("Origin")
		h := c.Response().Header()
		if origin == "" || c.Response().Committed || h.Get("Access-Control-Allow-Origin") != "" {
			return err
		}
		if ok, oerr := s.Store.OriginAllowed(c.Request().Context(), origin); oerr == nil && ok {
			corsAllow(h, origin)
		} else {
			// The answer differs by Origin all the same.
			h.Add("Vary", "Origin")
		}
		return err
	}
}

// customerPreflight answers CORS preflights for the customer endpoints. A
// preflight names no client, so an origin is accepted when some client
// allows it; the real request is then checked against its own client.
func (s *Server) customerPreflight(c echo.Context) error {
	origin := c.Request().Header.Get("Origin")
	ok, err := s.Store.OriginAllowed(c.Request().Context(), origin)
	if err != nil {
		return apierr.Internal(err)
	}
	if origin == "" || !ok {
		return apierr.New(apierr.CodeForbidden, "origin "+quoteShort(origin)+" is not in the allowed_origins of any client")
	}
	h := c.Response().Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID, DPoP")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	return c.NoContent(http.StatusNoContent)
}

type customerTokenRequest struct {
	ClientID     string `json:"client_id"`
	ResponseType string `json:"response_type"`
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
	EntityID     string `json:"entity_id"`
	// IdentityToken is the site's signed word for its logged-in user
	// (docs/identity.md); refresh_token beside it names the anonymous
	// visit to bring along.
	IdentityToken string `json:"identity_token"`
}

func (s *Server) customerClient(c echo.Context, id string) (domain.Client, error) {
	if id == "" {
		return domain.Client{}, apierr.InvalidRequest("client_id: required; use the client_id of your widget (console → OAuth clients)")
	}
	client, err := s.Store.Client(c.Request().Context(), id)
	if errors.Is(err, domain.ErrNotFound) {
		return client, apierr.New(apierr.CodeInvalidClient, "client_id: no client "+quoteShort(id)+" is registered on this server")
	}
	if err != nil {
		return client, apierr.Internal(err)
	}
	return client, nil
}

// customerToken is POST /customer/token, the cases of (docs/api.md, "Customers (website visitors)").
// A proof's jti stays recorded whatever the answer: a proof does not sign
// the body, so a forgotten one would be accepted again with another. The
// refused requests that recorded one are counted per client IP instead,
// so a stranger's broken requests cannot fill the table.
func (s *Server) customerToken(c echo.Context) error {
	err := s.customerTokenAnswer(c)
	if _, ok := c.Get(ctxProofRecord).(dpop.Proof); ok && err != nil {
		s.Creations.Fail(refusedProofsKey + c.RealIP())
	}
	return err
}

// refusedProofsPerMinute bounds the proof ids the refused requests of one
// client IP store: the SDK's own refusals are rare (an expired identity
// token, a spent refresh token), and an office behind one NAT stays far
// below it.
const (
	refusedProofsPerMinute = 60
	refusedProofsKey       = "refused-proofs:"
)

// customerTokenShape refuses a malformed request before its proof is
// checked (and recorded).
func customerTokenShape(req customerTokenRequest) error {
	switch {
	case req.IdentityToken != "" && req.GrantType != "":
		return apierr.InvalidRequest("grant_type: leave it out with identity_token (send response_type token)")
	case req.IdentityToken != "" && req.EntityID != "":
		return apierr.InvalidRequest("entity_id: leave it out with identity_token; the token's sub names the visitor")
	case req.IdentityToken == "" && req.GrantType == "refresh_token":
		if req.RefreshToken == "" {
			return apierr.InvalidRequest("refresh_token: required with grant_type refresh_token")
		}
		return nil
	case req.GrantType != "":
		return apierr.InvalidRequest("grant_type: use refresh_token, or leave it out and send response_type token")
	case req.ResponseType != "token":
		return apierr.InvalidRequest("response_type: must be token")
	}
	return nil
}

func (s *Server) customerTokenAnswer(c echo.Context) error {
	noStore(c)
	var req customerTokenRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	client, err := s.customerClient(c, req.ClientID)
	if err != nil {
		return err
	}
	if err := allowOrigin(c, client); err != nil {
		return err
	}
	if err := customerTokenShape(req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if len(c.Request().Header.Values("DPoP")) > 0 {
		if wait := s.Creations.Blocked(refusedProofsKey+c.RealIP(), refusedProofsPerMinute); wait > 0 {
			return apierr.TooManyRequests("too many refused requests with DPoP proofs from this address; try again in a minute", wait)
		}
	}
	jkt, err := s.tokenProof(c, client)
	if err != nil {
		return err
	}
	if req.IdentityToken != "" {
		ck := s.CustomerSessions.Read(c.Request(), client.ID)
		ans, err := s.identifiedVisitor(c, client, req, ck, jkt)
		if err != nil {
			return err
		}
		if err := s.saveVisitorCookie(c, ck, ans, client.ID); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, ans)
	}
	if req.GrantType == "refresh_token" {
		// The widget's silent refresh: the refresh token proves the
		// visitor, so the cookie is neither read nor written.
		ans, err := s.CustomerAuth.Refresh(ctx, client, req.RefreshToken, jkt)
		if err != nil {
			return err
		}
		// No cookie is set here: a cookie proves the browser it was given
		// to, and whoever presents a refresh token need not be that
		// browser (a stolen token must not buy a lasting cookie).
		return c.JSON(http.StatusOK, ans)
	}
	ck := s.CustomerSessions.Read(c.Request(), client.ID)
	cookieEntity, cookieSID := ck.Entity, ck.SID
	if ck.Client != client.ID {
		cookieEntity, cookieSID = "", ""
	}
	var ans customerauth.Answer
	switch {
	case req.EntityID != "" && req.EntityID == cookieEntity:
		ans, err = s.CustomerAuth.Continue(ctx, client, cookieEntity, cookieSID, jkt)
	case req.EntityID != "":
		r := c.Request()
		if r.Header.Get(echo.HeaderAuthorization) == "" && r.Header.Get(headerAPIToken) == "" {
			return apierr.New(apierr.CodeForbidden, "entity_id without this visitor's cookie needs the credential of an agent of the client's organization who may write messages (a backend vouching for its visitor; discouraged, see docs/api.md)")
		}
		agent, aerr := s.authenticateAgent(c)
		if aerr != nil {
			return aerr
		}
		ans, err = s.CustomerAuth.Vouch(ctx, client, req.EntityID, agent.Cred, jkt)
	case cookieEntity != "":
		ans, err = s.CustomerAuth.Continue(ctx, client, cookieEntity, cookieSID, jkt)
		if errors.Is(err, customerauth.ErrUnknownVisitor) {
			ans, err = s.newVisitor(c, client, jkt)
		}
	default:
		ans, err = s.newVisitor(c, client, jkt)
	}
	if err != nil {
		return err
	}
	if err := s.saveVisitorCookie(c, ck, ans, client.ID); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ans)
}

// saveVisitorCookie points the visitor's cookie at the answer's visitor
// and session (had is what the request's cookie said).
func (s *Server) saveVisitorCookie(c echo.Context, had visitorCookie, ans customerauth.Answer, clientID string) error {
	if err := s.CustomerSessions.Write(c.Response(), had, visitorCookie{Entity: ans.EntityID, SID: ans.Session, Client: clientID}); err != nil {
		return apierr.Internal(err)
	}
	return nil
}

func (s *Server) newVisitor(c echo.Context, client domain.Client, jkt string) (customerauth.Answer, error) {
	if client.IdentityRequired {
		return customerauth.Answer{}, customerauth.ErrIdentityRequired
	}
	key := "new-visitor:" + c.RealIP()
	if wait := s.Creations.Blocked(key, creationsPerMinute); wait > 0 {
		return customerauth.Answer{}, apierr.TooManyRequests("too many new visitors from this address; try again in a minute", wait)
	}
	s.Creations.Fail(key)
	return s.CustomerAuth.New(c.Request().Context(), client, jkt)
}

// customerAuthorize is the implicit redirect for visitors, under the
// redirect rules of /oauth/authorize.
func (s *Server) customerAuthorize(c echo.Context) error {
	ctx := c.Request().Context()
	req, client, err := oauth.ParseAuthorize(c.QueryParams(), func(id string) (domain.Client, error) { return s.Store.Client(ctx, id) })
	// Every answer names this server (RFC 9207), errors included, as on
	// /oauth/authorize: the SDK checks it before it takes the token.
	req.Issuer = s.Issuer
	var pe *oauth.PageError
	var oe *oauth.Error
	switch {
	case errors.As(err, &pe):
		return s.errorPage(c, http.StatusBadRequest, pe.Title, pe.Message)
	case c.QueryParam("response_type") != "token":
		// Checked before the other rules, which are about the code flow.
		return s.redirect(c, req.ErrorRedirect(oauth.ErrUnsupportedResponseType.WithDescription("the customer flow uses response_type=token")))
	case errors.As(err, &oe):
		return s.redirect(c, req.ErrorRedirect(oe))
	case err != nil:
		return err
	case client.DPoP == domain.DPoPRequired:
		// A redirect carries no DPoP proof, and its token would be a
		// bearer token.
		return s.redirect(c, req.ErrorRedirect(oauth.ErrAccessDenied.WithDescription("this widget requires DPoP-bound tokens, which the redirect flow cannot give; use POST /customer/token with a DPoP proof (the SDK's cookie flow)")))
	case client.IdentityRequired:
		// A redirect carries no identity token: identified visitors come
		// through POST /customer/token.
		return s.redirect(c, req.ErrorRedirect(oauth.ErrAccessDenied.WithDescription(shared.ErrIdentityRequired+": this widget only accepts visitors signed in on the site, whose identity_token goes to POST /customer/token")))
	}
	ck := s.CustomerSessions.Read(c.Request(), client.ID)
	entity, sid := ck.Entity, ck.SID
	if ck.Client != client.ID {
		entity = ""
	}
	var ans customerauth.Answer
	if entity != "" {
		ans, err = s.CustomerAuth.Continue(ctx, client, entity, sid, "")
	}
	if entity == "" || errors.Is(err, customerauth.ErrUnknownVisitor) {
		ans, err = s.newVisitor(c, client, "")
	}
	if err != nil {
		ae, _ := apierr.As(err)
		if ae != nil && ae.Code == apierr.CodeTooManyRequests {
			return s.redirect(c, req.ErrorRedirect(oauth.ErrServerError.WithDescription(ae.Message)))
		}
		return err
	}
	if err := s.saveVisitorCookie(c, ck, ans, client.ID); err != nil {
		return err
	}
	return s.redirect(c, req.Redirect(url.Values{"access_token": {ans.AccessToken}, "token_type": {"Bearer"},
		"expires_in": {strconv.FormatInt(ans.ExpiresIn, 10)}, "entity_id": {ans.EntityID}}))
}

func (s *Server) customerMe(c echo.Context) error {
	cust, err := s.Store.Customer(c.Request().Context(), CustomerFrom(c).Subject)
	if err != nil {
		return storeErrCustomer(err)
	}
	return c.JSON(http.StatusOK, cust)
}

func storeErrCustomer(err error) error {
	if errors.Is(err, domain.ErrNotFound) {
		return apierr.InvalidToken("this visitor no longer exists; get a new token with POST /customer/token")
	}
	return apierr.Internal(err)
}

func (s *Server) customerPatchMe(c echo.Context) error {
	var req struct {
		Name  *string `json:"name"`
		Email *string `json:"email"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	cust, err := s.Store.Customer(c.Request().Context(), CustomerFrom(c).Subject)
	if err != nil {
		return storeErrCustomer(err)
	}
	if cust.Identified() && (req.Name != nil || req.Email != nil) {
		return apierr.New(apierr.CodeForbidden, "name and email of a visitor the site identified come from the site's identity token; change them on the site")
	}
	if req.Name != nil {
		if err := maxLen("name", *req.Name, 200); err != nil {
			return err
		}
		cust.Name = strings.TrimSpace(*req.Name)
	}
	if req.Email != nil {
		v := strings.TrimSpace(*req.Email)
		if v != "" {
			if err := directory.CheckEmail(v); err != nil {
				return err
			}
		}
		cust.Email = v
	}
	if err := s.Store.UpdateCustomer(c.Request().Context(), &cust); err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, cust)
}

func (s *Server) customerStartChat(c echo.Context) error {
	var req struct {
		Subject string `json:"subject"`
	}
	if c.Request().ContentLength != 0 {
		if err := decode(c, &req); err != nil {
			return err
		}
	}
	if err := maxLen("subject", req.Subject, 500); err != nil {
		return err
	}
	cl := CustomerFrom(c)
	o, err := s.Store.InsertObject(c.Request().Context(), convSpec.table, cl.Org, map[string]any{"customer_id": cl.Subject, "status": "open", "subject": strings.TrimSpace(req.Subject)})
	if err != nil {
		return apierr.Internal(err)
	}
	out := convSpec.render(o)
	out["messages"] = []any{}
	return c.JSON(http.StatusCreated, out)
}

// ownConversation finds a conversation of the calling visitor; anyone
// else's is 404, like a missing one.
func (s *Server) ownConversation(c echo.Context) (sqlstore.Object, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return sqlstore.Object{}, err
	}
	cl := CustomerFrom(c)
	o, err := s.Store.GetObject(c.Request().Context(), convSpec.table, cl.Org, id)
	if err == nil && o.Values["customer_id"] != cl.Subject {
		err = domain.ErrNotFound
	}
	if err != nil {
		return o, storeErr(err, shared.Conversation, id)
	}
	return o, nil
}

// visibleMessages lists a conversation's messages after id `after` as a
// visitor sees them: private notes left out.
func (s *Server) visibleMessages(c echo.Context, conv sqlstore.Object, after int64, limit int) ([]any, error) {
	msgs, _, err := s.Store.ListObjects(c.Request().Context(), messageSpec.table, conv.OrgID, after, limit, sqlstore.Filter{Column: "conversation_id", Value: conv.ID})
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := []any{}
	for _, m := range msgs {
		if m.Values["private"] == int64(1) {
			continue
		}
		out = append(out, messageSpec.render(m))
	}
	return out, nil
}

func (s *Server) customerConversation(c echo.Context) error {
	conv, err := s.ownConversation(c)
	if err != nil {
		return err
	}
	msgs, err := s.visibleMessages(c, conv, 0, conversationMessages)
	if err != nil {
		return err
	}
	out := convSpec.render(conv)
	out["messages"] = msgs
	return c.JSON(http.StatusOK, out)
}

func (s *Server) customerSend(c echo.Context) error {
	conv, err := s.ownConversation(c)
	if err != nil {
		return err
	}
	var req struct {
		Content string `json:"content"`
	}
	if err := decode(c, &req); err != nil {
		return err
	}
	req.Content = strings.TrimSpace(req.Content)
	if err := first(required("content", req.Content), maxLen("content", req.Content, 10000)); err != nil {
		return err
	}
	cl := CustomerFrom(c)
	o, err := s.Store.InsertObject(c.Request().Context(), messageSpec.table, conv.OrgID, map[string]any{
		"conversation_id": &conv.ID, "content": req.Content, "message_type": "incoming", "private": int64(0),
		"sender_type": "customer", "sender_id": cl.Subject,
	})
	if err != nil {
		return apierr.Internal(err)
	}
	s.announced(conv.ID)
	return c.JSON(http.StatusCreated, messageSpec.render(o))
}

// customerEvents streams the visitor's conversation (private notes left
// out) as server-sent events.
func (s *Server) customerEvents(c echo.Context) error {
	conv, err := s.ownConversation(c)
	if err != nil {
		return err
	}
	v := CustomerFrom(c)
	return s.streamMessages(c, conv, hub.Spec{WithPrivate: false, Expires: time.Unix(v.Expiry, 0), Session: v.Session, Owner: "visitor:" + v.Subject})
}

// agentEvents streams a conversation to the console, private notes
// included. The bearer comes in the Authorization header (the console reads
// the stream with fetch), never in the URL.
func (s *Server) agentEvents(c echo.Context) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	a := AgentFrom(c)
	sp := hub.Spec{WithPrivate: true, Expires: a.Cred.Expiry(), Session: a.Session, Owner: "agent:" + a.Subject}
	switch a.Cred.Kind {
	case credential.API, credential.Personal, credential.Bot:
		// No session to revoke: the sweeper asks the credential core again.
		r := c.Request()
		h, apiTok := r.Header.Get(echo.HeaderAuthorization), r.Header.Get(headerAPIToken)
		sp.Recheck = func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var err error
			if apiTok != "" {
				_, err = s.Inspector.Inspect(ctx, apiTok)
			} else {
				_, err = s.Inspector.InspectBasic(ctx, h)
			}
			var inv *credential.Invalid
			return !errors.As(err, &inv) // a database hiccup does not end the stream
		}
	}
	return s.streamMessages(c, conv, sp)
}

// streamMessages hands the request to the hub, which sends conv's new
// messages as server-sent events. Each event's id is the message id, so
// a reconnect with Last-Event-ID (or ?last_event_id=) resumes exactly
// after the last message received; without one the stream starts after
// the newest.
func (s *Server) streamMessages(c echo.Context, conv sqlstore.Object, sp hub.Spec) error {
	ctx := c.Request().Context()
	last := c.Request().Header.Get("Last-Event-ID")
	if last == "" {
		last = c.QueryParam("last_event_id")
	}
	var err error
	if last != "" {
		if sp.After, err = strconv.ParseInt(last, 10, 64); err != nil || sp.After < 0 {
			return apierr.InvalidRequest("Last-Event-ID: must be the id of the last event received")
		}
	} else if sp.After, err = s.Store.MaxMessageID(ctx, conv.ID); err != nil {
		return apierr.Internal(err)
	}
	sp.Conv, sp.Org, sp.IP = conv.ID, conv.OrgID, c.RealIP()
	err = s.Hub.Serve(c.Response(), c.Response().Header(), sp)
	var many *hub.ErrTooMany
	switch {
	case errors.As(err, &many):
		return apierr.TooManyRequests(many.What, 5*time.Second)
	case errors.Is(err, hub.ErrClosed):
		c.Response().Header().Set("Retry-After", "1")
		return apierr.New(apierr.CodeUnavailable, "the server is shutting down; reconnect in a second")
	}
	return err
}

// loadMessages is the hub's reader: a conversation's messages after an
// id, rendered once for every stream.
func (s *Server) loadMessages(ctx context.Context, conv, org, after int64, limit int) ([]hub.Event, error) {
	msgs, _, err := s.Store.ListObjects(ctx, messageSpec.table, org, after, limit, sqlstore.Filter{Column: "conversation_id", Value: conv})
	if err != nil {
		return nil, err
	}
	evs := make([]hub.Event, len(msgs))
	for i, m := range msgs {
		b, err := json.Marshal(messageSpec.render(m))
		if err != nil {
			return nil, err
		}
		evs[i] = hub.Event{ID: m.ID, Private: m.Values["private"] == int64(1), Data: b}
	}
	return evs, nil
}
