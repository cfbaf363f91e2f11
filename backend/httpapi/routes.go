package httpapi

import (
	"strconv"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/shared"
)

// Route is one entry of the route table: a path and what it does under
// the permission matrix. Tests walk this table, so a route added here is
// tested against every role without anyone listing it again.
type Route struct {
	Method   string
	Path     string
	Resource shared.Resource
	Action   shared.Action
	// Family is the token family the route accepts: "agent" or "customer".
	Family string
}

// Routes returns the protected routes of the chat APIs.
func (s *Server) Routes() []Route { return append([]Route(nil), s.table...) }

// agentRoute registers a route of the agent API: the caller is
// authenticated (bearer JWT or API token), then authorized for
// (res, act) by the matrix and the token's API scopes. No handler checks a
// role by hand.
func (s *Server) agentRoute(g *echo.Group, prefix, method, path string, res shared.Resource, act shared.Action, h echo.HandlerFunc, extra ...echo.MiddlewareFunc) {
	s.table = append(s.table, Route{Method: method, Path: prefix + path, Resource: res, Action: act, Family: "agent"})
	mw := append([]echo.MiddlewareFunc{s.RequireAgent}, extra...)
	mw = append(mw, authorize(res, act))
	g.Add(method, path, h, mw...)
}

// authorize consults the matrix. Fetching or updating one's own user
// record is the matrix's "user (self)" row.
func authorize(res shared.Resource, act shared.Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			a := AgentFrom(c)
			r := res
			if res == shared.User && (act == shared.Fetch || act == shared.Update) && c.Param("id") == a.Subject {
				r = shared.Self
			}
			if err := allow(a, r, act); err != nil {
				return err
			}
			return next(c)
		}
	}
}

// sameAccount guards the Chatwoot-style /accounts/{account_id}/… aliases:
// another organization's account id is 404, like its objects.
func sameAccount(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := strconv.ParseInt(c.Param("account_id"), 10, 64)
		if err != nil || id <= 0 {
			return apierr.InvalidRequest("account_id: must be a positive integer")
		}
		if id != AgentFrom(c).Org {
			return apierr.NotFound("account " + strconv.FormatInt(id, 10) + " not found; your token belongs to account " + strconv.FormatInt(AgentFrom(c).Org, 10))
		}
		return next(c)
	}
}

func (s *Server) chatRoutes(v1 *echo.Group) {
	const p = "/api/v1"
	crud := func(g *echo.Group, prefix string, rs *resourceSpec, extra ...echo.MiddlewareFunc) {
		base := "/" + rs.path
		s.agentRoute(g, prefix, "GET", base, rs.res, shared.List, s.list(rs), extra...)
		s.agentRoute(g, prefix, "POST", base, rs.res, shared.Create, s.create(rs), extra...)
		fetch := s.fetch(rs)
		if rs == convSpec {
			fetch = s.fetchConversation
		}
		s.agentRoute(g, prefix, "GET", base+"/:id", rs.res, shared.Fetch, fetch, extra...)
		s.agentRoute(g, prefix, "PATCH", base+"/:id", rs.res, shared.Update, s.update(rs), extra...)
		s.agentRoute(g, prefix, "PUT", base+"/:id", rs.res, shared.Update, s.update(rs), extra...)
		s.agentRoute(g, prefix, "DELETE", base+"/:id", rs.res, shared.Delete, s.remove(rs), extra...)
	}
	for _, rs := range []*resourceSpec{groupSpec, contactSpec, convSpec, knowledgeSpec, formSpec, serviceSpec} {
		crud(v1, p, rs)
	}
	messages := func(g *echo.Group, prefix string, extra ...echo.MiddlewareFunc) {
		s.agentRoute(g, prefix, "GET", "/conversations/:id/messages", shared.Message, shared.List, s.listMessages, extra...)
		s.agentRoute(g, prefix, "POST", "/conversations/:id/messages", shared.Message, shared.Create, s.createMessage, extra...)
	}
	messages(v1, p)
	s.agentRoute(v1, p, "GET", "/conversations/:id/events", shared.Conversation, shared.Fetch, s.agentEvents)
	s.agentRoute(v1, p, "GET", "/messages/:id", shared.Message, shared.Fetch, s.fetch(messageSpec))
	s.agentRoute(v1, p, "PATCH", "/messages/:id", shared.Message, shared.Update, s.update(messageSpec))
	s.agentRoute(v1, p, "PUT", "/messages/:id", shared.Message, shared.Update, s.update(messageSpec))
	s.agentRoute(v1, p, "DELETE", "/messages/:id", shared.Message, shared.Delete, s.remove(messageSpec))

	s.agentRoute(v1, p, "GET", "/organizations", shared.Organization, shared.List, s.listOrganizations)
	s.agentRoute(v1, p, "POST", "/organizations", shared.Organization, shared.Create, s.createOrganization)
	s.agentRoute(v1, p, "GET", "/organizations/:id", shared.Organization, shared.Fetch, s.fetchOrganization)
	s.agentRoute(v1, p, "PATCH", "/organizations/:id", shared.Organization, shared.Update, s.updateOrganization)
	s.agentRoute(v1, p, "PUT", "/organizations/:id", shared.Organization, shared.Update, s.updateOrganization)
	s.agentRoute(v1, p, "DELETE", "/organizations/:id", shared.Organization, shared.Delete, s.deleteOrganization)

	s.agentRoute(v1, p, "GET", "/users", shared.User, shared.List, s.listUsers)
	s.agentRoute(v1, p, "POST", "/users", shared.User, shared.Create, s.createUser)
	s.agentRoute(v1, p, "GET", "/users/:id", shared.User, shared.Fetch, s.fetchUser)
	s.agentRoute(v1, p, "PATCH", "/users/:id", shared.User, shared.Update, s.updateUser)
	s.agentRoute(v1, p, "PUT", "/users/:id", shared.User, shared.Update, s.updateUser)
	s.agentRoute(v1, p, "DELETE", "/users/:id", shared.User, shared.Delete, s.deleteUser)

	// Chatwoot-style aliases on the same handlers, so a bot written against
	// Chatwoot's API works unchanged.
	acct := v1.Group("/accounts/:account_id")
	const ap = p + "/accounts/:account_id"
	crud(acct, ap, convSpec, sameAccount)
	crud(acct, ap, contactSpec, sameAccount)
	messages(acct, ap, sameAccount)
}
