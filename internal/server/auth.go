package server

import (
	"net/http"

	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// A response to a request with credentials (RFC 9111 §3.5) is stored only
// when a directive allows a shared cache to reuse it: public and s-maxage
// let it answer any request while fresh; must-revalidate lets it be stored
// on the condition that every use once stale is validated upstream. Such a
// restricted response is reused strictly as its origin said: no package-aware
// freshness, no stale-if-error (must-revalidate forbids it), and a request
// that waited for the fill or revalidation of another client (whose
// credentials were checked, not its own) asks upstream itself.

// restrictedReuse reports an answer to a request with credentials that only
// must-revalidate allows to store.
func restrictedReuse(r *http.Request, resp http.Header) bool {
	if r.Header.Get("Authorization") == "" {
		return false
	}
	cc := freshness.Directives(resp.Values("Cache-Control"))
	_, public := cc["public"]
	_, shared := cc["s-maxage"]
	return !public && !shared
}

// classify is the freshness class of a stored response: by its path, but
// Other (the RFC's rules alone) for a restricted one.
func (h *Handler) classify(t origin.Target, meta store.Meta) freshness.Class {
	if meta.Restricted {
		return freshness.Other
	}
	return h.policy.Classify(t.Host, t.Path)
}
