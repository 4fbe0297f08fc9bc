package freshness

import (
	"net/http"
	"net/textproto"
	"slices"
	"time"
)

// Response is what a response's Cache-Control says to a shared cache (RFC
// 9111 §5.2.2). Parse it once per stored response, not per hit.
type Response struct {
	// NoStore: §5.2.2.5, the response is not stored (unless must-understand
	// applies, see Storable).
	NoStore bool
	// NoCache is the unqualified no-cache (§5.2.2.4): stored, but validated
	// before every use. no-cache="field" does not set it; the field goes to
	// Omit instead.
	NoCache bool
	// Private is the unqualified private (§5.2.2.7): a shared cache does not
	// store the response. private="field" goes to Omit instead.
	Private bool
	// Public (§5.2.2.9) makes a response storable that would not otherwise be.
	Public bool
	// MustRevalidate and ProxyRevalidate (§5.2.2.2, §5.2.2.8): once stale,
	// never served without a successful validation.
	MustRevalidate, ProxyRevalidate bool
	// MustUnderstand (§5.2.2.3): stored only by a cache that understands the
	// status code, which may then ignore no-store.
	MustUnderstand bool
	// Omit lists the canonical names of fields that are not replayed from
	// storage: those named by private="…" (§5.2.2.7) and no-cache="…"
	// (§5.2.2.4). nil when there are none.
	Omit []string

	maxAge, sMaxAge delta
}

// delta is a delta-seconds directive as received: absent, valid, or present
// but unusable (malformed, or given twice with different values).
type delta struct {
	set, bad bool
	d        time.Duration
}

// lifetime is the directive's freshness lifetime: an unusable value means
// the response is stale (RFC 9111 §4.2.1 encourages treating invalid
// freshness information as stale).
func (x delta) lifetime() time.Duration {
	if x.bad {
		return 0
	}
	return x.d
}

func (x *delta) add(e directive) {
	d, ok := deltaSeconds(e.arg)
	switch {
	case e.bad || !ok:
		x.bad = true
	case x.set && d != x.d:
		x.bad = true // §4.2.1: conflicting values, the most restrictive reading
	}
	x.set, x.d = true, d
}

// ParseResponse reads the Cache-Control fields of a response header.
// Unknown directives are ignored (§5.2.3); directive names are
// case-insensitive; a directive given twice restricts as much as either
// occurrence (no-cache and no-cache="f" together are no-cache).
func ParseResponse(h http.Header) Response {
	var r Response
	scanDirectives(h.Values("Cache-Control"), func(e directive) {
		switch {
		case e.is("max-age"):
			r.maxAge.add(e)
		case e.is("s-maxage"):
			r.sMaxAge.add(e)
		case e.is("no-store"):
			r.NoStore = true
		case e.is("no-cache"):
			if !r.qualify(e) {
				r.NoCache = true
			}
		case e.is("private"):
			if !r.qualify(e) {
				r.Private = true
			}
		case e.is("public"):
			r.Public = true
		case e.is("must-revalidate"):
			r.MustRevalidate = true
		case e.is("proxy-revalidate"):
			r.ProxyRevalidate = true
		case e.is("must-understand"):
			r.MustUnderstand = true
		}
	})
	return r
}

// qualify adds the field names of a qualified no-cache or private to Omit.
// It reports false for the unqualified form, and for an argument that names
// no valid field (an empty or malformed list): that counts as unqualified,
// the more restrictive reading.
func (r *Response) qualify(e directive) bool {
	if !e.hasArg || e.bad {
		return false
	}
	var names []string
	ok := true
	scanList(e.arg, func(f directive) {
		if f.hasArg || f.bad {
			ok = false
			return
		}
		names = append(names, textproto.CanonicalMIMEHeaderKey(f.name))
	})
	if !ok || len(names) == 0 {
		return false
	}
	for _, n := range names {
		if !slices.Contains(r.Omit, n) {
			r.Omit = append(r.Omit, n)
		}
	}
	return true
}

// Explicit reports whether the origin gave the response an explicit
// expiration time (§4.2.1: s-maxage, max-age or Expires), valid or not.
func (r Response) Explicit(h http.Header) bool {
	return r.sMaxAge.set || r.maxAge.set || len(h.Values("Expires")) > 0
}

// NoStale reports whether the response may never be served stale, even when
// the client allows it with max-stale (§4.2.4: no-cache, must-revalidate,
// proxy-revalidate, and s-maxage, which implies proxy-revalidate for a
// shared cache, §5.2.2.10).
func (r Response) NoStale() bool {
	return r.NoCache || r.MustRevalidate || r.ProxyRevalidate || r.sMaxAge.set
}

// MustRevalidate reports whether a stale copy may not be served when
// revalidation fails (must-revalidate, proxy-revalidate, §5.2.2.2; s-maxage
// implies it for shared caches, §5.2.2.10). Unlike Response.NoStale it leaves
// out no-cache: serving a no-cache response while upstream is unreachable is
// the cache's stale-if-error choice, made by its caller.
func MustRevalidate(h http.Header) bool {
	r := ParseResponse(h)
	return r.MustRevalidate || r.ProxyRevalidate || r.sMaxAge.set
}

// OmittedFields returns the canonical names of the fields of response header
// h that a shared cache must not replay from storage: those listed by a
// qualified private="…" (§5.2.2.7: a shared cache must not store them) or
// no-cache="…" (§5.2.2.4: not sent without a successful revalidation). nil,
// without allocating, when there are none. Callers strip these names from
// the fields they store, and again from a 304's fields merged into them
// (§3.2), since the 304 may carry new directives.
func OmittedFields(h http.Header) []string {
	return ParseResponse(h).Omit
}

// StorableWithAuthorization reports whether a response to a request with
// Authorization may be stored by a shared cache (§3.5: public, s-maxage or
// must-revalidate).
func StorableWithAuthorization(h http.Header) bool {
	r := ParseResponse(h)
	return r.Public || r.sMaxAge.set || r.MustRevalidate
}

// expires reads the Expires field: whether it is present, and its time when
// it is a valid HTTP-date. An invalid date, such as "0", or two different
// values, mean already expired (§5.3, §4.2.1).
func expires(h http.Header) (t time.Time, set, valid bool) {
	vs := h.Values("Expires")
	if len(vs) == 0 {
		return time.Time{}, false, false
	}
	t, err := http.ParseTime(vs[0])
	if err != nil {
		return time.Time{}, true, false
	}
	for _, v := range vs[1:] {
		if u, err := http.ParseTime(v); err != nil || !u.Equal(t) {
			return time.Time{}, true, false
		}
	}
	return t, true, true
}

// dateOf is the response's Date, or fallback when it has none or an invalid
// one: a recipient records the time of receipt as the Date of a response
// that lacks one (RFC 9110 §6.6.1).
func dateOf(h http.Header, fallback time.Time) time.Time {
	if vs := h.Values("Date"); len(vs) > 0 {
		if d, err := http.ParseTime(vs[0]); err == nil {
			return d
		}
	}
	return fallback
}
