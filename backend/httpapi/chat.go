package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/sqlstore"
	"chatauth/shared"
)

// Page limits for every list.
const (
	defaultLimit = 25
	maxLimit     = 100
)

// pathID reads the :id (or another) path parameter.
func pathID(c echo.Context, name string) (int64, error) {
	v := c.Param(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, apierr.InvalidRequest(name + ": must be a positive integer, not " + quoteShort(v))
	}
	return id, nil
}

// page reads ?limit= and ?cursor=. Cursors are opaque to clients so the
// encoding can change without breaking them.
func page(c echo.Context) (after int64, limit int, err error) {
	limit = defaultLimit
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return 0, 0, apierr.InvalidRequest("limit: must be a number from 1 to " + strconv.Itoa(maxLimit))
		}
		limit = n
	}
	if v := c.QueryParam("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err == nil {
			after, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || after < 0 {
			return 0, 0, apierr.InvalidRequest("cursor: not one this server issued; pass next_cursor from the previous page unchanged")
		}
	}
	return after, limit, nil
}

func cursor(lastID int64, more bool) string {
	if !more {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(lastID, 10)))
}

type listPage struct {
	Data       []any  `json:"data"`
	NextCursor string `json:"next_cursor"`
}

// decodeObject reads a JSON object body for the generic handlers.
func decodeObject(c echo.Context) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := decode(c, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, apierr.InvalidRequest("body must be a JSON object, not null")
	}
	return raw, nil
}

func notFound(res shared.Resource, id int64) error {
	return apierr.NotFound(res.String() + " " + strconv.FormatInt(id, 10) + " not found")
}

func storeErr(err error, res shared.Resource, id int64) error {
	switch {
	case errors.Is(err, domain.ErrNotFound):
		return notFound(res, id)
	case errors.Is(err, domain.ErrInUse):
		return apierr.Conflict(res.String() + " " + strconv.FormatInt(id, 10) + " is still in use; remove what refers to it first")
	case errors.Is(err, domain.ErrConflict):
		return apierr.Conflict(res.String() + " already exists")
	}
	return apierr.Internal(err)
}

func (s *Server) list(rs *resourceSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		after, limit, err := page(c)
		if err != nil {
			return err
		}
		objs, more, err := s.Store.ListObjects(c.Request().Context(), rs.table, AgentFrom(c).Org, after, limit)
		if err != nil {
			return apierr.Internal(err)
		}
		out := s.renderPage(rs, objs, more)
		if rs == convSpec {
			if err := s.withVisitors(c, out.Data...); err != nil {
				return err
			}
		}
		return c.JSON(http.StatusOK, out)
	}
}

func (s *Server) renderPage(rs *resourceSpec, objs []sqlstore.Object, more bool) listPage {
	return pageOf(objs, more, func(o sqlstore.Object) int64 { return o.ID }, func(o sqlstore.Object) map[string]any { return rs.render(o) })
}

// pageOf renders one page of a list, with the cursor of its last item
// when more follow.
func pageOf[T any](items []T, more bool, id func(T) int64, render func(T) map[string]any) listPage {
	out := listPage{Data: make([]any, len(items))}
	for i, it := range items {
		out.Data[i] = render(it)
	}
	if len(items) > 0 {
		out.NextCursor = cursor(id(items[len(items)-1]), more)
	}
	return out
}

func (s *Server) fetch(rs *resourceSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		o, err := s.Store.GetObject(c.Request().Context(), rs.table, AgentFrom(c).Org, id)
		if err != nil {
			return storeErr(err, rs.res, id)
		}
		return c.JSON(http.StatusOK, rs.render(o))
	}
}

func (s *Server) create(rs *resourceSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		raw, err := decodeObject(c)
		if err != nil {
			return err
		}
		values, err := rs.parse(raw, true)
		if err != nil {
			return err
		}
		a, ctx := AgentFrom(c), c.Request().Context()
		if err := s.checkRefs(ctx, rs, a.Org, values); err != nil {
			return err
		}
		o, err := s.Store.InsertObject(ctx, rs.table, a.Org, values)
		if err != nil {
			return apierr.Internal(err)
		}
		return c.JSON(http.StatusCreated, rs.render(o))
	}
}

func (s *Server) update(rs *resourceSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		raw, err := decodeObject(c)
		if err != nil {
			return err
		}
		values, err := rs.parse(raw, false)
		if err != nil {
			return err
		}
		a, ctx := AgentFrom(c), c.Request().Context()
		if err := s.checkRefs(ctx, rs, a.Org, values); err != nil {
			return err
		}
		o, err := s.Store.UpdateObject(ctx, rs.table, a.Org, id, values)
		if err != nil {
			return storeErr(err, rs.res, id)
		}
		return c.JSON(http.StatusOK, rs.render(o))
	}
}

func (s *Server) remove(rs *resourceSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := pathID(c, "id")
		if err != nil {
			return err
		}
		if err := s.Store.DeleteObject(c.Request().Context(), rs.table, AgentFrom(c).Org, id); err != nil {
			return storeErr(err, rs.res, id)
		}
		return c.NoContent(http.StatusNoContent)
	}
}

// conversationMessages is how many messages a conversation fetch embeds;
// longer histories page through /conversations/{id}/messages.
const conversationMessages = 200

// fetchConversation answers the conversation with its messages: the
// matrix lets agents fetch a conversation but not list messages, and a
// conversation without its messages is of no use to them.
func (s *Server) fetchConversation(c echo.Context) error {
	id, err := pathID(c, "id")
	if err != nil {
		return err
	}
	a, ctx := AgentFrom(c), c.Request().Context()
	o, err := s.Store.GetObject(ctx, convSpec.table, a.Org, id)
	if err != nil {
		return storeErr(err, shared.Conversation, id)
	}
	msgs, more, err := s.Store.ListObjects(ctx, messageSpec.table, a.Org, 0, conversationMessages, sqlstore.Filter{Column: "conversation_id", Value: id})
	if err != nil {
		return apierr.Internal(err)
	}
	out := convSpec.render(o)
	out["messages"] = s.renderPage(messageSpec, msgs, more).Data
	out["messages_truncated"] = more
	if err := s.withVisitors(c, out); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// withVisitors adds to each rendered conversation its visitor as agents
// see them (docs/identity.md, "What agents see"): whether the site
// identified them, its user id, and name and email marked verified or
// not. Conversations without a visitor get null.
func (s *Server) withVisitors(c echo.Context, convs ...any) error {
	var ids []string
	for _, v := range convs {
		if m, ok := v.(map[string]any); ok {
			if id, _ := m["customer_id"].(string); id != "" {
				ids = append(ids, id)
			}
		}
	}
	found, err := s.Store.Customers(c.Request().Context(), AgentFrom(c).Org, ids)
	if err != nil {
		return apierr.Internal(err)
	}
	for _, v := range convs {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		id, _ := m["customer_id"].(string)
		cust, ok := found[id]
		if !ok {
			m["customer"] = nil
			continue
		}
		m["customer"] = map[string]any{"entity_id": cust.EntityID, "identified": cust.Identified(), "external_id": cust.ExternalID,
			"name": cust.Name, "email": cust.Email, "email_verified": cust.EmailVerified}
	}
	return nil
}

func (s *Server) conversation(c echo.Context) (sqlstore.Object, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return sqlstore.Object{}, err
	}
	o, err := s.Store.GetObject(c.Request().Context(), convSpec.table, AgentFrom(c).Org, id)
	if err != nil {
		return o, storeErr(err, shared.Conversation, id)
	}
	return o, nil
}

func (s *Server) listMessages(c echo.Context) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	after, limit, err := page(c)
	if err != nil {
		return err
	}
	msgs, more, err := s.Store.ListObjects(c.Request().Context(), messageSpec.table, AgentFrom(c).Org, after, limit, sqlstore.Filter{Column: "conversation_id", Value: conv.ID})
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, s.renderPage(messageSpec, msgs, more))
}

func (s *Server) createMessage(c echo.Context) error {
	conv, err := s.conversation(c)
	if err != nil {
		return err
	}
	raw, err := decodeObject(c)
	if err != nil {
		return err
	}
	values, err := messageSpec.parse(raw, true)
	if err != nil {
		return err
	}
	// An agent, bot or API caller speaks for the organization: its message
	// is outgoing. An incoming message would be shown to the visitor as
	// their own words, so only the customer API writes one.
	if values["message_type"] != "outgoing" {
		return apierr.InvalidRequest("message_type: agents post outgoing messages; incoming messages come from the visitor through the customer API")
	}
	a := AgentFrom(c)
	values["conversation_id"] = &conv.ID
	values["sender_type"] = "user"
	if a.Scope.Role == shared.RoleBot {
		values["sender_type"] = "bot"
	}
	values["sender_id"] = a.Subject
	// The message lives in the conversation's organization, which may be a
	// child of the caller's.
	o, err := s.Store.InsertObject(c.Request().Context(), messageSpec.table, conv.OrgID, values)
	if err != nil {
		return apierr.Internal(err)
	}
	s.announced(conv.ID)
	return c.JSON(http.StatusCreated, messageSpec.render(o))
}
