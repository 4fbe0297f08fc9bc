package server

import (
	"context"
	"errors"
	"net/http"
	"time"

	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// errServedStale tells the requests that waited on a revalidation that
// upstream failed and the stored copy is served stale.
var errServedStale = errors.New("upstream unavailable: serving the stored copy")

// fresh reports the current age of obj and whether it may be served without
// asking upstream: its freshness lifetime (RFC 9111 §4.2) has not run out,
// or the request accepts it stale (max-stale, unless the response forbids
// it), and the request's own directives (§5.2.1) do not ask for validation.
// Requests asking for validation (apt sends max-age=0 for index files) of a
// package index or payload are satisfied by one made within the policy's
// index window, so that a fleet's burst of `apt-get update` makes one
// upstream check (freshness.Policy.Reuse).
func (h *Handler) fresh(r *http.Request, t origin.Target, obj *store.Object) (time.Duration, bool) {
	if obj.Vary() != nil {
		return 0, false // a variant marker has no content to serve
	}
	now := time.Now()
	gen := obj.HeaderGen()
	born, expiry, known := h.hot.freshness(obj, gen)
	if !known {
		// Once per stored response (and after each revalidation): parse
		// its header and classify its path.
		meta := obj.Meta()
		hdr := fieldHeader(meta.Header)
		if meta.LastModified != "" {
			hdr.Set("Last-Modified", meta.LastModified) // kept apart, needed by the heuristic (§4.2.2)
		}
		born, expiry = h.policy.Expiry(h.classify(t, meta), http.StatusOK, hdr, meta.StoredAt)
		h.hot.setFreshness(obj, gen, born, expiry)
	}
	age := max(now.Sub(born), 0)
	if !requestHasDirectives(r) {
		return age, now.Before(expiry)
	}
	meta := obj.Meta()
	stored := freshness.Stored{Host: t.Host, Path: t.Path, Age: age, Lifetime: expiry.Sub(born), SinceCheck: now.Sub(meta.StoredAt)}
	switch h.policy.Reuse(freshness.ParseRequest(r.Header), stored) {
	case freshness.Serve:
		return age, true
	case freshness.ServeStale:
		return age, !freshness.ParseResponse(fieldHeader(meta.Header)).NoStale()
	}
	return age, false
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
//
// Upstream that is slow to answer costs a client at most RevalidateWait:
// then the stored copy is served, and the revalidation goes on in the
// background, updating the object when it returns (RFC 5861
// stale-while-revalidate in spirit) — unless the origin forbade serving it
// stale, or it is staler than MAX_STALE: then the request waits for the
// answer, bounded by the upstream header timeout.
func (h *Handler) revalidate(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, age time.Duration) {
	wait := r.Context()
	if h.mayServeWhileRevalidating(t, obj, age) {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeoutCause(wait, max(h.revalidateWait, 0), errRevalidating)
		defer cancel()
	}
	asking := r.Clone(context.WithoutCancel(r.Context())) // see discover
	f, joined, err := h.revalidations.Do(wait, workOf(t), func(ctx context.Context) (fetched, error) {
		return h.revalidated(ctx, asking, t, obj)
	})
	switch {
	case errors.Is(err, errRevalidating):
		h.serveStale(w, r, t, obj, age, errRevalidating)
	case errors.Is(err, errServedStale) && !joined:
		h.serveStale(w, r, t, obj, age, f.own.failure)
	case errors.Is(err, errServedStale):
		h.serveStale(w, r, t, obj, age, err)
	case !joined && h.serveOwn(w, r, t, f):
	default:
		h.serveJoined(w, r, t, f, err)
	}
}

// serveStale serves obj although it is stale because upstream failed or is
// slow (cause errRevalidating), unless the origin forbade it
// (must-revalidate) or it is staler than MAX_STALE.
func (h *Handler) serveStale(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, age time.Duration, cause error) {
	if staleness, ok := h.staleAllowed(t, obj, age); !ok {
		h.log.Warn("stored copy too stale to serve while upstream fails", "key", t.Key, "staleness", staleness)
		h.upstreamFailed(w, t, cause)
		return
	}
	status := statusStale
	if errors.Is(cause, errRevalidating) {
		status = statusRevalidating
		h.log.Info("upstream slow: serving the stored copy while it revalidates", "key", t.Key, "age", age, "waited", h.revalidateWait)
	} else {
		h.log.Warn("upstream unavailable: serving the stored copy", "key", t.Key, "age", age, "err", cause)
	}
	h.serveObject(w, r, t, obj, nil, status, age)
}

// sameObject reports a 200 answer to a conditional request that carries the
// stored version after all (an upstream that ignores conditionals).
func sameObject(meta store.Meta, resp *http.Response) bool {
	etag := resp.Header.Get("Etag")
	return resp.ContentLength == meta.Size && etag != "" && etag == meta.ETag
}
