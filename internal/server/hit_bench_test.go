package server

import (
	"net/http"
	"testing"

	"gatecache/internal/origintest"
)

// discardWriter is a ResponseWriter that keeps nothing but a fresh header
// per request, as net/http gives each request.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkSmallHitHandler is the handler's own cost of a 4 KiB hit (S4 of the
// benchmark harness) with the fields a typical origin sends: no network, so
// that what header replay costs shows.
func BenchmarkSmallHitHandler(b *testing.B) {
	r := newRig(b)
	r.origin.Set("/s4/obj", origintest.Object{Size: 4 << 10, Header: http.Header{
		"Server": {"nginx/1.22.1"}, "X-Checksum-Sha256": {"3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"}}})
	r.expect(r.get("/s4/obj"), 200, statusMiss, nil)
	r.expect(r.get("/s4/obj"), 200, statusHit, nil)
	req, err := http.NewRequest(http.MethodGet, "http://"+r.origin.Addr+"/s4/obj", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("User-Agent", "loadgen")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w := &discardWriter{h: http.Header{}}
		r.handler.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}
