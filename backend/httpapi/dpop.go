package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"chatauth/backend/apierr"
	"chatauth/backend/domain"
	"chatauth/backend/dpop"
	"chatauth/shared"
)

// Sender-constrained tokens (RFC 9449, docs/dpop.md): the token endpoints
// bind what they issue to the key of the request's DPoP proof, and every
// resource request with a bound token must carry a fresh proof of that
// key, naming the token (ath) and the request (htm, htu).

var dpopChallenge = `DPoP algs="` + strings.Join(dpop.Algs, " ") + `"`

// target is the request's URL as a client addresses it: the issuer's
// base (where clients reach us, whatever proxy is in between) and the path.
func (s *Server) target(c echo.Context) string {
	return strings.TrimSuffix(s.Issuer, "/") + c.Request().URL.Path
}

// dpopError renders a refused proof: 400 at a token endpoint, 401 with a
// DPoP challenge at a resource; a nonce to retry with in DPoP-Nonce.
func dpopError(err error, resource bool) error {
	var de *dpop.Error
	if !errors.As(err, &de) {
		return apierr.Internal(err)
	}
	ae := apierr.New(de.Code, de.Description)
	ae.Status, ae.Headers = http.StatusBadRequest, map[string]string{}
	if de.Nonce != "" {
		ae.Headers["DPoP-Nonce"] = de.Nonce
	}
	if resource {
		ae.Status = http.StatusUnauthorized
		ae.Headers["WWW-Authenticate"] = dpopChallenge + `, error="` + de.Code + `", error_description="` + headerSafe(de.Description) + `"`
	}
	return ae
}

// tokenProof checks the proof of a request to a token endpoint and
// returns its key's thumbprint, "" when the request has none and the
// client does not require one. Every answer carries the current nonce, so
// the next request can sign it without a round trip.
func (s *Server) tokenProof(c echo.Context, client domain.Client) (string, error) {
	if s.DPoP.RequireNonce {
		c.Response().Header().Set("DPoP-Nonce", s.DPoP.Nonce())
	}
	proofs := c.Request().Header.Values("DPoP")
	if len(proofs) == 0 {
		if client.DPoP == domain.DPoPRequired {
			return "", dpopError(&dpop.Error{Code: dpop.CodeInvalidProof, Description: "client_id " + quoteShort(client.ID) + " requires DPoP: send a DPoP header with a proof signed by the browser's key (docs/dpop.md)"}, false)
		}
		return "", nil
	}
	p, err := s.DPoP.Check(c.Request().Context(), dpop.Request{Proofs: proofs, Method: c.Request().Method, URL: s.target(c), Nonce: true})
	if err != nil {
		return "", dpopError(err, false)
	}
	c.Set(ctxProof, proofs[0])
	c.Set(ctxProofRecord, p)
	return p.JKT, nil
}

// ctxProofRecord holds the dpop.Proof a token endpoint recorded (its jti
// stored), so a refusal after it counts against the client IP.
const ctxProofRecord = "chatauth.dpop_record"

// ctxProof holds the proof a token endpoint checked, so a credential of
// the same request (a vouching agent's bound token) is proven by it
// without its jti counting as replayed.
const ctxProof = "chatauth.dpop_proof"

// requireProof enforces a token's binding at a resource: a bound token
// (jkt) comes under the DPoP scheme with a proof of its key; an unbound
// one under Bearer, and not at all where the client requires DPoP.
func (s *Server) requireProof(c echo.Context, tok string, dpopScheme bool, jkt string, clientRequires bool) error {
	switch {
	case jkt == "" && dpopScheme:
		return dpopError(&dpop.Error{Code: shared.ErrInvalidToken, Description: "this token is not bound to a DPoP key; send it as Authorization: Bearer"}, true)
	case jkt == "" && clientRequires:
		return dpopError(&dpop.Error{Code: shared.ErrInvalidToken, Description: "this client requires DPoP-bound tokens; get a new token with a DPoP proof (docs/dpop.md)"}, true)
	case jkt == "":
		return nil
	case !dpopScheme:
		return dpopError(&dpop.Error{Code: shared.ErrInvalidToken, Description: "this token is bound to a DPoP key: send it as Authorization: DPoP <token> with a DPoP proof of that key, not as a bearer token"}, true)
	}
	proofs := c.Request().Header.Values("DPoP")
	seen, _ := c.Get(ctxProof).(string)
	_, err := s.DPoP.Check(c.Request().Context(), dpop.Request{Proofs: proofs, Method: c.Request().Method, URL: s.target(c), AccessToken: tok, JKT: jkt,
		Recorded: len(proofs) == 1 && seen != "" && seen == proofs[0]})
	if err != nil {
		return dpopError(err, true)
	}
	return nil
}
