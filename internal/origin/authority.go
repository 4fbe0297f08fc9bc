package origin

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// authority is a host[:port] as a client named it (RFC 3986 §3.2),
// normalised for matching.
type authority struct {
	// name is lowercased without a trailing dot; an IPv6 address is
	// without brackets and with its zone, if any, unescaped.
	name string
	ip   netip.Addr // valid when name is an IP literal
	port string     // "" when absent; else 1..65535 without leading zeros
}

// String is the authority as a URL writes it.
func (a authority) String() string { return joinHostPort(a.name, a.port) }

// parseAuthority parses "host", "host:port", "[v6]" or "[v6]:port". An
// empty port after ':' counts as absent (RFC 3986 §3.2.3). A bare IPv6
// address is refused: without brackets its last group reads as a port.
func parseAuthority(s string) (authority, error) {
	var a authority
	host, port := s, ""
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return a, errors.New("unclosed '[' in host")
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			var ok bool
			if port, ok = strings.CutPrefix(port, ":"); !ok {
				return a, errors.New("junk after ']' in host")
			}
		}
		// A zone is written "%25zone" in a URI (RFC 6874).
		host = strings.Replace(host, "%25", "%", 1)
		ip, err := netip.ParseAddr(host)
		if err != nil || !ip.Is6() {
			return a, errors.New("invalid IPv6 address in brackets")
		}
		a.name, a.ip = lowerHost(ip.String()), ip
	} else {
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
		}
		host = strings.ToLower(host)
		if h, ok := strings.CutSuffix(host, "."); ok && h != "" {
			// "repo.com." is the fully qualified form of "repo.com".
			host = h
		}
		if !validName(host) {
			return a, errors.New("invalid host name")
		}
		a.name = host
		if ip, err := netip.ParseAddr(host); err == nil {
			a.ip = ip
		}
	}
	var err error
	if a.port, err = normalPort(port); err != nil {
		return a, err
	}
	return a, nil
}

// normalPort checks a decimal port and removes leading zeros, so that
// "repo.com:080" and "repo.com:80" are one origin.
func normalPort(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return "", errors.New("port is not a number")
		}
	}
	p = strings.TrimLeft(p, "0")
	if n, err := strconv.Atoi(p); err != nil || len(p) > 5 || n < 1 || n > 65535 {
		return "", errors.New("port out of range 1-65535")
	}
	return p, nil
}

// lowerHost lowercases a host name; an IPv6 zone (interface name) is case
// sensitive, so a host with one is left alone.
func lowerHost(h string) string {
	if strings.Contains(h, "%") {
		return h
	}
	return strings.ToLower(h)
}

// joinHostPort writes host[:port] for a URL: an IPv6 address in brackets,
// its zone escaped as "%25" (RFC 6874).
func joinHostPort(name, port string) string {
	if strings.Contains(name, ":") {
		name = "[" + strings.Replace(name, "%", "%25", 1) + "]"
	}
	if port != "" {
		return name + ":" + port
	}
	return name
}

// aliasOf is the default cache-key alias of a host: the name, an IPv6
// address bracketed with its zone as is, and ":port" for a non-default
// port (DefaultAlias).
func aliasOf(name, port string) string {
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if port != "" {
		return name + ":" + port
	}
	return name
}
