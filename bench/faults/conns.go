package main

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"gatecache/bench/internal/benchenv"
)

// flood opens count connections to addr, sends request on each and reads
// its answer, then keeps the connection open and idle. It returns the
// connections and how many got an answer.
func flood(addr, request string, count int) ([]net.Conn, int) {
	var mu sync.Mutex
	var conns []net.Conn
	var answered atomic.Int64
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	for range 128 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.WriteString(c, request); err != nil {
					continue
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					answered.Add(1)
				}
				c.SetDeadline(time.Time{})
			}
		}()
	}
	for range count {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return conns, int(answered.Load())
}

// runConns floods each port in turn with idle keep-alive connections
// (one port at a time, so that the campaign's own descriptor limit holds
// them), checks that both ports still serve meanwhile, that the node closes
// the idle connections itself, and that it gives memory back.
func runConns(bin, dir string, o *origin, count int) bool {
	n := newNode(bin, dir, o.addr)
	if err := n.start(); err != nil {
		fatal(err)
	}
	defer n.term(15 * time.Second)
	small := "/ok/4096/conns"
	if w, complete, err := fetchCheck(n.proxyClient(10*time.Second), n, o, small); err != nil || w != 0 || !complete {
		fatal(fmt.Errorf("warming %s: %v", small, err))
	}
	ok := true
	for _, port := range []struct{ name, addr, request string }{
		{"summary", n.summary, "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"},
		{"content", n.content, "GET http://" + o.addr + small + " HTTP/1.1\r\nHost: " + o.addr + "\r\n\r\n"},
	} {
		before := n.sample()
		began := time.Now()
		conns, answered := flood(port.addr, port.request, count)
		during := n.sample()
		floodSecs := time.Since(began).Seconds()

		// While the flood holds its connections: does each port serve?
		w, complete, err := fetchCheck(n.proxyClient(30*time.Second), n, o, small)
		serving := err == nil && w == 0 && complete
		resp, herr := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + n.summary + "/healthz")
		summaryOK := herr == nil && resp.StatusCode == http.StatusOK
		if herr == nil {
			resp.Body.Close()
		}

		// The clients never close: the node must.
		closedAfter := -1.0
		for t0 := time.Now(); time.Since(t0) < 200*time.Second; time.Sleep(time.Second) {
			if s := n.sample(); s.fds > 0 && s.fds < before.fds+100 {
				closedAfter = time.Since(t0).Seconds()
				break
			}
		}
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(2 * time.Second)
		after := n.sample()
		time.Sleep(30 * time.Second) // the runtime returns freed memory in the background
		later := n.sample()

		portOK := serving && summaryOK && closedAfter >= 0 && later.rssKB < before.rssKB+64<<10
		ok = ok && portOK
		fmt.Printf("## %d idle keep-alive connections on the %s port (opened in %.1f s, %d answered)\n", count, port.name, floodSecs, answered)
		fmt.Printf("%-44s %s\n", "before", before)
		fmt.Printf("%-44s %s\n", "flood held", during)
		fmt.Printf("%-44s content %v, summary %v\n", "served during the flood", serving, summaryOK)
		fmt.Printf("%-44s %.0f s (idle timeouts: content 2 min, summary 30 s)\n", "node closed the idle connections after", closedAfter)
		fmt.Printf("%-44s %s\n", "2 s after the clients left", after)
		fmt.Printf("%-44s %s\n", "32 s after", later)
		fmt.Printf("%-44s %s\n\n", "verdict", benchenv.Verdict(portOK))
	}
	return ok
}

// runSoak sends mixed traffic (small hits, ranges of large objects, new
// objects) for d, sampling memory and descriptors every second.
func runSoak(bin, dir string, o *origin, d time.Duration) bool {
	n := newNode(bin, dir, o.addr, "STORAGE_1_SIZE=1GiB")
	if err := n.start(); err != nil {
		fatal(err)
	}
	defer n.term(15 * time.Second)
	var requests, errs, wrong, newObjs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := n.proxyClient(60 * time.Second)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				var path string
				var hdr []string
				switch x := rand.IntN(10); {
				case x < 7:
					i := rand.IntN(200)
					path = fmt.Sprintf("/ok/%d/soak-small-%d", 4096+i*300, i)
				case x < 9:
					i := rand.Int64N(20)
					size := (1+i%8)<<20 + i
					path = fmt.Sprintf("/ok/%d/soak-big-%d", size, i)
					a := rand.Int64N(size)
					hdr = []string{"Range", fmt.Sprintf("bytes=%d-%d", a, min(a+rand.Int64N(1<<20), size-1))}
				default:
					path = fmt.Sprintf("/ok/%d/soak-new-%d-%d", 16384+rand.IntN(1<<20), w, k)
					newObjs.Add(1)
				}
				wr, complete, err := fetchCheck(c, n, o, path, hdr...)
				requests.Add(1)
				wrong.Add(wr)
				if err != nil || !complete {
					errs.Add(1)
				}
			}
		}()
	}
	var samples []sample
	for t0 := time.Now(); time.Since(t0) < d; time.Sleep(time.Second) {
		samples = append(samples, n.sample())
	}
	close(stop)
	wg.Wait()
	minS, maxS := samples[0], samples[0]
	for _, s := range samples {
		if s.rssKB < minS.rssKB {
			minS.rssKB = s.rssKB
		}
		if s.rssKB > maxS.rssKB {
			maxS.rssKB = s.rssKB
		}
		minS.fds, maxS.fds = min(minS.fds, s.fds), max(maxS.fds, s.fds)
	}
	ok := errs.Load() == 0 && wrong.Load() == 0
	fmt.Printf("## soak: %v of mixed traffic, 16 clients\n", d)
	fmt.Printf("%-44s %d (%d new objects)\n", "requests", requests.Load(), newObjs.Load())
	fmt.Printf("%-44s %d errors, %d wrong bytes\n", "failures", errs.Load(), wrong.Load())
	fmt.Printf("%-44s %.1f-%.1f MiB\n", "RSS (sampled each second)", float64(minS.rssKB)/1024, float64(maxS.rssKB)/1024)
	fmt.Printf("%-44s %d-%d\n", "open descriptors", minS.fds, maxS.fds)
	fmt.Printf("%-44s %s\n", "verdict", benchenv.Verdict(ok))
	return ok
}
