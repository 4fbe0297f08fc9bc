package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// The upstream timeouts as configured through the environment: a miss
// whose origin sends no headers gets a 504, a body that stalls is cut off,
// a stale entry whose revalidation is slow is served from the store.
func TestUpstreamTimeoutsThroughTheBinary(t *testing.T) {
	var mu sync.Mutex
	slowIndex := false
	release := make(chan struct{})
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/silent": // never answers
			<-r.Context().Done()
		case "/stall": // headers and a little, then nothing
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 1000))
			http.NewResponseController(w).Flush()
			<-r.Context().Done()
		case "/dists/stable/InRelease":
			mu.Lock()
			slow := slowIndex
			mu.Unlock()
			if slow {
				select { // slower than REVALIDATE_WAIT, until the test ends
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			w.Header().Set("Cache-Control", "max-age=0")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, "index v1")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(func() {
		close(release)
		o.CloseClientConnections()
	})
	originAddr := o.Listener.Addr().String()
	n := startNode(t, chainEnv(t, originAddr, 1,
		"UPSTREAM_HEADER_TIMEOUT=1s", "UPSTREAM_IDLE_TIMEOUT=1s", "REVALIDATE_WAIT=200ms")...)

	ask := func(path string) (status int, cacheStatus string, body string, err error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), e2eGuard)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+path+"?cacheHostOrigin="+originAddr, nil)
		resp, err := noRetryClient.Do(req)
		if ctx.Err() != nil {
			t.Fatalf("GET %s: no answer after %v\n%s", path, e2eGuard, chainLog(n))
		}
		if err != nil {
			return 0, "", "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if ctx.Err() != nil {
			t.Fatalf("GET %s: body still open after %v\n%s", path, e2eGuard, chainLog(n))
		}
		return resp.StatusCode, resp.Header.Get("Cache-Status"), string(b), err
	}

	if status, cs, _, err := ask("/silent"); err != nil || status != http.StatusGatewayTimeout {
		t.Errorf("origin without headers: status %d (%s), err %v; want 504", status, cs, err)
	}
	if status, _, body, err := ask("/stall"); err == nil {
		t.Errorf("stalled body: status %d, %d bytes, complete; want the response cut off", status, len(body))
	}
	if status, _, body, err := ask("/dists/stable/InRelease"); err != nil || status != 200 || body != "index v1" {
		t.Fatalf("index: status %d, body %q, err %v", status, body, err)
	}
	mu.Lock()
	slowIndex = true
	mu.Unlock()
	if status, cs, body, err := ask("/dists/stable/InRelease"); err != nil || status != 200 || body != "index v1" || cs != "gatecache; fwd=stale; detail=revalidating" {
		t.Errorf("stale index, slow origin: status %d (%s), body %q, err %v; want the stored copy at once", status, cs, body, err)
	}
}
