// Package hostname says whether a string is a host name gatecache accepts,
// in its configuration and in requests alike, so that an origin that can be
// configured can also be named by a client, and the other way round.
package hostname

import (
	"net/netip"
	"strings"
)

// Valid accepts DNS names made of letters (any case), digits, '-' and '_'
// (underscores are common in Docker and Compose service names, which is
// what a parent gateway is often called in a lab), and IPv4 literals. A name
// whose last label is numeric must be an IPv4 address, so typos such as
// "10.0.0.256" are caught.
func Valid(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		ip, err := netip.ParseAddr(h)
		return err == nil && ip.Is4()
	}
	return true
}
