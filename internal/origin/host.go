package origin

import (
	"net"
	"net/netip"
	"strings"
)

// This file reads host names as the configuration writes them
// (CACHEABLE_CUSTOM_N_HOST, UPSTREAM_HOST, UPSTREAM_PROXY, listen
// addresses); authority.go reads them as requests write them. Both accept
// the same names (validName), so that an origin that can be configured can
// also be named by a client, and the other way round.

// ParseHost parses an allowed origin as an operator writes it: "host",
// "host:port", "*.suffix[:port]", or any of those after "http://" or
// "https://" (fetched over TLS), the scheme in any case. A lone trailing
// '/' is tolerated because values are often pasted from a browser;
// anything more is a path and refused, as are userinfo, a query and a
// fragment. A wildcard over IP addresses means nothing and is refused.
// The Host has Name, Port (as written, without leading zeros; "" when
// none) and TLS set.
func ParseHost(v string) (Host, bool) {
	var h Host
	s := v
	switch {
	case len(s) >= 8 && strings.EqualFold(s[:8], "https://"):
		h.TLS, s = true, s[8:]
	case len(s) >= 7 && strings.EqualFold(s[:7], "http://"):
		s = s[7:]
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" || strings.ContainsAny(s, "/?#@") {
		return Host{}, false
	}
	var ok bool
	if h.Name, h.Port, ok = parseHostPort(s, true); !ok {
		return Host{}, false
	}
	return h, true
}

// ParseHostPort parses an address as the configuration writes one:
// "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address (which
// cannot carry a port). Unlike net.SplitHostPort it allows the port to be
// absent, but it refuses "host:", so that an empty port is not mistaken
// for none. host is lowercased (IPv6 without brackets) and is a host name
// or an IP address; port is "" or 1..65535 without leading zeros.
func ParseHostPort(s string) (host, port string, ok bool) {
	return parseHostPort(s, false)
}

// ParentAddr is a parent's address as UPSTREAM_HOST entries and the Host
// field of requests sent to a parent are compared: ParseHostPort's host
// and port, the port 80 when none is given.
func ParentAddr(s string) (string, bool) {
	host, port, ok := ParseHostPort(s)
	if !ok {
		return "", false
	}
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(host, port), true
}

// ValidHost reports whether h is a host name (validName) or an IP address,
// an IPv6 one without brackets.
func ValidHost(h string) bool {
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is6()
	}
	return validName(h)
}

// DefaultAlias is the cache-key alias of h when none is configured: Name
// (an IPv6 address in brackets), plus ":"+Port when Port is set and not
// the scheme's default. A wildcard's is its pattern, which NewResolver
// reads as no alias at all: each concrete host under it keeps its own.
func (h Host) DefaultAlias() string {
	port := h.Port
	if port == defaultPort(h.TLS) {
		port = ""
	}
	return aliasOf(h.Name, port)
}

func isIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}

// defaultPort is the port an http origin, or an https one, listens on
// when none is named.
func defaultPort(tls bool) string {
	if tls {
		return "443"
	}
	return "80"
}

// parseHostPort is ParseHostPort, also accepting "*.suffix" as the host
// when wildcard is set.
func parseHostPort(s string, wildcard bool) (host, port string, ok bool) {
	host, port, ok = splitHostPort(s)
	host = lowerHost(host)
	valid := ValidHost(host)
	if suffix, wild := strings.CutPrefix(host, "*."); wild && wildcard {
		// A wildcard over IP addresses means nothing.
		valid = validName(suffix) && !isIPv4(suffix)
	}
	if !ok || !valid {
		return "", "", false
	}
	if port != "" {
		// A configured port is written with at most five digits.
		if len(port) > 5 {
			return "", "", false
		}
		var err error
		if port, err = normalPort(port); err != nil {
			return "", "", false
		}
	}
	return host, port, true
}

// splitHostPort splits "host", "host:port", "[v6]", "[v6]:port" and a bare
// IPv6 address without checking either part; it fails on "host:" and on
// brackets around anything but an IPv6 address.
func splitHostPort(s string) (host, port string, ok bool) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false
		}
		host, rest := s[1:end], s[end+1:]
		if !strings.Contains(host, ":") {
			return "", "", false // brackets are for IPv6 only
		}
		if rest == "" {
			return host, "", true
		}
		if rest[0] != ':' || rest == ":" {
			return "", "", false
		}
		return host, rest[1:], true
	}
	if strings.Count(s, ":") > 1 {
		return s, "", true
	}
	host, port, found := strings.Cut(s, ":")
	if found && port == "" {
		return "", "", false
	}
	return host, port, true
}

// validName accepts DNS names made of letters (any case), digits, '-' and
// '_' (underscores are common in Docker and Compose service names, which is
// what a parent gateway is often called in a lab), and IPv4 literals. A
// name whose last label is numeric must be an IPv4 address, so typos such
// as "10.0.0.256" are caught.
func validName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	// Label by label, without splitting (this runs for every request).
	for rest := h; ; {
		l, tail, more := strings.Cut(rest, ".")
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		digits := true
		for i := 0; i < len(l); i++ {
			switch c := l[i]; {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_':
				digits = false
			default:
				return false
			}
		}
		if !more {
			if digits {
				ip, err := netip.ParseAddr(h)
				return err == nil && ip.Is4()
			}
			return true
		}
		rest = tail
	}
}
