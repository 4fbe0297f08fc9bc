package server

import (
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
