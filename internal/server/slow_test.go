package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/origin"
	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// Upstreams that stall or are slow, with short configured timeouts: no
// test waits for a real default.

// guard is the generous deadline after which a test declares a hang; the
// timeouts under test are a small fraction of it.
const guard = 30 * time.Second

// newSlowRig is newRig with the upstream client's timeouts and the
// handler's revalidation wait set.
func newSlowRig(t *testing.T, fo fetch.Options, revalidateWait time.Duration) *rig {
	t.Helper()
	o := origintest.New(t)
	host, port := splitAddr(o.Addr)
	specs := []store.DriveSpec{{Path: filepath.Join(t.TempDir(), "cache1"), Budget: 1 << 30}}
	st, err := store.Open(store.Options{Drives: specs, BlockSize: testBlock, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	flights := flight.NewGroup(ctx)
	log := slog.New(slog.DiscardHandler)
	fo.NodeID, fo.Logger = testNodeID, log
	up := fetch.New(fo)
	h := New(Options{
		Resolver: origin.NewResolver([]origin.Host{{Name: host, Port: port, Var: "CACHEABLE_CUSTOM_1_HOST"}}),
		Store:    st, Flights: flights, Upstream: up, Log: log, NodeID: testNodeID,
		MaxStale: -1, RevalidateWait: revalidateWait, Recorder: &tally{},
	})
	srv := httptest.NewServer(h)
	r := &rig{t: t, origin: o, store: st, specs: specs, flights: flights, handler: h, cache: srv}
	r.client = &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		up.Close()
		done := make(chan struct{})
		go func() {
			flights.Wait()
			close(done)
		}()
		select {
		case <-done:
			st.Close()
		case <-time.After(guard):
			t.Errorf("fills still running %v after the test's end", guard)
		}
	})
	return r
}

// attempt is one request's outcome, read to its end.
type attempt struct {
	status      int
	cacheStatus string
	body        []byte
	err         error // reading the response or its body
	hung        bool  // still going at the guard
}

// try asks for path and reads the answer, bounded by guard.
func (r *rig) try(path string, kv ...string) attempt {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cache.URL+path+"?cacheHostOrigin="+r.origin.Addr, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return attempt{err: err, hung: ctx.Err() != nil}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return attempt{status: resp.StatusCode, cacheStatus: resp.Header.Get("Cache-Status"), body: b, err: err, hung: ctx.Err() != nil}
}

// wantAborted checks that a response broke off (never completed) with
// correct bytes before the break, and not because the test gave up.
func wantAborted(t *testing.T, what string, a attempt, want []byte) {
	t.Helper()
	switch {
	case a.hung:
		t.Fatalf("%s: still waiting after %v (%d bytes so far)", what, guard, len(a.body))
	case a.err == nil:
		t.Fatalf("%s: completed with status %d and %d bytes, want an aborted response", what, a.status, len(a.body))
	case string(a.body) != string(want[:min(len(a.body), len(want))]):
		t.Fatalf("%s: wrong bytes before the abort", what)
	}
}

// An upstream that sends headers and then nothing, or stalls mid-body,
// fails its fill after the idle timeout: the clients that read the fill,
// also those that joined it later, get an aborted response; only complete
// blocks are kept; once upstream behaves, the next request completes.
func TestStalledUpstreamFailsItsFill(t *testing.T) {
	for name, at := range map[string]int64{"headers then nothing": 0, "mid-body": 3*testBlock + 1000} {
		t.Run(name, func(t *testing.T) {
			r := newSlowRig(t, fetch.Options{IdleTimeout: 200 * time.Millisecond}, 0)
			size := int64(8 * testBlock)
			// Every answer stalls, also that of a fill a late client
			// may start after the first one failed.
			r.origin.Set("/f", origintest.Object{Size: size, Fault: origintest.FaultStall, FaultAt: at})
			want := r.origin.Want("/f")
			var wg sync.WaitGroup
			got := make([]attempt, 3)
			for i := range got {
				wg.Add(1)
				go func() {
					defer wg.Done()
					got[i] = r.try("/f")
				}()
			}
			wg.Wait()
			for i, a := range got {
				wantAborted(t, fmt.Sprintf("client %d", i+1), a, want)
			}
			if stored := r.checkStoredBlocks("/f"); int64(stored) < at/testBlock {
				t.Fatalf("%d blocks stored, want at least the %d complete before the stall", stored, at/testBlock)
			}
			r.origin.Set("/f", origintest.Object{Size: size})
			a := r.try("/f")
			if a.err != nil || a.status != 200 || string(a.body) != string(want) {
				t.Fatalf("after the stall: status %d, %d bytes, err %v; want the whole object", a.status, len(a.body), a.err)
			}
		})
	}
}

// A fill whose every client left does not run on while upstream sends
// nothing: it ends by the idle timeout, and the group goes idle.
func TestFillWhoseClientsLeftEndsWhenUpstreamStalls(t *testing.T) {
	r := newSlowRig(t, fetch.Options{IdleTimeout: 200 * time.Millisecond}, 0)
	r.origin.Set("/f", origintest.Object{Size: 8 * testBlock, Fault: origintest.FaultStall, FaultAt: 5000})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr, nil)
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	cancel() // the only client leaves while upstream stalls
	resp.Body.Close()
	done := make(chan struct{})
	go func() {
		r.flights.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("the fill still runs %v after its only client left (upstream stalled)", guard)
	}
}

// A miss whose upstream does not answer within the header timeout gets a
// 504 (which sends a Delivery Optimization client to the origin for that
// download), and so does every request that waited on the same discovery.
func TestMissWithoutUpstreamHeadersGets504(t *testing.T) {
	r := newSlowRig(t, fetch.Options{HeaderTimeout: 200 * time.Millisecond}, 0)
	r.origin.Set("/f", origintest.Object{Size: 1000})
	r.origin.Hold()
	defer r.origin.Unhold()
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := r.try("/f"); a.hung || a.status != http.StatusGatewayTimeout {
				t.Errorf("miss with a silent upstream: status %d (%s), hung %v; want 504", a.status, a.cacheStatus, a.hung)
			}
		}()
	}
	wg.Wait()
	if r.store.Lookup(r.origin.Addr+"/f") != nil {
		t.Fatal("an object was stored from no answer")
	}
}

// staleRig stores /dists/stable/InRelease with max-age=0 (stale at once)
// and returns its bytes.
func staleRig(t *testing.T, cc string, fo fetch.Options, wait time.Duration) (*rig, []byte) {
	r := newSlowRig(t, fo, wait)
	const path = "/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 3000, CacheControl: cc})
	want := r.origin.Want(path)
	if a := r.try(path); a.err != nil || a.status != 200 || string(a.body) != string(want) {
		t.Fatalf("first fetch: %+v", a)
	}
	return r, want
}

// A stale entry whose revalidation is slow is served from what is stored
// after RevalidateWait; the revalidation finishes in the background and
// refreshes the entry, which the next request finds fresh.
func TestSlowRevalidationServesTheStoredCopyAndRefreshesInTheBackground(t *testing.T) {
	r, want := staleRig(t, "max-age=0", fetch.Options{}, 50*time.Millisecond)
	const path = "/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 3000, CacheControl: "max-age=3600"}) // same version, now fresh
	r.origin.ResetStats()
	r.origin.Hold()
	a := r.try(path)
	if a.hung || a.err != nil || a.status != 200 || string(a.body) != string(want) || a.cacheStatus != statusRevalidating {
		t.Fatalf("stale entry, slow upstream: status %d (%s), %d bytes, err %v, hung %v; want the stored copy, %q",
			a.status, a.cacheStatus, len(a.body), a.err, a.hung, statusRevalidating)
	}
	r.origin.Unhold()
	r.flights.Wait() // the background revalidation
	a = r.try(path)
	if a.status != 200 || string(a.body) != string(want) || a.cacheStatus != statusHit {
		t.Fatalf("after the background revalidation: status %d (%s), want a fresh hit", a.status, a.cacheStatus)
	}
	if st := r.origin.Stats(); st.Requests != 1 || st.NotModified != 1 {
		t.Fatalf("origin stats %+v: want one conditional request, answered 304", st)
	}
}

// A new version found in the background replaces the stored one.
func TestSlowRevalidationStoresTheNewVersionInTheBackground(t *testing.T) {
	r, old := staleRig(t, "max-age=0", fetch.Options{}, 50*time.Millisecond)
	const path = "/dists/stable/InRelease"
	r.origin.Set(path, origintest.Object{Size: 3500, Version: 2, CacheControl: "max-age=3600"})
	want := r.origin.Want(path)
	r.origin.Hold()
	if a := r.try(path); a.status != 200 || string(a.body) != string(old) || a.cacheStatus != statusRevalidating {
		t.Fatalf("stale entry, slow upstream: status %d (%s), want the stored copy", a.status, a.cacheStatus)
	}
	r.origin.Unhold()
	r.flights.Wait()
	r.origin.ResetStats()
	a := r.try(path)
	if a.status != 200 || string(a.body) != string(want) {
		t.Fatalf("after the background revalidation: status %d (%s), %d bytes; want version 2", a.status, a.cacheStatus, len(a.body))
	}
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for the new version stored in the background, want 0", n)
	}
}

// Every request that needs the same slow revalidation, also those arriving
// after the first was served, gets the stored copy; upstream is asked once.
func TestSlowRevalidationIsOneForAll(t *testing.T) {
	r, want := staleRig(t, "max-age=0", fetch.Options{}, 50*time.Millisecond)
	const path = "/dists/stable/InRelease"
	r.origin.ResetStats()
	held := r.origin.Hold()
	defer r.origin.Unhold()
	first := r.try(path) // served stale once the wait is over; upstream still silent
	<-held
	var wg sync.WaitGroup
	got := make([]attempt, 6)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = r.try(path)
		}()
	}
	wg.Wait()
	for _, a := range append(got, first) {
		if a.status != 200 || string(a.body) != string(want) || a.cacheStatus != statusRevalidating {
			t.Fatalf("status %d (%s), hung %v: want the stored copy", a.status, a.cacheStatus, a.hung)
		}
	}
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d upstream revalidations, want 1", n)
	}
}

// What the origin says must be validated is not served early: a stale
// must-revalidate entry waits for upstream (then 504), a no-cache one is
// served only once upstream has failed (stale-if-error), not while it is
// merely slow.
func TestSlowRevalidationWaitsWhenTheOriginSaysSo(t *testing.T) {
	for cc, want := range map[string]struct {
		status      int
		cacheStatus string
	}{
		"max-age=0, must-revalidate": {http.StatusGatewayTimeout, ""},
		"no-cache":                   {http.StatusOK, statusStale},
	} {
		t.Run(cc, func(t *testing.T) {
			r, _ := staleRig(t, cc, fetch.Options{HeaderTimeout: 300 * time.Millisecond}, time.Millisecond)
			r.origin.Hold()
			defer r.origin.Unhold()
			a := r.try("/dists/stable/InRelease")
			if a.hung || a.status != want.status || (want.cacheStatus != "" && a.cacheStatus != want.cacheStatus) {
				t.Fatalf("status %d (%s), hung %v; want %d %s", a.status, a.cacheStatus, a.hung, want.status, want.cacheStatus)
			}
			if strings.Contains(a.cacheStatus, "revalidating") {
				t.Fatalf("Cache-Status %q: served before upstream answered", a.cacheStatus)
			}
		})
	}
}

// A stale must-revalidate entry waits for its revalidation however long
// the wait for a slow one is set (here none at all): the answer comes from
// upstream once it gives one, not a 504 at the end of the wait.
func TestMustRevalidateWaitsForTheAnswer(t *testing.T) {
	r, want := staleRig(t, "max-age=0, must-revalidate", fetch.Options{HeaderTimeout: time.Minute}, -1)
	parked := r.origin.Hold()
	done := make(chan attempt, 1)
	go func() { done <- r.try("/dists/stable/InRelease") }()
	<-parked // the revalidation is at the origin
	r.origin.Unhold()
	a := <-done
	if a.hung || a.status != http.StatusOK || string(a.body) != string(want) || a.cacheStatus == statusRevalidating {
		t.Fatalf("status %d (%s), %d bytes, hung %v; want the revalidated copy", a.status, a.cacheStatus, len(a.body), a.hung)
	}
}

// A qualified no-cache (no-cache="Set-Cookie") is about those fields alone
// (RFC 9111 §5.2.2.4): the entry is served while a slow revalidation goes
// on, as one without it is.
func TestQualifiedNoCacheIsServedWhileRevalidating(t *testing.T) {
	r, _ := staleRig(t, `max-age=0, no-cache="Set-Cookie"`, fetch.Options{HeaderTimeout: time.Minute}, time.Millisecond)
	r.origin.Hold()
	defer r.origin.Unhold()
	if a := r.try("/dists/stable/InRelease"); a.hung || a.status != http.StatusOK || a.cacheStatus != statusRevalidating {
		t.Fatalf("status %d (%s), hung %v: want the stored copy while revalidating", a.status, a.cacheStatus, a.hung)
	}
}
