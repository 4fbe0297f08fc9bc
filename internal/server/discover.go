package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/freshness"
	"gatecache/internal/httprange"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// errNotStored tells the requests that waited on a discovery or
// revalidation that its answer was not stored, so each must fetch its own.
var errNotStored = errors.New("response not stored")

// discover answers a request for an unknown key, with one upstream request
// for all the requests that need the key meanwhile (coalesced): a storable
// answer creates the object and its body seeds the first fill, which this
// request (when it asked) and every request that waited then read.
func (h *Handler) discover(w http.ResponseWriter, r *http.Request, t origin.Target) {
	// The work may go on after this request stopped waiting for it, and
	// a request's header is rewritten as it is served
	// (emptyRangesUnsatisfiable): the work reads a copy of its own.
	asking := r.Clone(context.WithoutCancel(r.Context()))
	f, joined, err := h.discoveries.Do(r.Context(), workOf(t), func(ctx context.Context) (fetched, error) {
		return h.discovered(ctx, asking, t)
	})
	if !joined && h.serveOwn(w, r, t, f) {
		return
	}
	h.serveJoined(w, r, t, f, err)
}

// serveJoined answers a request from the outcome of a discovery or a
// revalidation it joined (or did, when serveOwn left it): the object that
// work stored, this request's own variant when the stored one was chosen
// by another request's fields, or, when nothing was stored, a fetch of its
// own.
func (h *Handler) serveJoined(w http.ResponseWriter, r *http.Request, t origin.Target, f fetched, err error) {
	switch obj := f.obj; {
	case obj != nil && obj.Meta().Restricted:
		h.passThrough(w, r, t) // see auth.go
	case obj != nil && obj.Key() != t.Key:
		h.serveOtherVariant(w, r, t) // see vary.go
	case obj != nil:
		h.serveObject(w, r, t, obj, nil, statusCollapsed, 0)
	case errors.Is(err, errNotStored):
		// The answer may not be shared: ask for our own, unless it was
		// a 404 that every request may know.
		if !h.servedNegative(w, t) {
			h.passThrough(w, r, t)
		}
	case err != nil:
		h.upstreamFailed(w, t, err)
	}
}

// discovered is the work of a discovery, done once for every request that
// needs the key: the upstream request made with r's fields, under ctx (the
// flight group's, which only shutdown ends: the answer is stored whether or
// not anybody still waits), and the answer stored. A key that another
// discovery stored, or found missing, between r's lookup and this work is
// answered from what that one left: asking upstream again would cost a
// request and replace the object just stored.
func (h *Handler) discovered(ctx context.Context, r *http.Request, t origin.Target) (fetched, error) {
	if obj := h.store.Lookup(t.Key); obj != nil && h.completable(r, obj) {
		if age, fresh := h.fresh(r, t, obj); fresh {
			return fetched{obj: obj, own: owned{age: age}}, nil
		}
	}
	if h.negative.has(t) {
		return fetched{}, errNotStored
	}
	hdr := forwardedFields(r)
	rangeHdr, rangeStart := discoveryRange(r, h.store.BlockSize())
	if rangeHdr != "" {
		hdr.Set("Range", rangeHdr)
	}
	resp, err := h.upstream.Do(ctx, r.Method, t, hdr)
	if err != nil {
		return fetched{}, err
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		h.negative.add(t)
	}
	return h.storeResponse(r, t, resp, rangeHdr, rangeStart, statusMiss)
}

// storeResponse stores a fresh upstream answer to r as a new object
// (replacing any stored version), its body seeding the first fill for r to
// read, with Cache-Status status. An answer that may not be stored is kept
// for r to relay, and errNotStored sends the others upstream themselves.
// rangeHdr is the Range this node sent (its answer covers whole blocks from
// rangeStart).
func (h *Handler) storeResponse(r *http.Request, t origin.Target, resp *http.Response, rangeHdr string, rangeStart int64, status string) (fetched, error) {
	start, end, size, ok := bodyExtent(resp, rangeStart, rangeHdr != "")
	fields, fit := storedFields(resp.Header)
	ok = ok && fit // a header over the bound passes through
	meta := store.Meta{
		Size: size, ETag: resp.Header.Get("Etag"), LastModified: resp.Header.Get("Last-Modified"),
		Header: fields, StoredAt: time.Now(), Restricted: restrictedReuse(r, resp.Header),
	}
	var obj *store.Object
	var err error
	// Without a validator nothing proves that two responses carry one
	// version: keep such an object only from a response that carries it
	// whole, read into its blocks (a GET's body).
	whole := r.Method == http.MethodGet && start == 0 && end == size
	if ok && storable(r, resp) && (validated(meta) || whole) {
		obj, err = h.create(r, t, resp.Header, meta)
		if err != nil && !errors.Is(err, store.ErrTooLarge) {
			h.log.Warn("cannot store object: passing it through", "key", t.Key, "err", err)
		}
	}
	if obj == nil {
		// An answer that is not the client's range is asked again,
		// with the client's own request.
		refetch := rangeHdr != "" || (r.Header.Get("Range") != "" && resp.StatusCode == http.StatusOK)
		return fetched{own: owned{resp: resp, refetch: refetch}}, errNotStored
	}
	f := fetched{obj: obj, own: owned{status: status}}
	if r.Method == http.MethodGet && size > 0 {
		// Seed claims the blocks the body carries, and those up to the
		// last the client needs.
		_, lastNeeded, _ := neededBlocks(r, size, obj.BlockSize())
		f.own.seeded = h.flights.Seed(obj, resp.Body, start, end, lastNeeded)
	} else {
		fetch.Drain(resp.Body)
	}
	return f, nil
}

// discoveryRange is the upstream Range of a discovery: the blocks holding
// the client's single range, so that only blocks the client covers are
// fetched ("" for the whole object). The object's length is not known yet:
// a suffix range, several ranges or a conditional range fetch the whole
// object, and so does a range from its first byte to its end.
func discoveryRange(r *http.Request, blockSize int64) (header string, start int64) {
	rh := r.Header.Get("Range")
	if r.Method != http.MethodGet || rh == "" || r.Header.Get("If-Range") != "" {
		return "", 0
	}
	// Parsed against two lengths, a range that names its first and last
	// byte comes out the same; one to the end ("a-") ends with the
	// length, and a suffix ("-n") starts from it.
	rs, err := httprange.Parse(rh, math.MaxInt64)
	other, otherErr := httprange.Parse(rh, math.MaxInt64-1)
	if err != nil || otherErr != nil || len(rs) != 1 || rs[0].Start != other[0].Start {
		return "", 0
	}
	rg := rs[0]
	start = rg.Start - rg.Start%blockSize
	if rg == other[0] && rg.End() <= math.MaxInt64-blockSize {
		last := rg.End() - 1
		return fmt.Sprintf("bytes=%d-%d", start, last-last%blockSize+blockSize-1), start
	}
	if start == 0 {
		return "", 0
	}
	return fmt.Sprintf("bytes=%d-", start), start
}

// bodyExtent works out which bytes of which object length a discovery
// response carries. ok is false when it cannot be stored as blocks: an
// unknown length, a status other than 200/206, or a 206 for bytes we did not
// ask for.
func bodyExtent(resp *http.Response, wantStart int64, ranged bool) (start, end, size int64, ok bool) {
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength < 0 {
			return 0, 0, 0, false
		}
		return 0, resp.ContentLength, resp.ContentLength, true
	case http.StatusPartialContent:
		s, e, total, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
		if !ranged || err != nil || total < 0 || s != wantStart || (resp.ContentLength >= 0 && resp.ContentLength != e-s+1) {
			return 0, 0, 0, false
		}
		return s, e + 1, total, true
	}
	return 0, 0, 0, false
}

// storable applies RFC 9111 §3 (freshness.Storable: method, status, request
// and response no-store, private, must-understand), without Vary: *; to a
// request with credentials, only when a directive allows it (§3.5).
func storable(r *http.Request, resp *http.Response) bool {
	if r.Header.Get("Authorization") != "" && !freshness.StorableWithAuthorization(resp.Header) {
		return false
	}
	if !freshness.Storable(r.Method, r.Header, resp.StatusCode, resp.Header) {
		return false
	}
	_, star := varyNames(resp.Header)
	return !star
}

// passThrough fetches the client's request upstream without storing it.
func (h *Handler) passThrough(w http.ResponseWriter, r *http.Request, t origin.Target) {
	// The client's own request, whole: its range and preconditions too.
	hdr := fetch.EndToEnd(r.Header)
	resp, err := h.upstream.Do(r.Context(), r.Method, t, hdr)
	if err != nil {
		h.upstreamFailed(w, t, err)
		return
	}
	defer resp.Body.Close()
	copyResponse(w, resp, statusNotStored)
}

// copyResponse relays an upstream response as it is, minus hop-by-hop
// fields. A body that breaks off aborts the client's response too.
func copyResponse(w http.ResponseWriter, resp *http.Response, status string) {
	hdr := w.Header()
	for k, v := range resp.Header {
		hdr[k] = v
	}
	fetch.RemoveHopByHop(hdr)
	hdr.Set("Cache-Status", status)
	w.WriteHeader(resp.StatusCode)
	n, err := io.Copy(w, resp.Body)
	addMiss(w, n)
	bodyless := resp.Request != nil && resp.Request.Method == http.MethodHead
	if err != nil || (!bodyless && resp.ContentLength >= 0 && n != resp.ContentLength) {
		panic(http.ErrAbortHandler)
	}
}

// upstreamSource fetches block ranges of one stored object version: ranged
// GETs with If-Range, whose answers must match the stored length and
// validators, or they are refused as another version (RFC 9110 §13.1.5).
type upstreamSource struct {
	up   Upstream
	t    origin.Target
	meta store.Meta
	hdr  http.Header // forwardedFields of the request that made the source
}

func (s *upstreamSource) Open(ctx context.Context, off, want int64) (io.ReadCloser, int64, int64, error) {
	if !validated(s.meta) {
		return nil, 0, 0, errNoValidator
	}
	hdr := s.hdr.Clone()
	hdr.Set("Range", fmt.Sprintf("bytes=%d-%d", off, want-1))
	if s.meta.ETag != "" && !strings.HasPrefix(s.meta.ETag, "W/") {
		hdr.Set("If-Range", s.meta.ETag)
	} else if s.meta.LastModified != "" {
		hdr.Set("If-Range", s.meta.LastModified)
	}
	resp, err := s.up.Do(ctx, http.MethodGet, s.t, hdr)
	if err != nil {
		return nil, 0, 0, err
	}
	size := s.meta.Size
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, end, total, err := httprange.ParseContentRange(resp.Header.Get("Content-Range"))
		switch {
		case err != nil || start != off || end >= size || (resp.ContentLength >= 0 && resp.ContentLength != end-start+1):
			resp.Body.Close()
			return nil, 0, 0, fmt.Errorf("upstream answered bytes=%d-%d with Content-Range %q", off, want-1, resp.Header.Get("Content-Range"))
		case total != size || !s.sameVersion(resp.Header):
			resp.Body.Close()
			return nil, 0, 0, fmt.Errorf("%w: 206 for another version", flight.ErrChanged)
		}
		return resp.Body, start, end + 1, nil
	case http.StatusOK:
		if resp.ContentLength != size || !s.sameVersion(resp.Header) {
			resp.Body.Close()
			return nil, 0, 0, fmt.Errorf("%w: upstream sent a new version", flight.ErrChanged)
		}
		return resp.Body, 0, size, nil
	}
	fetch.Drain(resp.Body)
	return nil, 0, 0, fmt.Errorf("upstream answered %s to a block fetch", resp.Status)
}

// errNoValidator refuses a block fetch for an object without a validator:
// its blocks come from the one response that brought it, or not at all.
var errNoValidator = fmt.Errorf("%w: no validator to prove that another response is the stored version", flight.ErrChanged)

// validated reports whether meta has a validator that If-Range can send
// (RFC 9110 §13.1.5: a strong entity tag, or a Last-Modified date), so that
// a block fetch is answered with the stored version's bytes or not at all
// (a 200 with the new version, refused by sameVersion). A weak tag only
// says two versions are equivalent, not that their bytes agree (§8.8.1).
func validated(meta store.Meta) bool {
	return (meta.ETag != "" && !strings.HasPrefix(meta.ETag, "W/")) || meta.LastModified != ""
}

// completable reports whether the blocks a request needs can be served
// from obj: present, or being filled, or fetchable by a block request that
// a validator guards. An object without a validator whose missing blocks
// nobody is filling can only be dropped and fetched anew.
func (h *Handler) completable(r *http.Request, obj *store.Object) bool {
	meta := obj.Meta()
	if validated(meta) {
		return true
	}
	first, last, needs := neededBlocks(r, meta.Size, obj.BlockSize())
	if !needs {
		return true
	}
	present, filling := h.flights.Coverage(obj, first, last)
	return present+filling == last-first+1
}

// sameVersion compares the validators a response carries with the stored
// ones; a validator missing on either side cannot tell, and is not held
// against the response.
func (s *upstreamSource) sameVersion(h http.Header) bool {
	if e := h.Get("Etag"); e != "" && s.meta.ETag != "" && e != s.meta.ETag {
		return false
	}
	if lm := h.Get("Last-Modified"); lm != "" && s.meta.LastModified != "" && lm != s.meta.LastModified {
		return false
	}
	return true
}
