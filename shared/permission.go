package shared

// Resource is a kind of object the chat API serves.
type Resource uint8

// The resources of (docs/api.md, "Chat API"), plus Self: the caller's own user record, which
// the matrix treats apart from other users.
const (
	ResourceInvalid Resource = iota
	Organization
	Group
	User
	Self
	Conversation
	Message
	Contact
	KnowledgeItem
	Form
	Service
	resourceCount
)

var resourceNames = [...]string{"", "organization", "group", "user", "user (self)", "conversation", "message", "contact", "knowledge item", "form", "service"}

// Resources lists every resource.
var Resources = []Resource{Organization, Group, User, Self, Conversation, Message, Contact, KnowledgeItem, Form, Service}

func (r Resource) String() string {
	if int(r) < len(resourceNames) {
		return resourceNames[r]
	}
	return ""
}

// Action is what a request does to a resource.
type Action uint8

// The five actions of the matrix.
const (
	ActionInvalid Action = iota
	List
	Fetch
	Create
	Update
	Delete
	actionCount
)

var actionNames = [...]string{"", "list", "fetch", "create", "update", "delete"}

// Actions lists every action.
var Actions = []Action{List, Fetch, Create, Update, Delete}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return ""
}

// Rule is one cell group of the matrix: the lowest role allowed to do
// Action on Resource. Roles cascade, so every higher role is allowed too.
type Rule struct {
	Resource Resource
	Action   Action
	Min      Role
}

// Matrix is the permission matrix of (docs/api.md, "Permission matrix") (from the web1on1 document),
// the one place the backend authorizes from and the tests check against.
// A (resource, action) pair not listed here is allowed to nobody.
var Matrix = []Rule{
	{Organization, List, RoleBot},
	{Group, List, RoleBot},
	{User, List, RoleBot},
	{Conversation, List, RoleAgent},
	{Contact, List, RoleAgent},
	{KnowledgeItem, List, RoleAgent},
	{Message, List, RoleBot},
	{Form, List, RoleBot},
	{Service, List, RoleAdmin},

	{Organization, Fetch, RoleBot},
	{Group, Fetch, RoleBot},
	{User, Fetch, RoleBot},
	{Self, Fetch, RoleGuest},
	{Conversation, Fetch, RoleGuest},
	{Message, Fetch, RoleBot},
	{Contact, Fetch, RoleBot},
	{KnowledgeItem, Fetch, RoleAgent},
	{Form, Fetch, RoleAdmin},
	{Service, Fetch, RoleAdmin},

	{Organization, Create, RoleAdmin},
	{Group, Create, RoleAdmin},
	{User, Create, RoleAdmin},
	{Service, Create, RoleAdmin},
	{Conversation, Create, RoleAgent},
	{KnowledgeItem, Create, RoleAgent},
	{Message, Create, RoleGuest},
	{Contact, Create, RoleBot},
	{Form, Create, RoleBot},

	{Organization, Update, RoleAdmin},
	{Group, Update, RoleAdmin},
	{User, Update, RoleAdmin},
	{Conversation, Update, RoleAdmin},
	{Service, Update, RoleAdmin},
	{Self, Update, RoleGuest},
	{Message, Update, RoleBot},
	{Contact, Update, RoleBot},
	{Form, Update, RoleBot},
	{KnowledgeItem, Update, RoleAgent},

	{KnowledgeItem, Delete, RoleBot},
	{Organization, Delete, RoleAdmin},
	{Group, Delete, RoleAdmin},
	{User, Delete, RoleAdmin},
	{Conversation, Delete, RoleAdmin},
	{Message, Delete, RoleAdmin},
	{Contact, Delete, RoleAdmin},
	{Form, Delete, RoleAdmin},
	{Service, Delete, RoleAdmin},
}

// minRole is Matrix indexed for an allocation-free lookup on every request.
var minRole = func() (t [resourceCount][actionCount]Role) {
	for _, r := range Matrix {
		t[r.Resource][r.Action] = r.Min
	}
	return t
}()

// MinRole returns the lowest role allowed to do act on res, or RoleInvalid
// when nobody may.
func MinRole(res Resource, act Action) Role {
	if res >= resourceCount || act >= actionCount {
		return RoleInvalid
	}
	return minRole[res][act]
}

// Allowed reports whether role may do act on res.
func Allowed(role Role, res Resource, act Action) bool {
	min := MinRole(res, act)
	return min.Valid() && role.Includes(min)
}

// Required returns the API scopes a token needs for act on res: read for
// list and fetch, write for the rest, and chat in addition for
// conversations and messages.
func Required(res Resource, act Action) APIScope {
	var s APIScope
	switch act {
	case List, Fetch:
		s = ScopeRead
	case Create, Update, Delete:
		s = ScopeWrite
	}
	if res == Conversation || res == Message {
		s |= ScopeChat
	}
	return s
}

// CustomerActions are what a customer (guest) token may do beyond the
// matrix's guest column: a visitor starts a chat, so the conversation is
// created on the visitor's behalf (docs/api.md, "Customers (website visitors)").
var CustomerActions = []Rule{{Conversation, Create, RoleGuest}}

// CustomerAllowed reports whether a customer token may do act on res: the
// guest column of the matrix plus CustomerActions.
func CustomerAllowed(res Resource, act Action) bool {
	if Allowed(RoleGuest, res, act) {
		return true
	}
	for _, r := range CustomerActions {
		if r.Resource == res && r.Action == act {
			return true
		}
	}
	return false
}
