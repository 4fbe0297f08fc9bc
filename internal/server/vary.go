package server

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"

	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// Responses that vary (RFC 9111 §4.1) are stored as variants of their URL:
// the URL's key holds a marker naming the selecting fields, each variant is
// stored under the URL's key plus a digest of its request's selecting
// fields, and is discovered, filled and revalidated (coalesced) under that
// key, apart from the others. Content that does not vary is stored under
// the URL's key as before, and its hits pay one nil check for all this.

// maxVariants bounds the variants stored for one URL: a Vary naming a field
// that differs between every client (User-Agent, a cookie) keeps the newest
// ones, the oldest removed first.
const maxVariants = 8

// variantSep joins a URL's key and the digest that names one variant.
const variantSep = "\x00vary\x00"

// varyNames are the field names a response's Vary lists, canonical, sorted
// and without repeats; star reports "*", which no request matches.
func varyNames(h http.Header) (names []string, star bool) {
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			switch {
			case name == "*":
				return nil, true
			case name != "":
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), false
}

// variantKey is the key of the variant of the URL keyed base that a request
// with header h selects. Its selecting fields are normalised as §4.1
// allows: field lines combined, whitespace around list members and empty
// members dropped; a field that is absent matches only its absence.
func variantKey(base string, names []string, h http.Header) string {
	d := sha256.New()
	for _, name := range names {
		d.Write([]byte(name))
		values := h.Values(name)
		if len(values) == 0 {
			d.Write([]byte{0, 1}) // absent
			continue
		}
		d.Write([]byte{0, 0})
		first := true
		for _, v := range values {
			for _, member := range strings.Split(v, ",") {
				if member = strings.Trim(member, " \t"); member != "" {
					if !first {
						d.Write([]byte{','})
					}
					d.Write([]byte(member))
					first = false
				}
			}
		}
		d.Write([]byte{0})
	}
	return base + variantSep + hex.EncodeToString(d.Sum(nil))
}

// baseKey is the URL's key of a variant's key (the key itself otherwise).
func baseKey(key string) string {
	base, _, _ := strings.Cut(key, variantSep)
	return base
}

// selectVariant returns the stored object for t and r: when t's key holds a
// marker, the variant r selects (nil when not stored), with t keyed by it.
func (h *Handler) selectVariant(r *http.Request, t origin.Target) (origin.Target, *store.Object) {
	obj := h.store.Lookup(t.Key)
	if names := obj.Vary(); names != nil {
		t.Key = variantKey(t.Key, names, r.Header)
		obj = h.store.Lookup(t.Key)
	}
	return t, obj
}

// create stores a response for r: under t's URL key, or as the variant r
// selects when the response varies.
func (h *Handler) create(r *http.Request, t origin.Target, resp http.Header, meta store.Meta) (*store.Object, error) {
	base := baseKey(t.Key)
	names, _ := varyNames(resp)
	if len(names) == 0 {
		return h.store.Create(base, meta)
	}
	return h.store.CreateVariant(base, names, variantKey(base, names, r.Header), meta, maxVariants)
}

// serveOtherVariant answers a request that waited for a discovery whose
// response turned out to vary on fields of the leader's request: the
// variant this request selects, when it is stored and fresh by now, else
// its own request passed through.
func (h *Handler) serveOtherVariant(w http.ResponseWriter, r *http.Request, t origin.Target) {
	t.Key = baseKey(t.Key)
	t, obj := h.selectVariant(r, t)
	if obj != nil && obj.Vary() == nil {
		if age, fresh := h.fresh(r, t, obj); fresh {
			h.serveObject(w, r, t, obj, nil, statusCollapsed, age)
			return
		}
	}
	h.passThrough(w, r, t)
}
