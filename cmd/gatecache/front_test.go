package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/haproxytest"
	"gatecache/internal/origintest"
)

// Three nodes behind a real haproxy running the configuration that
// deploy/haproxy/render.sh prints, and one origin:
//
//   - every object, asked for in each of the four request forms, is fetched
//     from the origin once and stored on exactly one node (copies counted on
//     the drives): the hash key is the same whatever the form;
//   - a node sent SIGTERM while it serves a download is taken out of
//     rotation by its /readyz answering 503, while it is still draining,
//     and the download completes;
//   - then only that node's objects are fetched again, each once, and every
//     other object is still a hit on the node that held it.
func TestHAProxyFrontStoresEachObjectOnceAndMovesOnlyAStoppedNodesShare(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed (apt-get install haproxy; .ci/run installs it): the front-tier test needs it")
	}
	o := origintest.New(t)
	const objects, prefixLen = 48, 32
	paths := make([]string, objects)
	prefixes := map[string]string{}
	for i := range paths {
		paths[i] = fmt.Sprintf("/pool/main/obj-%02d.bin", i)
		if i%4 == 0 {
			// A dotted directory is not an origin named in the path:
			// every form of it still reaches one node.
			paths[i] = fmt.Sprintf("/22.%02d/release-%02d.iso", i, i)
		}
		o.Set(paths[i], origintest.Object{Size: 96<<10 + int64(i)<<10})
		prefixes[string(o.Want(paths[i])[:prefixLen])] = paths[i]
	}
	const stalled, stallAt = "/pool/main/stalled.bin", 64 << 10
	o.Set(stalled, origintest.Object{Size: 2 << 20, Fault: origintest.FaultStall, FaultAt: stallAt})

	nodes, roots := make([]*node, 3), make([]string, 3)
	for i := range nodes {
		// Both ports bound here and passed in: haproxy's configuration
		// names them before the nodes run, and no other process can
		// take them meanwhile.
		_, content := listenerFile(t)
		_, summary := listenerFile(t)
		roots[i] = t.TempDir()
		nodes[i] = runNode(t, activatedCmd("content:summary", []*os.File{content, summary},
			"CACHE_ROOT="+roots[i], "CACHEABLE_CUSTOM_1_HOST="+o.Addr, "STORAGE_1_SIZE=64MiB",
			"CACHE_NODE_ID="+chainID(i+1), "ACCESS_LOG=false"))
	}
	f := startFront(t, haproxy, nodes)
	c := frontClient(f.Addr)

	// round asks for every object in each form in turn; the first form
	// fetches (a miss) what fresh(path) says is not stored, every later
	// answer is a hit.
	round := func(name string, forms []requestForm, fresh func(path string) bool) {
		t.Helper()
		for i, form := range forms {
			errs := make(chan error, objects)
			var wg sync.WaitGroup
			work := make(chan string)
			for range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := range work {
						got, err := fetchThrough(c, form.req(f.Addr, o.Addr, p))
						want := "gatecache; hit"
						if i == 0 && fresh(p) {
							want = "gatecache; fwd=miss; stored"
						}
						switch {
						case err != nil:
							errs <- fmt.Errorf("%s %s: %v", form.name, p, err)
						case got.status != 200 || !bytes.Equal(got.body, o.Want(p)):
							errs <- fmt.Errorf("%s %s: status %d, %d bytes (want 200 and the object's %d)", form.name, p, got.status, len(got.body), len(o.Want(p)))
						case got.cache != want:
							errs <- fmt.Errorf("%s %s: Cache-Status %q, want %q", form.name, p, got.cache, want)
						}
					}
				}()
			}
			for _, p := range paths {
				work <- p
			}
			close(work)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("%s: %v", name, err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}

	round("cold", requestForms, func(string) bool { return true })
	owner := map[string]int{}
	perNode := make([]int, len(nodes))
	for _, p := range paths {
		if n := o.PathStats(p).Requests; n != 1 {
			t.Errorf("%s: the origin saw %d requests in four forms, want 1", p, n)
		}
	}
	for p, held := range onDisk(t, roots, prefixes, prefixLen) {
		if len(held) != 1 {
			t.Errorf("%s: stored on nodes %v, want exactly one", p, held)
		}
		owner[p] = held[0]
		perNode[held[0]]++
	}
	if len(owner) != objects {
		t.Fatalf("%d of %d objects found on the drives", len(owner), objects)
	}
	t.Logf("objects per node: %v", perNode)
	if slices.Contains(perNode, 0) {
		t.Fatalf("objects per node %v: a node holds none, the front does not spread", perNode)
	}

	// A download in progress: its fill waits for the origin's Release.
	ctx, cancel := context.WithTimeout(context.Background(), e2eGuard)
	defer cancel()
	req := requestForms[0].req(f.Addr, o.Addr, stalled).WithContext(ctx)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := make([]byte, stallAt)
	if _, err := io.ReadFull(resp.Body, body); err != nil {
		t.Fatalf("first bytes of %s: %v", stalled, err)
	}
	victim := -1
	for i, n := range nodes {
		if metric(t, n, "gatecache_fills_active") == "1" {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatal("no node reports the fill of the download in progress")
	}
	v := nodes[victim]
	stop := time.Now()
	v.cmd.Process.Signal(syscall.SIGTERM)
	s := f.waitServer(v, func(s haproxytest.ServerState) bool { return strings.HasPrefix(s.Status, "DOWN") }, "out of rotation")
	out := time.Since(stop)
	select {
	case <-v.exited:
		t.Fatalf("node %d had exited when haproxy took it out (%+v): not removed while draining", victim, s)
	default:
	}
	if s.Check != "L7STS" || s.Code != "503" {
		t.Errorf("node %d taken out by check %s/%s, want L7STS/503 (its /readyz while draining)", victim, s.Check, s.Code)
	}
	t.Logf("node %d (%d objects) out of rotation %v after SIGTERM, while draining", victim, perNode[victim], out.Round(time.Millisecond))
	o.Release()
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the download in progress through the front was cut after %d bytes: %v", len(body)+len(rest), err)
	}
	if body = append(body, rest...); !bytes.Equal(body, o.Want(stalled)) {
		t.Fatalf("the download in progress through the front: %d bytes, not the object's", len(body))
	}
	select {
	case <-v.exited:
	case <-time.After(e2eGuard):
		t.Fatalf("node %d still running %v after SIGTERM", victim, e2eGuard)
	}
	if code := v.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("node %d: exit status %d, want 0", victim, code)
	}

	// The stopped node's share, and only it, is fetched again, once.
	again := append(append([]requestForm(nil), requestForms[3]), requestForms[:3]...)
	round("after a node stopped", again, func(p string) bool { return owner[p] == victim })
	survivors := append(append([]string(nil), roots[:victim]...), roots[victim+1:]...)
	index := func(i int) int { return slices.Index(roots, survivors[i]) }
	moved := 0
	for p, held := range onDisk(t, survivors, prefixes, prefixLen) {
		if len(held) != 1 {
			t.Errorf("%s: stored on %d of the remaining nodes, want exactly one", p, len(held))
			continue
		}
		if now := index(held[0]); owner[p] != victim && now != owner[p] {
			t.Errorf("%s: moved from node %d to node %d, though node %d stayed", p, owner[p], now, owner[p])
		}
	}
	for _, p := range paths {
		want := int64(1)
		if owner[p] == victim {
			want, moved = 2, moved+1
		}
		if n := o.PathStats(p).Requests; n != want {
			t.Errorf("%s (on node %d): the origin saw %d requests, want %d", p, owner[p], n, want)
		}
	}
	t.Logf("after node %d stopped: %d of %d objects fetched again", victim, moved, objects)
}
