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
// runs apart from the requests that wait for it (fetched.go), each of which
// waits at most RevalidateWait and is otherwise served the stored copy.

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

// revalidated is the work of a revalidation, done once for every request
// that needs it: the conditional request for obj made with r's fields
// (RFC 9111 §4.3.1), under ctx (the flight group's, which only shutdown
// ends: the store is updated whether or not anybody still waits), and its
// answer applied to the store. A revalidation that ended between r's
// freshness check and this work has done it already.
func (h *Handler) revalidated(ctx context.Context, r *http.Request, t origin.Target, obj *store.Object) (fetched, error) {
	if cur := h.store.Lookup(t.Key); cur != nil {
		if age, fresh := h.fresh(r, t, cur); fresh {
			return fetched{obj: cur, own: owned{age: age}}, nil
		}
	}
	meta := obj.Meta()
	hdr := forwardedFields(r)
	if meta.ETag != "" {
		hdr.Set("If-None-Match", meta.ETag)
	}
	if meta.LastModified != "" {
		hdr.Set("If-Modified-Since", meta.LastModified)
	}
	resp, err := h.upstream.Do(ctx, http.MethodGet, t, hdr)
	switch revalidationOutcome(meta, resp, err) {
	case outcomeFailed:
		return fetched{obj: obj, own: owned{failure: upstreamFailure(t, resp, err)}}, errServedStale
	case outcomeUnchanged:
		fetch.Drain(resp.Body)
		obj.SetHeader(mergeFields(meta.Header, resp.Header), time.Now())
		return fetched{obj: obj, own: owned{status: statusRefreshed}}, nil
	case outcomeReplaced:
		f, err := h.storeResponse(r, t, resp, "", 0, statusReplaced)
		if f.obj == nil {
			f.own.outdated = obj
		}
		return f, err
	case outcomeGone:
		// Gone upstream: so is the stored copy.
		h.store.RemoveObject(obj)
		h.negative.add(t)
	}
	return fetched{own: owned{resp: resp}}, errNotStored
}

// upstreamFailure is the error of a revalidation's answer that counts as
// upstream failing: no answer, or a 5xx.
func upstreamFailure(t origin.Target, resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	return &fetch.Error{URL: t.URL(), Err: errors.New("upstream answered " + resp.Status)}
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

// mayServeWhileRevalidating reports whether obj may be served without
// waiting for its revalidation: stale serving is allowed, and the origin
// did not ask for every use to be validated (no-cache, RFC 9111 §5.2.2.4).
func (h *Handler) mayServeWhileRevalidating(t origin.Target, obj *store.Object, age time.Duration) bool {
	if _, ok := h.staleAllowed(t, obj, age); !ok {
		return false
	}
	// Only the unqualified no-cache asks that every use be validated; a
	// qualified one (no-cache="Set-Cookie") is about those fields alone
	// (RFC 9111 §5.2.2.4).
	return !freshness.ParseResponse(fieldHeader(obj.Meta().Header)).NoCache
}

// staleAllowed reports whether obj, of the given age, may be served stale
// (RFC 9111 §4.2.4): the origin did not forbid it (must-revalidate,
// proxy-revalidate, s-maxage) and it is not staler than MAX_STALE.
func (h *Handler) staleAllowed(t origin.Target, obj *store.Object, age time.Duration) (staleness time.Duration, ok bool) {
	meta := obj.Meta()
	hdr := fieldHeader(meta.Header)
	lifetime, _ := h.policy.Lifetime(h.classify(t, meta), hdr)
	staleness = age - lifetime
	return staleness, !freshness.MustRevalidate(hdr) && (h.maxStale < 0 || staleness <= h.maxStale)
}
