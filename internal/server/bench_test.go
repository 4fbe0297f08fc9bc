package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/origin"
	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// benchHit measures hits of one stored object over keep-alive connections:
// the small one from its memory copy, the large one by sendfile from its
// data file.
func benchHit(b *testing.B, size int64) {
	o := origintest.New(b)
	host, port := splitAddr(o.Addr)
	st, err := store.Open(store.Options{Drives: []store.DriveSpec{{Path: b.TempDir(), Budget: 1 << 30}}, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fl := flight.NewGroup(ctx)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := New(Options{Resolver: origin.NewResolver([]origin.Host{{Name: host, Port: port}}), Store: st, Flights: fl,
		Upstream: fetch.New(fetch.Options{Logger: log}), Log: log})
	srv := httptest.NewServer(h)
	defer srv.Close()
	o.Set("/h", origintest.Object{Size: size})
	url := srv.URL + "/h?cacheHostOrigin=" + o.Addr
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	get := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get()
	fl.Wait()
	get()
	b.SetBytes(size)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get()
		}
	})
}

func BenchmarkSmallHit(b *testing.B) { benchHit(b, 4096) }
func BenchmarkLargeHit(b *testing.B) { benchHit(b, 8<<20) }
