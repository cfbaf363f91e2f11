package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"chatauth/backend/apptest"
	"chatauth/backend/sqlstore"
	"chatauth/backend/sqlstore/sqlstoretest"

	"github.com/labstack/echo/v4"
)

// BenchmarkBearerMiddleware is the agent bearer check alone: header
// parsing, EdDSA verification, claim checks, revocation lookup.
func BenchmarkBearerMiddleware(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	h := e.App.Server.RequireAgent(func(echo.Context) error { return nil })
	ech := e.App.Server.Echo()
	req := httptest.NewRequest("GET", "/api/v1/profile", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		c := ech.NewContext(req, httptest.NewRecorder())
		if err := h(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssuePair is a new session: refresh family and token stored in
// SQLite, access token signed.
func BenchmarkIssuePair(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	u, err := e.App.Store.UserByEmail(context.Background(), apptest.AdminEmail)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.App.Auth.StartSession(context.Background(), u); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoginHandler is POST /api/v1/auth/token end to end through the
// router on SQLite, at bcrypt's default cost (what production pays).
func BenchmarkLoginHandler(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	// Re-hash the admin password at the production cost.
	e.App.Auth.BcryptCost = 0
	u, _ := e.App.Store.UserByEmail(context.Background(), apptest.AdminEmail)
	u.PasswordHash, _ = e.App.Auth.HashPassword(apptest.AdminPassword)
	if err := e.App.Store.UpdateUser(context.Background(), &u); err != nil {
		b.Fatal(err)
	}
	h := e.App.Server.Handler()
	body := `{"email":"` + apptest.AdminEmail + `","password":"` + apptest.AdminPassword + `"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/v1/auth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkRefresh is a refresh-token rotation through the router.
func BenchmarkRefresh(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	rt := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("refreshToken")
	h := e.App.Server.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/api/v1/auth/token", strings.NewReader(`{"refreshToken":"`+rt+`","clientId":"`+apptest.AdminEmail+`"}`))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		rt = extract(rec.Body.String(), "refreshToken")
	}
}

func extract(body, key string) string {
	i := strings.Index(body, `"`+key+`":"`)
	rest := body[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

// BenchmarkListConversations walks 10,000 conversations on SQLite page by
// page (100 per page) through the router; one op is one page.
func BenchmarkListConversations(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	ctx := context.Background()
	tbl := sqlstore.Table{Name: "conversations", Columns: []sqlstore.Column{{Name: "status", Kind: sqlstore.ColText}}}
	for range 10_000 {
		if _, err := e.App.Store.InsertObject(ctx, tbl, 1, map[string]any{"status": "open"}); err != nil {
			b.Fatal(err)
		}
	}
	tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	h := e.App.Server.Handler()
	cur := ""
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/api/v1/conversations?limit=100&cursor="+cur, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		cur = extract(rec.Body.String(), "next_cursor")
	}
}

// BenchmarkClientCredentials is POST /oauth/token with grant_type
// client_credentials through the router: client lookup, secret check,
// scope resolution, signing.
func BenchmarkClientCredentials(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	admin := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "bench", "client_type": "confidential"}, apptest.Bearer(admin))
	id, secret := cl.Str("client_id"), cl.Str("client_secret")
	h := e.App.Server.Handler()
	body := "grant_type=client_credentials&client_id=" + id + "&client_secret=" + secret
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkReturningVisitor is POST /customer/token with the visitor's
// cookie: the widget's silent refresh (cookie decode, customer lookup, a
// refresh token added to the family, a customer token signed).
func BenchmarkReturningVisitor(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	admin := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "w", "client_type": "public", "allowed_origins": []string{"https://shop.example.com"}, "dpop": "optional"}, apptest.Bearer(admin))
	body := `{"client_id":"` + cl.Str("client_id") + `","response_type":"token"}`
	first := e.Do("POST", "/customer/token", body)
	cookie, _, _ := strings.Cut(first.Header.Get("Set-Cookie"), ";")
	h := e.App.Server.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/customer/token", strings.NewReader(body))
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Origin", "https://shop.example.com")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkTokenInfoRouter is GET /api/v1/token/info with an agent JWT
// through the whole router and middleware chain, with no network; compare
// it with BenchmarkBareEchoJSON, the issue's baseline, in the same run.
func BenchmarkTokenInfoRouter(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	tok := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	h := e.App.Server.Handler()
	req := httptest.NewRequest("GET", "/api/v1/token/info", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkBareEchoJSON is a bare Echo JSON handler with no middleware.
func BenchmarkBareEchoJSON(b *testing.B) {
	e := echo.New()
	e.GET("/bare", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	req := httptest.NewRequest("GET", "/bare", nil)
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
	}
}

// BenchmarkCustomerRefresh is the widget's silent refresh: POST
// /customer/token with the refresh token the previous answer returned
// (one rotation: a transaction, a customer token signed).
func BenchmarkCustomerRefresh(b *testing.B) {
	e := apptest.Start(b, sqlstoretest.SQLite(b), nil)
	admin := e.Login(apptest.AdminEmail, apptest.AdminPassword).Str("token")
	cl := e.Do("POST", "/api/v1/oauth/clients", map[string]any{"name": "w", "client_type": "public", "allowed_origins": []string{"https://shop.example.com"}, "dpop": "optional"}, apptest.Bearer(admin))
	id := cl.Str("client_id")
	rt := e.Do("POST", "/customer/token", `{"client_id":"`+id+`","response_type":"token"}`).Str("refresh_token")
	h := e.App.Server.Handler()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/customer/token", strings.NewReader(`{"client_id":"`+id+`","grant_type":"refresh_token","refresh_token":"`+rt+`"}`))
		req.Header.Set("Origin", "https://shop.example.com")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
		var ans struct {
			RefreshToken string `json:"refresh_token"`
		}
		json.Unmarshal(rec.Body.Bytes(), &ans)
		rt = ans.RefreshToken
	}
}
