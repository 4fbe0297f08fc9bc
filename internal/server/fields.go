package server

import (
	"net/http"
	"slices"
	"strings"

	"gatecache/internal/fetch"
	"gatecache/internal/freshness"
	"gatecache/internal/store"
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

// maxStoredHeader bounds the response header stored with one object: the
// bytes of its field lines ("Name: value\r\n"), and their number. A
// response over either bound is passed through, not stored, so that an
// origin cannot bloat the index (nginx refuses upstream headers over 4-8 KiB,
// Varnish over 32 KiB).
const (
	maxStoredHeader = 16 << 10
	maxStoredLines  = 256
)

// unstored are the end-to-end response fields that are not stored with an
// object: the framing of one message (the cache sends its own
// Content-Length, Content-Range and Accept-Ranges), the validators (kept
// apart in the metadata and replayed from there), the Cache-Status of the
// caches the response came through (this one sends its own), the fields of
// the proxy that carried it (RFC 9111 §3.1) and Alt-Svc, which would lead
// clients of the gateway to the origin's alternative services.
var unstored = map[string]bool{
	"Content-Length": true, "Content-Range": true, "Accept-Ranges": true,
	"Etag": true, "Last-Modified": true, "Cache-Status": true,
	"Proxy-Authenticate": true, "Proxy-Authentication-Info": true, "Alt-Svc": true,
}

// storedFields are the fields of an upstream response kept with its object
// and replayed on every hit (RFC 9111 §3.1: all of them, with the exceptions
// above), sorted by name, each with its values in order. ok is false when
// they are over the maxStoredHeader bounds. Fields a qualified
// private="..." or no-cache="..." names are left out (RFC 9111 §5.2.2.7,
// §5.2.2.4): a shared cache must not replay them.
func storedFields(h http.Header) (fields []store.Field, ok bool) {
	fields = fieldsOf(h, omitted(h))
	return fields, fitsStored(fields)
}

// omitted is the skip function for the fields h's Cache-Control keeps out
// of storage, nil when there are none (the common case costs nothing).
func omitted(h http.Header) func(string) bool {
	names := freshness.OmittedFields(h)
	if names == nil {
		return nil
	}
	return func(name string) bool { return slices.Contains(names, name) }
}

// fieldsOf lists the storable fields of h, minus those skip names.
func fieldsOf(h http.Header, skip func(string) bool) []store.Field {
	e2e := h.Clone()
	fetch.RemoveHopByHop(e2e)
	out := make([]store.Field, 0, len(e2e))
	for name, values := range e2e {
		if unstored[name] || len(values) == 0 || (skip != nil && skip(name)) {
			continue
		}
		// Own, exactly sized copies: hits hand them to the response
		// header as they are, and an append there must never write
		// into a stored slice.
		out = append(out, store.Field{Name: name, Values: slices.Clip(slices.Clone(values))})
	}
	slices.SortFunc(out, func(a, b store.Field) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// fitsStored reports whether fields are within the maxStoredHeader bounds.
func fitsStored(fields []store.Field) bool {
	size, lines := 0, 0
	for _, f := range fields {
		for _, v := range f.Values {
			size += len(f.Name) + len(v) + 4
			lines++
		}
	}
	return size <= maxStoredHeader && lines <= maxStoredLines
}

// mergeFields updates stored header fields with those of a 304, or of a 200
// that carries the stored version (RFC 9111 §3.2): each field it sends
// replaces the stored values of that name, the others stay. Content-Type
// and Content-Encoding describe the stored bytes, which the update does not
// carry: the stored ones stay (the exception §3.2 allows for fields the
// stored content depends on). An update that would take the header over the
// maxStoredHeader bounds is not applied.
func mergeFields(stored []store.Field, h http.Header) []store.Field {
	updates := fieldsOf(h, func(name string) bool { return name == "Content-Type" || name == "Content-Encoding" })
	out := make([]store.Field, 0, len(stored)+len(updates))
	for _, f := range stored {
		// The age of a validated response is the update's (none if it
		// sent no Age), never the one the old response came with.
		if f.Name != "Age" && !slices.ContainsFunc(updates, func(u store.Field) bool { return u.Name == f.Name }) {
			out = append(out, f)
		}
	}
	out = append(out, updates...)
	// The 304 may carry new qualified directives (§3.2): apply them to
	// the merged result.
	if skip := omitted(fieldHeader(out)); skip != nil {
		out = slices.DeleteFunc(out, func(f store.Field) bool { return skip(f.Name) })
	}
	slices.SortFunc(out, func(a, b store.Field) int { return strings.Compare(a.Name, b.Name) })
	if !fitsStored(out) {
		return stored
	}
	return out
}
