package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"

	"gatecache/internal/origintest"
)

// TestKillDuringFillsNeverServesWrongBytes kills gatecache with SIGKILL while
// fills are in progress, again and again, restarting on the same cache
// directory each time: every byte served afterwards must equal the origin's,
// and the offline check must find no damaged block.
func TestKillDuringFillsNeverServesWrongBytes(t *testing.T) {
	const rounds = 6
	root := t.TempDir()
	o := origintest.New(t)
	env := []string{"CACHE_ROOT=" + root, "CACHEABLE_CUSTOM_1_HOST=" + o.Addr, "STORAGE_1_SIZE=96MiB"}
	rng := rand.New(rand.NewPCG(1, 2))

	paths := []string{"/a.swu", "/b.deb", "/c.img", "/d.json"}
	sizes := []int64{12<<20 + 5, 9 << 20, 20<<20 + 333, 70000}
	for i, p := range paths {
		o.Set(p, origintest.Object{Size: sizes[i]})
	}
	for round := range rounds {
		n := startNode(t, env...)

		// One object stalls upstream at a random offset: a fill is
		// certainly in progress when the node dies.
		stallPath := fmt.Sprintf("/stall-%d.bin", round)
		stallAt := rng.Int64N(6<<20) + 1
		o.Set(stallPath, origintest.Object{Size: 8 << 20, Fault: origintest.FaultStall, FaultAt: stallAt})

		var wg sync.WaitGroup
		for i, p := range paths {
			hdr := []string{}
			if (round+i)%2 == 1 {
				hdr = []string{"Range", fmt.Sprintf("bytes=%d-", rng.Int64N(sizes[i]/2))}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// These may be cut off by the kill; whatever arrives
				// must be right.
				resp, err := n.get(o, p, hdr...)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				checkPrefix(t, o, p, resp)
			}()
		}
		resp, err := n.get(o, stallPath)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, stallAt)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			t.Fatalf("round %d: reading up to the stall: %v", round, err)
		}
		n.kill(syscall.SIGKILL)
		resp.Body.Close()
		o.Release()
		wg.Wait()
		if !bytes.Equal(head, o.Want(stallPath)[:stallAt]) {
			t.Fatalf("round %d: wrong bytes before the kill", round)
		}

		// Restarted on the same directory: every object, whole and in
		// ranges, byte for byte.
		o.Set(stallPath, origintest.Object{Size: 8 << 20})
		n = startNode(t, env...)
		for _, p := range append(paths, stallPath) {
			want := o.Want(p)
			resp, err := n.get(o, p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("round %d: %s after restart: %d bytes, err %v, equal %v", round, p, len(got), err, bytes.Equal(got, want))
			}
		}
		// A clean stop indexes what the round fetched, so that the next
		// round's kill lands on a cache holding indexed content.
		n.kill(syscall.SIGTERM)
	}

	verify := exec.Command(binary, "verify")
	verify.Env = env
	out, err := verify.CombinedOutput()
	report := string(out)
	if !strings.Contains(report, " 0 bad blocks") || strings.Contains(report, " 0 objects") {
		t.Fatalf("verify after the crashes: %v\n%s", err, report)
	}
	t.Logf("verify: %s", strings.TrimSpace(report))

	repair := exec.Command(binary, "verify", "--repair")
	repair.Env = env
	if out, err := repair.CombinedOutput(); err != nil {
		t.Fatalf("verify --repair: %v\n%s", err, out)
	}
	again := exec.Command(binary, "verify")
	again.Env = env
	if out, err := again.CombinedOutput(); err != nil || !strings.Contains(string(out), ": ok: ") {
		t.Fatalf("verify after repair: %v\n%s", err, out)
	}
}

// checkPrefix reads what a (possibly cut off) response carries and fails the
// test if any byte differs from the origin's.
func checkPrefix(t *testing.T, o *origintest.Origin, path string, resp *http.Response) {
	got, _ := io.ReadAll(resp.Body)
	want := o.Want(path)
	start := int64(0)
	if cr := resp.Header.Get("Content-Range"); cr != "" {
		fmt.Sscanf(cr, "bytes %d-", &start)
	}
	if start+int64(len(got)) > int64(len(want)) || !bytes.Equal(got, want[start:start+int64(len(got))]) {
		t.Errorf("%s: wrong bytes in a response cut off by the kill", path)
	}
}
