package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatecache/internal/origintest"
)

// origin serves deterministic content (origintest.Bytes) under
// /<mode>/<size>/<name>, where mode picks a behaviour:
//
//	ok         ETag, Last-Modified, single ranges, paced at rate bytes/s
//	slow       like ok at 3,000 B/s (a fill that a shutdown must cut)
//	stallhdr   accepts the request and never answers
//	stallbody  sends the headers and half the body, then nothing
//	trunc      sends half the body, then closes the connection
//	noval      no ETag, no Last-Modified; content version bumped by bump()
//	redir      302 to redirTargets[size] (size is an index here)
//	revalslow  max-age=1; a conditional request waits 30 s before its 304
//
// Every stall ends when the request's context does, or after stallMax.
type origin struct {
	srv  *http.Server
	addr string

	rate         atomic.Int64 // bytes/s per response for ok; 0 unlimited
	version      atomic.Int64 // content version of noval objects
	requests     atomic.Int64
	redirTargets []string
}

const stallMax = 2 * time.Minute

func startOrigin() (*origin, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	o := &origin{addr: l.Addr().String()}
	o.srv = &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	go o.srv.Serve(l)
	return o, nil
}

func (o *origin) close() { o.srv.Close() }

func (o *origin) bump() { o.version.Add(1) }

// want is the content a client must get for path.
func (o *origin) want(path string, off, n int64) []byte {
	v := 0
	if strings.HasPrefix(path, "/noval/") {
		v = int(o.version.Load())
	}
	return origintest.Bytes(path, v, off, n)
}

func parsePath(p string) (mode string, size int64, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(p, "/"), "/", 3)
	if len(parts) != 3 {
		return "", 0, false
	}
	size, err := strconv.ParseInt(parts[1], 10, 64)
	return parts[0], size, err == nil && size >= 0
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.requests.Add(1)
	mode, size, ok := parsePath(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	ctx := r.Context()
	switch mode {
	case "stallhdr":
		stall(ctx)
		return
	case "redir":
		if int(size) >= len(o.redirTargets) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Location", o.redirTargets[size])
		w.WriteHeader(http.StatusFound)
		return
	case "revalslow":
		w.Header().Set("Cache-Control", "max-age=1")
		if r.Header.Get("If-None-Match") != "" {
			stall(ctx)
			w.Header().Set("Etag", `"r1"`)
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	hdr := w.Header()
	version := 0
	if mode == "noval" {
		version = int(o.version.Load())
	} else {
		hdr.Set("Etag", fmt.Sprintf(`"%s-%d"`, mode, size))
		if mode == "revalslow" {
			hdr.Set("Etag", `"r1"`)
		}
		hdr.Set("Last-Modified", origintest.DefaultLastModified.Format(http.TimeFormat))
	}
	if hdr.Get("Cache-Control") == "" {
		hdr.Set("Cache-Control", "public, max-age=31536000")
	}
	hdr.Set("Accept-Ranges", "bytes")
	start, n := int64(0), size
	status := http.StatusOK
	if rs, rn, ok := singleRange(r.Header.Values("Range"), size); ok {
		start, n, status = rs, rn, http.StatusPartialContent
		hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rs, rs+rn-1, size))
	}
	hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	rate := o.rate.Load()
	cut := n // where the body stops
	switch mode {
	case "slow":
		rate = 3000
	case "stallbody", "trunc":
		cut = n / 2
	}
	o.writeBody(ctx, w, r.URL.Path, version, start, cut, rate)
	switch mode {
	case "stallbody":
		w.(http.Flusher).Flush()
		stall(ctx)
		panic(http.ErrAbortHandler)
	case "trunc":
		panic(http.ErrAbortHandler)
	}
}

// writeBody sends bytes [start, start+n) paced at rate bytes/s (0: as fast
// as the connection takes them).
func (o *origin) writeBody(ctx context.Context, w http.ResponseWriter, path string, version int, start, n, rate int64) {
	chunk := int64(64 << 10)
	if rate > 0 {
		chunk = max(min(rate/20, chunk), 500)
	}
	buf := make([]byte, chunk)
	began := time.Now()
	for sent := int64(0); sent < n; {
		k := min(chunk, n-sent)
		origintest.Fill(buf[:k], path, version, start+sent)
		if _, err := w.Write(buf[:k]); err != nil {
			return
		}
		sent += k
		if rate > 0 {
			w.(http.Flusher).Flush()
			due := began.Add(time.Duration(float64(sent) / float64(rate) * float64(time.Second)))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				return
			}
		}
	}
}

func stall(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(stallMax):
	}
}

// singleRange parses the last Range line (as gatecache forwards it) when it
// holds one satisfiable range.
func singleRange(lines []string, size int64) (start, n int64, ok bool) {
	if len(lines) == 0 {
		return 0, 0, false
	}
	spec, found := strings.CutPrefix(lines[len(lines)-1], "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	if a == "" {
		k, err := strconv.ParseInt(b, 10, 64)
		if err != nil || k <= 0 {
			return 0, 0, false
		}
		k = min(k, size)
		return size - k, k, true
	}
	s, err := strconv.ParseInt(a, 10, 64)
	if err != nil || s >= size {
		return 0, 0, false
	}
	e := size - 1
	if b != "" {
		if e, err = strconv.ParseInt(b, 10, 64); err != nil || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	return s, e - s + 1, true
}

// counter is a loopback origin that must never be contacted: it counts the
// requests that reach it.
type counter struct {
	srv  *http.Server
	addr string
	hits atomic.Int64
	mu   sync.Mutex
}

func startCounter() (*counter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &counter{addr: l.Addr().String()}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		w.Write([]byte("not an allowed origin\n"))
	})}
	go c.srv.Serve(l)
	return c, nil
}
