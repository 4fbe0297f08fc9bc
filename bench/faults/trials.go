package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gatecache/bench/internal/benchenv"
)

// checkBody compares what a response delivered with the origin's content.
// wrong counts differing bytes (a wrong byte anywhere fails the campaign);
// complete says whether the body had its announced length.
func checkBody(o *origin, path string, resp *http.Response, body []byte) (wrong int64, complete bool) {
	start := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusPartialContent:
		var a, b, size int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &size); err != nil {
			return int64(len(body)), false
		}
		start = a
	default:
		return 0, false
	}
	want := o.want(path, start, int64(len(body)))
	for i := range body {
		if body[i] != want[i] {
			wrong++
		}
	}
	return wrong, resp.ContentLength < 0 || int64(len(body)) == resp.ContentLength
}

// fetchCheck does one GET through n and checks whatever arrives.
func fetchCheck(c *http.Client, n *node, o *origin, path string, hdr ...string) (wrong int64, complete bool, err error) {
	resp, err := n.get(c, o.addr, path, hdr...)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	body, rerr := readAll(resp.Body)
	wrong, complete = checkBody(o, path, resp, body)
	if rerr != nil {
		complete = false
	}
	return wrong, complete, rerr
}

var trialSizes = []int64{3<<20 + 17, 5 << 20, 7<<20 + 1, 12<<20 + 333, 64 << 10, 9 << 20}

// runTrials kills the node with SIGKILL while clients fill objects
// concurrently, restarts it on the same directory and reads every object
// back whole and in ranges; then checks the stopped cache offline.
func runTrials(bin, dir string, o *origin, trials int) bool {
	o.rate.Store(40 << 20) // fills last long enough to be cut
	defer o.rate.Store(0)
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	n := newNode(bin, dir, o.addr, "STORAGE_1_SIZE=256MiB")
	paths := make([]string, len(trialSizes))
	for i, s := range trialSizes {
		paths[i] = fmt.Sprintf("/ok/%d/trial-%d", s, i)
	}
	var during, after atomic.Int64
	var cut, checked, incomplete, startFail int
	began := time.Now()
	for trial := range trials {
		if err := n.start(); err != nil {
			fmt.Println("start:", err)
			startFail++
			continue
		}
		c := n.proxyClient(30 * time.Second)
		fresh := fmt.Sprintf("/ok/%d/fresh-%d", 8<<20, trial)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 3 {
					p := paths[(w+k+trial)%len(paths)]
					if w == 0 && k == 0 {
						p = fresh
					}
					var hdr []string
					if _, size, _ := parsePath(p); rand.IntN(2) == 0 {
						hdr = []string{"Range", fmt.Sprintf("bytes=%d-", rand.Int64N(size))}
					}
					wrong, _, _ := fetchCheck(c, n, o, p, hdr...)
					during.Add(wrong)
				}
			}()
		}
		time.Sleep(time.Duration(20+rng.IntN(400)) * time.Millisecond)
		n.kill()
		wg.Wait()
		cut++

		if err := n.start(); err != nil {
			fmt.Println("restart:", err)
			startFail++
			continue
		}
		c = n.proxyClient(60 * time.Second)
		for _, p := range append(paths, fresh) {
			_, size, _ := parsePath(p)
			for _, hdr := range [][]string{nil, {"Range", fmt.Sprintf("bytes=%d-", rng.Int64N(size))}} {
				wrong, complete, err := fetchCheck(c, n, o, p, hdr...)
				after.Add(wrong)
				checked++
				if !complete || err != nil {
					incomplete++
					if incomplete <= 5 {
						fmt.Printf("incomplete after restart: %s %v: %v\n", p, hdr, err)
					}
				}
			}
		}
		if _, err := n.term(15 * time.Second); err != nil {
			fmt.Println("stop:", err)
		}
	}
	elapsed := time.Since(began)

	verify := exec.Command(bin, "verify")
	verify.Env = append(verify.Environ(), n.env...)
	out, verr := verify.CombinedOutput()
	bad := 0
	for _, m := range regexp.MustCompile(`(\d+) bad blocks`).FindAllStringSubmatch(string(out), -1) {
		k, _ := strconv.Atoi(m[1])
		bad += k
	}
	exit := 0
	if ee, ok := verr.(*exec.ExitError); ok {
		exit = ee.ExitCode()
	}
	ok := during.Load() == 0 && after.Load() == 0 && incomplete == 0 && bad == 0 && exit == 0 && startFail == 0
	fmt.Printf("## kill -9 during concurrent fills (%d trials, %.0f s)\n", trials, elapsed.Seconds())
	fmt.Printf("%-44s %s\n", "trials killed mid-fill", strconv.Itoa(cut))
	fmt.Printf("%-44s %d\n", "wrong bytes before the kill", during.Load())
	fmt.Printf("%-44s %d\n", "wrong bytes after restart", after.Load())
	fmt.Printf("%-44s %d of %d\n", "incomplete responses after restart", incomplete, checked)
	fmt.Printf("%-44s %d\n", "failed starts", startFail)
	fmt.Printf("%-44s %d bad blocks, exit %d\n", "gatecache verify on the stopped cache", bad, exit)
	fmt.Printf("%-44s %s\n", "verdict", benchenv.Verdict(ok))
	return ok
}
