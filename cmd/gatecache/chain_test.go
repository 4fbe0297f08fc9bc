package main

// End-to-end tests of gateway chains: several gatecache processes, each the
// parent of the next, in front of a test origin. Everything listens on
// 127.0.0.1 (chain_net_test.go adds a network namespace).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/origintest"
)

// chainID is the CACHE_NODE_ID of the i-th node of a test.
func chainID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// chainVia is the Via element node i adds to its upstream requests.
func chainVia(i int) string { return "1.1 " + chainID(i) + " (gatecache)" }

// chainEnv is the environment of node i: its own cache root and id, one
// cacheable origin (originHost: "127.0.0.1:PORT" or "https://127.0.0.1:PORT").
func chainEnv(t *testing.T, originHost string, i int, extra ...string) []string {
	return append([]string{
		"CACHE_ROOT=" + t.TempDir(),
		"CACHEABLE_CUSTOM_1_HOST=" + originHost,
		"STORAGE_1_SIZE=256MiB",
		"CACHE_NODE_ID=" + chainID(i),
	}, extra...)
}

// chainDeadAddr returns a loopback address nothing listens on.
func chainDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// chainAnswer is a complete response from a node.
type chainAnswer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration // until the body was read
}

func (a chainAnswer) cacheStatus() string { return a.header.Get("Cache-Status") }

// chainTry sends GET /path?cacheHostOrigin=originAddr to n, bounded by timeout,
// with optional header fields (name, value, ...), and reads the whole body.
func chainTry(n *node, originAddr, path string, timeout time.Duration, header ...string) (chainAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+path+"?cacheHostOrigin="+originAddr, nil)
	if err != nil {
		return chainAnswer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := noRetryClient.Do(req)
	if err != nil {
		return chainAnswer{took: time.Since(start)}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	a := chainAnswer{status: resp.StatusCode, header: resp.Header, body: body, took: time.Since(start)}
	if err != nil {
		return a, fmt.Errorf("status %d, body cut after %d bytes (%s): %w", a.status, len(body), a.cacheStatus(), err)
	}
	return a, nil
}

// chainAsk is chainTry for answers that must arrive (whatever their status).
func chainAsk(t *testing.T, n *node, originAddr, path string, timeout time.Duration, header ...string) chainAnswer {
	t.Helper()
	a, err := chainTry(n, originAddr, path, timeout, header...)
	if err != nil {
		t.Fatalf("GET %s from %s: %v (after %v)\n%s", path, n.addr, err, a.took.Round(time.Millisecond), chainLog(n))
	}
	return a
}

// chainLog is the end of n's log, for failure messages.
func chainLog(n *node) string {
	s := n.stderr.String()
	if len(s) > 3000 {
		s = "..." + s[len(s)-3000:]
	}
	return "node log:\n" + s
}

// wantChainBytes fails unless a is a 200 with exactly want.
func wantChainBytes(t *testing.T, what string, a chainAnswer, want []byte) {
	t.Helper()
	if a.status != http.StatusOK || !bytes.Equal(a.body, want) {
		t.Fatalf("%s: status %d, %d bytes (Cache-Status %q), want 200 with the origin's %d bytes (first difference at %d)\n%.300s",
			what, a.status, len(a.body), a.cacheStatus(), len(want), chainFirstDiff(a.body, want), a.body)
	}
}

func chainFirstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// wantCacheStatus fails unless a's Cache-Status is want.
func wantCacheStatus(t *testing.T, what string, a chainAnswer, want string) {
	t.Helper()
	if got := a.cacheStatus(); got != want {
		t.Errorf("%s: Cache-Status %q, want %q", what, got, want)
	}
}

// failFast bounds a failure that must come from the 2 s parent connect
// limit (or a refused connection), not from the longer origin connect or
// response timeouts. The bound is loose so that it holds on a loaded
// machine under -race; the benchmarks measure the real figure.
const failFast = 8 * time.Second

// wantFastFailure fails unless a is a 502 or 504 that came within failFast
// and carries none of the content.
func wantFastFailure(t *testing.T, what string, a chainAnswer, content []byte) {
	t.Helper()
	if a.status != http.StatusBadGateway && a.status != http.StatusGatewayTimeout {
		t.Errorf("%s: status %d (%s), want 502 or 504", what, a.status, a.cacheStatus())
	}
	if a.took >= failFast {
		t.Errorf("%s: the failure took %v, want < %v", what, a.took.Round(time.Millisecond), failFast)
	}
	if len(content) > 0 && bytes.Contains(a.body, content[:min(len(content), 4096)]) {
		t.Errorf("%s: the failure carries content", what)
	}
}

const (
	chainLong  = 60 * time.Second // a download that must succeed
	chainShort = 10 * time.Second // a failure that must be quick (asserted < failFast)
)

func TestChainStoresAtEveryLevel(t *testing.T) {
	o := origintest.New(t)
	const path = "/pool/main/chain-5m.swu"
	o.Set(path, origintest.Object{Size: 5<<20 + 123})
	want := o.Want(path)

	top := startNode(t, chainEnv(t, o.Addr, 1)...)
	mid := startNode(t, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+top.addr)...)
	leaf1 := startNode(t, chainEnv(t, o.Addr, 3, "UPSTREAM_HOST="+mid.addr)...)
	leaf2 := startNode(t, chainEnv(t, o.Addr, 4, "UPSTREAM_HOST="+mid.addr)...)

	a := chainAsk(t, leaf1, o.Addr, path, chainLong)
	wantChainBytes(t, "leaf1, cold chain", a, want)
	wantCacheStatus(t, "leaf1, cold chain", a, chainStored)
	if n := o.PathStats(path).Requests; n != 1 {
		t.Fatalf("origin saw %d requests for a cold chain, want 1", n)
	}
	for _, c := range []struct {
		name string
		n    *node
	}{{"top", top}, {"mid", mid}} {
		a := chainAsk(t, c.n, o.Addr, path, chainLong)
		wantChainBytes(t, c.name+" asked directly", a, want)
		wantCacheStatus(t, c.name+" asked directly", a, chainHit)
	}
	if n := o.PathStats(path).Requests; n != 1 {
		t.Fatalf("origin saw %d requests after hits at top and mid, want 1", n)
	}

	// With top gone, only mid's copy can serve leaf2.
	top.kill(syscall.SIGTERM)
	a = chainAsk(t, leaf2, o.Addr, path, chainLong)
	wantChainBytes(t, "leaf2 with top stopped", a, want)
	wantCacheStatus(t, "leaf2 with top stopped", a, chainStored)
	if n := o.Stats().Requests; n != 1 {
		t.Fatalf("origin saw %d requests in all, want 1", n)
	}
}

const (
	chainHit    = "gatecache; hit"
	chainStored = "gatecache; fwd=miss; stored"
)

// The hop to a parent is GET /path?cacheHostOrigin=origin with the child's
// Via element: a fake parent (a test origin) records it.
func TestUpstreamHopNamesOriginAndVia(t *testing.T) {
	o := origintest.New(t) // allowed, never contacted
	parent := origintest.New(t)
	const path = "/files/hop.bin"
	parent.Set(path, origintest.Object{Size: 200_001})
	leaf := startNode(t, chainEnv(t, o.Addr, 1, "UPSTREAM_HOST="+parent.Addr)...)

	a := chainAsk(t, leaf, o.Addr, path, chainLong)
	wantChainBytes(t, "via a parent", a, parent.Want(path))
	reqs := parent.Requests()
	if len(reqs) == 0 || o.Stats().Requests != 0 {
		t.Fatalf("parent saw %d requests, origin %d: want the parent asked, the origin not", len(reqs), o.Stats().Requests)
	}
	// Another node's Via is no loop.
	a = chainAsk(t, leaf, o.Addr, path, chainLong, "Via", "1.1 proxy.example, "+chainVia(7))
	wantChainBytes(t, "with another node's Via", a, parent.Want(path))
	for _, r := range reqs {
		u, err := url.ParseRequestURI(r.URI)
		if err != nil || u.Path != path || u.Query().Get("cacheHostOrigin") != o.Addr {
			t.Errorf("parent asked %q, want %s?cacheHostOrigin=%s", r.URI, path, o.Addr)
		}
		if v := strings.Join(r.Header.Values("Via"), ", "); !strings.Contains(v, chainVia(1)) {
			t.Errorf("Via %q does not name the node: want it to contain %q", v, chainVia(1))
		}
	}
}

func TestParentDownKeepsServingAndFailsFast(t *testing.T) {
	o := origintest.New(t)
	o.Set("/a.deb", origintest.Object{Size: 3<<20 + 1})
	o.Set("/b.deb", origintest.Object{Size: 1 << 20})
	o.Set("/c.deb", origintest.Object{Size: 1 << 20})
	top := startNode(t, chainEnv(t, o.Addr, 1)...)
	leaf := startNode(t, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+top.addr)...)

	wantChainBytes(t, "A through top", chainAsk(t, leaf, o.Addr, "/a.deb", chainLong), o.Want("/a.deb"))
	top.kill(syscall.SIGTERM)

	a := chainAsk(t, leaf, o.Addr, "/a.deb", chainLong)
	wantChainBytes(t, "cached A with the parent down", a, o.Want("/a.deb"))
	wantCacheStatus(t, "cached A with the parent down", a, chainHit)
	// Twice: the first finds the parent down, the second meets its backoff.
	wantFastFailure(t, "miss B with the parent down", chainAsk(t, leaf, o.Addr, "/b.deb", chainShort), o.Want("/b.deb"))
	wantFastFailure(t, "miss C with the parent down", chainAsk(t, leaf, o.Addr, "/c.deb", chainShort), o.Want("/c.deb"))
	if n := o.Stats().Requests; n != 1 {
		t.Fatalf("origin saw %d requests, want 1 (the leaf must not go direct)", n)
	}
}

func TestFailoverToSecondParent(t *testing.T) {
	o := origintest.New(t)
	for _, p := range []string{"/one.bin", "/two.bin", "/three.bin"} {
		o.Set(p, origintest.Object{Size: 2<<20 + 7})
	}
	top := startNode(t, chainEnv(t, o.Addr, 1)...)

	// First parent refuses connections.
	leaf := startNode(t, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+chainDeadAddr(t)+","+top.addr)...)
	for _, p := range []string{"/one.bin", "/two.bin"} {
		a := chainAsk(t, leaf, o.Addr, p, chainLong)
		wantChainBytes(t, p+" past a dead first parent", a, o.Want(p))
		if a.took >= failFast {
			t.Errorf("%s past a dead first parent took %v, want < %v", p, a.took.Round(time.Millisecond), failFast)
		}
	}

	// First parent answers 503.
	sick := origintest.New(t)
	sick.Set("/three.bin", origintest.Object{Status: http.StatusServiceUnavailable})
	leaf2 := startNode(t, chainEnv(t, o.Addr, 3, "UPSTREAM_HOST="+sick.Addr+","+top.addr)...)
	a := chainAsk(t, leaf2, o.Addr, "/three.bin", chainLong)
	wantChainBytes(t, "past a first parent answering 503", a, o.Want("/three.bin"))
	if sick.Stats().Requests == 0 {
		t.Error("the first parent was never asked")
	}
}

func TestFallbackDirect(t *testing.T) {
	o := origintest.New(t)
	const path = "/direct.swu"
	o.Set(path, origintest.Object{Size: 3 << 20})
	leaf := startNode(t, chainEnv(t, o.Addr, 1, "UPSTREAM_HOST="+chainDeadAddr(t), "UPSTREAM_FALLBACK_DIRECT=true")...)
	a := chainAsk(t, leaf, o.Addr, path, chainLong)
	wantChainBytes(t, "fallback to the origin", a, o.Want(path))
	if o.PathStats(path).Requests == 0 {
		t.Fatal("the origin was never asked")
	}
	a = chainAsk(t, leaf, o.Addr, path, chainLong)
	wantChainBytes(t, "second GET", a, o.Want(path))
	wantCacheStatus(t, "second GET", a, chainHit)
}

// Two nodes each the other's parent: the loop is found from Via (RFC 9110
// §7.6.3) and answered 508 at once, never bounced until a timeout.
func TestLoopIsRefused(t *testing.T) {
	o := origintest.New(t)
	const path = "/loop.bin"
	o.Set(path, origintest.Object{Size: 1 << 20})
	addrA := chainDeadAddr(t) // reserved for A, which B names as its parent
	b := startNode(t, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+addrA)...)
	// os/exec keeps the last value of a duplicated variable.
	a := startNode(t, chainEnv(t, o.Addr, 1, "UPSTREAM_HOST="+b.addr, "LISTEN_ADDR="+addrA)...)
	if a.addr != addrA {
		t.Fatalf("A listens on %s, want %s", a.addr, addrA)
	}

	ans := chainAsk(t, a, o.Addr, path, chainShort)
	if ans.status != http.StatusLoopDetected && ans.status != http.StatusBadGateway {
		t.Errorf("miss in a loop: status %d (%s), want 508 or 502\n%s", ans.status, ans.cacheStatus(), chainLog(a))
	}
	if ans.took >= failFast {
		t.Errorf("miss in a loop took %v, want < %v", ans.took.Round(time.Millisecond), failFast)
	}
	if n := o.Stats().Requests; n != 0 {
		t.Errorf("origin saw %d requests, want 0 (no fallback configured)", n)
	}

	for _, v := range []string{chainVia(1), "1.1 proxy.example, " + chainVia(1)} {
		ans = chainAsk(t, a, o.Addr, path, chainShort, "Via", v)
		if ans.status != http.StatusLoopDetected {
			t.Errorf("request with Via %q: status %d, want 508", v, ans.status)
		}
	}
}

func TestRedirectKeepsTheClientKey(t *testing.T) {
	o := origintest.New(t)
	o.Set("/real", origintest.Object{Size: 3 << 20})
	o.Set("/r", origintest.Object{Redirect: o.URL + "/real"})
	want := o.Want("/real")
	n := startNode(t, chainEnv(t, o.Addr, 1)...)

	a := chainAsk(t, n, o.Addr, "/r", chainLong, "Range", "bytes=1000000-1999999")
	if a.status != http.StatusPartialContent || !bytes.Equal(a.body, want[1000000:2000000]) {
		t.Fatalf("range of a redirected object: status %d, %d bytes (first difference at %d), want 206 and bytes 1000000-1999999 of /real",
			a.status, len(a.body), chainFirstDiff(a.body, want[1000000:2000000]))
	}
	wantChainBytes(t, "whole redirected object", chainAsk(t, n, o.Addr, "/r", chainLong), want)
	a = chainAsk(t, n, o.Addr, "/r", chainLong)
	wantChainBytes(t, "whole redirected object again", a, want)
	wantCacheStatus(t, "whole redirected object again", a, chainHit)
	if got := o.PathStats("/r").Requests; got > 2 {
		t.Errorf("the redirect was asked %d times, want at most 2", got)
	}
}

func TestUpstreamRateCap(t *testing.T) {
	o := origintest.New(t)
	o.Set("/big.img", origintest.Object{Size: 8 << 20})
	o.Set("/x.img", origintest.Object{Size: 4 << 20})
	o.Set("/y.img", origintest.Object{Size: 4 << 20})
	n := startNode(t, chainEnv(t, o.Addr, 1, "UPSTREAM_MAX_RATE=2MiB")...)

	a := chainAsk(t, n, o.Addr, "/big.img", chainLong)
	wantChainBytes(t, "8 MiB at 2 MiB/s", a, o.Want("/big.img"))
	if a.took < 2500*time.Millisecond {
		t.Errorf("8 MiB at UPSTREAM_MAX_RATE=2MiB took %v, want >= 2.5 s", a.took.Round(time.Millisecond))
	}
	// Hits never pass the cap's token bucket, which meters upstream
	// bodies only: a hit that reaches no upstream cannot be slowed by it.
	before := o.Stats().Requests
	a = chainAsk(t, n, o.Addr, "/big.img", chainLong)
	wantChainBytes(t, "hit", a, o.Want("/big.img"))
	wantCacheStatus(t, "hit", a, chainHit)
	if got := o.Stats().Requests - before; got != 0 {
		t.Errorf("the hit made %d upstream requests, want 0", got)
	}

	// The cap is on the total, not per transfer: 2 x 4 MiB at once.
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []string{"/x.img", "/y.img"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := chainTry(n, o.Addr, p, chainLong)
			if err == nil && (a.status != 200 || !bytes.Equal(a.body, o.Want(p))) {
				err = fmt.Errorf("status %d, %d bytes", a.status, len(a.body))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("concurrent download: %v", err)
		}
	}
	if took := time.Since(start); took < 2500*time.Millisecond {
		t.Errorf("two 4 MiB objects at once at UPSTREAM_MAX_RATE=2MiB took %v, want >= 2.5 s", took.Round(time.Millisecond))
	}
}
