package server

import (
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"gatecache/internal/freshness"
	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// alwaysRevalidate treats every index file as stale at once, so that tests
// need no clock.
func alwaysRevalidate() freshness.Policy {
	p := freshness.DefaultPolicy()
	p.IndexMaxAge = 0
	return p
}

func TestIndexFileIsRevalidatedAndRefreshedBy304(t *testing.T) {
	r := newRig(t, withPolicy(alwaysRevalidate()))
	path := "/debian/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 3000, CacheControl: "-"})
	want := r.origin.Want(path)
	r.expect(r.get(path), 200, "gatecache; fwd=miss; stored", want)
	r.expect(r.get(path), 200, "gatecache; fwd=stale; fwd-status=304", want)
	reqs := r.origin.Requests()
	if len(reqs) != 2 || reqs[1].Header.Get("If-None-Match") == "" || reqs[1].Header.Get("If-Modified-Since") == "" {
		t.Fatalf("revalidation request %+v, want a conditional GET", reqs[len(reqs)-1])
	}
	if r.origin.PathStats(path).NotModified != 1 {
		t.Fatal("origin did not answer 304")
	}
}

func TestIndexFileWithinItsWindowIsAHit(t *testing.T) {
	p := freshness.DefaultPolicy()
	p.IndexMaxAge = time.Hour
	r := newRig(t, withPolicy(p))
	path := "/debian/dists/stable/main/binary-amd64/Packages.xz"
	r.origin.Set(path, origintest.Object{Size: 3000, CacheControl: "-"})
	r.expect(r.get(path), 200, "", r.origin.Want(path))
	// apt asks for index files with max-age=0: within the window, the
	// last check stands, so a fleet's burst makes one upstream request.
	r.expect(r.get(path, "Cache-Control", "max-age=0"), 200, "gatecache; hit", r.origin.Want(path))
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests, want 1", n)
	}
}

func TestChangedIndexReplacesTheStoredOne(t *testing.T) {
	r := newRig(t, withPolicy(alwaysRevalidate()))
	path := "/repo/repodata/repomd.xml"
	r.origin.Set(path, origintest.Object{Size: 2000, Version: 1, CacheControl: "-"})
	r.expect(r.get(path), 200, "", r.origin.Want(path))
	r.origin.Set(path, origintest.Object{Size: 2500, Version: 2, CacheControl: "-"})
	r.expect(r.get(path), 200, "gatecache; fwd=stale; fwd-status=200; stored", r.origin.Want(path))
	r.expect(r.get(path), 200, "gatecache; fwd=stale; fwd-status=304", r.origin.Want(path))
}

func TestPayloadsAreKeptWhateverTheirHeaders(t *testing.T) {
	r := newRig(t, withPolicy(alwaysRevalidate()))
	path := "/pool/main/h/hello/hello_1.0_amd64.deb"
	r.origin.Set(path, origintest.Object{Size: 5000, CacheControl: "max-age=0"})
	r.expect(r.get(path), 200, "", r.origin.Want(path))
	r.expect(r.get(path), 200, "gatecache; hit", r.origin.Want(path))
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests for a .deb, want 1", n)
	}
}

func TestNoCacheResponseIsRevalidatedEveryTime(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 100, CacheControl: "no-cache"})
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss; stored", r.origin.Want("/f"))
	r.expect(r.get("/f"), 200, "gatecache; fwd=stale; fwd-status=304", r.origin.Want("/f"))
}

func TestStaleIsServedWhenUpstreamIsDown(t *testing.T) {
	r := newRig(t, withPolicy(alwaysRevalidate()))
	path := "/dists/stable/Release"
	r.origin.Set(path, origintest.Object{Size: 1500, CacheControl: "-"})
	want := r.origin.Want(path)
	r.expect(r.get(path), 200, "", want)
	r.origin.Close()
	resp := r.get(path)
	r.expect(resp, 200, "gatecache; fwd=stale; detail=upstream-unavailable", want)
	if _, err := strconv.Atoi(resp.Header.Get("Age")); err != nil {
		t.Fatalf("stale answer without an Age header: %q", resp.Header.Get("Age"))
	}
	// A miss with nothing stored still fails, fast.
	r.expect(r.get("/dists/stable/other"), http.StatusBadGateway, "", nil)
}

func TestStaleIsNotServedWhenForbidden(t *testing.T) {
	for name, c := range map[string]struct {
		cc       string
		maxStale time.Duration
	}{
		"must-revalidate": {"no-cache, must-revalidate", -1},
		"MAX_STALE=0":     {"no-cache", 0},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, withMaxStale(c.maxStale))
			r.origin.Set("/f", origintest.Object{Size: 100, CacheControl: c.cc})
			r.expect(r.get("/f"), 200, "", r.origin.Want("/f"))
			r.origin.Close()
			r.expect(r.get("/f"), http.StatusBadGateway, "", nil)
		})
	}
}

func TestUpstream5xxDuringRevalidationServesStale(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 100, CacheControl: "no-cache"})
	r.expect(r.get("/f"), 200, "", r.origin.Want("/f"))
	r.origin.Set("/f", origintest.Object{Size: 100, CacheControl: "no-cache", Fault: origintest.FaultStatus503})
	r.expect(r.get("/f"), 200, "gatecache; fwd=stale; detail=upstream-unavailable", r.origin.Want("/f"))
}

// N requests for one stale entry cost one revalidation: the origin answers
// only once the first has asked and every other waits for its
// revalidation, so that without coalescing each would have asked too.
func TestConcurrentRevalidationsAreOne(t *testing.T) {
	sink := make(accessSink, 16)
	r := newRig(t, withAccessLog(slog.New(sink)))
	path := "/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 4000, CacheControl: "no-cache"})
	want := r.origin.Want(path)
	r.expect(r.get(path), 200, "", want)
	accessLines(t, sink, 1)
	// The same version, now fresh for an hour: the first revalidation
	// (a 304) makes the stored copy fresh for everyone after it.
	r.origin.Set(path, origintest.Object{Size: 4000, CacheControl: "max-age=3600"})
	r.origin.ResetStats()
	r.origin.Hold()
	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := r.get(path)
			if b, err := body(resp); err != nil || string(b) != string(want) || resp.StatusCode != 200 {
				errs <- resp.Status
			}
		}()
	}
	r.waitArrived(t, clients, r.handler.revalidations)
	r.origin.Unhold()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error("client got", e)
	}
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d upstream revalidations for %d concurrent clients, want 1", n, clients)
	}
	statuses := cacheStatuses(accessLines(t, sink, clients))
	if statuses[statusRefreshed] != 1 || countContaining(statuses, "collapsed") != clients-1 {
		t.Fatalf("access log Cache-Status %v, want one %q and %d collapsed", statuses, statusRefreshed, clients-1)
	}
}

func TestNotFoundIsRememberedBriefly(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/missing.deb", origintest.Object{Status: 404})
	r.expect(r.get("/missing.deb"), 404, "gatecache; fwd=miss", nil)
	r.expect(r.get("/missing.deb"), 404, "gatecache; hit; detail=negative", nil)
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests for a missing file, want 1", n)
	}
}

// N requests for a file upstream does not have cost one upstream request:
// the origin answers only once the first has asked and every other waits
// for its discovery. Those that waited are answered from the remembered
// 404 (a negative hit), as any request after them.
func TestConcurrentRequestsForAMissingFileAskOnce(t *testing.T) {
	sink := make(accessSink, 16)
	r := newRig(t, withAccessLog(slog.New(sink)))
	r.origin.Set("/missing.deb", origintest.Object{Status: 404})
	r.origin.Hold()
	const clients = 6
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := r.get("/missing.deb")
			body(resp)
			if resp.StatusCode != 404 {
				t.Errorf("status %d, want 404", resp.StatusCode)
			}
		}()
	}
	r.waitArrived(t, clients, r.handler.discoveries)
	r.origin.Unhold()
	wg.Wait()
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests for a missing file asked %d times at once, want 1", n, clients)
	}
	statuses := cacheStatuses(accessLines(t, sink, clients))
	if statuses[statusNotStored] != 1 || statuses[statusNegative] != clients-1 {
		t.Fatalf("access log Cache-Status %v, want one %q and %d %q", statuses, statusNotStored, clients-1, statusNegative)
	}
}

func TestRevalidationKeepsTheBodyFields(t *testing.T) {
	f := func(name, value string) store.Field { return store.Field{Name: name, Values: []string{value}} }
	stored := []store.Field{f("Cache-Control", "no-cache"), f("Content-Type", "application/x-debian-package"), f("Date", "old")}
	got := mergeFields(stored, http.Header{"Content-Type": {"text/html"}, "Cache-Control": {"max-age=60"}, "Date": {"new"}})
	want := []store.Field{f("Cache-Control", "max-age=60"), f("Content-Type", "application/x-debian-package"), f("Date", "new")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
}

func TestOnlyIfCached(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 10})
	r.expect(r.get("/f", "Cache-Control", "only-if-cached"), 504, "", nil)
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("only-if-cached reached upstream %d times", n)
	}
}
