package freshness

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// Request is what a request's Cache-Control (or Pragma) asks of a cache
// (RFC 9111 §5.2.1, §5.4).
type Request struct {
	// MaxAge (§5.2.1.1): the client wants a response no older than this.
	MaxAge    time.Duration
	HasMaxAge bool
	// MaxStale (§5.2.1.2): the client accepts a response stale by up to
	// this; without an argument, by any amount (math.MaxInt64).
	MaxStale    time.Duration
	HasMaxStale bool
	// MinFresh (§5.2.1.3): the client wants a response that stays fresh for
	// at least this long.
	MinFresh    time.Duration
	HasMinFresh bool
	// NoCache (§5.2.1.4, or Pragma: no-cache without Cache-Control, §5.4):
	// no stored response without validating it first.
	NoCache bool
	// NoStore (§5.2.1.5): nothing of this request or its response is stored.
	// A stored response may still answer it.
	NoStore bool
	// OnlyIfCached (§5.2.1.7): answer from storage or with 504.
	OnlyIfCached bool
}

// HasRequestDirectives is the cheap test before ParseRequest: whether the
// header has Cache-Control or Pragma at all. h must have canonical keys, as
// net/http gives them.
func HasRequestDirectives(h http.Header) bool {
	_, cc := h["Cache-Control"]
	_, pragma := h["Pragma"]
	return cc || pragma
}

// ParseRequest reads a request's Cache-Control, or its Pragma when it has no
// Cache-Control directive (§5.4). Unknown directives are ignored. A directive
// given more than once counts at its most restrictive: the smallest max-age
// and max-stale, the largest min-fresh. An argument that is not
// delta-seconds counts as the most restrictive value where the directive
// restricts (max-age: 0; min-fresh: no response is fresh enough) and as
// absent where it relaxes (max-stale). It does not allocate.
func ParseRequest(h http.Header) Request {
	var q Request
	seen := false
	scanDirectives(h.Values("Cache-Control"), func(e directive) {
		seen = true
		d, ok := deltaSeconds(e.arg)
		ok = ok && !e.bad
		switch {
		case e.is("max-age"):
			if !ok {
				d = 0
			}
			if !q.HasMaxAge || d < q.MaxAge {
				q.MaxAge = d
			}
			q.HasMaxAge = true
		case e.is("max-stale"):
			if !e.hasArg && !e.bad {
				d, ok = math.MaxInt64, true
			}
			if ok && (!q.HasMaxStale || d < q.MaxStale) {
				q.MaxStale, q.HasMaxStale = d, true
			}
		case e.is("min-fresh"):
			if !ok {
				d = math.MaxInt64
			}
			q.MinFresh, q.HasMinFresh = max(q.MinFresh, d), true
		case e.is("no-cache"):
			q.NoCache = true
		case e.is("no-store"):
			q.NoStore = true
		case e.is("only-if-cached"):
			q.OnlyIfCached = true
		}
	})
	if !seen {
		scanDirectives(h.Values("Pragma"), func(e directive) {
			if e.is("no-cache") {
				q.NoCache = true
			}
		})
	}
	return q
}

// Stored is what a cache knows of a stored response when a request for it
// arrives.
type Stored struct {
	// Host and Path name it, for Classify: only asked when the package
	// window decides.
	Host, Path string
	// Age is its current age (§4.2.3) and Lifetime its freshness lifetime
	// (§4.2.1): it is fresh while Age < Lifetime.
	Age, Lifetime time.Duration
	// SinceCheck is the time since this cache received it or last validated
	// it upstream.
	SinceCheck time.Duration
}

// Decision is what a cache does with a stored response for one request.
type Decision int

const (
	// Validate: forward the request to validate (or replace) the stored
	// response first.
	Validate Decision = iota
	// Serve: answer from the stored response.
	Serve
	// ServeStale: the response is stale but the client accepts it
	// (max-stale); answer from it unless the response forbids serving it
	// stale (Response.NoStale, §4.2.4), else validate.
	ServeStale
)

// Reuse decides whether a stored response answers request q without
// validation (RFC 9111 §4, §5.2.1).
//
// Package-repository window (deliberately beyond §5.2.1.1 and §5.2.1.4): a
// request's no-cache, max-age=N or Pragma: no-cache for an index or a
// content-addressed payload is answered from a fresh stored response this
// cache received or validated less than IndexMaxAge ago, whatever its age.
// apt asks for every index with max-age=0; without the window a fleet
// running `apt-get update` at once would make one upstream check per device.
// min-fresh, max-stale and the response's own freshness are not affected,
// and other content gets the RFC's behaviour exactly.
func (p Policy) Reuse(q Request, s Stored) Decision {
	fresh := s.Age < s.Lifetime
	if q.NoCache || (q.HasMaxAge && s.Age > q.MaxAge) {
		// §5.2.1.4, §5.2.1.1, unless the package window answers.
		if !fresh || s.SinceCheck >= p.IndexMaxAge || p.Classify(s.Host, s.Path) == Other {
			return Validate
		}
	}
	switch {
	case q.HasMinFresh && (q.MinFresh == math.MaxInt64 || s.Lifetime-s.Age < q.MinFresh):
		return Validate // §5.2.1.3
	case fresh:
		return Serve
	case q.HasMaxStale && s.Age-s.Lifetime <= q.MaxStale:
		return ServeStale // §5.2.1.2, §4.2.4
	}
	return Validate
}

// RequestWantsValidation reports whether a request's own directives ask a
// cache to check with upstream before answering with a response of the given
// age, fresh or not (no-cache, max-age, Pragma: no-cache; RFC 9111 §5.2.1,
// §5.4). Reuse is the complete decision.
func RequestWantsValidation(r *http.Request, age time.Duration) bool {
	if !HasRequestDirectives(r.Header) {
		return false
	}
	q := ParseRequest(r.Header)
	return q.NoCache || (q.HasMaxAge && age > q.MaxAge)
}

// OnlyIfCached reports the only-if-cached request directive (§5.2.1.7).
func OnlyIfCached(r *http.Request) bool {
	if _, ok := r.Header["Cache-Control"]; !ok {
		return false
	}
	found := false
	scanDirectives(r.Header.Values("Cache-Control"), func(e directive) {
		found = found || strings.EqualFold(e.name, "only-if-cached")
	})
	return found
}
