package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/credential"
	"chatauth/backend/dpop"
	"chatauth/backend/throttle"
	"chatauth/backend/token"
	"chatauth/shared"
)

// TokenInfo is the token debugger's answer (docs/api.md, "Token debugger").
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
	// Bound: the token is bound to a DPoP key (docs/dpop.md).
	Bound bool `json:"dpop_bound,omitempty"`
}

func invalid(typ, reason string) TokenInfo { return TokenInfo{Valid: false, Type: typ, Reason: reason} }

// tokenInfo is the debugger. GET inspects the credential in the usual
// header (Authorization Bearer or Basic, or api_access_token): whoever
// sends it holds it. POST {"token"} inspects a pasted token for an
// authenticated caller, and answers only about tokens of the caller's
// organization tree (docs/security.md, I4): anything else is "not a valid
// token of your organization", so the debugger cannot tell a stranger
// whether a stolen token still works. It answers 200: the question was
// answered.
func (s *Server) tokenInfo(c echo.Context) error {
	r := c.Request()
	var info TokenInfo
	switch {
	case r.Method == http.MethodPost:
		caller, err := s.authenticateAgent(c)
		if err != nil {
			return err
		}
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
		if scheme, rest, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "Bearer") {
			raw = strings.TrimSpace(rest)
		}
		var org int64
		if info, org, err = s.inspect(c, raw, false); err != nil {
			return err
		}
		if ok, err := s.ownToken(c, caller, org); err != nil {
			return err
		} else if !ok {
			info = invalid("", "not a token of your organization, or not a token at all; inspect a token of your own with GET /api/v1/token/info and the token in its usual header")
		}
	case r.Header.Get(headerAPIToken) != "":
		var err error
		if info, _, err = s.inspect(c, r.Header.Get(headerAPIToken), true); err != nil {
			return err
		}
	case r.Header.Get("Authorization") != "":
		var err error
		if info, _, err = s.inspect(c, r.Header.Get("Authorization"), true); err != nil {
			return err
		}
	default:
		return apierr.InvalidRequest("send the token to inspect: in Authorization or api_access_token, or POST {\"token\"} with your own credential in the header")
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return writeJSON(c, http.StatusOK, &info)
}

// ownToken reports whether org, a token's organization (0: unknown), is
// in the caller's tree.
func (s *Server) ownToken(c echo.Context, caller *Agent, org int64) (bool, error) {
	if org == 0 {
		return false, nil
	}
	ok, err := s.Store.InTree(c.Request().Context(), caller.Org, org)
	if err != nil {
		return false, apierr.Internal(err)
	}
	return ok, nil
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
	if i.Bound {
		b = append(b, `,"dpop_bound":true`...)
	}
	return append(b, "}\n"...), true
}

func scopesOf(sc shared.Scope) []string { return sc.Words() }

// inspect asks the credential core about raw (a bare secret, or a whole
// Authorization value) and shows the answer, with the token's
// organization when known. Only a failure to check (the database is
// down) is an error.
// held: the token came in the request's own header, from its holder, who
// must then prove a bound token's key; a pasted one (POST) is inspected
// for an authenticated caller of its organization.
func (s *Server) inspect(c echo.Context, raw string, held bool) (TokenInfo, int64, error) {
	ctx := c.Request().Context()
	var (
		cr  credential.Credential
		err error
	)
	scheme, rest, _ := strings.Cut(raw, " ")
	secret := raw
	switch {
	case strings.EqualFold(scheme, "Basic"):
		secret = token.PrefixPersonal
	case strings.EqualFold(scheme, "Bearer"), strings.EqualFold(scheme, "DPoP"):
		secret = strings.TrimSpace(rest)
	}
	// A secret looked up by its hash is a guess like any other: the
	// debugger must not be a free oracle for them (docs/security.md, I5).
	opaque := opaqueKind(secret) != ""
	var keys []throttle.Key
	if opaque {
		keys = s.Guesses.IPKeys(c.RealIP())
		if err := s.Guesses.CheckFast(keys); err != nil {
			return TokenInfo{}, 0, err
		}
	}
	switch {
	case strings.EqualFold(scheme, "Basic"):
		cr, err = s.Inspector.InspectBasic(ctx, raw)
	default:
		cr, err = s.Inspector.Inspect(ctx, secret)
	}
	var inv *credential.Invalid
	if errors.As(err, &inv) {
		if opaque && inv.Org == 0 {
			if ferr := s.Guesses.Fail(ctx, keys, 0, "", nil); ferr != nil {
				return TokenInfo{}, 0, ferr
			}
		}
		// A bound token that no longer works says why only to its key,
		// as a working one does: spent, expired or revoked would tell a
		// thief when its owner last refreshed or signed out.
		if inv.JKT != "" && held && !s.provesKey(c, scheme, inv.JKT) {
			return invalid(string(inv.Kind), boundReason), 0, nil
		}
		return invalid(string(inv.Kind), inv.Reason), inv.Org, nil
	}
	if err != nil {
		return TokenInfo{}, 0, apierr.Internal(err)
	}
	// A bound token tells its holder about itself only with a proof of
	// its key: lifted out of the page, it is worth nothing, not even an
	// answer that it is live (docs/dpop.md).
	jkt := shared.BoundKey(cr.Agent.Cnf)
	if cr.Kind == credential.Customer {
		jkt = shared.BoundKey(cr.Visitor.Cnf)
	}
	if jkt != "" && held {
		if !strings.EqualFold(scheme, "DPoP") {
			return invalid(string(cr.Kind), boundReason), 0, nil
		}
		// A refresh token is not an access token: its proof names no
		// ath, only the key.
		if cr.Kind == credential.Refresh || cr.Kind == credential.CustomerRefresh {
			if _, err := s.DPoP.Check(ctx, dpop.Request{Proofs: c.Request().Header.Values("DPoP"), Method: c.Request().Method, URL: s.target(c), JKT: jkt}); err != nil {
				return TokenInfo{}, 0, dpopError(err, true)
			}
		} else if err := s.requireProof(c, secret, true, jkt, false); err != nil {
			return TokenInfo{}, 0, err
		}
	}
	info := infoOf(cr)
	info.Bound = jkt != ""
	return info, info.Organization, nil
}

// boundReason is the debugger's whole answer about a bound token asked
// without a proof of its key, live or not.
const boundReason = "this token is bound to a DPoP key; inspect it as Authorization: DPoP <token> with a DPoP proof of that key"

// provesKey reports whether the request carries, under the DPoP scheme, a
// valid proof of key jkt (no ath: a refresh token is no access token).
func (s *Server) provesKey(c echo.Context, scheme, jkt string) bool {
	if !strings.EqualFold(scheme, "DPoP") {
		return false
	}
	_, err := s.DPoP.Check(c.Request().Context(), dpop.Request{Proofs: c.Request().Header.Values("DPoP"), Method: c.Request().Method, URL: s.target(c), JKT: jkt})
	return err == nil
}

// infoOf shows a working credential.
func infoOf(cr credential.Credential) TokenInfo {
	a := cr.Agent
	i := TokenInfo{Valid: true, Type: string(cr.Kind), Role: a.Scope.Role.String(), Scopes: scopesOf(a.Scope), Subject: a.Subject,
		Organization: a.Org, ClientID: a.ClientID, ExpiresAt: stampOf(cr.Expiry()), IssuedAt: stampOf(cr.IssuedAt), Hint: cr.Kind.Placement()}
	switch cr.Kind {
	case credential.Customer:
		v := cr.Visitor
		i.Role, i.Scopes, i.Subject, i.Organization, i.ClientID = "guest", scopesOf(v.Scope()), v.Subject, v.Org, v.ClientID
	case credential.CustomerRefresh:
		i.Role, i.Scopes = "guest", []string{"guest"}
	case credential.Platform:
		i.Role, i.Scopes = "", nil
	case credential.Personal:
		i.Hint = "send as Authorization: Basic base64(" + strconv.FormatInt(a.Org, 10) + ":token) on /api/v1"
	}
	return i
}
