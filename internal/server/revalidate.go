package server

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// errServedStale tells the requests that waited on a revalidation that
// upstream failed and the stored copy is served stale.
var errServedStale = errors.New("upstream unavailable: serving the stored copy")

// fresh reports the current age of obj and whether it may be served without
// asking upstream: its freshness lifetime (RFC 9111 §4.2) has not run out,
// and the request does not ask for validation. Requests asking for
// validation (apt sends max-age=0 for index files) are satisfied by one made
// within the policy's index window, so that a fleet's burst of
// `apt-get update` makes one upstream check.
func (h *Handler) fresh(r *http.Request, t origin.Target, obj *store.Object) (time.Duration, bool) {
	if obj.Vary() != nil {
		return 0, false // a variant marker has no content to serve
	}
	now := time.Now()
	born, expiry, gen := obj.Freshness()
	if born.IsZero() {
		// Once per stored response (and after each revalidation): parse
		// its header and classify its path.
		meta := obj.Meta()
		hdr := fieldHeader(meta.Header)
		lifetime, _ := h.policy.Lifetime(h.classify(t, meta), hdr)
		born = meta.StoredAt.Add(-freshness.Age(hdr, meta.StoredAt, meta.StoredAt))
		expiry = born.Add(lifetime)
		obj.SetFreshness(gen, born, expiry)
	}
	age := max(now.Sub(born), 0)
	if !now.Before(expiry) {
		return age, false
	}
	if age >= h.policy.IndexMaxAge && requestHasDirectives(r) && freshness.RequestWantsValidation(r, age) {
		return age, false
	}
	return age, true
}

// requestHasDirectives is the cheap test before parsing them.
func requestHasDirectives(r *http.Request) bool {
	_, cc := r.Header["Cache-Control"]
	_, pragma := r.Header["Pragma"]
	return cc || pragma
}

func fieldHeader(fields []store.Field) http.Header {
	h := make(http.Header, len(fields))
	for _, f := range fields {
		h[f.Name] = f.Values
	}
	return h
}

// revalidate asks upstream whether a stale object is still current, with a
// conditional request (RFC 9111 §4.3.1), once for all the requests that
// need it at the same time. 304 refreshes the stored headers; a new version
// replaces the object; when upstream fails, the stale copy is served
// (stale-if-error) so that a plant without its uplink keeps working.
func (h *Handler) revalidate(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, age time.Duration) {
	key := "\x00revalidate " + t.Key
	call, leader := h.flights.Join(key)
	if !leader {
		res, err := call.Wait(r.Context())
		switch {
		case res != nil && errors.Is(err, errServedStale):
			h.serveStale(w, r, t, obj, age, err)
		case res != nil && res.Meta().Restricted:
			h.passThrough(w, r, t) // see auth.go
		case res != nil:
			h.serveObject(w, r, t, res, nil, statusCollapsed, 0)
		case errors.Is(err, errNotStored):
			h.passThrough(w, r, t)
		default:
			h.upstreamFailed(w, t, err)
		}
		return
	}
	finish := h.finisher(key, call)
	defer finish(nil, errNotStored)
	// A revalidation that ended between our freshness check and Join has
	// done the work already.
	if cur := h.store.Lookup(t.Key); cur != nil {
		if curAge, fresh := h.fresh(r, t, cur); fresh {
			finish(cur, nil)
			h.serveObject(w, r, t, cur, nil, "", curAge)
			return
		}
	}

	meta := obj.Meta()
	hdr := upstreamHeader(r)
	if meta.ETag != "" {
		hdr.Set("If-None-Match", meta.ETag)
	}
	if meta.LastModified != "" {
		hdr.Set("If-Modified-Since", meta.LastModified)
	}
	resp, err := h.upstream.Do(context.WithoutCancel(r.Context()), http.MethodGet, t, hdr)
	if err == nil && resp.StatusCode >= 500 {
		fetch.Drain(resp.Body)
		err = &fetch.Error{URL: t.URL(), Err: errors.New("upstream answered " + resp.Status)}
	}
	switch {
	case err != nil:
		finish(obj, errServedStale)
		h.serveStale(w, r, t, obj, age, err)
	case resp.StatusCode == http.StatusNotModified || (resp.StatusCode == http.StatusOK && sameObject(meta, resp)):
		fetch.Drain(resp.Body)
		obj.SetHeader(mergeFields(meta.Header, resp.Header), time.Now())
		finish(obj, nil)
		h.serveObject(w, r, t, obj, nil, statusRefreshed, 0)
	case resp.StatusCode == http.StatusOK:
		h.storeAndServe(w, r, t, resp, "", 0, finish, statusReplaced)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		// Gone upstream: so is the stored copy.
		h.store.RemoveObject(obj)
		h.negative.add(t.Key)
		finish(nil, errNotStored)
		defer resp.Body.Close()
		copyResponse(w, resp, statusNotStored)
	default:
		finish(nil, errNotStored)
		defer resp.Body.Close()
		copyResponse(w, resp, statusNotStored)
	}
}

// serveStale serves obj although it is stale because upstream failed, unless
// the origin forbade it (must-revalidate) or it is staler than MAX_STALE.
func (h *Handler) serveStale(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, age time.Duration, cause error) {
	meta := obj.Meta()
	hdr := fieldHeader(meta.Header)
	lifetime, _ := h.policy.Lifetime(h.policy.Classify(t.Host, t.Path), hdr)
	staleness := age - lifetime
	if freshness.MustRevalidate(hdr) || (h.maxStale >= 0 && staleness > h.maxStale) {
		h.log.Warn("stored copy too stale to serve while upstream fails", "key", t.Key, "staleness", staleness)
		h.upstreamFailed(w, t, cause)
		return
	}
	h.log.Warn("upstream unavailable: serving the stored copy", "key", t.Key, "age", age, "err", cause)
	h.serveObject(w, r, t, obj, nil, statusStale, age)
}

// sameObject reports a 200 answer to a conditional request that carries the
// stored version after all (an upstream that ignores conditionals).
func sameObject(meta store.Meta, resp *http.Response) bool {
	etag := resp.Header.Get("Etag")
	return resp.ContentLength == meta.Size && etag != "" && etag == meta.ETag
}

// negativeCache remembers keys upstream answered 404 or 410 for, briefly, so
// that a fleet asking for a missing file does not hammer the uplink.
type negativeCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]time.Time
}

const negativeMaxEntries = 4096

func newNegativeCache(ttl time.Duration) *negativeCache {
	return &negativeCache{ttl: ttl, m: map[string]time.Time{}}
}

func (n *negativeCache) add(key string) {
	if n.ttl <= 0 {
		return
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.m) >= negativeMaxEntries {
		for k, exp := range n.m {
			if now.After(exp) {
				delete(n.m, k)
			}
		}
		if len(n.m) >= negativeMaxEntries {
			clear(n.m)
		}
	}
	n.m[key] = now.Add(n.ttl)
}

func (n *negativeCache) has(key string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	exp, ok := n.m[key]
	if ok && time.Now().After(exp) {
		delete(n.m, key)
		return false
	}
	return ok
}
