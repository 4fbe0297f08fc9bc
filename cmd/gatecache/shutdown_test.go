package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eGuard is the generous deadline after which an end-to-end wait counts as
// hung; what is under test ends well before it (the stated bounds are
// measured and reported, never asserted).
const e2eGuard = 60 * time.Second

// slowOrigin serves a 4 MiB body at bytesPerSecond (0: the first 1000 bytes,
// then nothing), until the request ends.
func slowOrigin(t *testing.T, bytesPerSecond int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const size = 4 << 20
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		w.Write(make([]byte, 1000))
		rc.Flush()
		if bytesPerSecond == 0 {
			<-r.Context().Done()
			return
		}
		tick := time.NewTicker(100 * time.Millisecond) // the origin's pace, not synchronisation
		defer tick.Stop()
		for sent := 1000; sent < size; sent += bytesPerSecond / 10 {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
			if _, err := w.Write(make([]byte, bytesPerSecond/10)); err != nil {
				return
			}
			rc.Flush()
		}
	}))
	// Close only once the node is gone: a hanging node would otherwise
	// keep httptest's Close waiting.
	t.Cleanup(srv.CloseClientConnections)
	return srv
}

// SIGTERM stops the node within its stated bound whatever upstream does:
// a fill reading a slow origin (3,000 B/s: a 1 MiB block takes 350 s), or
// one whose origin sends nothing more, is cancelled, its client's response
// aborted, and the process exits cleanly.
func TestTermStopsTheNodeWhileAFillReadsASlowOrigin(t *testing.T) {
	for name, rate := range map[string]int{"3000 B/s": 3000, "stalled": 0} {
		t.Run(name, func(t *testing.T) {
			o := slowOrigin(t, rate)
			originAddr := o.Listener.Addr().String()
			n := startNode(t, chainEnv(t, originAddr, 1)...)

			ctx, cancel := context.WithTimeout(context.Background(), e2eGuard)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+"/big.img?cacheHostOrigin="+originAddr, nil)
			resp, err := noRetryClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
				t.Fatalf("first bytes: %v", err)
			}
			// The fill is running, reading the slow origin.
			body := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, resp.Body)
				body <- err
			}()
			start := time.Now()
			n.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-n.exited:
			case <-time.After(e2eGuard):
				t.Fatalf("gatecache still running %v after SIGTERM with a fill reading a %s origin\n%s", e2eGuard, name, chainLog(n))
			}
			took := time.Since(start)
			t.Logf("exit %v after SIGTERM with a fill reading a %s origin", took.Round(time.Millisecond), name)
			if code := n.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit status %d, want 0 (a clean stop)\n%s", code, chainLog(n))
			}
			if err := <-body; err == nil {
				t.Error("the client's response completed although its fill was cancelled")
			}
			if !strings.Contains(n.stderr.String(), "gatecache stopping") {
				t.Errorf("no stop logged:\n%s", chainLog(n))
			}
		})
	}
}
