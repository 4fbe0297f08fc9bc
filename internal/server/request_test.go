package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gatecache/internal/origintest"
)

// A request-target past the bound gets 414 before anything else: nothing
// goes upstream and no key reaches the store. One just under the bound is
// served.
func TestOverLongTargetIs414(t *testing.T) {
	r := newRig(t)
	suffix := "?cacheHostOrigin=" + r.origin.Addr
	long := "/" + strings.Repeat("a", 40<<10)
	r.origin.Set(long, origintest.Object{Size: 10})
	resp := r.get(long)
	r.mustBody(resp)
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Fatalf("status %d for a %d-byte target, want 414", resp.StatusCode, len(long))
	}
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for an over-long target", n)
	}
	if obj := r.store.Lookup(r.origin.Addr + long); obj != nil {
		t.Fatal("an over-long key reached the store")
	}

	ok := "/" + strings.Repeat("b", MaxTargetLength-1-len(suffix))
	r.origin.Set(ok, origintest.Object{Size: 10})
	r.expect(r.get(ok), 200, "gatecache; fwd=miss; stored", r.origin.Want(ok))
	r.expect(r.get(ok+"b"), 414, "", nil)
}

// "Range: bytes=-0" asks for nothing: 416 (RFC 9110 §14.1.1, a suffix-range
// needs a non-zero length), on a miss, a hit from the file and a hit from
// memory alike. A "-0" beside a satisfiable range is left out.
func TestZeroSuffixRangeIs416(t *testing.T) {
	r := newRig(t)
	for _, size := range []int64{4*testBlock + 5, 1000} { // from the file; from memory
		path := fmt.Sprintf("/z%d", size)
		r.origin.Set(path, origintest.Object{Size: size})
		want := r.origin.Want(path)
		cr := fmt.Sprintf("bytes */%d", size)
		for i, status := range []string{"gatecache; fwd=miss; stored", "gatecache; hit", "gatecache; hit"} {
			resp := r.get(path, "Range", "bytes=-0")
			r.expect(resp, 416, status, nil)
			if resp.Header.Get("Content-Range") != cr {
				t.Fatalf("size %d, request %d: Content-Range %q, want %q", size, i, resp.Header.Get("Content-Range"), cr)
			}
			if i == 0 { // make it a hit: the fill stopped when the client left
				r.flights.Wait()
				r.expect(r.get(path), 200, "", want)
				r.flights.Wait()
			}
		}
		resp := r.get(path, "Range", "bytes=-0,0-9")
		r.expect(resp, 206, "gatecache; hit", want[:10])
		if got := resp.Header.Get("Content-Range"); got != fmt.Sprintf("bytes 0-9/%d", size) {
			t.Fatalf("Content-Range %q for bytes=-0,0-9", got)
		}
	}
}
