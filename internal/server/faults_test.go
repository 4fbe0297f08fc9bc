package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatecache/internal/origintest"
)

// presentBlocks lists which blocks of the object under path are stored.
func (r *rig) presentBlocks(path string) []bool {
	r.t.Helper()
	obj := r.store.Lookup(r.origin.Addr + path)
	if obj == nil {
		return nil
	}
	return obj.Present()
}

// checkStoredBlocks asserts that every block the store holds for path has
// exactly the origin's bytes, and returns how many it holds.
func (r *rig) checkStoredBlocks(path string) int {
	r.t.Helper()
	obj := r.store.Lookup(r.origin.Addr + path)
	if obj == nil {
		return 0
	}
	want := r.origin.Want(path)
	rd, err := obj.Open()
	if err != nil {
		r.t.Fatal(err)
	}
	defer rd.Close()
	data := make([]byte, obj.Size())
	if _, err := rd.ReadAt(data, 0); err != nil {
		r.t.Fatal(err)
	}
	n := 0
	for i, p := range obj.Present() {
		if !p {
			continue
		}
		n++
		start, end := obj.BlockBounds(int64(i))
		if string(data[start:end]) != string(want[start:end]) {
			r.t.Fatalf("stored block %d differs from the origin's bytes", i)
		}
	}
	return n
}

// A body that breaks off upstream must break off at the client too, and
// leave only complete, correct blocks behind; the next request refetches
// only what is missing.
func TestUpstreamBodyFaultsAbortAndNeverStoreWrongBytes(t *testing.T) {
	for _, fault := range []origintest.Fault{origintest.FaultTruncate, origintest.FaultReset, origintest.FaultWrongLength} {
		t.Run(fault.String(), func(t *testing.T) {
			r := newRig(t)
			size := int64(8 * testBlock)
			// Every response breaks 1000 bytes in: the fill fails in
			// block 0 while the client waits for it.
			r.origin.Set("/f", origintest.Object{Size: size, Fault: fault, FaultAt: 1000})
			want := r.origin.Want("/f")
			got, err := body(r.get("/f"))
			if err == nil {
				t.Fatalf("client read a complete-looking body of %d bytes from a broken upstream", len(got))
			}
			if string(got) != string(want[:len(got)]) {
				t.Fatal("the bytes before the break are wrong")
			}
			if n := r.checkStoredBlocks("/f"); n != 0 {
				t.Fatalf("%d blocks stored from a body that broke in block 0", n)
			}

			// Breaking later: the fill runs ahead of the client, so the
			// client either aborts or, reaching the released block,
			// starts a new fill (as a new request would). Either way no
			// wrong byte is served or stored.
			r.origin.Set("/f", origintest.Object{Size: size, Fault: fault, FaultAt: 3*testBlock + 1000})
			got, err = body(r.get("/f"))
			if string(got) != string(want[:len(got)]) || (err == nil && len(got) != len(want)) {
				t.Fatalf("wrong or short body (%d bytes, err %v)", len(got), err)
			}
			stored := r.checkStoredBlocks("/f")
			// (A reset may destroy bytes still in flight, so only the
			// clean breaks promise all 3 blocks before the break.)
			if stored < 3 && fault != origintest.FaultReset {
				t.Fatalf("%d blocks stored, want at least the 3 before the break", stored)
			}

			r.origin.Set("/f", origintest.Object{Size: size})
			r.origin.ResetStats()
			r.expect(r.get("/f"), 200, "", want)
			if n, total := r.upstreamBytes(size); total != size-int64(stored)*testBlock || n > 8-stored {
				t.Fatalf("refetch: %d requests for %d bytes; want only the %d missing bytes", n, total, size-int64(stored)*testBlock)
			}
			if r.checkStoredBlocks("/f") != 8 {
				t.Fatal("object incomplete after a clean fetch")
			}
		})
	}
}

func TestUpstreamErrorStatusIsPassedOnNotStored(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 1000, Fault: origintest.FaultStatus503, FaultTimes: 1})
	r.expect(r.get("/f"), 503, "gatecache; fwd=miss", nil)
	if r.store.Lookup(r.origin.Addr+"/f") != nil {
		t.Fatal("an error response was stored")
	}
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss; stored", r.origin.Want("/f"))

	r.origin.Set("/missing", origintest.Object{Status: 404})
	r.expect(r.get("/missing"), 404, "gatecache; fwd=miss", nil)
}

func TestUnreachableUpstreamGets502(t *testing.T) {
	r := newRig(t)
	r.origin.Close()
	resp := r.get("/f")
	r.expect(resp, http.StatusBadGateway, "", nil)
}

// A block fetch of a partly cached object that fails mid-object aborts the
// response and keeps what was good.
func TestBlockFetchFaultsAbortTheResponse(t *testing.T) {
	for _, fault := range []origintest.Fault{origintest.FaultStatus500, origintest.FaultWrongRange, origintest.FaultTruncate} {
		t.Run(fault.String(), func(t *testing.T) {
			r := newRig(t)
			size := int64(6 * testBlock)
			r.origin.Set("/f", origintest.Object{Size: size})
			want := r.origin.Want("/f")
			r.expect(r.get("/f", "Range", "bytes=0-99"), 206, "", want[:100])

			// The block fetch breaks in its first block, which this
			// client waits for.
			r.origin.Set("/f", origintest.Object{Size: size, Fault: fault, FaultAt: 5000})
			got, err := body(r.get("/f"))
			if err == nil {
				t.Fatalf("response completed (%d bytes) although its block fetch failed", len(got))
			}
			if string(got) != string(want[:len(got)]) {
				t.Fatal("wrong bytes before the abort")
			}
			r.origin.Set("/f", origintest.Object{Size: size})
			r.expect(r.get("/f"), 200, "", want)
		})
	}
}

// A new version upstream is never spliced with blocks of the old one.
func TestChangedObjectIsReplacedNotMixed(t *testing.T) {
	r := newRig(t)
	size := int64(6 * testBlock)
	r.origin.Set("/f", origintest.Object{Size: size, Version: 1})
	v1 := r.origin.Want("/f")
	r.expect(r.get("/f", "Range", "bytes=0-99"), 206, "", v1[:100])

	r.origin.Set("/f", origintest.Object{Size: size, Version: 2})
	v2 := r.origin.Want("/f")
	// The rest of the object now comes as version 2: the answer to If-Range
	// is a full 200 with another ETag, which must abort this response.
	got, err := body(r.get("/f"))
	if err == nil {
		t.Fatal("a response mixing two versions completed")
	}
	if string(got) != string(v1[:len(got)]) {
		t.Fatal("bytes of the new version were served under the old version's headers")
	}
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss; stored", v2)
	r.expect(r.get("/f"), 200, "gatecache; hit", v2)
}

func TestRefusedRequests(t *testing.T) {
	r := newRig(t)
	resp := r.do("GET", r.cache.URL+"/file?cacheHostOrigin=example.org")
	b := r.mustBody(resp)
	if resp.StatusCode != 403 || !strings.Contains(string(b), "CACHEABLE_CUSTOM_N_HOST") || strings.Count(string(b), "\n") != 1 {
		t.Fatalf("not-allowed origin: %d %q, want 403 with one line naming CACHEABLE_CUSTOM_N_HOST", resp.StatusCode, b)
	}
	resp = r.do("CONNECT", r.cache.URL+"/", "Host", "example.org:443")
	r.mustBody(resp)
	if resp.StatusCode != 405 {
		t.Fatalf("CONNECT: %d, want 405", resp.StatusCode)
	}
	resp = r.do("GET", r.cache.URL+"/f?cacheHostOrigin=")
	r.mustBody(resp)
	if resp.StatusCode != 400 {
		t.Fatalf("empty cacheHostOrigin: %d, want 400", resp.StatusCode)
	}
}

func TestOtherMethodsAreForwardedUncached(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 100})
	resp := r.do("POST", r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr)
	r.mustBody(resp)
	if resp.Header.Get("Cache-Status") != "gatecache; fwd=method" || r.origin.Stats().Requests != 1 {
		t.Fatalf("POST: Cache-Status %q, origin requests %d", resp.Header.Get("Cache-Status"), r.origin.Stats().Requests)
	}
	if reqs := r.origin.Requests(); reqs[0].Method != "POST" {
		t.Fatalf("origin saw %s, want POST", reqs[0].Method)
	}
}

func TestNoStoreIsNotStored(t *testing.T) {
	r := newRig(t)
	for _, cc := range []string{"no-store", "private, max-age=60"} {
		path := "/" + strings.Fields(cc)[0]
		r.origin.Set(path, origintest.Object{Size: 300, CacheControl: cc})
		r.expect(r.get(path), 200, "gatecache; fwd=miss", r.origin.Want(path))
		r.expect(r.get(path), 200, "gatecache; fwd=miss", r.origin.Want(path))
		if n := r.origin.PathStats(path).Requests; n != 2 {
			t.Fatalf("%s: %d origin requests, want 2", cc, n)
		}
	}
}

func TestHeadThenGet(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/f", origintest.Object{Size: 3 * testBlock})
	resp := r.do("HEAD", r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr)
	b := r.mustBody(resp)
	if resp.StatusCode != 200 || resp.ContentLength != 3*testBlock || len(b) != 0 {
		t.Fatalf("HEAD: %d, Content-Length %d, %d body bytes", resp.StatusCode, resp.ContentLength, len(b))
	}
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss; stored", r.origin.Want("/f"))
}

func TestFailedDriveFallsBackToPassThrough(t *testing.T) {
	r := newRig(t)
	size := int64(4 * testBlock)
	r.origin.Set("/f", origintest.Object{Size: size})
	// Break the drive: its data directory becomes a file.
	data := filepath.Join(r.specs[0].Path, "data")
	os.RemoveAll(data)
	os.WriteFile(data, nil, 0o644)
	r.expect(r.get("/f"), 200, "gatecache; fwd=miss", r.origin.Want("/f"))
	r.expect(r.get("/f", "Range", "bytes=10-19"), 206, "gatecache; fwd=miss", r.origin.Want("/f")[10:20])
}

// After a restart, a block whose bytes were damaged on disk is refetched,
// never served; the others are served without asking upstream.
func TestRestartRefetchesDamagedBlocksOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache1")
	o := origintest.New(t)
	size := int64(5 * testBlock)
	o.Set("/f", origintest.Object{Size: size})
	want := o.Want("/f")

	r := newRigFor(t, o, dir)
	r.expect(r.get("/f"), 200, "", want)
	path := r.store.Lookup(o.Addr + "/f").Location()
	r.cache.Close()
	r.flights.Wait() // the fill commits its last block after the client has it
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte("rot"), 2*testBlock+77)
	f.Close()

	o.ResetStats()
	r2 := newRigFor(t, o, dir)
	r2.expect(r2.get("/f"), 200, "gatecache; hit", want)
	reqs := o.Requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Range") != fmt.Sprintf("bytes=%d-%d", 2*testBlock, 3*testBlock-1) {
		t.Fatalf("after restart, upstream requests %+v; want one for block 2 only", reqs)
	}
	r2.expect(r2.get("/f"), 200, "gatecache; hit", want)
}
