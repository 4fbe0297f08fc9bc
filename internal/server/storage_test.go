package server

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"gatecache/internal/origintest"
)

// A data file cut short or extended under the running cache must never
// change what a hit serves: the stored object's exact length and bytes
// (what the file lacks comes from upstream), and the object is dropped so
// that the next request stores it anew.
func TestHitServesTheObjectsSizeWhateverTheFileSize(t *testing.T) {
	const size = 2 << 20 // 2,097,152 bytes: far above the memory-copy limit
	for _, c := range []struct {
		name   string
		damage func(path string) error
	}{
		{"truncated", func(path string) error { return os.Truncate(path, 1_000_000) }},
		{"extended", func(path string) error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(bytes.Repeat([]byte("junk"), 1<<18)) // 1 MiB
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.origin.Set("/img", origintest.Object{Size: size})
			want := r.origin.Want("/img")
			r.expect(r.get("/img"), 200, "gatecache; fwd=miss; stored", want)
			r.flights.Wait()
			r.expect(r.get("/img"), 200, "gatecache; hit", want)

			if err := c.damage(r.store.Lookup(r.origin.Addr + "/img").Location()); err != nil {
				t.Fatal(err)
			}
			resp := r.get("/img")
			if resp.ContentLength != size {
				t.Fatalf("Content-Length %d from a damaged file, want %d", resp.ContentLength, size)
			}
			r.expect(resp, 200, "", want)
			if r.store.Lookup(r.origin.Addr+"/img") != nil {
				t.Fatal("the object with the damaged file is still stored")
			}
			r.expect(r.get("/img"), 200, "gatecache; fwd=miss; stored", want)
			r.flights.Wait()
			r.expect(r.get("/img"), 200, "gatecache; hit", want)
		})
	}
}

// The same for a range hit and a HEAD: a range past the cut is served
// right, and HEAD tells the object's length.
func TestRangeAndHeadOnATruncatedFile(t *testing.T) {
	const size = 2 << 20
	r := newRig(t)
	r.origin.Set("/img", origintest.Object{Size: size})
	want := r.origin.Want("/img")
	r.expect(r.get("/img"), 200, "", want)
	r.flights.Wait()
	path := r.store.Lookup(r.origin.Addr + "/img").Location()
	if err := os.Truncate(path, 1_000_000); err != nil {
		t.Fatal(err)
	}
	resp := r.do("HEAD", r.cache.URL+"/img?cacheHostOrigin="+r.origin.Addr)
	r.mustBody(resp)
	if resp.Header.Get("Content-Length") != strconv.Itoa(size) {
		t.Fatalf("HEAD Content-Length %q, want %d", resp.Header.Get("Content-Length"), size)
	}
	r.expect(r.get("/img"), 200, "", want) // HEAD may have dropped it already
	r.flights.Wait()
	if err := os.Truncate(r.store.Lookup(r.origin.Addr+"/img").Location(), 1_000_000); err != nil {
		t.Fatal(err)
	}
	r.expect(r.get("/img", "Range", "bytes=900000-1500000"), 206, "", want[900000:1500001])
}
