package server

import (
	"io"
	"net/http"
	"strconv"
	"testing"

	"gatecache/internal/origintest"
)

// streamWriter is a discardWriter that also takes a body by ReadFrom, as
// net/http's writer does (a fill's reader goes through it).
type streamWriter struct{ discardWriter }

func (s *streamWriter) ReadFrom(src io.Reader) (int64, error) { return io.Copy(io.Discard, src) }

// serveBench runs one request through the handler, no client network, and
// checks its status.
func serveBench(b *testing.B, r *rig, path string, want int) {
	req, err := http.NewRequest(http.MethodGet, "http://"+r.origin.Addr+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	w := &streamWriter{discardWriter{h: http.Header{}}}
	r.handler.ServeHTTP(w, req)
	if w.code != want {
		b.Fatalf("%s: status %d, want %d", path, w.code, want)
	}
}

// BenchmarkDiscovery is the cost of a cold miss of a 4 KiB object: one
// upstream request on loopback, the object created, its fill seeded and
// read, through the discovery's coalescing.
func BenchmarkDiscovery(b *testing.B) {
	r := newRig(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		path := "/d/" + strconv.Itoa(i)
		i++
		r.origin.Set(path, origintest.Object{Size: 4 << 10})
		serveBench(b, r, path, http.StatusOK)
		if i%1024 == 0 {
			r.origin.ResetStats() // the origin records every request
		}
	}
}

// BenchmarkRevalidation is the cost of a stored no-cache object's
// revalidation answered 304, through the revalidation's coalescing.
func BenchmarkRevalidation(b *testing.B) {
	r := newRig(b)
	r.origin.Set("/r", origintest.Object{Size: 4 << 10, CacheControl: "no-cache"})
	serveBench(b, r, "/r", http.StatusOK)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		serveBench(b, r, "/r", http.StatusOK)
		if i++; i%1024 == 0 {
			r.origin.ResetStats()
		}
	}
}
