package origin

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// entry is a Host normalised for matching.
type entry struct {
	Host
	suffix      string     // ".suffix" of a wildcard, "" for a concrete host
	ip          netip.Addr // valid when Name is an IP literal
	scheme      string     // "http" or "https"
	defaultPort string     // "80" or "443"
}

// Resolver maps content-port requests to targets. It is immutable and safe
// for concurrent use.
type Resolver struct {
	entries []entry
}

// NewResolver builds a resolver from the custom hosts, tried in order,
// followed by BuiltIn(). Names and aliases are lowercased, a port equal to
// the scheme's default is dropped, and hosts whose Name is empty are
// ignored.
//
// A wildcard host whose Canonical is the pattern itself, with or without
// its port (its DefaultAlias, which internal/config fills in when
// CACHEABLE_CUSTOM_N_CANONICAL is unset), is treated as having no alias,
// so that each concrete host under it keeps its own content rather than
// all sharing one key space.
func NewResolver(hosts []Host) *Resolver {
	r := &Resolver{}
	for _, h := range append(append([]Host(nil), hosts...), BuiltIn()...) {
		e := entry{Host: h, scheme: "http", defaultPort: defaultPort(h.TLS)}
		if h.TLS {
			e.scheme = "https"
		}
		name := h.Name
		if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = name[1 : len(name)-1]
		}
		e.Name = lowerHost(strings.TrimSuffix(name, "."))
		if e.Name == "" {
			continue
		}
		if p, err := normalPort(h.Port); err == nil {
			e.Port = p
		}
		if e.Port == e.defaultPort {
			e.Port = ""
		}
		if s, ok := strings.CutPrefix(e.Name, "*."); ok {
			e.suffix = "." + s
		} else if ip, err := netip.ParseAddr(e.Name); err == nil {
			e.ip, e.Name = ip, ip.String()
		}
		e.Canonical = lowerHost(h.Canonical)
		if e.suffix != "" && (e.Canonical == e.Name || e.Canonical == e.DefaultAlias()) {
			e.Canonical = ""
		}
		r.entries = append(r.entries, e)
	}
	return r
}

// matches reports whether the entry allows the authority a client named
// with the given scheme ("http" unless an absolute-form URL said "https").
func (e *entry) matches(a authority, clientScheme string) bool {
	switch {
	case e.suffix != "":
		// A wildcard never matches an IP address, nor the bare suffix.
		if a.ip.IsValid() || len(a.name) <= len(e.suffix) || !strings.HasSuffix(a.name, e.suffix) {
			return false
		}
	case e.ip.IsValid():
		if a.ip != e.ip {
			return false
		}
	case a.name != e.Name:
		return false
	}
	clientDefault := defaultPort(clientScheme == "https")
	port := a.port
	if port == "" {
		port = clientDefault
	}
	if e.Port != "" {
		return port == e.Port
	}
	// A default-port host matches the default port of either scheme: a
	// client that speaks plain http to the gateway about an origin the
	// gateway fetches over https writes "repo.com" or "repo.com:80".
	return port == e.defaultPort || port == clientDefault
}

// target builds the Target of a request matched by e. name is the
// concrete host name the client used (that of a wildcard's match).
func (e *entry) target(name, path, query string) Target {
	if e.suffix == "" {
		name = e.Name
	}
	t := Target{
		Scheme: e.scheme,
		Host:   joinHostPort(name, e.Port),
		Alias:  e.Canonical,
		Path:   path,
		Query:  query,
	}
	if t.Alias == "" {
		t.Alias = aliasOf(name, e.Port)
	}
	t.Key = t.Alias + t.Path
	if e.KeepQuery && t.Query != "" {
		t.Key += "?" + t.Query
	}
	return t
}

// match returns the first entry allowing the authority, or nil.
func (r *Resolver) match(a authority, clientScheme string) *entry {
	for i := range r.entries {
		if r.entries[i].matches(a, clientScheme) {
			return &r.entries[i]
		}
	}
	return nil
}

// Resolve finds the origin of a content-port request (the README lists the forms), trying
// in order the absolute-form target, the cacheHostOrigin parameter, the
// Host header and the first path segment. An origin named by the first two
// that is not allowed is refused at once; a Host header that is not an
// allowed origin most often names the gateway itself, so the path is
// tried next.
//
// Errors are *NotAllowedError (answer 403) or *BadRequestError (answer
// 400).
func (r *Resolver) Resolve(req *http.Request) (Target, error) {
	if req == nil || req.URL == nil {
		return Target{}, badRequest("no request URL")
	}
	u := req.URL
	query, origins, err := splitQuery(u.RawQuery)
	if err != nil {
		return Target{}, err
	}
	if u.Host != "" || u.IsAbs() {
		return r.absolute(u, query, origins)
	}
	path := u.EscapedPath()
	if !strings.HasPrefix(path, "/") {
		// e.g. "OPTIONS *" (RFC 9112 §3.2.4) or a scheme-less authority.
		return Target{}, badRequest("request target %q is not an absolute path", path)
	}
	if len(origins) > 0 {
		return r.fromQuery(origins, path, query)
	}
	clientScheme := "http"
	if req.TLS != nil {
		clientScheme = "https"
	}
	if a, err := parseAuthority(req.Host); err == nil {
		if e := r.match(a, clientScheme); e != nil {
			return e.target(a.name, path, query), nil
		}
	}
	if t, ok := r.pathPrefix(path, query); ok {
		return t, nil
	}
	host := req.Host
	if a, err := parseAuthority(host); err == nil {
		host = a.String()
	}
	return Target{}, &NotAllowedError{Host: host}
}

// Allows reports whether the absolute http(s) URL u names an allowed origin
// by its own host and port: whether a redirect to u may be followed. Unlike
// an absolute-form request it ignores any cacheHostOrigin parameter, since
// u's host is the one that would be contacted.
func (r *Resolver) Allows(u *url.URL) bool {
	if u == nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Host == "" {
		return false
	}
	a, err := parseAuthority(u.Host)
	return err == nil && r.match(a, u.Scheme) != nil
}

// absolute resolves an absolute-form request-target (RFC 9112 §3.2.2),
// which a client sends to a forward proxy: the URL names the origin and
// the Host header is ignored (RFC 9112 §3.2.2: the recipient "MUST ignore
// the received Host header field").
//
// One exception to "the named origin or 403": a URL that names a host that
// is not allowed but carries a cacheHostOrigin parameter is resolved by
// the parameter. That is a Delivery Optimization client, which rewrites
// the URL to name the cache, sending it through a proxy setting that also
// points at the cache; the origin it gets is still checked.
func (r *Resolver) absolute(u *url.URL, query string, origins []string) (Target, error) {
	if u.Scheme == "" {
		// RFC 9112 §3.2.3: authority-form is only for CONNECT, which
		// would make the cache a tunnel to anywhere.
		return Target{}, badRequest("authority-form request target %q is not served", u.Host)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return Target{}, badRequest("absolute URL with scheme %q: only http and https are served", u.Scheme)
	}
	if u.User != nil {
		// RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated
		// as an error; it would also leak credentials into cache keys.
		return Target{}, badRequest("absolute URL with userinfo")
	}
	if u.Host == "" {
		return Target{}, badRequest("absolute URL without a host")
	}
	a, err := parseAuthority(u.Host)
	if err != nil {
		return Target{}, badRequest("host %q in absolute URL: %v", u.Host, err)
	}
	path := u.EscapedPath()
	if path == "" {
		// RFC 9110 §4.2.3: an empty path is equivalent to "/".
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return Target{}, badRequest("absolute URL path %q does not start with /", path)
	}
	e := r.match(a, u.Scheme)
	if e == nil {
		if len(origins) > 0 {
			return r.fromQuery(origins, path, query)
		}
		return Target{}, &NotAllowedError{Host: a.String()}
	}
	return e.target(a.name, path, query), nil
}

// fromQuery resolves the cacheHostOrigin form. The parameter holds the
// original URL's host and explicit port, if any, but not its scheme: the
// Delivery Optimization client only swaps the host name for the cache's.
func (r *Resolver) fromQuery(origins []string, path, query string) (Target, error) {
	var a authority
	for i, v := range origins {
		if v == "" {
			return Target{}, badRequest("empty cacheHostOrigin")
		}
		b, err := parseAuthority(v)
		if err != nil {
			return Target{}, badRequest("cacheHostOrigin %q: %v", v, err)
		}
		if b.port == defaultPort(false) {
			b.port = "" // so that "repo.com" and "repo.com:80" agree
		}
		if i > 0 && b != a {
			return Target{}, badRequest("conflicting cacheHostOrigin values %q and %q", origins[0], v)
		}
		a = b
	}
	e := r.match(a, "http")
	if e == nil {
		return Target{}, &NotAllowedError{Host: a.String()}
	}
	return e.target(a.name, path, query), nil
}

// pathPrefix resolves "/host/path": the first segment names a configured
// concrete host, or is the alias of one (the first in order). Wildcards
// are left out: any segment that happens to end in a wildcard's suffix
// would otherwise be taken for a host.
func (r *Resolver) pathPrefix(path, query string) (Target, bool) {
	seg, rest := path[1:], "/"
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg, rest = seg[:i], seg[i:]
	}
	seg, err := url.PathUnescape(seg)
	if err != nil || seg == "" {
		return Target{}, false
	}
	if a, err := parseAuthority(seg); err == nil {
		for i := range r.entries {
			if e := &r.entries[i]; e.suffix == "" && e.matches(a, "http") {
				return e.target(a.name, rest, query), true
			}
		}
	}
	seg = lowerHost(seg)
	for i := range r.entries {
		if e := &r.entries[i]; e.suffix == "" && e.Canonical == seg {
			return e.target(e.Name, rest, query), true
		}
	}
	return Target{}, false
}
