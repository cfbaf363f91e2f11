package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestVisitorCookiePerClient: each client reads only its own cookie; a
// cookie under the name all clients shared before is read by its own
// client alone, and moves to that client's name on the next write.
func TestVisitorCookiePerClient(t *testing.T) {
	v := NewCustomerSessionStore([]byte(strings.Repeat("h", 32)), []byte(strings.Repeat("b", 32)), false, time.Hour)
	if cookieName("a") == cookieName("b") || strings.ContainsAny(cookieName("a b;=,"), " ;=,") {
		t.Fatalf("names: %q %q %q", cookieName("a"), cookieName("b"), cookieName("a b;=,"))
	}
	legacy, err := v.codec.Encode(customerCookie, []byte("e1\ns1\nc1\n1"))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/customer/token", nil)
	r.AddCookie(&http.Cookie{Name: customerCookie, Value: legacy})
	if got := v.Read(r, "c2"); got.Present {
		t.Fatalf("another client read the shared cookie: %+v", got)
	}
	got := v.Read(r, "c1")
	if !got.Present || !got.legacy || got.Entity != "e1" || got.SID != "s1" {
		t.Fatalf("its client: %+v", got)
	}
	w := httptest.NewRecorder()
	if err := v.Write(w, got, visitorCookie{Entity: "e1", SID: "s1", Client: "c1"}); err != nil {
		t.Fatal(err)
	}
	set := w.Result().Cookies()
	if len(set) != 2 || set[0].Name != cookieName("c1") || set[1].Name != customerCookie || set[1].MaxAge >= 0 {
		t.Fatalf("the move: %v", set)
	}
	// The new cookie reads back for c1 only, and a forged rename of it
	// (another client's name) does not decode.
	r = httptest.NewRequest("POST", "/customer/token", nil)
	r.AddCookie(set[0])
	if got := v.Read(r, "c1"); !got.Present || got.legacy || got.Entity != "e1" {
		t.Fatalf("read back: %+v", got)
	}
	r = httptest.NewRequest("POST", "/customer/token", nil)
	r.AddCookie(&http.Cookie{Name: cookieName("c2"), Value: set[0].Value})
	if got := v.Read(r, "c2"); got.Entity != "" {
		t.Fatalf("a renamed cookie decoded: %+v", got)
	}
}
