package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/origintest"
)

// statusOf answers the status of a GET on url, or 0 when nothing answers.
func statusOf(url string) int {
	resp, err := noRetryClient.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// SIGTERM drains the node: from the signal on, the summary port answers
// /readyz 503 (and /healthz still 200) for as long as a download is in
// progress, so that a load balancer checking /readyz takes the node out
// while the download completes with every byte; and since /readyz is being
// checked, the content port still serves new requests for a moment, until
// the balancer has seen the 503. The download's fill is held by the origin
// until the test has seen the 503; without the drain, /readyz answers 200
// until the summary port closes.
func TestTermDrainsReadyzWhileADownloadCompletes(t *testing.T) {
	o := origintest.New(t)
	const size, first = 4 << 20, 64 << 10
	o.Set("/big.img", origintest.Object{Size: size, Fault: origintest.FaultStall, FaultAt: first})
	o.Set("/late.bin", origintest.Object{Size: 100 << 10})
	n := startNode(t, chainEnv(t, o.Addr, 1)...)
	readyz, healthz := "http://"+n.summary+"/readyz", "http://"+n.summary+"/healthz"
	if code := statusOf(readyz); code != http.StatusOK {
		t.Fatalf("/readyz of a serving node: %d, want 200", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), e2eGuard)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+"/big.img?cacheHostOrigin="+o.Addr, nil)
	resp, err := noRetryClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make([]byte, first)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatalf("first bytes: %v", err)
	}
	// The download is in progress: its fill waits for the origin.
	n.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(e2eGuard)
	for code := statusOf(readyz); code != http.StatusServiceUnavailable; code = statusOf(readyz) {
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("/readyz after SIGTERM with a download in progress: %d, want 503 until the download ends\n%s", code, n.stderr)
		}
		time.Sleep(5 * time.Millisecond) // polls the signal's effect; the download waits meanwhile
	}
	if code := statusOf(healthz); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d, want 200 (the process is alive)", code)
	}
	// /readyz is being watched: until the watcher has seen the 503, a new
	// request on a new connection is still served, not refused.
	late, err := n.get(o, "/late.bin")
	if err != nil {
		t.Fatalf("a request right after the first 503 of /readyz: %v (refused while the balancer cannot know yet)", err)
	}
	lateBody, err := io.ReadAll(late.Body)
	late.Body.Close()
	if err != nil || late.StatusCode != http.StatusOK || !bytes.Equal(lateBody, o.Want("/late.bin")) {
		t.Fatalf("a request right after the first 503 of /readyz: %d, %d bytes, %v", late.StatusCode, len(lateBody), err)
	}
	o.Release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the download in progress at SIGTERM was cut after %d bytes: %v", first+len(rest), err)
	}
	if got = append(got, rest...); !bytes.Equal(got, o.Want("/big.img")) {
		t.Fatalf("the download in progress at SIGTERM: %d bytes, not the object's %d", len(got), size)
	}
	select {
	case <-n.exited:
	case <-time.After(e2eGuard):
		t.Fatalf("still running %v after SIGTERM", e2eGuard)
	}
	if code := n.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d, want 0\n%s", code, n.stderr)
	}
}
