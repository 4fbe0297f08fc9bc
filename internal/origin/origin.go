// Package origin maps a request on the content port to the origin the
// content comes from and to the cache key it is stored under (README, "How a
// request names its origin").
//
// A request can name its origin in four ways, tried in this order:
//
//  1. an absolute-form request-target, "GET http://repo.com/a HTTP/1.1"
//     (RFC 9112 §3.2.2), as sent by clients that use the gateway as a
//     forward proxy (apt's Acquire::http::Proxy, http_proxy, child caches);
//  2. a cacheHostOrigin query parameter, "GET /a?cacheHostOrigin=repo.com",
//     the Delivery Optimization client's rewrite of the original URL;
//  3. the Host header, when DNS sends the origin's name to the gateway;
//  4. the first path segment, "GET /repo.com/a" (apt-cacher-ng style).
//
// Only configured origins are served: the cache is never an open proxy.
//
// The package also reads host names as the configuration writes them
// (ParseHost, ParseHostPort, DefaultAlias; internal/config calls them), so
// that one set of rules decides what an operator can allow and what a
// client can name.
package origin

import "fmt"

// Host is one allowed origin pattern, from CACHEABLE_CUSTOM_N_* or built in.
type Host struct {
	// Name is a lowercased host name or IP address (IPv6 without
	// brackets), or "*.suffix", which matches any name ending in
	// ".suffix" but not "suffix" itself.
	Name string
	// Port "" means the scheme's default port only (80, or 443 with TLS);
	// anything else means exactly that port.
	Port string
	// TLS fetches from the origin over https, whatever the client spoke to
	// the gateway.
	TLS bool
	// Canonical is the cache-key alias: hosts with one alias share content.
	// "" means Name, plus ":"+Port when Port is set and not the scheme's
	// default; for a wildcard, the concrete name the client used. A
	// wildcard's own pattern, with or without its port (DefaultAlias),
	// means the same as "".
	Canonical string
	// KeepQuery makes the query string part of the cache key.
	KeepQuery bool
	// Var is the variable that configured the host, for messages:
	// "CACHEABLE_CUSTOM_3_HOST", or "built-in".
	Var string
}

// BuiltIn lists the built-in Device Update and Delivery Optimization
// content hosts (listed in the README). They are plain http on port 80, which is
// what the Device Update agent uses ("Download from MCC/CDNs | 80"), and
// each concrete host name is its own alias. It returns a new slice on every
// call.
func BuiltIn() []Host {
	names := []string{
		"*.dl.adu.microsoft.com",
		"*.prod.adu.microsoft.com",
		"*.delivery.mp.microsoft.com",
		"*.download.windowsupdate.com",
		"download.windowsupdate.com",
	}
	hosts := make([]Host, len(names))
	for i, n := range names {
		hosts[i] = Host{Name: n, Var: "built-in"}
	}
	return hosts
}

// Target is where a request's content comes from and where it is cached.
type Target struct {
	Scheme string // "http" or "https": how to fetch from the origin
	// Host is the origin authority to contact, lowercased: "name" when the
	// port is the scheme's default, else "name:port"; an IPv6 address is
	// bracketed as in a URL.
	Host string
	// Alias is the canonical alias, the first part of Key.
	Alias string
	// Path is the escaped path as the client wrote it, never cleaned:
	// "/./InRelease" and "/a/../b" are distinct resources to an origin
	// (RFC 3986 §6.2.2.3 lets only the origin decide). When the first
	// path segment named the origin, it is without that segment.
	Path string
	// Query is the raw query without any cacheHostOrigin parameter, the
	// other parameters in their order and encoding.
	Query string
	// Key is the cache key: Alias + Path, plus "?" + Query when the host
	// keeps its query and Query is not empty.
	Key string
	// FromPool marks a request that a node of this node's own parent
	// pool forwarded here (fetch.Client.FromPool): the upstream client
	// never hashes it back into the pool. Set by the content handler.
	FromPool bool
}

// URL is the upstream URL: Scheme://Host + Path [+ "?" + Query].
func (t Target) URL() string {
	u := t.Scheme + "://" + t.Host + t.Path
	if t.Query != "" {
		u += "?" + t.Query
	}
	return u
}

// NotAllowedError means the request named an origin that is not
// cacheable. The server answers 403 with Error() as a one-line text body;
// the Delivery Optimization client reads a 4xx as "not on this cache's
// allow list" and falls back to the origin.
type NotAllowedError struct {
	Host string // the origin as the client named it; "" when none was found
}

func (e *NotAllowedError) Error() string {
	if e.Host == "" {
		return "no origin named: use an absolute URL, ?cacheHostOrigin=, a Host header or a /host/path prefix naming a cacheable host"
	}
	if !plain(e.Host) {
		return fmt.Sprintf("origin %q is not cacheable here: no CACHEABLE_CUSTOM_N_HOST names it", e.Host)
	}
	return fmt.Sprintf("origin %q is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=%s to allow it", e.Host, e.Host)
}

// plain reports whether s can be shown unquoted in a one-line message.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return s != ""
}

// BadRequestError means the request names its origin in a malformed way
// (an empty cacheHostOrigin, a host with invalid characters, a port out of
// range, a path not starting with "/"). The server answers 400.
type BadRequestError struct {
	Reason string
}

func (e *BadRequestError) Error() string { return "bad request: " + e.Reason }

func badRequest(format string, args ...any) error {
	return &BadRequestError{Reason: fmt.Sprintf(format, args...)}
}
