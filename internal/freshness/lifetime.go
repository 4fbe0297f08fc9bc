package freshness

import (
	"net/http"
	"time"
)

// Expiry is when a stored response with status and header h, received at
// received, was generated (born: received minus its age then, RFC 9111
// §4.2.3) and when it stops being fresh (born plus its freshness lifetime,
// §4.2.1). The response's Cache-Control is parsed here, once: callers keep
// the two times rather than call Expiry on every hit.
//
// An index without explicit freshness stays fresh for the policy's
// IndexMaxAge after it was received, whatever age it arrived with: behind a
// CDN that sends Age, a lifetime counted from its generation would already
// be over, and every request would go upstream. The heuristic lifetime is
// free to choose (§4.2.2); this one is its age on arrival plus the window.
func (p Policy) Expiry(c Class, status int, h http.Header, received time.Time) (born, expiry time.Time) {
	arrivalAge := Age(h, received, received)
	lifetime, _ := p.lifetime(c, status, ParseResponse(h), h, received, arrivalAge)
	born = received.Add(-arrivalAge)
	return born, born.Add(lifetime)
}

// Lifetime is the freshness lifetime of a stored 200 response of class c
// with header h (RFC 9111 §4.2.1, shared cache), and whether the origin set
// it explicitly. It takes the response's Date as its time of receipt; with
// no Date, an Expires or Last-Modified gives no lifetime. Expiry, which
// knows the time of receipt, is the precise form.
func (p Policy) Lifetime(c Class, h http.Header) (time.Duration, bool) {
	received := dateOf(h, time.Time{})
	return p.lifetime(c, http.StatusOK, ParseResponse(h), h, received, Age(h, received, received))
}

// lifetime applies §4.2.1's order for a shared cache: s-maxage, max-age,
// Expires, then heuristics (§4.2.2) where the status or public allows them.
// A zero received means the time of receipt is unknown.
func (p Policy) lifetime(c Class, status int, r Response, h http.Header, received time.Time, arrivalAge time.Duration) (time.Duration, bool) {
	switch {
	case r.NoCache:
		return 0, true // §5.2.2.4: validated before every use
	case c == Payload && (status == http.StatusOK || status == http.StatusPartialContent):
		return forever, false // content-addressed bytes never change
	case r.sMaxAge.set:
		return r.sMaxAge.lifetime(), true // §5.2.2.10: over max-age and Expires
	case r.maxAge.set:
		return r.maxAge.lifetime(), true // §5.3: Expires is ignored
	}
	if exp, set, valid := expires(h); set {
		date := dateOf(h, received)
		if !valid || date.IsZero() {
			return 0, true // §5.3: an invalid Expires means already expired
		}
		return max(exp.Sub(date), 0), true
	}
	if !r.Public && !HeuristicallyCacheable(status) {
		return 0, false // §4.2.2: no heuristics for this status
	}
	if c == Index {
		return arrivalAge + p.IndexMaxAge, false
	}
	return p.heuristic(h, received), false
}

// heuristic is 10% of the time between Last-Modified and Date (§4.2.2),
// capped at HeuristicMax.
func (p Policy) heuristic(h http.Header, received time.Time) time.Duration {
	limit := p.HeuristicMax
	if limit == 0 {
		limit = defaultHeuristicMax
	}
	vs := h.Values("Last-Modified")
	if limit < 0 || len(vs) == 0 {
		return 0
	}
	lm, err := http.ParseTime(vs[0])
	date := dateOf(h, received)
	if err != nil || date.IsZero() {
		return 0
	}
	return min(max(date.Sub(lm)/10, 0), limit)
}

// Age is the current age of a stored response received at responseTime
// (RFC 9111 §4.2.3, with the request time taken as the response time). An
// Age field that is not delta-seconds is ignored.
func Age(h http.Header, responseTime, now time.Time) time.Duration {
	apparent := time.Duration(0)
	if d := dateOf(h, time.Time{}); !d.IsZero() {
		apparent = max(responseTime.Sub(d), 0)
	}
	corrected := time.Duration(0)
	if vs := h.Values("Age"); len(vs) > 0 {
		if v, ok := deltaSeconds(vs[0]); ok {
			corrected = v
		}
	}
	return max(apparent, corrected) + max(now.Sub(responseTime), 0)
}
