package egress

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPublic(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8": true, "2606:4700:4700::1111": true,
		"127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "169.254.169.254": false, "100.64.0.1": false,
		"::1": false, "fd00::1": false, "fe80::1": false, "0.0.0.0": false,
		"::ffff:127.0.0.1": false, "64:ff9b::7f00:1": false, "2002:7f00:1::": false, "2002:808:808::": true,
		"2001:0:4136:e378:8000:63bf:80ff:fffe": false, // Teredo of 127.0.0.1
		// NAT64 local use (RFC 8215) may embed the IPv4 address anywhere
		// (here 10.0.1.0, with 8.8.8.8 in the last bytes), and the SIIT
		// IPv4-translated form (RFC 2765): refused outright.
		"64:ff9b:1:a00:1:8:808:808": false, "64:ff9b:1::a00:1": false, "::ffff:0:7f00:1": false,
		"64:ff9b::808:808": true, // the well-known /96 of 8.8.8.8
	} {
		if got := Public(net.ParseIP(ip)); got != want {
			t.Errorf("Public(%s) = %v, want %v", ip, got, want)
		}
	}
}

func TestClientRefusesLoopbackAndRedirects(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hop" {
			http.Redirect(w, r, "/", http.StatusFound)
		}
	}))
	defer srv.Close()
	if _, err := Client(false, "CHATAUTH_X").Get(srv.URL); err == nil || !strings.Contains(err.Error(), "CHATAUTH_X") {
		t.Fatalf("loopback: %v", err)
	}
	c := Client(true, "CHATAUTH_X")
	if res, err := c.Get(srv.URL); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	if _, err := c.Get(srv.URL + "/hop"); err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("redirect: %v", err)
	}
}
