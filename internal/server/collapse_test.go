package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gatecache/internal/coalesce"
	"gatecache/internal/origin"
	"gatecache/internal/origintest"
)

// Helpers for the tests of coalescing: they hold the origin until every
// request has gone as far as it can, asking upstream or waiting for another
// request's work, so that without coalescing each would ask upstream.

// waitArrived waits until n requests have arrived at the held origin or
// joined work in g (discoveries or revalidations): all of them, coalesced
// or not.
func (r *rig) waitArrived(t *testing.T, n int64, g *coalesce.Group[work, fetched]) {
	t.Helper()
	waitUntil(t, "every request asks upstream or waits for another's request", func() bool {
		return r.origin.Stats().Requests+g.Joined() == n
	})
}

// accessLines takes the next n access log lines, and fails the test if
// they do not come (a request that never ends).
func accessLines(t *testing.T, sink accessSink, n int) []map[string]any {
	t.Helper()
	lines := make([]map[string]any, 0, n)
	for len(lines) < n {
		select {
		case l := <-sink:
			lines = append(lines, l)
		case <-time.After(guard):
			t.Fatalf("%d access log lines after %v, want %d", len(lines), guard, n)
		}
	}
	return lines
}

// cacheStatuses counts the access log lines by Cache-Status.
func cacheStatuses(lines []map[string]any) map[string]int {
	counts := map[string]int{}
	for _, l := range lines {
		s, _ := l["cache"].(string)
		counts[s]++
	}
	return counts
}

// countContaining adds up the counts of the statuses that contain part.
func countContaining(counts map[string]int, part string) int {
	n := 0
	for s, c := range counts {
		if strings.Contains(s, part) {
			n += c
		}
	}
	return n
}

// direct runs one GET for path through serve (discover or revalidate)
// straight after its lookup would have been made: as for a request whose
// lookup came just before another request's work ended.
func (r *rig) direct(t *testing.T, path string, serve func(http.ResponseWriter, *http.Request, origin.Target)) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, r.cache.URL+path+"?cacheHostOrigin="+r.origin.Addr, nil)
	tgt, err := r.handler.resolver.Resolve(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	serve(rec, req, tgt)
	return rec
}

// The work of a discovery looks at the store first: a key that another
// discovery stored, or found missing upstream, after this request's lookup
// is answered from there, without a second upstream request (which would
// also replace the object just stored).
func TestDiscoveryFindsWhatAnotherStoredMeanwhile(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 3000})
	r.origin.Set("/gone", origintest.Object{Status: 404})
	want := r.origin.Want("/f")
	r.expect(r.get("/f"), 200, statusMiss, want)
	r.expect(r.get("/gone"), 404, statusNotStored, nil)
	r.settle()
	r.origin.ResetStats()

	rec := r.direct(t, "/f", r.handler.discover)
	if rec.Code != 200 || rec.Header().Get("Cache-Status") != statusHit || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("stored meanwhile: %d %q, %d bytes; want the stored object, a hit", rec.Code, rec.Header().Get("Cache-Status"), rec.Body.Len())
	}
	rec = r.direct(t, "/gone", r.handler.discover)
	if rec.Code != 404 || rec.Header().Get("Cache-Status") != statusNegative {
		t.Fatalf("found missing meanwhile: %d %q; want the remembered 404", rec.Code, rec.Header().Get("Cache-Status"))
	}
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for keys answered meanwhile, want none", n)
	}
}

// The same for a revalidation that another one made unnecessary: the
// entry is fresh by the time the work runs.
func TestRevalidationFindsTheEntryRevalidatedMeanwhile(t *testing.T) {
	r := newRig(t)
	path := "/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 4000, CacheControl: "no-cache"})
	want := r.origin.Want(path)
	r.expect(r.get(path), 200, statusMiss, want)
	key := r.origin.Addr + path
	stale := r.store.Lookup(key)
	// Revalidated (304) now fresh for an hour, after the lookup of a
	// request that found it stale.
	r.origin.Set(path, origintest.Object{Size: 4000, CacheControl: "max-age=3600"})
	r.expect(r.get(path), 200, statusRefreshed, want)
	r.origin.ResetStats()

	rec := r.direct(t, path, func(w http.ResponseWriter, req *http.Request, tgt origin.Target) {
		r.handler.revalidate(w, req, tgt, stale, time.Minute)
	})
	if rec.Code != 200 || rec.Header().Get("Cache-Status") != statusHit || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Fatalf("revalidated meanwhile: %d %q; want the refreshed entry, a hit", rec.Code, rec.Header().Get("Cache-Status"))
	}
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for an entry revalidated meanwhile, want none", n)
	}
}

// An answer that may not be stored is relayed to the client whose request
// asked for it; every request that waited for it asks upstream itself, as
// its answer may differ (RFC 9111 §3: a private answer is its client's).
func TestRequestsWaitingForAnAnswerNotStoredAskThemselves(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/p", origintest.Object{Size: 5000, CacheControl: "private, max-age=3600"})
	want := r.origin.Want("/p")
	held := r.origin.Hold()
	const clients = 3
	answers := make(chan *http.Response, clients)
	for i := range clients {
		go func() { answers <- r.get("/p") }()
		if i == 0 {
			<-held
		}
	}
	r.waitArrived(t, clients, r.handler.discoveries)
	r.origin.Unhold()
	for range clients {
		r.expect(<-answers, 200, statusNotStored, want)
	}
	if n := r.origin.Stats().Requests; n != clients {
		t.Fatalf("%d upstream requests, want %d: the first relayed, one for each that waited", n, clients)
	}
	if r.store.Lookup(r.origin.Addr+"/p") != nil {
		t.Fatal("a private answer was stored")
	}
}

// The discovery goes on when the client whose request started it leaves:
// the requests that wait for it are served from it. (The fill of its
// answer may stop after its first block, as no reader follows it for a
// moment: a waiting request then fetches the blocks after, never the
// object again.)
func TestWaitingRequestsAreServedWhenTheFirstLeft(t *testing.T) {
	sink := make(accessSink, 4)
	r := newRig(t, withAccessLog(slog.New(sink)))
	r.origin.Set("/g", origintest.Object{Size: 8*testBlock + 5})
	want := r.origin.Want("/g")
	held := r.origin.Hold()
	defer r.origin.Unhold() // also when the test fails
	ctx, leave := context.WithCancel(context.Background())
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.cache.URL+"/g?cacheHostOrigin="+r.origin.Addr, nil)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-held
	follower := make(chan *http.Response, 1)
	go func() { follower <- r.get("/g") }()
	r.waitArrived(t, 2, r.handler.discoveries)
	leave()
	if line := accessLines(t, sink, 1)[0]; line["status"] != int64(statusClientGone) {
		t.Fatalf("access line %v for the client that left, want status %d", line, statusClientGone)
	}
	r.origin.Unhold()
	r.expect(<-follower, 200, statusCollapsed, want)
	for _, req := range r.origin.Requests()[1:] {
		var from int64
		if _, err := fmt.Sscanf(req.Header.Get("Range"), "bytes=%d-", &from); err != nil || from == 0 {
			t.Fatalf("upstream request with Range %q after the discovery, want only block fetches after its first block", req.Header.Get("Range"))
		}
	}
}

// A request a node of this node's parent pool sent is never merged with a
// device's request for the same key: the device's went into the pool, and
// could be waiting on the very node that sent this one. Both reach
// upstream on their own.
func TestPoolMembersRequestsAreNotMergedWithDevices(t *testing.T) {
	r := newRig(t, withFromPool(func(r *http.Request) bool { return r.Header.Get("X-Test-Pool") != "" }))
	r.origin.Set("/k", origintest.Object{Size: 5000, CacheControl: "max-age=600"})
	r.origin.Hold()
	done := make(chan int, 2)
	go func() { resp := r.get("/k"); r.mustBody(resp); done <- resp.StatusCode }()
	waitUntil(t, "the device's discovery at the origin", func() bool { return r.origin.Stats().Requests == 1 })
	go func() { resp := r.get("/k", "X-Test-Pool", "1"); r.mustBody(resp); done <- resp.StatusCode }()
	waitUntil(t, "the pool member's request upstream or joined", func() bool {
		return r.origin.Stats().Requests+r.handler.discoveries.Joined() == 2
	})
	r.origin.Unhold()
	<-done
	<-done
	if j := r.handler.discoveries.Joined(); j != 0 {
		t.Fatalf("%d requests joined: a pool member's request waited on a device's", j)
	}
}

// A discovery whose client left before upstream answered, with nobody else
// waiting: the object is stored, and its seeded fill, read by nobody,
// stops after the block it is in instead of reading the whole body.
func TestASeededFillNobodyReadsStops(t *testing.T) {
	sink := make(accessSink, 4)
	r := newRig(t, withAccessLog(slog.New(sink)))
	const blocks = 256
	r.origin.Set("/left", origintest.Object{Size: blocks * testBlock, Fault: origintest.FaultStall, FaultAt: 2*testBlock + 100})
	parked := r.origin.Hold()
	ctx, leave := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.cache.URL+"/left?cacheHostOrigin="+r.origin.Addr, nil)
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if resp, err := r.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-parked // the discovery is at the origin
	leave()
	<-gone
	if line := accessLines(t, sink, 1)[0]; line["status"] != int64(statusClientGone) {
		t.Fatalf("the request that left logged %v", line)
	}
	r.origin.Unhold()
	waitUntil(t, "the object is stored", func() bool { return r.store.Lookup(r.origin.Addr+"/left") != nil })
	r.origin.Release() // the rest of the body follows: a fill with a reader would take it all
	waitUntil(t, "the seeded fill ends", func() bool { return r.flights.Stats().ActiveFills == 0 })
	obj := r.store.Lookup(r.origin.Addr + "/left")
	if n := obj.PresentCount(0, blocks-1); n > 4 {
		t.Fatalf("%d of %d blocks filled for nobody, want the fill to stop after its block", n, blocks)
	}
}
