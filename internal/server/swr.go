package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// Serving a stale copy while its revalidation is slow: the revalidation
// runs apart from the request that started it, which waits for it at most
// RevalidateWait and otherwise hands its outcome over to the background.

// errRevalidating is the cause of serving the stored copy while upstream is
// slow to answer its revalidation; as a deadline it makes a refusal a 504.
var errRevalidating = fmt.Errorf("upstream slow to revalidate: %w", context.DeadlineExceeded)

// statusRevalidating is the Cache-Status of a stale copy served while its
// revalidation goes on in the background.
const statusRevalidating = "gatecache; fwd=stale; detail=revalidating"

// defaultRevalidateWait is how long a request waits for a slow revalidation
// before the stored copy is served: a small part of the 20 s a Delivery
// Optimization client allows before it gives up on the cache.
const defaultRevalidateWait = 3 * time.Second

// answer is upstream's answer to a revalidation.
type answer struct {
	resp *http.Response
	err  error
}

// failure is the error of an answer that counts as upstream failing.
func (a answer) failure(t origin.Target) error {
	if a.err != nil {
		return a.err
	}
	return &fetch.Error{URL: t.URL(), Err: errors.New("upstream answered " + a.resp.Status)}
}

// revalidation is a conditional request in progress. Its answer goes to
// the request that started it (result) until that one hands it off.
type revalidation struct {
	req       *http.Request // the starting request, for the background
	result    chan answer   // unbuffered: a send is a taking-over
	abandoned chan struct{}
	then      func(answer) // set before abandoned is closed
}

// startRevalidation sends the conditional request for obj (RFC 9111
// §4.3.1) under the flight group, so that it outlives the request and
// shutdown ends it.
func (h *Handler) startRevalidation(r *http.Request, t origin.Target, obj *store.Object) *revalidation {
	meta := obj.Meta()
	hdr := forwardedFields(r)
	if meta.ETag != "" {
		hdr.Set("If-None-Match", meta.ETag)
	}
	if meta.LastModified != "" {
		hdr.Set("If-Modified-Since", meta.LastModified)
	}
	rv := &revalidation{
		req:    r.Clone(context.WithoutCancel(r.Context())),
		result: make(chan answer), abandoned: make(chan struct{}),
	}
	h.flights.Go(func(ctx context.Context) {
		resp, err := h.upstream.Do(ctx, http.MethodGet, t, hdr)
		a := answer{resp, err}
		select {
		case rv.result <- a:
		case <-rv.abandoned:
			rv.then(a)
		}
	})
	return rv
}

// handOff gives the answer, when it comes, to then instead.
func (rv *revalidation) handOff(then func(answer)) {
	rv.then = then
	close(rv.abandoned)
}

// outcome classifies an answer to a revalidation.
type outcome int

const (
	outcomeFailed    outcome = iota // no answer, or 5xx: the stored copy may be served stale
	outcomeUnchanged                // 304, or a 200 with the stored version
	outcomeReplaced                 // 200 with a new version
	outcomeGone                     // 404, 410
	outcomeOther                    // anything else: passed on, not stored
)

func revalidationOutcome(meta store.Meta, resp *http.Response, err error) outcome {
	switch {
	case err != nil:
		return outcomeFailed
	case resp.StatusCode >= 500:
		fetch.Drain(resp.Body)
		return outcomeFailed
	case resp.StatusCode == http.StatusNotModified || (resp.StatusCode == http.StatusOK && sameObject(meta, resp)):
		return outcomeUnchanged
	case resp.StatusCode == http.StatusOK:
		return outcomeReplaced
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return outcomeGone
	}
	return outcomeOther
}

// revalidatedInBackground applies an answer that came after the stored copy
// was served: the object is refreshed, replaced or removed as it would
// have been with the client waiting, and the revalidation call ends.
func (h *Handler) revalidatedInBackground(r *http.Request, t origin.Target, obj *store.Object, a answer, finish func(*store.Object, error)) {
	meta := obj.Meta()
	switch revalidationOutcome(meta, a.resp, a.err) {
	case outcomeFailed:
		h.log.Warn("revalidation failed: the stored copy stays", "key", t.Key, "err", a.failure(t))
		finish(obj, errServedStale)
	case outcomeUnchanged:
		fetch.Drain(a.resp.Body)
		obj.SetHeader(mergeFields(meta.Header, a.resp.Header), time.Now())
		finish(obj, nil)
	case outcomeReplaced:
		h.storeInBackground(r, t, obj, a.resp, finish)
	case outcomeGone:
		fetch.Drain(a.resp.Body)
		h.store.RemoveObject(obj)
		h.negative.add(t)
		finish(nil, errNotStored)
	default:
		fetch.Drain(a.resp.Body)
		finish(nil, errNotStored)
	}
}

// storeInBackground stores a new version that arrived with no client
// waiting for it: the object is replaced and its first block filled from
// the body at hand; the next request fetches the rest it needs. A new
// version that cannot be stored still removes the outdated one.
func (h *Handler) storeInBackground(r *http.Request, t origin.Target, old *store.Object, resp *http.Response, finish func(*store.Object, error)) {
	start, end, size, ok := bodyExtent(resp, 0, false)
	var obj *store.Object
	fields, fit := storedFields(resp.Header)
	if ok && fit && storable(r, resp) {
		meta := store.Meta{
			Size: size, ETag: resp.Header.Get("Etag"), LastModified: resp.Header.Get("Last-Modified"),
			Header: fields, StoredAt: time.Now(), Restricted: restrictedReuse(r, resp.Header),
		}
		obj, _ = h.create(r, t, resp.Header, meta)
	}
	if obj == nil {
		fetch.Drain(resp.Body)
		h.store.RemoveObject(old)
		finish(nil, errNotStored)
		return
	}
	if size > 0 {
		h.flights.Seed(obj, resp.Body, start, end, 0).Release()
	} else {
		fetch.Drain(resp.Body)
	}
	finish(obj, nil)
}

// mayServeWhileRevalidating reports whether obj may be served without
// waiting for its revalidation: stale serving is allowed, and the origin
// did not ask for every use to be validated (no-cache, RFC 9111 §5.2.2.4).
func (h *Handler) mayServeWhileRevalidating(t origin.Target, obj *store.Object, age time.Duration) bool {
	if _, ok := h.staleAllowed(t, obj, age); !ok {
		return false
	}
	cc := freshness.Directives(fieldHeader(obj.Meta().Header).Values("Cache-Control"))
	_, noCache := cc["no-cache"]
	return !noCache
}

// staleAllowed reports whether obj, of the given age, may be served stale
// (RFC 9111 §4.2.4): the origin did not forbid it (must-revalidate,
// proxy-revalidate, s-maxage) and it is not staler than MAX_STALE.
func (h *Handler) staleAllowed(t origin.Target, obj *store.Object, age time.Duration) (staleness time.Duration, ok bool) {
	hdr := fieldHeader(obj.Meta().Header)
	lifetime, _ := h.policy.Lifetime(h.policy.Classify(t.Host, t.Path), hdr)
	staleness = age - lifetime
	return staleness, !freshness.MustRevalidate(hdr) && (h.maxStale < 0 || staleness <= h.maxStale)
}
