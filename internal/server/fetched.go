package server

import (
	"net/http"
	"time"

	"gatecache/internal/coalesce"
	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// A discovery (discover.go) or revalidation (revalidate.go) is upstream
// work done once for all the requests that need one key at the same time:
// the first request's closure runs, under the flight group, and every
// request waits for its outcome on its own context. Both kinds run
// detached from the requests that wait: a discovery's answer is stored and
// read by its fill after the work returned, a revalidation updates the
// store for every later request, and neither should be lost because the
// clients that waited for it left. Shutdown (the flight group's context)
// ends them, and the flight group's Wait waits for them.

// newCoalescing returns a group for discoveries or for revalidations.
func newCoalescing(h *Handler, run coalesce.Runner) *coalesce.Group[work, fetched] {
	return coalesce.New[work](run, coalesce.Options[fetched]{Unclaimed: h.unclaimed, Log: h.log})
}

// work names a discovery or revalidation: its key, and whether a node of
// this node's parent pool asked (origin.Target.FromPool). The two are never
// merged: a pool member's request goes to the origin, and joining one that
// went into the pool could wait on the very node that asked, while that
// node waits on this one, until the upstream header timeout ends both.
type work struct {
	key      string
	fromPool bool
}

func workOf(t origin.Target) work { return work{t.Key, t.FromPool} }

// fetched is the outcome of a discovery or revalidation: the object that
// now answers its key (nil when none does: the error then says why), and
// what only the request whose closure did the work may use.
type fetched struct {
	obj *store.Object
	own owned
}

// owned is the part of an outcome that belongs to the request that did
// the work, whose fields upstream answered.
type owned struct {
	status string        // its Cache-Status when obj is served ("": a hit)
	age    time.Duration // obj's age, when obj was found stored meanwhile
	// seeded is the fill of the answer's body, with that request as its
	// first reader, so that the fill does not stop before it reads.
	seeded *flight.Fill
	// resp is an answer that was not stored, for its client; refetch
	// says it is not what the client asked for (the blocks around its
	// range), so the client's own request is sent instead.
	resp    *http.Response
	refetch bool
	failure error // why upstream failed a revalidation: obj is served stale
	// outdated is the stored version that an answer not stored replaced.
	outdated *store.Object
}

// serveOwn answers the request that did the work from what the work kept
// for it, and reports false when there is none (the request is then
// answered as any that waited).
func (h *Handler) serveOwn(w http.ResponseWriter, r *http.Request, t origin.Target, f fetched) bool {
	switch o := f.own; {
	case f.obj != nil:
		h.serveObject(w, r, t, f.obj, o.seeded, o.status, o.age)
	case o.resp != nil && o.refetch:
		fetch.Drain(o.resp.Body)
		h.passThrough(w, r, t)
	case o.resp != nil:
		defer o.resp.Body.Close()
		copyResponse(w, o.resp, statusNotStored)
	default:
		return false
	}
	return true
}

// unclaimed releases what the work kept for its request when that request
// stopped waiting first (its client left, or it was served the stored copy
// while upstream was slow): the seeded fill goes on for the requests that
// read it and stops after its current block when none does; an answer not
// stored is drained; and, with no client to relay a new version to, the
// outdated one is removed so that the next request asks anew.
func (h *Handler) unclaimed(f fetched) {
	o := f.own
	if o.seeded != nil {
		o.seeded.Release()
	}
	if o.resp != nil {
		fetch.Drain(o.resp.Body)
	}
	if o.outdated != nil {
		h.store.RemoveObject(o.outdated)
	}
	if o.failure != nil {
		h.log.Warn("revalidation failed: the stored copy stays", "key", f.obj.Key(), "err", o.failure)
	}
}
