// Package egress provides the HTTP client for URLs that admins register
// and chatauth calls (identity key sets, back-channel logout): it reaches
// only public addresses, checked at dial time so DNS cannot be used to
// point a public name at a private address, and it follows no redirects.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Client returns such a client, or one that may also reach private and
// loopback addresses when allowPrivate; setting names the configuration
// switch that allows them, for the refusal's message.
func Client(allowPrivate bool, setting string) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if !allowPrivate {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, _ := net.SplitHostPort(address)
			if ip := net.ParseIP(host); ip == nil || !Public(ip) {
				return fmt.Errorf("%s is not a public address (set %s=1 to allow private ones)", host, setting)
			}
			return nil
		}
	}
	t := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 5 * time.Second, MaxIdleConnsPerHost: 2}
	return &http.Client{Transport: t, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return errors.New("redirects are not followed; register the final URL")
	}}
}

// notPublic are the special-purpose ranges (IANA registries) a key set is
// never fetched from, beside the loopback, private and link-local ones
// net.IP knows; addresses that embed an IPv4 address (NAT64, 6to4,
// Teredo, IPv4-compatible) are checked by the address they embed.
var notPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32", "::/96", "100::/64", "2001:db8::/32", "fec0::/10",
		// IPv4-translated (SIIT), and NAT64 prefixes other than the
		// well-known /96 (the local-use 64:ff9b:1::/48 may embed the
		// IPv4 address elsewhere, RFC 6052 §2.2): refused outright.
		"::ffff:0:0:0/96", "64:ff9b::/32"} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// Public reports whether ip is a public unicast address.
func Public(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	if v4, ok := embedded(a); ok {
		return Public(net.IP(v4.AsSlice()))
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return a.IsGlobalUnicast() && !a.IsPrivate()
}

// embedded is the IPv4 address inside a NAT64 (64:ff9b::/96), 6to4
// (2002::/16) or Teredo (2001::/32, client address inverted) address.
func embedded(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return a, false
	}
	b := a.As16()
	switch {
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4]|b[5]|b[6]|b[7]|b[8]|b[9]|b[10]|b[11] == 0:
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case b[0] == 0x20 && b[1] == 0x02:
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		return netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}), true
	}
	return a, false
}
