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
	"chatauth/backend/sqlstore"
	"chatauth/backend/token"
	"chatauth/shared"
)

// TokenInfo is the token debugger's answer (SPEC §5).
type TokenInfo struct {
	Valid        bool     `json:"valid"`
	Reason       string   `json:"reason,omitempty"`
	Type         string   `json:"type,omitempty"`
	Role         string   `json:"role,omitempty"`
	Scopes       []string `json:"scopes,omitempty"`
	Subject      string   `json:"subject,omitempty"`
	Organization int64    `json:"organization,omitempty"`
	ClientID     string   `json:"client_id,omitempty"`
	ExpiresAt    stamp    `json:"expires_at,omitempty"`
	IssuedAt     stamp    `json:"issued_at,omitempty"`
	Hint         string   `json:"hint,omitempty"`
}

func invalid(typ, reason string) TokenInfo { return TokenInfo{Valid: false, Type: typ, Reason: reason} }

// tokenInfo is the debugger: GET with a credential in the usual header
// (Authorization Bearer or Basic, or api_access_token), or POST
// {"token"}. It always answers 200: the question was answered.
func (s *Server) tokenInfo(c echo.Context) error {
	r := c.Request()
	var info TokenInfo
	switch {
	case r.Method == http.MethodPost:
		var b struct {
			Token string `json:"token"`
		}
		if err := decode(c, &b); err != nil {
			return err
		}
		if b.Token == "" {
			return apierr.InvalidRequest("token: required; paste the token to inspect")
		}
		raw := strings.TrimSpace(b.Token)
		if scheme, rest, ok := strings.Cut(raw, " "); ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "Basic")) {
			if strings.EqualFold(scheme, "Basic") {
				info = s.inspectBasic(c, raw)
				break
			}
			raw = strings.TrimSpace(rest)
		}
		if info.Type == "" && info.Reason == "" {
			info = s.inspect(c, raw)
		}
	case r.Header.Get(headerAPIToken) != "":
		info = s.inspect(c, r.Header.Get(headerAPIToken))
	case r.Header.Get("Authorization") != "":
		h := r.Header.Get("Authorization")
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Basic") {
			info = s.inspectBasic(c, h)
		} else {
			info = s.inspect(c, strings.TrimSpace(rest))
		}
	default:
		return apierr.InvalidRequest("send the token to inspect: in Authorization or api_access_token, or POST {\"token\"}")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeJSON(c, http.StatusOK, &info)
}

// stamp is a timestamp of an answer, in Unix seconds, written as RFC 3339
// in UTC; zero is left out (omitempty). Appended, not formatted into a
// string first: token/info writes two per answer.
type stamp int64

func stampOf(t time.Time) stamp {
	if t.IsZero() {
		return 0
	}
	return stamp(t.Unix())
}

func (s stamp) appendQuoted(b []byte) []byte {
	b = append(b, '"')
	b = time.Unix(int64(s), 0).UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

func (s stamp) MarshalJSON() ([]byte, error) { return s.appendQuoted(nil), nil }

// appendJSON appends i as encoding/json writes it (without HTML
// escaping, like every answer here) when all its strings are plain; ok
// is false otherwise. The debugger answers every bearer check the
// console and integrators make, and reflection was a quarter of its cost.
func (i *TokenInfo) appendJSON(b []byte) (_ []byte, ok bool) {
	if !jsonPlain(i.Reason) || !jsonPlain(i.Type) || !jsonPlain(i.Role) || !jsonPlain(i.Subject) || !jsonPlain(i.ClientID) ||
		!jsonPlain(i.Hint) {
		return b, false
	}
	for _, sc := range i.Scopes {
		if !jsonPlain(sc) {
			return b, false
		}
	}
	b = append(b, `{"valid":`...)
	b = strconv.AppendBool(b, i.Valid)
	field := func(name, v string) {
		if v != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":"`...)
			b = append(b, v...)
			b = append(b, '"')
		}
	}
	field("reason", i.Reason)
	field("type", i.Type)
	field("role", i.Role)
	if len(i.Scopes) > 0 {
		b = append(b, `,"scopes":[`...)
		for n, sc := range i.Scopes {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, sc...)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	field("subject", i.Subject)
	if i.Organization != 0 {
		b = append(b, `,"organization":`...)
		b = strconv.AppendInt(b, i.Organization, 10)
	}
	field("client_id", i.ClientID)
	if i.ExpiresAt != 0 {
		b = i.ExpiresAt.appendQuoted(append(b, `,"expires_at":`...))
	}
	if i.IssuedAt != 0 {
		b = i.IssuedAt.appendQuoted(append(b, `,"issued_at":`...))
	}
	field("hint", i.Hint)
	return append(b, "}\n"...), true
}

func scopesOf(sc shared.Scope) []string { return sc.Words() }

func (s *Server) inspectBasic(c echo.Context, h string) TokenInfo {
	account, tok, err := agentauth.ParsePATBasic(h)
	if err != nil {
		return invalid("personal", err.Error())
	}
	info := s.inspect(c, tok)
	if info.Valid && info.Organization != account {
		return invalid("personal", "the account_id in the Basic credential is "+strconv.FormatInt(account, 10)+" but the token belongs to account "+strconv.FormatInt(info.Organization, 10))
	}
	return info
}

func (s *Server) inspect(c echo.Context, raw string) TokenInfo {
	ctx := c.Request().Context()
	now := time.Now()
	cred := func(kind, typ string) TokenInfo {
		cr, err := s.Store.CredentialByHash(ctx, token.Hash(raw))
		if errors.Is(err, sqlstore.ErrNotFound) || (err == nil && cr.Kind != kind) {
			return invalid(typ, "revoked or reset (or never issued by this server)")
		}
		if err != nil {
			return invalid(typ, "could not be checked right now; try again")
		}
		if !cr.ExpiresAt.IsZero() && !now.Before(cr.ExpiresAt) {
			return invalid(typ, "expired "+token.Ago(now.Sub(cr.ExpiresAt)))
		}
		sc, _ := shared.ParseScope(cr.Scope)
		i := TokenInfo{Valid: true, Type: typ, Role: sc.Role.String(), Scopes: scopesOf(sc), Organization: cr.OrgID, ExpiresAt: stampOf(cr.ExpiresAt), IssuedAt: stampOf(cr.CreatedAt)}
		switch kind {
		case "pat":
			i.Subject = strconv.FormatInt(cr.UserID, 10)
			i.Hint = "send as Authorization: Basic base64(" + strconv.FormatInt(cr.OrgID, 10) + ":token) on /api/v1"
		case "bot":
			i.Subject, i.Hint = "bot:"+strconv.FormatInt(cr.ID, 10), "send as the api_access_token header on /api/v1"
		case "platform":
			i.Subject, i.Role, i.Scopes, i.Hint = "platform:"+strconv.FormatInt(cr.ID, 10), "", nil, "send as the api_access_token header on /platform/api/v1"
		}
		return i
	}
	switch {
	case raw == "":
		return invalid("", "no token was sent")
	case token.HasPrefix(raw, token.PrefixRefresh), token.HasPrefix(raw, token.PrefixCustomerRefresh):
		typ := "refresh"
		if token.HasPrefix(raw, token.PrefixCustomerRefresh) {
			typ = "customer_refresh"
		}
		fam, rt, err := s.Store.LookupRefresh(ctx, token.Hash(raw))
		switch {
		case err != nil:
			return invalid(typ, "unknown refresh token (never issued, or cleaned up after expiry)")
		case !fam.RevokedAt.IsZero():
			return invalid(typ, "revoked "+token.Ago(now.Sub(fam.RevokedAt))+" ("+fam.Reason+")")
		case !now.Before(rt.ExpiresAt):
			return invalid(typ, "expired "+token.Ago(now.Sub(rt.ExpiresAt)))
		case !rt.RotatedAt.IsZero():
			return invalid(typ, "already used "+token.Ago(now.Sub(rt.RotatedAt))+"; refresh tokens work once, use the newest one (presenting this one again revokes the sign-in)")
		}
		sc, _ := shared.ParseScope(fam.Scope)
		i := TokenInfo{Valid: true, Type: typ, Role: sc.Role.String(), Scopes: scopesOf(sc), Subject: fam.Subject, Organization: fam.OrgID, ClientID: fam.ClientID, ExpiresAt: stampOf(rt.ExpiresAt), IssuedAt: stampOf(rt.CreatedAt)}
		if typ == "customer_refresh" {
			i.Role, i.Scopes, i.Hint = "guest", []string{"guest"}, "exchange at POST /customer/token with grant_type refresh_token"
		} else {
			i.Hint = "exchange at POST /api/v1/auth/token (or /oauth/token for OAuth grants)"
		}
		return i
	case token.HasPrefix(raw, token.PrefixAPIToken):
		u, _, err := s.Store.UserByAPITokenHash(ctx, token.Hash(raw))
		if err != nil {
			return invalid("api", "revoked or reset: the user has a newer API token")
		}
		return TokenInfo{Valid: true, Type: "api", Role: u.Role.String(), Scopes: scopesOf(shared.Scope{Role: u.Role, API: shared.FirstParty}), Subject: strconv.FormatInt(u.ID, 10),
			Organization: u.OrgID, Hint: "send as the api_access_token header on /api/v1"}
	case token.HasPrefix(raw, token.PrefixPersonal):
		return cred("pat", "personal")
	case token.HasPrefix(raw, token.PrefixBot):
		return cred("bot", "bot")
	case token.HasPrefix(raw, token.PrefixPlatform):
		return cred("platform", "platform")
	}
	ac, err := s.Agents.Verify(raw)
	if err == nil {
		typ := "agent"
		switch {
		case ac.ClientID != "" && strings.HasPrefix(ac.Subject, "client:"):
			typ = "oauth_client"
		case ac.ClientID != "":
			typ = "oauth"
		}
		return TokenInfo{Valid: true, Type: typ, Role: ac.Scope.Role.String(), Scopes: scopesOf(ac.Scope), Subject: ac.Subject, Organization: ac.Org, ClientID: ac.ClientID,
			ExpiresAt: stamp(ac.Expiry), IssuedAt: stamp(ac.IssuedAt), Hint: "send as Authorization: Bearer on /api/v1"}
	}
	var ve *token.VerifyError
	if errors.As(err, &ve) && errors.Is(err, token.ErrWrongFamily) {
		cc, cerr := s.Customers.Verify(raw)
		if cerr == nil {
			return TokenInfo{Valid: true, Type: "customer", Role: "guest", Scopes: scopesOf(cc.Scope()), Subject: cc.Subject, Organization: cc.Org, ClientID: cc.ClientID,
				ExpiresAt: stamp(cc.Expiry), IssuedAt: stamp(cc.IssuedAt), Hint: "customer token: use it on the customer API (/customer/api/v1), not on /api/v1"}
		}
		errors.As(cerr, &ve)
		return invalid("customer", ve.Reason)
	}
	if ve != nil {
		return invalid("", ve.Reason)
	}
	return invalid("", "not a token of this server")
}
