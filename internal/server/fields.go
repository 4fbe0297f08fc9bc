package server

import (
	"net/http"

	"gatecache/internal/fetch"
)

// cacheOwned are the request fields this node sets itself on the requests
// it makes for the cache (a discovery, a block fill, a revalidation): the
// byte range and the preconditions, which the cache evaluates against what
// it stores (RFC 9110 §13.2.1, RFC 9111 §4.3.1).
var cacheOwned = []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

// forwardedFields are the fields of the client's request that go upstream on
// a request made for the cache: every end-to-end field (User-Agent, Accept,
// Authorization, Via, ... RFC 9110 §7.6) but the hop-by-hop and the
// cache-owned ones. A fill or revalidation that several clients wait for
// carries the fields of the client that started it.
func forwardedFields(r *http.Request) http.Header {
	h := fetch.EndToEnd(r.Header)
	for _, name := range cacheOwned {
		delete(h, name)
	}
	return h
}

