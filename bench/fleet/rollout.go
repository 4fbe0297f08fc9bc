package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"gatecache/bench/internal/benchenv"
	"gatecache/internal/origintest"
)

// runDeadline bounds one run of a scenario's clients.
const runDeadline = 5 * time.Minute

// step is the Range step of the clients that fetch in ranges.
const step = 1 << 20

// clientRun is one client's outcome.
type clientRun struct {
	took time.Duration
	err  error
}

// crowd is the outcome of one run of many clients.
type crowd struct {
	total time.Duration // first start to last end
	runs  []clientRun
}

func (c crowd) times() []time.Duration {
	ds := make([]time.Duration, 0, len(c.runs))
	for _, r := range c.runs {
		ds = append(ds, r.took)
	}
	return ds
}

func (c crowd) failed() (n int, first error) {
	for _, r := range c.runs {
		if r.err != nil {
			if n == 0 {
				first = r.err
			}
			n++
		}
	}
	return n, first
}

// runCrowd runs n clients, client i starting at i*spread/n, each with a
// connection of its own, and waits for all of them (within runDeadline).
func runCrowd(n int, spread time.Duration, client func(ctx context.Context, i int, c *http.Client) error) crowd {
	ctx, cancel := context.WithTimeout(context.Background(), runDeadline)
	defer cancel()
	out := crowd{runs: make([]clientRun, n)}
	began := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := began.Add(spread * time.Duration(i) / time.Duration(n))
			time.Sleep(time.Until(at)) // the client's arrival
			tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1, ResponseHeaderTimeout: 30 * time.Second}
			defer tr.CloseIdleConnections()
			start := time.Now()
			err := client(ctx, i, &http.Client{Transport: tr})
			out.runs[i] = clientRun{time.Since(start), err}
		}()
	}
	wg.Wait()
	out.total = time.Since(began)
	return out
}

// checkBody reads body to its end and compares it with want[off:off+n].
func checkBody(body io.Reader, want []byte, off, n int64) error {
	buf := make([]byte, 256<<10)
	var got int64
	for {
		k, err := body.Read(buf)
		if k > 0 {
			if got+int64(k) > n {
				return fmt.Errorf("body longer than %d bytes", n)
			}
			if exp := want[off+got : off+got+int64(k)]; !bytes.Equal(buf[:k], exp) {
				j := 0
				for buf[j] == exp[j] {
					j++
				}
				return fmt.Errorf("wrong byte at offset %d", off+got+int64(j))
			}
			got += int64(k)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", got, n, err)
		}
	}
	if got != n {
		return fmt.Errorf("body of %d bytes, want %d", got, n)
	}
	return nil
}

// doWhole is a Delivery Optimization download in one GET.
func doWhole(ctx context.Context, c *http.Client, url string, want []byte) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("User-Agent", origintest.DOUserAgent)
	return getWhole(c, req, want)
}

// doSteps is a Delivery Optimization download in 1 MiB ranges, one after
// another on one connection.
func doSteps(ctx context.Context, c *http.Client, url string, want []byte) error {
	size := int64(len(want))
	for off := int64(0); off < size; off += step {
		end := min(off+step, size) - 1
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("User-Agent", origintest.DOUserAgent)
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end, 10))
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		cr := fmt.Sprintf("bytes %d-%d/%d", off, end, size)
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != cr {
			resp.Body.Close()
			return fmt.Errorf("range %d-%d: status %d, Content-Range %q", off, end, resp.StatusCode, resp.Header.Get("Content-Range"))
		}
		err = checkBody(resp.Body, want, off, end-off+1)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("range %d-%d: %w", off, end, err)
		}
	}
	return nil
}

// rolloutRow is one setup's line of the rollout table.
type rolloutRow struct {
	name                    string
	cold, warm              crowd
	originBytes, originReqs int64
	parentBytes, parentReqs int64 // -1: no parent
	failures                int
	firstErr                error
}

// runRollout: clients start within the spread on one cold object, half
// of them fetching it whole and half in 1 MiB steps, first behind a leaf
// and its parent, then against a single node. Then the same clients again,
// on the now warm entry node: its egress time, part of the bound.
func runRollout(e env) bool {
	clients := e.clients
	if clients == 0 {
		clients = 300
	}
	o, err := startOrigin(e.latency, e.rate)
	if err != nil {
		fatal(err)
	}
	defer o.close()
	const path = "/filestreamingservice/files/5d3c2f0e-rollout/update.swu"
	o.set(path, object{size: e.size, cacheControl: "public, max-age=86400"})
	want := origintest.Bytes(path, 0, 0, e.size)
	client := func(url string) func(context.Context, int, *http.Client) error {
		return func(ctx context.Context, i int, c *http.Client) error {
			if i%2 == 0 {
				return doWhole(ctx, c, url, want)
			}
			return doSteps(ctx, c, url, want)
		}
	}

	// The egress floor: a plain file server (net/http's ServeContent of
	// the object's file, in the page cache) serving the same clients.
	floor, err := egressFloor(e, want, func(url string) crowd { return runCrowd(clients, e.spread, client(url)) })
	if err != nil {
		fatal(err)
	}

	var rows []rolloutRow
	for _, kind := range []string{leafParent, single} {
		o.reset()
		s, err := newSetup(e, kind, o, nil, nil)
		if err != nil {
			fatal(err)
		}
		url := "http://" + s.addr + path + "?cacheHostOrigin=" + o.addr
		r := rolloutRow{name: kind, parentBytes: -1, parentReqs: -1}
		r.cold = runCrowd(clients, e.spread, client(url))
		t := o.total()
		r.originBytes, r.originReqs = t.bytes, t.requests
		if s.parent != nil {
			m, err := s.entry.metrics()
			if err != nil {
				fatal(err)
			}
			r.parentBytes, r.parentReqs = int64(m["gatecache_upstream_bytes_total"]), int64(m["gatecache_upstream_requests_total"])
		}
		r.warm = runCrowd(clients, e.spread, client(url))
		n1, err1 := r.cold.failed()
		n2, err2 := r.warm.failed()
		r.failures, r.firstErr = n1+n2, errors.Join(err1, err2)
		s.stop()
		rows = append(rows, r)
	}

	originTime := e.latency + time.Duration(float64(e.size)/e.rate*float64(time.Second))
	bound := originTime + floor.total
	fmt.Printf("## rollout: %d clients (%d whole-file GET, %d in 1 MiB Range steps) start within %v on one cold %s object\n",
		clients, (clients+1)/2, clients/2, e.spread, mib(e.size))
	fmt.Printf("bound %s = origin latency + object / origin rate (%s) + egress floor (%s: a plain file server sending the same clients the object, %.2f GB/s)\n\n",
		secs(bound), secs(originTime), secs(floor.total), float64(e.size)*float64(clients)/floor.total.Seconds()/1e9)
	fmt.Println("| setup | total | total / bound | origin bytes | origin requests | parent bytes | parent requests | client p50 | client p99 | warm: total, p50, p99 | failed clients | verdict |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	ok := true
	if n, err := floor.failed(); n > 0 {
		fmt.Printf("egress floor: %d clients failed: %v\n", n, err)
		ok = false
	}
	for _, r := range rows {
		good := r.failures == 0 && r.originBytes == e.size && (r.parentBytes < 0 || r.parentBytes == e.size)
		ok = ok && good
		parentBytes, parentReqs := "-", "-"
		if r.parentBytes >= 0 {
			parentBytes, parentReqs = times(r.parentBytes, e.size), strconv.FormatInt(r.parentReqs, 10)
		}
		ds, ws := r.cold.times(), r.warm.times()
		fmt.Printf("| %s | %s | %.2f | %s | %d | %s | %s | %s | %s | %s, %s, %s | %d | %s |\n",
			r.name, secs(r.cold.total), r.cold.total.Seconds()/bound.Seconds(),
			times(r.originBytes, e.size), r.originReqs, parentBytes, parentReqs,
			secs(percentile(ds, 50)), secs(percentile(ds, 99)),
			secs(r.warm.total), secs(percentile(ws, 50)), secs(percentile(ws, 99)), r.failures, benchenv.Verdict(good))
		if r.firstErr != nil {
			fmt.Printf("\n%s: first client failure: %v\n", r.name, r.firstErr)
		}
	}
	fmt.Println("\norigin bytes and parent bytes must be 1.00× (each byte crosses each link once); every client must get every byte right (cold and warm).")
	return ok
}

// egressFloor serves want from a file with net/http's ServeContent on
// loopback and runs the crowd against it. The file server is a process of
// its own (this program run again, floorServer), as the node is: served
// from the clients' own process, the same bytes go out about a fifth
// faster (one scheduler for both ends), which is no server's to reach.
func egressFloor(e env, want []byte, run func(url string) crowd) (crowd, error) {
	name := filepath.Join(e.work, "floor.bin")
	if err := os.WriteFile(name, want, 0o644); err != nil {
		return crowd{}, err
	}
	defer os.Remove(name)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return crowd{}, err
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		return crowd{}, err
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return crowd{}, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), floorEnv+"="+name)
	cmd.ExtraFiles = []*os.File{f} // descriptor 3
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return crowd{}, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	return run("http://" + l.Addr().String() + "/floor.bin"), nil
}

// floorEnv names the file the program serves when it is egressFloor's
// server.
const floorEnv = "FLEET_FLOOR_FILE"

// floorServer serves the file named by floorEnv on the listener passed as
// descriptor 3, until killed.
func floorServer(name string) {
	l, err := net.FileListener(os.NewFile(3, "floor"))
	if err != nil {
		fatal(err)
	}
	fatal(http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", modified, f)
	})))
}
