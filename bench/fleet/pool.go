package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gatecache/bench/internal/benchenv"
	"gatecache/internal/haproxytest"
	"gatecache/internal/origintest"
)

// poolRequest builds a request for path on originAddr through addr in one
// of the four forms a device may use; the absolute form goes through the
// client's proxy (see runPool).
func poolRequest(ctx context.Context, form int, addr, originAddr, path string) *http.Request {
	var r *http.Request
	switch form % 4 {
	case 0:
		r, _ = http.NewRequestWithContext(ctx, "GET", "http://"+addr+path+"?cacheHostOrigin="+originAddr, nil)
	case 1:
		r, _ = http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		r.Host = originAddr
	case 2:
		r, _ = http.NewRequestWithContext(ctx, "GET", "http://"+originAddr+path, nil)
	default:
		r, _ = http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/"+originAddr+path, nil)
	}
	return r
}

// poolRun is one setup's outcome in the pool scenario.
type poolRun struct {
	name                 string
	total                time.Duration
	latencies            []time.Duration
	requests, failed     int64
	firstErr             error
	originReqs           map[string]int64
	copies               map[string]int // nodes holding each object on disk
	victimHeld           map[string]bool
	outAfter             time.Duration // SIGTERM to out of rotation
	stopped, stopFailure string
}

// runPool: clients fetch objects, each client in one of the four request
// forms: from a single node; through haproxy in front of three nodes; and
// from two leaves whose parents are a hashed pool of three; the last two
// also with one of the three stopped (SIGTERM) halfway through. Copies are
// counted on the drives of the three (of the pool, not of the leaves,
// which keep what their own clients ask for); the stopped node may cost
// its own share of objects again, and nothing else.
func runPool(e env) bool {
	if e.haproxy == "" {
		fmt.Println("## pool: skipped: haproxy is not installed (apt-get install haproxy)")
		return true
	}
	clients := e.clients
	if clients == 0 {
		clients = 100
	}
	const objects, perClient, prefixLen = 240, 24, 32
	o, err := startOrigin(e.latency, e.rate)
	if err != nil {
		fatal(err)
	}
	defer o.close()
	paths := make([]string, objects)
	want := map[string][]byte{}
	prefixes := map[string]string{}
	var stored int64
	for i := range paths {
		paths[i] = fmt.Sprintf("/pool/main/o/obj-%03d.bin", i)
		size := int64(128<<10) * int64(1+(i*7)%16) // 128 KiB to 2 MiB
		o.set(paths[i], object{size: size, cacheControl: "public, max-age=86400"})
		want[paths[i]] = origintest.Bytes(paths[i], 0, 0, size)
		prefixes[string(want[paths[i]][:prefixLen])] = paths[i]
		stored += size
	}
	lists := make([][]string, clients)
	requested := map[string]bool{}
	for i := range lists {
		rng := rand.New(rand.NewPCG(uint64(i), 12))
		for _, k := range rng.Perm(objects)[:perClient] {
			lists[i] = append(lists[i], paths[k])
			requested[paths[k]] = true
		}
	}

	var runs []poolRun
	var skipped []string
	for _, c := range []struct {
		kind string
		stop bool
	}{{single, false}, {haproxy3, false}, {haproxy3, true}, {hashPool, false}, {hashPool, true}} {
		o.reset()
		s, err := newSetup(e, c.kind, o, nil, nil)
		if errors.Is(err, errNoHashPolicy) {
			skipped = append(skipped, c.kind)
			continue
		}
		if err != nil {
			fatal(err)
		}
		r := poolRun{name: c.kind, originReqs: map[string]int64{}, copies: map[string]int{}, victimHeld: map[string]bool{}}
		var victim *node
		halfway := make(chan struct{})
		var stopper sync.WaitGroup
		if c.stop {
			victim = s.pool[1]
			r.name += ", one stopped halfway"
			r.stopped = victim.name
			stopper.Add(1)
			go func() {
				defer stopper.Done()
				<-halfway
				victim.cmd.Process.Signal(syscall.SIGTERM)
				if s.front == nil {
					return
				}
				_, out, err := s.front.Wait(victim.content, func(st haproxytest.ServerState) bool { return strings.HasPrefix(st.Status, "DOWN") })
				r.outAfter = out
				if err != nil {
					r.stopFailure = err.Error()
				}
			}()
		}
		var mu sync.Mutex
		var done atomic.Int64
		half := int64(clients * perClient / 2)
		began := time.Now()
		crowd := runCrowd(clients, 0, func(ctx context.Context, i int, hc *http.Client) error {
			addr := s.addrs[i%len(s.addrs)]
			proxy, _ := url.Parse("http://" + addr)
			hc.Transport.(*http.Transport).Proxy = func(req *http.Request) (*url.URL, error) {
				if req.URL.Host == o.addr {
					return proxy, nil // the absolute form
				}
				return nil, nil
			}
			var first error
			for _, p := range lists[i] {
				t := time.Now()
				err := getWhole(hc, poolRequest(ctx, i/len(s.addrs), addr, o.addr, p), want[p])
				took := time.Since(t)
				mu.Lock()
				r.latencies = append(r.latencies, took)
				r.requests++
				if err != nil {
					r.failed++
					if first == nil {
						first = fmt.Errorf("%s: %w", p, err)
					}
				}
				mu.Unlock()
				if done.Add(1) == half {
					close(halfway)
				}
			}
			return first
		})
		r.total = time.Since(began)
		_, r.firstErr = crowd.failed()
		stopper.Wait()
		s.stop()
		for _, p := range paths {
			r.originReqs[p] = o.count(p).requests
		}
		for _, n := range s.pool {
			for p := range onDisk(n.root, prefixes, prefixLen) {
				r.copies[p]++
				if n == victim {
					r.victimHeld[p] = true
				}
			}
		}
		runs = append(runs, r)
	}
	ok := printPool(runs, requested, clients, objects, perClient, stored)
	if len(skipped) > 0 {
		fmt.Printf("\n%s: skipped: %v\n", skipped[0], errNoHashPolicy)
	}
	return ok
}

// getWhole does one GET and checks the whole body.
func getWhole(c *http.Client, req *http.Request, want []byte) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return checkBody(resp.Body, want, 0, int64(len(want)))
}

// onDisk returns the objects whose data file is on the node's drives, told
// by the file's first bytes.
func onDisk(root string, prefixes map[string]string, prefixLen int) map[string]bool {
	held := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(root, "*", "data", "*", "*"))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		head := make([]byte, prefixLen)
		_, err = io.ReadFull(f, head)
		f.Close()
		if p, ok := prefixes[string(head)]; ok && err == nil {
			held[p] = true
		}
	}
	return held
}

// printPool prints the table; objects no client asked for are left out.
func printPool(runs []poolRun, requested map[string]bool, clients, objects, perClient int, stored int64) bool {
	fmt.Printf("## pool: %d clients each fetch %d of %d objects (128 KiB to 2 MiB, %s in all), each client in one of the four request forms; copies counted on the drives of the pool's nodes\n\n",
		clients, perClient, objects, mib(stored))
	fmt.Println("| setup | total | request p50 | request p99 | failed requests | origin requests | stored once | twice | 3+ | not stored | stopped node held | fetched again | verdict |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	ok := true
	var notes []string
	for _, r := range runs {
		var originReqs int64
		once, twice, more, none, again := 0, 0, 0, 0, 0
		good := r.failed == 0 && r.stopFailure == ""
		for p, n := range r.originReqs {
			if !requested[p] {
				continue
			}
			originReqs += n
			if n > 1 {
				again++
				// Only the stopped node's objects may be fetched twice.
				good = good && n == 2 && r.victimHeld[p]
			}
			switch r.copies[p] {
			case 0:
				none++
			case 1:
				once++
			case 2:
				twice++
				good = good && r.victimHeld[p]
			default:
				more++
				good = false
			}
		}
		ok = ok && good
		held := "-"
		if r.stopped != "" {
			held = fmt.Sprintf("%d (%s)", len(r.victimHeld), r.stopped)
		}
		fmt.Printf("| %s | %s | %s | %s | %d of %d | %d | %d | %d | %d | %d | %s | %d | %s |\n",
			r.name, secs(r.total), secs(percentile(r.latencies, 50)), secs(percentile(r.latencies, 99)),
			r.failed, r.requests, originReqs, once, twice, more, none, held, again, benchenv.Verdict(good))
		if r.stopped != "" && r.outAfter > 0 {
			notes = append(notes, fmt.Sprintf("%s: out of haproxy's rotation %s after SIGTERM", r.stopped, secs(r.outAfter)))
		}
		if r.stopFailure != "" {
			notes = append(notes, r.stopped+": "+r.stopFailure)
		}
		if r.firstErr != nil {
			notes = append(notes, fmt.Sprintf("%s: first failure: %v", r.name, r.firstErr))
		}
	}
	for _, n := range notes {
		fmt.Println("\n" + n)
	}
	fmt.Println("\nan object is stored on one node and fetched from the origin once; a stopped node costs at most its own objects once more.")
	return ok
}
