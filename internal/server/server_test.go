package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"gatecache/internal/origintest"
	"gatecache/internal/summary"
)

func TestColdMissStreamsOnceThenHits(t *testing.T) {
	r := newRig(t)
	size := int64(10*testBlock + 123)
	r.origin.Set("/pool/a.deb", origintest.Object{Size: size, ContentType: "application/vnd.debian.binary-package"})
	want := r.origin.Want("/pool/a.deb")

	resp := r.get("/pool/a.deb")
	if resp.ContentLength != size {
		t.Fatalf("Content-Length %d, want %d", resp.ContentLength, size)
	}
	r.expect(resp, 200, "gatecache; fwd=miss; stored", want)
	if resp.Header.Get("Content-Type") != "application/vnd.debian.binary-package" || resp.Header.Get("Etag") == "" {
		t.Fatalf("stored headers not replayed: %v", resp.Header)
	}
	r.expect(r.get("/pool/a.deb"), 200, "gatecache; hit", want)

	if n, total := r.upstreamBytes(size); n != 1 || total != size {
		t.Fatalf("origin asked %d times for %d bytes; want once for %d", n, total, size)
	}
	if hit, miss := r.tally.hit.Load(), r.tally.miss.Load(); hit != size || miss != size {
		t.Fatalf("hit/miss bytes %d/%d, want %d/%d", hit, miss, size, size)
	}
	if q := r.origin.Requests()[0].URI; strings.Contains(q, "cacheHostOrigin") {
		t.Fatalf("cacheHostOrigin leaked upstream: %s", q)
	}
}

func TestAllFourRequestFormsShareOneEntry(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/debian/./InRelease", origintest.Object{Size: 5000})
	want := r.origin.Want("/debian/./InRelease")

	// 1. absolute form, as a forward-proxy client sends it.
	proxyURL, _ := url.Parse(r.cache.URL)
	proxied := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := proxied.Get("http://" + r.origin.Addr + "/debian/./InRelease")
	if err != nil {
		t.Fatal(err)
	}
	r.expect(resp, 200, "gatecache; fwd=miss; stored", want)
	// 2. cacheHostOrigin, 3. Host header, 4. path prefix.
	r.expect(r.get("/debian/./InRelease"), 200, "gatecache; hit", want)
	r.expect(r.do("GET", r.cache.URL+"/debian/./InRelease", "Host", r.origin.Addr), 200, "gatecache; hit", want)
	r.expect(r.do("GET", r.cache.URL+"/"+r.origin.Addr+"/debian/./InRelease"), 200, "gatecache; hit", want)

	reqs := r.origin.Requests()
	if len(reqs) != 1 || reqs[0].URI != "/debian/./InRelease" {
		t.Fatalf("origin requests %+v, want one for the path as written", reqs)
	}
}

func TestRangeMissFetchesOnlyCoveredBlocks(t *testing.T) {
	r := newRig(t)
	size := int64(20 * testBlock)
	r.origin.Set("/img.swu", origintest.Object{Size: size})
	want := r.origin.Want("/img.swu")

	// Bytes inside blocks 3..4.
	a, b := int64(3*testBlock+10), int64(5*testBlock-1)
	resp := r.get("/img.swu", "Range", fmt.Sprintf("bytes=%d-%d", a, b))
	r.expect(resp, 206, "gatecache; fwd=miss; stored", want[a:b+1])
	if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", a, b, size) {
		t.Fatalf("Content-Range %q", cr)
	}
	if n, total := r.upstreamBytes(size); n != 1 || total != 2*testBlock {
		t.Fatalf("origin asked %d times for %d bytes for a range in 2 blocks, want once for %d", n, total, 2*testBlock)
	}

	// The same blocks again: no upstream request at all.
	r.origin.ResetStats()
	r.expect(r.get("/img.swu", "Range", fmt.Sprintf("bytes=%d-%d", 3*testBlock, 4*testBlock)), 206, "gatecache; hit", want[3*testBlock:4*testBlock+1])
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for present blocks", n)
	}

	// A suffix range and a range spanning present and absent blocks.
	r.expect(r.get("/img.swu", "Range", "bytes=-100"), 206, "gatecache; fwd=miss; stored", want[size-100:])
	r.expect(r.get("/img.swu", "Range", fmt.Sprintf("bytes=%d-%d", 2*testBlock, 6*testBlock-1)), 206, "gatecache; fwd=partial; stored", want[2*testBlock:6*testBlock])

	// The rest of the object, then everything is a hit.
	r.expect(r.get("/img.swu"), 200, "gatecache; fwd=partial; stored", want)
	r.origin.ResetStats()
	r.expect(r.get("/img.swu"), 200, "gatecache; hit", want)
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests on a full hit", n)
	}
	for _, req := range r.origin.Requests() {
		if req.Header.Get("If-Range") == "" {
			t.Fatalf("block fetch without If-Range: %+v", req)
		}
	}
}

func TestRangeEdgeCasesOnHit(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 1000})
	want := r.origin.Want("/f")
	r.expect(r.get("/f"), 200, "", want)

	cases := []struct {
		rng    string
		status int
		body   []byte
	}{
		{"bytes=0-0", 206, want[:1]},
		{"bytes=990-", 206, want[990:]},
		{"bytes=-10", 206, want[990:]},
		{"bytes=500-5000", 206, want[500:]},
		{"bytes=1000-", 416, nil},
		{"bytes=x-y", 416, nil}, // malformed: http.ServeContent refuses it
	}
	for _, c := range cases {
		resp := r.get("/f", "Range", c.rng)
		r.expect(resp, c.status, "", c.body)
	}
	// Conditional requests answered from the cache.
	etag := r.get("/f").Header.Get("Etag")
	r.expect(r.get("/f", "If-None-Match", etag), 304, "", nil)
	r.expect(r.get("/f", "Range", "bytes=0-9", "If-Range", `"other"`), 200, "", want)
	r.expect(r.get("/f", "Range", "bytes=0-9", "If-Range", etag), 206, "", want[:10])
}

// N clients of one cold object, some asking for a range, cost one upstream
// request: the origin answers only once the first has asked and every
// other waits for its discovery, so that without coalescing each would
// have asked too. The access log says collapsed for every one but the
// first.
func TestConcurrentClientsCostOneUpstreamTransfer(t *testing.T) {
	sink := make(accessSink, 16)
	r := newRig(t, withAccessLog(slog.New(sink)))
	size := int64(40*testBlock + 7)
	r.origin.Set("/big", origintest.Object{Size: size})
	want := r.origin.Want("/big")
	held := r.origin.Hold()

	const clients = 12
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", r.cache.URL+"/big?cacheHostOrigin="+r.origin.Addr, nil)
			if i%3 == 1 { // some clients ask for a range
				req.Header.Set("Range", "bytes=100000-")
			}
			resp, err := r.client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := body(resp)
			switch {
			case err != nil:
				errs <- err
			case i%3 == 1 && string(b) != string(want[100000:]):
				errs <- fmt.Errorf("client %d: wrong range bytes", i)
			case i%3 != 1 && string(b) != string(want):
				errs <- fmt.Errorf("client %d: wrong bytes", i)
			}
		}()
		if i == 0 {
			<-held // the first, for the whole object, leads
		}
	}
	r.waitArrived(t, clients, r.handler.discoveries)
	r.origin.Unhold()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n, total := r.upstreamBytes(size); n != 1 || total != size {
		t.Fatalf("origin asked %d times for %d bytes; want once for the %d bytes", n, total, size)
	}
	statuses := cacheStatuses(accessLines(t, sink, clients))
	if statuses[statusMiss] != 1 || countContaining(statuses, "collapsed") != clients-1 {
		t.Fatalf("access log Cache-Status %v, want one %q and %d collapsed", statuses, statusMiss, clients-1)
	}
	// Each collapsed request counts once in the figure, although it both
	// joined the discovery and read its fill.
	if n := r.handler.Coalesced(); n != clients-1 {
		t.Fatalf("coalesced figure %d, want %d", n, clients-1)
	}
	// The object counts once as a miss: the clients that read another's
	// fill cost the uplink nothing. (Each access line is logged after its
	// bytes were recorded.)
	served := int64(clients-clients/3)*size + int64(clients/3)*(size-100000)
	hit, miss := r.tally.hit.Load(), r.tally.miss.Load()
	if hit+miss != served || miss != size {
		t.Fatalf("hit %d + miss %d bytes for %d served; want the misses to be the one transfer of %d", hit, miss, served, size)
	}
}

func TestFollowersReadBytesBeforeTheFillEnds(t *testing.T) {
	r := newRig(t)
	size := int64(8 * testBlock)
	stallAt := int64(3*testBlock + 500)
	r.origin.Set("/stall", origintest.Object{Size: size, Fault: origintest.FaultStall, FaultAt: stallAt})
	want := r.origin.Want("/stall")

	leader := r.get("/stall")
	follower := r.get("/stall")
	// The origin is stalled after stallAt bytes: the follower must get
	// them now, not when the fill ends.
	buf := make([]byte, stallAt)
	if _, err := io.ReadFull(follower.Body, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != string(want[:stallAt]) {
		t.Fatal("follower's first bytes differ")
	}
	r.origin.Release()
	rest, err := body(follower)
	if err != nil || string(buf)+string(rest) != string(want) {
		t.Fatalf("follower's whole body wrong: err %v", err)
	}
	r.expect(leader, 200, "", want)
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests, want 1", n)
	}
}

func TestOriginIgnoringRangeStillServesRanges(t *testing.T) {
	r := newRig(t)
	size := int64(6*testBlock + 9)
	r.origin.Set("/static", origintest.Object{Size: size, IgnoreRange: true})
	want := r.origin.Want("/static")
	r.expect(r.get("/static", "Range", "bytes=200000-200099"), 206, "", want[200000:200100])
	r.expect(r.get("/static", "Range", "bytes=10-19"), 206, "", want[10:20])
	r.expect(r.get("/static"), 200, "", want)
	r.origin.ResetStats()
	r.expect(r.get("/static"), 200, "gatecache; hit", want)
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d origin requests after the whole object was seen", n)
	}
}

// Bytes served are counted exactly, by origin alias, in the summary report.
func TestSummaryCountsExactBytes(t *testing.T) {
	rec := summary.NewRecorder()
	r := newRig(t, withRecorder(rec))
	size := int64(3*testBlock + 11)
	r.origin.Set("/f", origintest.Object{Size: size})
	want := r.origin.Want("/f")
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss; stored", want)                     // size miss
	r.expect(r.get("/f"), 200, "gatecache; hit", want)                                  // size hit
	r.expect(r.get("/f", "Range", "bytes=10-109"), 206, "gatecache; hit", want[10:110]) // 100 hit
	r.expect(r.do("GET", r.cache.URL+"/f?cacheHostOrigin=example.org"), 403, "", nil)   // not counted

	rep := summary.New(summary.Options{Recorder: rec})
	rep.Tick()
	rw := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/summary", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rep.Handler().ServeHTTP(rw, req)
	var got summary.Report
	if err := json.Unmarshal(rw.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rw.Body)
	}
	lt := got.Lifetime
	if lt.HitBytes != size+100 || lt.MissBytes != size || lt.EgressBytes != 2*size+100 || lt.Requests != 3 {
		t.Fatalf("lifetime %+v, want hit %d miss %d requests 3", lt, size+100, size)
	}
	if len(got.Origins) != 1 || got.Origins[0].Origin != r.origin.Addr || got.Origins[0].HitBytes != size+100 {
		t.Fatalf("origins %+v", got.Origins)
	}
}
