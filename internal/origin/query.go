package origin

import (
	"net/url"
	"strings"
)

// originParam is the query parameter of the Delivery Optimization form.
const originParam = "cacheHostOrigin"

// splitQuery removes every cacheHostOrigin parameter from a raw query and
// returns the rest with the values of the removed ones, unescaped.
//
// The rest is the raw query with those parameters cut out and nothing
// else changed: order, encoding, empty elements and ';' stay as the client
// wrote them (but for a stray '#', see below), because an origin may sign
// or hash its query string. That is
// why the raw string is edited instead of re-encoding url.Values.
//
// The parameter name is matched after unescaping and case-insensitively
// (MCC is nginx-based, and nginx's $arg_ lookup ignores case), so that no
// spelling of it is ever forwarded upstream.
func splitQuery(raw string) (rest string, origins []string, err error) {
	if raw == "" {
		return "", nil, nil
	}
	// RFC 9112 §3.2 has no room for a fragment in a request-target, but
	// Go's server takes a '#' into the raw query; sent on as is it would
	// cut the upstream URL short, so it is escaped as the data it is.
	raw = strings.ReplaceAll(raw, "#", "%23")
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		if name, err := url.QueryUnescape(k); err != nil || !strings.EqualFold(name, originParam) {
			kept = append(kept, p)
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return "", nil, badRequest("cacheHostOrigin %q: invalid percent-encoding", v)
		}
		origins = append(origins, value)
	}
	if origins == nil {
		return raw, nil, nil
	}
	return strings.Join(kept, "&"), origins, nil
}
