package server

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gatecache/internal/origintest"
)

// The Delivery Optimization agent appends a Range line on every resume and
// keeps the old ones; it writes whatever body arrives at its newest offset.
// Its device file must come out byte-exact however the cache serves the
// requests: discovery, hits, pass-through.
func TestDOAgentResumesAreByteExact(t *testing.T) {
	size := int64(50*testBlock + 123)
	// Pauses at unaligned offsets, as the agent's no-progress timer makes.
	stops := []int64{size * 3 / 10, size * 45 / 100, size * 7 / 10, size * 8 / 10}
	cases := []struct {
		name string
		obj  origintest.Object
		warm bool // another client fetched the whole object first: all hits
		// viaOrigin: the first requests went to the origin directly (the
		// agent falls back to it; up to one Range line, which the origin
		// reads right), so the cache's first request already carries
		// several Range lines.
		viaOrigin int
	}{
		{name: "cold", obj: origintest.Object{Size: size}},
		{name: "warm", obj: origintest.Object{Size: size}, warm: true},
		{name: "pass-through", obj: origintest.Object{Size: size, CacheControl: "no-store"}},
		{name: "discovery", obj: origintest.Object{Size: size}, viaOrigin: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.origin.Set("/do/update.swu", c.obj)
			want := r.origin.Want("/do/update.swu")
			if c.warm {
				r.expect(r.get("/do/update.swu"), 200, "gatecache; fwd=miss; stored", want)
			}
			agent := &origintest.DOAgent{
				Client: r.client,
				URL:    r.origin.URL + "/do/update.swu",
				File:   filepath.Join(t.TempDir(), "update.swu"),
			}
			for i, stop := range stops {
				if i == c.viaOrigin {
					agent.URL = r.cache.URL + "/do/update.swu?cacheHostOrigin=" + r.origin.Addr
				}
				if status, err := agent.Request(stop - agent.Transferred()); err != nil || (status != 200 && status != 206) {
					t.Fatalf("request %d: status %d, %v", i, status, err)
				}
			}
			if status, err := agent.Request(-1); err != nil || status != 206 || !agent.Complete() {
				t.Fatalf("last request: status %d, complete %v, %v", status, agent.Complete(), err)
			}
			if n := len(agent.RangeLines()); n != len(stops) {
				t.Fatalf("the agent sent %d Range lines on its last request, want %d", n, len(stops))
			}
			got, err := os.ReadFile(agent.File)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("device file is %d bytes, want %d%s", len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

// Every Range the cache sends upstream on a client's behalf is the client's
// last Range line: on pass-through and on forwarded methods too.
func TestRepeatedRangeLinesReachUpstreamAsTheLastOne(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/p", origintest.Object{Size: 5000, CacheControl: "no-store"})
	lines := []string{"bytes=100-4999", "bytes=2000-4999"}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r.origin.ResetStats()
		req, _ := http.NewRequest(method, r.cache.URL+"/p?cacheHostOrigin="+r.origin.Addr, nil)
		req.Header["Range"] = slices.Clone(lines)
		resp, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// A GET's discovery asks for the blocks around the range; the
		// pass-through that follows (no-store) carries the client's.
		ups := r.origin.Requests()
		for _, up := range ups {
			if len(up.Header["Range"]) > 1 {
				t.Fatalf("%s: upstream request with Range lines %q", method, up.Header["Range"])
			}
		}
		if last := ups[len(ups)-1]; last.Method != method || !slices.Equal(last.Header["Range"], lines[1:]) {
			t.Fatalf("%s: upstream %s with Range %q, want the client's last line", method, last.Method, last.Header["Range"])
		}
	}
}

// An intermediary may fold the agent's lines into one value (RFC 9110 §5.3);
// the last byte-range set still wins.
func TestFoldedRangeLinesUseTheLastSet(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 9000})
	want := r.origin.Want("/f")
	r.expect(r.get("/f"), 200, "", want)
	r.flights.Wait()
	r.expect(r.get("/f", "Range", "bytes=100-8999, bytes=4000-8999"), 206, "gatecache; hit", want[4000:])
}
