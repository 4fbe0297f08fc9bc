package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"gatecache/internal/origintest"
)

// origin is the benchmark's origin: deterministic content (origintest's)
// behind a link of a given latency and rate. Every request waits the
// latency before its answer starts (the round trip to a distant origin);
// the bodies of all responses together go out at rate bytes per second at
// most, as through one uplink. It answers GET and HEAD with ETag,
// Last-Modified, single byte ranges and conditional requests
// (http.ServeContent), and counts requests and body bytes by path.
type origin struct {
	addr    string
	srv     *http.Server
	latency time.Duration
	link    *pacer

	mu      sync.Mutex
	objects map[string]object
	counts  map[string]*pathCount
}

// object is one file the origin serves.
type object struct {
	size         int64
	cacheControl string // "" sends none, as a Debian mirror does for its indexes
}

// pathCount is what the origin saw for one path.
type pathCount struct {
	requests, bytes int64
}

// modified is every object's Last-Modified.
var modified = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func startOrigin(latency time.Duration, rate float64) (*origin, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := &origin{
		addr: l.Addr().String(), latency: latency, link: &pacer{rate: rate},
		objects: map[string]object{}, counts: map[string]*pathCount{},
	}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(l)
	return o, nil
}

func (o *origin) close() { o.srv.Close() }

// set installs (or replaces) an object.
func (o *origin) set(path string, ob object) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[path] = ob
}

// count returns what the origin saw for path, and in all.
func (o *origin) count(path string) pathCount {
	o.mu.Lock()
	defer o.mu.Unlock()
	if c := o.counts[path]; c != nil {
		return *c
	}
	return pathCount{}
}

func (o *origin) total() pathCount {
	o.mu.Lock()
	defer o.mu.Unlock()
	var t pathCount
	for _, c := range o.counts {
		t.requests, t.bytes = t.requests+c.requests, t.bytes+c.bytes
	}
	return t
}

// reset forgets the counts (between two setups of one scenario).
func (o *origin) reset() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.counts = map[string]*pathCount{}
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	ob, ok := o.objects[r.URL.Path]
	c := o.counts[r.URL.Path]
	if c == nil {
		c = &pathCount{}
		o.counts[r.URL.Path] = c
	}
	c.requests++
	o.mu.Unlock()
	select {
	case <-time.After(o.latency):
	case <-r.Context().Done():
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("ETag", strconv.Quote(fmt.Sprintf("%x-%x", origintest.Bytes(r.URL.Path, 0, 0, 8), ob.size)))
	h.Set("Content-Type", "application/octet-stream")
	if ob.cacheControl != "" {
		h.Set("Cache-Control", ob.cacheControl)
	}
	cw := &countingWriter{ResponseWriter: w, o: o, count: c}
	http.ServeContent(cw, r, "", modified, &content{path: r.URL.Path, size: ob.size, link: o.link})
}

// countingWriter counts the body bytes sent for one path, in the count
// its request was counted in: a reset while the body is still going does
// not move its late bytes into the next setup's figures.
type countingWriter struct {
	http.ResponseWriter
	o     *origin
	count *pathCount
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.o.mu.Lock()
	w.count.bytes += int64(n)
	w.o.mu.Unlock()
	return n, err
}

// content is an object's bytes as an io.ReadSeeker, made as they are read
// and paced by the link.
type content struct {
	path      string
	size, off int64
	link      *pacer
}

// chunk is the most one Read makes: the link's pacing step.
const chunk = 64 << 10

func (c *content) Read(p []byte) (int, error) {
	if c.off >= c.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), c.size-c.off, chunk)
	c.link.wait(n)
	origintest.Fill(p[:n], c.path, 0, c.off)
	c.off += n
	return int(n), nil
}

func (c *content) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.off
	case io.SeekEnd:
		offset += c.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	c.off = offset
	return offset, nil
}

// pacer is a link shared by every response: bytes go out at rate per
// second at most, in the order they were asked for.
type pacer struct {
	rate float64 // bytes per second; 0: unlimited

	mu   sync.Mutex
	next time.Time // when the link is free again
}

func (p *pacer) wait(n int64) {
	if p.rate <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	until := p.next
	p.mu.Unlock()
	time.Sleep(time.Until(until))
}
