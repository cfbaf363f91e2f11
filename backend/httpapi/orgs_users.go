package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/agentauth"
	"chatauth/backend/apierr"
	"chatauth/backend/directory"
	"chatauth/backend/domain"
	"chatauth/shared"
)

func renderOrg(o domain.Organization) map[string]any {
	m := map[string]any{"id": o.ID, "name": o.Name, "parent_id": nil, "created_at": o.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if o.ParentID != 0 {
		m["parent_id"] = o.ParentID
	}
	return m
}

func orgID(o domain.Organization) int64 { return o.ID }
func userID(u domain.User) int64        { return u.ID }

func (s *Server) listOrganizations(c echo.Context) error {
	after, limit, err := page(c)
	if err != nil {
		return err
	}
	orgs, more, err := s.Store.ListOrganizations(c.Request().Context(), AgentFrom(c).Org, after, limit)
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, pageOf(orgs, more, orgID, renderOrg))
}

func (s *Server) orgInTree(c echo.Context) (domain.Organization, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return domain.Organization{}, err
	}
	o, err := s.Store.OrganizationInTree(c.Request().Context(), AgentFrom(c).Org, id)
	if err != nil {
		return o, storeErr(err, shared.Organization, id)
	}
	return o, nil
}

func (s *Server) fetchOrganization(c echo.Context) error {
	o, err := s.orgInTree(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderOrg(o))
}

type orgBody struct {
	Name     *string `json:"name"`
	ParentID *int64  `json:"parent_id"`
}

// createOrganization makes a child organization; its creator, an admin of
// an ancestor, is admin there through the tree.
func (s *Server) createOrganization(c echo.Context) error {
	var req orgBody
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return apierr.InvalidRequest("name: required")
	}
	if err := first(required("name", *req.Name), maxLen("name", *req.Name, 200)); err != nil {
		return err
	}
	a, ctx := AgentFrom(c), c.Request().Context()
	parent := a.Org
	if req.ParentID != nil {
		if _, err := s.Store.OrganizationInTree(ctx, a.Org, *req.ParentID); err != nil {
			if errors.Is(err, domain.ErrNotFound) {
				return apierr.InvalidRequest("parent_id: no organization " + strconv.FormatInt(*req.ParentID, 10) + " in your tree")
			}
			return apierr.Internal(err)
		}
		parent = *req.ParentID
	}
	o := &domain.Organization{Name: strings.TrimSpace(*req.Name), ParentID: parent}
	if err := s.Store.CreateOrganization(ctx, o); err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusCreated, renderOrg(*o))
}

func (s *Server) updateOrganization(c echo.Context) error {
	var req orgBody
	if err := decode(c, &req); err != nil {
		return err
	}
	if req.ParentID != nil {
		return apierr.InvalidRequest("parent_id: cannot be changed; create the organization under its new parent instead")
	}
	o, err := s.orgInTree(c)
	if err != nil {
		return err
	}
	if err := s.renameOrg(c, &o, req.Name); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderOrg(o))
}

func (s *Server) deleteOrganization(c echo.Context) error {
	o, err := s.orgInTree(c)
	if err != nil {
		return err
	}
	if o.ID == AgentFrom(c).Org {
		return apierr.InvalidRequest("id: you cannot delete your own organization")
	}
	if err := s.Store.DeleteOrganization(c.Request().Context(), o.ID); err != nil {
		if errors.Is(err, domain.ErrInUse) {
			return apierr.Conflict("organization " + strconv.FormatInt(o.ID, 10) + " still has child organizations, users or data; delete them first so nothing is lost")
		}
		return storeErr(err, shared.Organization, o.ID)
	}
	return c.NoContent(http.StatusNoContent)
}

func renderUser(u domain.User) map[string]any {
	p := agentauth.ProfileOf(u)
	return map[string]any{"id": p.ID, "name": p.Name, "email": p.Email, "account_id": p.AccountID, "role": p.Role,
		"created_at": u.CreatedAt.UTC().Format(time.RFC3339Nano), "updated_at": u.UpdatedAt.UTC().Format(time.RFC3339Nano)}
}

func (s *Server) listUsers(c echo.Context) error {
	after, limit, err := page(c)
	if err != nil {
		return err
	}
	users, more, err := s.Store.ListUsers(c.Request().Context(), AgentFrom(c).Org, after, limit)
	if err != nil {
		return apierr.Internal(err)
	}
	return c.JSON(http.StatusOK, pageOf(users, more, userID, renderUser))
}

func (s *Server) userInTree(c echo.Context) (domain.User, error) {
	id, err := pathID(c, "id")
	if err != nil {
		return domain.User{}, err
	}
	u, err := s.Store.UserInTree(c.Request().Context(), AgentFrom(c).Org, id)
	if err != nil {
		return u, storeErr(err, shared.User, id)
	}
	return u, nil
}

func (s *Server) fetchUser(c echo.Context) error {
	u, err := s.userInTree(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderUser(u))
}

type userBody struct {
	Name      *string `json:"name"`
	Email     *string `json:"email"`
	Password  *string `json:"password"`
	Role      *string `json:"role"`
	AccountID *int64  `json:"account_id"`
}

func (b userBody) patch() directory.Patch {
	return directory.Patch{Name: b.Name, Email: b.Email, Password: b.Password, Role: b.Role}
}

func (s *Server) createUser(c echo.Context) error {
	var req userBody
	if err := decode(c, &req); err != nil {
		return err
	}
	a, ctx := AgentFrom(c), c.Request().Context()
	org := a.Org
	if req.AccountID != nil {
		ok, err := s.Store.InTree(ctx, a.Org, *req.AccountID)
		if err != nil {
			return apierr.Internal(err)
		}
		if !ok {
			return apierr.InvalidRequest("account_id: no organization " + strconv.FormatInt(*req.AccountID, 10) + " in your tree")
		}
		org = *req.AccountID
	}
	u, err := s.Users.Create(c.Request().Context(), &AgentFrom(c).Cred, org, req.patch())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, renderUser(u))
}

// updateUser: an admin may change any field of a user in the tree; anyone
// may rename themselves (the matrix's "update user (self)"). Passwords of
// one's own account change through PATCH /api/v1/profile, which asks for
// the current one.
func (s *Server) updateUser(c echo.Context) error {
	var req userBody
	if err := decode(c, &req); err != nil {
		return err
	}
	u, err := s.userInTree(c)
	if err != nil {
		return err
	}
	a, ctx := AgentFrom(c), c.Request().Context()
	self := strconv.FormatInt(u.ID, 10) == a.Subject
	if req.AccountID != nil {
		return apierr.InvalidRequest("account_id: cannot be changed; create the user in the other organization instead")
	}
	if self && (req.Email != nil || req.Role != nil || req.Password != nil) && !a.Scope.Allows(shared.User, shared.Update) {
		return apierr.InsufficientScope("role admin is needed to change email, role or password here; change your own password at PATCH /api/v1/profile")
	}
	if self && req.Password != nil {
		return apierr.InvalidRequest("password: change your own password at PATCH /api/v1/profile, with current_password")
	}
	if err := s.Users.Update(ctx, &a.Cred, &u, req.patch()); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, renderUser(u))
}

func (s *Server) deleteUser(c echo.Context) error {
	u, err := s.userInTree(c)
	if err != nil {
		return err
	}
	if strconv.FormatInt(u.ID, 10) == AgentFrom(c).Subject {
		return apierr.InvalidRequest("id: you cannot delete yourself")
	}
	if err := s.Users.Delete(c.Request().Context(), u.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// renameOrg applies an optional new name from a PATCH body; the agent and
// platform APIs share it.
func (s *Server) renameOrg(c echo.Context, o *domain.Organization, name *string) error {
	if name == nil {
		return nil
	}
	if err := first(required("name", *name), maxLen("name", *name, 200)); err != nil {
		return err
	}
	o.Name = strings.TrimSpace(*name)
	if err := s.Store.RenameOrganization(c.Request().Context(), o.ID, o.Name); err != nil {
		return apierr.Internal(err)
	}
	return nil
}
