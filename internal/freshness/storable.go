package freshness

import "net/http"

// HeuristicallyCacheable reports the statuses whose responses may be stored
// and given a heuristic lifetime without explicit freshness (RFC 9110
// §15.1).
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// recognized reports the final status codes RFC 9110 §15 defines. A cache
// must not store a response with a status it does not recognize (§15), and
// these are the ones whose caching requirements (§15, RFC 9111 §3) this
// package implements, so it "understands" them in the sense of
// must-understand (RFC 9111 §5.2.2.3).
func recognized(status int) bool {
	switch {
	case 200 <= status && status <= 206,
		300 <= status && status <= 305, status == 307, status == 308,
		400 <= status && status <= 417, status == 421, status == 422, status == 426,
		500 <= status && status <= 505:
		return true
	}
	return false
}

// Storable reports whether a shared cache may store the response with status
// and header h to a request with method and header reqHeader (RFC 9111 §3):
//   - the method is GET or HEAD;
//   - the request has no no-store (§5.2.1.5);
//   - the status is final and recognized, and not 304 (a 304 freshens a
//     stored response, §4.3.4, it is not stored itself);
//   - no-store is absent (§5.2.2.5), unless must-understand is present and
//     the status is understood (§5.2.2.3); must-understand with a status not
//     understood is never stored;
//   - the unqualified private is absent (§5.2.2.7);
//   - and the response has explicit freshness or public (then any such
//     status is storable), or a heuristically cacheable status (§4.2.2).
//
// Authorization (§3.5, see StorableWithAuthorization) and Vary: * (§4.1)
// depend on the request's credentials and on stored variants, and are left to
// the caller.
func Storable(method string, reqHeader http.Header, status int, h http.Header) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if HasRequestDirectives(reqHeader) && ParseRequest(reqHeader).NoStore {
		return false
	}
	if !recognized(status) || status == http.StatusNotModified {
		return false
	}
	return ParseResponse(h).storable(status, h)
}

func (r Response) storable(status int, h http.Header) bool {
	// Every recognized status is understood here (see recognized), so
	// must-understand only lifts no-store.
	if r.NoStore && !r.MustUnderstand {
		return false
	}
	if r.Private {
		return false
	}
	return r.Public || r.Explicit(h) || HeuristicallyCacheable(status)
}
