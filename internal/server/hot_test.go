package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatecache/internal/origin"
	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// A drive without data files (the memory backend offers no *os.File)
// serves hits through io.ReaderAt: whole, ranges and HEAD, byte for byte.
func TestHitsFromADriveWithoutFiles(t *testing.T) {
	const size = 2<<20 + 77 // far above the memory-copy limit
	r := newRig(t, withMemoryDrive())
	r.origin.Set("/img", origintest.Object{Size: size})
	want := r.origin.Want("/img")
	r.expect(r.get("/img"), 200, statusMiss, want)
	r.flights.Wait()
	r.origin.ResetStats()
	r.expect(r.get("/img"), 200, statusHit, want)
	r.expect(r.get("/img", "Range", "bytes=1000000-1500000"), 206, statusHit, want[1000000:1500001])
	r.expect(r.get("/img", "Range", "bytes=-100"), 206, statusHit, want[size-100:])
	resp := r.do(http.MethodHead, r.cache.URL+"/img?cacheHostOrigin="+r.origin.Addr)
	r.mustBody(resp)
	if resp.ContentLength != size {
		t.Fatalf("HEAD Content-Length %d, want %d", resp.ContentLength, size)
	}
	if n := len(r.origin.Requests()); n != 0 {
		t.Fatalf("%d upstream requests for hits", n)
	}
}

// A small object's memory copy and freshness go when the store drops the
// object, and the budget they took is given back.
func TestHotEntriesGoWithTheirObject(t *testing.T) {
	r := newRig(t, withMemoryDrive())
	r.origin.Set("/small", origintest.Object{Size: 5000, Header: http.Header{"Cache-Control": {"max-age=3600"}}})
	want := r.origin.Want("/small")
	r.expect(r.get("/small"), 200, statusMiss, want)
	r.flights.Wait()
	r.expect(r.get("/small"), 200, statusHit, want)
	obj := r.store.Lookup(r.origin.Addr + "/small")
	hot := r.handler.hot
	hot.mu.Lock()
	_, fresh := hot.fresh[obj]
	mem, used := hot.mem[obj], hot.memUsed
	hot.mu.Unlock()
	if !fresh || len(mem) != 5000 || used != 5000 {
		t.Fatalf("after a hit: freshness kept %v, memory copy %d bytes, %d used; want true, 5000, 5000", fresh, len(mem), used)
	}

	r.store.RemoveObject(obj)
	hot.mu.Lock()
	_, fresh = hot.fresh[obj]
	_, copied := hot.mem[obj]
	used = hot.memUsed
	hot.mu.Unlock()
	if fresh || copied || used != 0 {
		t.Fatalf("after removal: freshness kept %v, memory copy kept %v, %d bytes used", fresh, copied, used)
	}
	r.expect(r.get("/small"), 200, statusMiss, want)
}

// The freshness table holds at most maxFreshEntries, and an entry computed
// from a header that a revalidation has replaced is not used.
func TestFreshnessTableIsBoundedAndFollowsTheHeader(t *testing.T) {
	st, err := store.Open(store.Options{Drives: []store.DriveSpec{{Path: "memory", Budget: 1 << 30, Backend: store.NewMemoryDrive()}}, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := New(Options{Store: st})
	now := time.Now()
	hdr := func(maxAge int) []store.Field {
		return []store.Field{{Name: "Cache-Control", Values: []string{fmt.Sprintf("max-age=%d", maxAge)}}}
	}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	var first *store.Object
	for i := range maxFreshEntries + 100 {
		key := fmt.Sprint("k", i)
		obj, err := st.Create(key, store.Meta{Size: 1, Header: hdr(3600), StoredAt: now})
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = obj
		}
		if _, fresh := h.fresh(req, origin.Target{Host: "example.com", Path: "/" + key, Key: key}, obj); !fresh {
			t.Fatal("a response of max-age=3600 is not fresh")
		}
	}
	if n := len(h.hot.fresh); n > maxFreshEntries {
		t.Fatalf("%d freshness entries, want at most %d", n, maxFreshEntries)
	}

	t0 := origin.Target{Host: "example.com", Path: "/k0", Key: "k0"}
	h.fresh(req, t0, first)
	first.SetHeader(hdr(0), now.Add(-time.Minute)) // a revalidation made it expire at once
	if _, fresh := h.fresh(req, t0, first); fresh {
		t.Fatal("freshness of the replaced header used")
	}
}
