package main

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"gatecache/bench/internal/benchenv"
)

// outcome is what one client saw.
type outcome struct {
	status   int
	bytes    int
	wrong    int64
	complete bool
	secs     float64
	err      string
}

func (r outcome) String() string {
	s := fmt.Sprintf("%3d %9d B %4d wrong %6.2f s", r.status, r.bytes, r.wrong, r.secs)
	if !r.complete {
		s += " aborted"
	}
	return s
}

// try does one GET through n (client timeout 120 s, far beyond any of the
// node's own bounds) and checks the bytes against the content at off of
// path, whatever the status: as the Delivery Optimization agent does, which
// writes any body at its newest offset.
func try(n *node, o *origin, path string, off int64, hdr ...string) outcome {
	c := n.proxyClient(120 * time.Second)
	began := time.Now()
	resp, err := n.get(c, o.addr, path, hdr...)
	if err != nil {
		return outcome{secs: time.Since(began).Seconds(), err: err.Error()}
	}
	defer resp.Body.Close()
	body, rerr := readAll(resp.Body)
	r := outcome{status: resp.StatusCode, bytes: len(body), secs: time.Since(began).Seconds()}
	r.complete = rerr == nil && (resp.ContentLength < 0 || int64(len(body)) == resp.ContentLength)
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent {
		want := o.want(path, off, int64(len(body)))
		for i := range body {
			if body[i] != want[i] {
				r.wrong++
			}
		}
	}
	if rerr != nil {
		r.err = rerr.Error()
	}
	return r
}

type row struct {
	name   string
	got    string
	expect string
	ok     bool
}

// runUpstream puts one node with default timeouts in front of origins that
// misbehave, and checks what clients get.
func runUpstream(bin, dir string, o *origin) bool {
	forbidden, err := startCounter()
	if err != nil {
		fatal(err)
	}
	defer forbidden.srv.Close()
	n := newNode(bin, dir, o.addr)
	o.redirTargets = []string{
		"http://" + forbidden.addr + "/ok/1000/x",
		"//" + forbidden.addr + "/ok/1000/y",
		"http://" + n.summary + "/summary",
		"http://" + n.summary + "/metrics",
	}
	if err := n.start(); err != nil {
		fatal(err)
	}
	defer n.term(15 * time.Second)
	var rows []row
	add := func(name string, r outcome, expect string, ok bool) {
		rows = append(rows, row{name, r.String(), expect, ok && r.wrong == 0})
	}
	budget := 20.0 // the DO agent's: 20 s without progress, headers included

	r := try(n, o, "/stallhdr/1048576/a", 0)
	add("origin never answers", r, "5xx before 20 s", r.status >= 500 && r.secs < budget)

	var wg sync.WaitGroup
	var first, second outcome
	wg.Add(1)
	go func() { defer wg.Done(); first = try(n, o, "/stallbody/4194304/a", 0) }()
	time.Sleep(500 * time.Millisecond) // the fill has stalled; a second client joins it
	second = try(n, o, "/stallbody/4194304/a", 0)
	wg.Wait()
	add("origin stalls mid-body", first, "aborted before 20 s of silence", !first.complete && first.secs < budget+2)
	add("  second client joins the stalled fill", second, "aborted, not hung", !second.complete && second.secs < budget+2)

	r = try(n, o, "/trunc/4194304/a", 0)
	add("origin truncates the body", r, "aborted, 0 wrong", !r.complete)

	r = try(n, o, "/noval/4194304/a", 0, "Range", "bytes=0-999")
	o.bump()
	r2 := try(n, o, "/noval/4194304/a", 0)
	r3 := try(n, o, "/noval/4194304/a", 0)
	add("no validators, changed at same length: range", r, "206", r.status == http.StatusPartialContent)
	add("  then whole GET of the new version", r2, "one version, 0 wrong", r2.complete)
	add("  then again (hit)", r3, "one version, 0 wrong", r3.complete)

	for i, target := range o.redirTargets {
		before := forbidden.hits.Load()
		r := try(n, o, fmt.Sprintf("/redir/%d/r", i), 0)
		again := try(n, o, fmt.Sprintf("/redir/%d/r", i), 0)
		leaked := forbidden.hits.Load() - before
		name := "redirect to " + strings.TrimPrefix(strings.TrimPrefix(target, "http:"), "//")
		add(name, r, "3xx relayed, target not contacted", r.status >= 300 && r.status < 400 && leaked == 0 && again.status >= 300 && again.status < 400)
	}

	r = try(n, o, "/ok/8388608/do", 4194304, "Range", "bytes=0-8388607", "Range", "bytes=4194304-8388607")
	add("DO resume: two Range lines", r, "bytes from the newest offset", r.complete && r.bytes == 4194304)

	r = try(n, o, "/ok/4194304/suffix", 0)
	r = try(n, o, "/ok/4194304/suffix", 0, "Range", "bytes=-0")
	add("Range: bytes=-0 on a hit", r, "416", r.status == http.StatusRequestedRangeNotSatisfiable)

	try(n, o, "/revalslow/65536/a", 0)
	time.Sleep(1500 * time.Millisecond) // max-age=1 runs out
	r = try(n, o, "/revalslow/65536/a", 0)
	add("stale entry, revalidation stalls", r, "stored copy before 20 s", r.status == 200 && r.complete && r.secs < budget)

	fmt.Println("## upstream faults (one node, default timeouts)")
	fmt.Printf("%-46s %-44s %-34s %s\n", "scenario", "client got", "must", "verdict")
	ok := true
	for _, r := range rows {
		fmt.Printf("%-46s %-44s %-34s %s\n", r.name, r.got, r.expect, benchenv.Verdict(r.ok))
		ok = ok && r.ok
	}
	fmt.Printf("requests that reached the not-allowed origin: %d\n", forbidden.hits.Load())
	return ok && forbidden.hits.Load() == 0
}

// runTerm measures how long the node takes to exit after SIGTERM while a
// fill reads an origin at 3,000 B/s.
func runTerm(bin, dir string, o *origin) bool {
	n := newNode(bin, dir, o.addr)
	if err := n.start(); err != nil {
		fatal(err)
	}
	c := n.proxyClient(0)
	resp, err := n.get(c, o.addr, "/slow/4194304/term")
	if err != nil {
		fatal(err)
	}
	buf := make([]byte, 2000)
	resp.Body.Read(buf)
	took, err := n.term(60 * time.Second)
	resp.Body.Close()
	ok := err == nil && took < 10*time.Second
	fmt.Println("## SIGTERM with a fill reading a 3,000 B/s origin")
	fmt.Printf("%-44s %.2f s (bound 10 s) %s\n", "time to exit", took.Seconds(), benchenv.Verdict(ok))
	if err != nil {
		fmt.Println(err)
	}
	return ok
}
