package origintest

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// do sends a request to o with the given headers (alternating key, value)
// and returns the response with its body fully read.
func do(t *testing.T, o *Origin, method, path string, kv ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, o.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := o.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// mustDo is do for answers that must arrive intact with the given status.
func mustDo(t *testing.T, o *Origin, status int, method, path string, kv ...string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := do(t, o, method, path, kv...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s %v: status %d, want %d", method, path, kv, resp.StatusCode, status)
	}
	return resp, body
}

func TestFullGet(t *testing.T) {
	o := New(t)
	o.Set("/pool/a.deb", Object{Size: 100_003, Version: 2})
	resp, body := mustDo(t, o, 200, "GET", "/pool/a.deb?cacheHostOrigin=x")
	if !bytes.Equal(body, o.Want("/pool/a.deb")) {
		t.Fatal("body differs from Want")
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Length": "100003",
		"Accept-Ranges":  "bytes",
		"Cache-Control":  "public, max-age=31536000",
		"Content-Type":   "application/octet-stream",
		"Last-Modified":  "Mon, 01 Jan 2024 00:00:00 GMT",
		"Etag":           defaultETag("/pool/a.deb", 2, 100_003),
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	mustDo(t, o, 404, "GET", "/pool/missing.deb")
	mustDo(t, o, 404, "GET", "/pool//a.deb") // no path cleaning
	mustDo(t, o, 405, "POST", "/pool/a.deb")
}

func TestObjectOptions(t *testing.T) {
	o := New(t)
	lm := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	o.Set("/custom", Object{Size: 10, ETag: `W/"v1"`, LastModified: lm, CacheControl: "no-cache",
		ContentType: "text/plain", Header: http.Header{"X-Extra": {"1"}}})
	o.Set("/bare", Object{Size: 10, ETag: "-", NoLastModified: true, CacheControl: "-"})
	o.Set("/moved", Object{Redirect: "/custom"})
	o.Set("/forbidden", Object{Size: 10, Status: 403})

	resp, _ := mustDo(t, o, 200, "GET", "/custom")
	for k, want := range map[string]string{"Etag": `W/"v1"`, "Last-Modified": lm.Format(http.TimeFormat),
		"Cache-Control": "no-cache", "Content-Type": "text/plain", "X-Extra": "1"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	resp, _ = mustDo(t, o, 200, "GET", "/bare")
	for _, k := range []string{"Etag", "Last-Modified", "Cache-Control"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("/bare sent %s: %q", k, v)
		}
	}
	req, _ := http.NewRequest("GET", o.URL+"/moved", nil)
	resp, err := o.Client().Transport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/custom" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	mustDo(t, o, 403, "GET", "/forbidden")

	o.Set("/signed", Object{Size: 10, Query: "sig=good"})
	mustDo(t, o, 200, "GET", "/signed?sig=good")
	mustDo(t, o, 404, "GET", "/signed?sig=expired")
	mustDo(t, o, 404, "GET", "/signed")
}

func TestRanges(t *testing.T) {
	o := New(t)
	const size = 1000
	o.Set("/r", Object{Size: size})
	want := o.Want("/r")
	for _, tc := range []struct {
		h          string
		start, end int
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=100-199", 100, 199},
		{"bytes=900-", 900, 999},
		{"bytes=-10", 990, 999},
		{"bytes=995-5000", 995, 999},
	} {
		resp, body := mustDo(t, o, 206, "GET", "/r", "Range", tc.h)
		cr := "bytes " + strconv.Itoa(tc.start) + "-" + strconv.Itoa(tc.end) + "/1000"
		if got := resp.Header.Get("Content-Range"); got != cr {
			t.Errorf("%s: Content-Range %q, want %q", tc.h, got, cr)
		}
		if !bytes.Equal(body, want[tc.start:tc.end+1]) {
			t.Errorf("%s: wrong bytes", tc.h)
		}
	}
	resp, _ := mustDo(t, o, 416, "GET", "/r", "Range", "bytes=1000-")
	if got := resp.Header.Get("Content-Range"); got != "bytes */1000" {
		t.Errorf("416 Content-Range %q", got)
	}
	for _, h := range []string{"bytes=0-1,5-6", "bytes=zz", "bytes=9-1"} {
		if _, body := mustDo(t, o, 200, "GET", "/r", "Range", h); !bytes.Equal(body, want) {
			t.Errorf("%s: expected the whole body", h)
		}
	}
	o.Set("/plain", Object{Size: size, IgnoreRange: true})
	resp, body := mustDo(t, o, 200, "GET", "/plain", "Range", "bytes=0-9")
	if len(body) != size || resp.Header.Get("Accept-Ranges") != "" {
		t.Errorf("IgnoreRange: len %d, Accept-Ranges %q", len(body), resp.Header.Get("Accept-Ranges"))
	}
}

func TestConditionals(t *testing.T) {
	o := New(t)
	o.Set("/c", Object{Size: 500})
	resp, _ := mustDo(t, o, 200, "GET", "/c")
	etag, lm := resp.Header.Get("Etag"), resp.Header.Get("Last-Modified")
	want := o.Want("/c")

	// If-Range with the current validator honours the range...
	mustDo(t, o, 206, "GET", "/c", "Range", "bytes=10-19", "If-Range", etag)
	mustDo(t, o, 206, "GET", "/c", "Range", "bytes=10-19", "If-Range", lm)
	// ...and with a stale or weak one answers the whole new body.
	for _, ir := range []string{`"stale"`, "W/" + etag, "Tue, 02 Jan 2024 00:00:00 GMT"} {
		if _, body := mustDo(t, o, 200, "GET", "/c", "Range", "bytes=10-19", "If-Range", ir); !bytes.Equal(body, want) {
			t.Errorf("If-Range %s: expected the whole body", ir)
		}
	}

	o.ResetStats()
	resp, body := mustDo(t, o, 304, "GET", "/c", "If-None-Match", `"x", `+etag)
	if len(body) != 0 || resp.Header.Get("Etag") != etag {
		t.Errorf("304: body %d bytes, ETag %q", len(body), resp.Header.Get("Etag"))
	}
	mustDo(t, o, 304, "GET", "/c", "If-None-Match", "W/"+etag) // weak comparison
	mustDo(t, o, 304, "GET", "/c", "If-Modified-Since", lm)
	mustDo(t, o, 200, "GET", "/c", "If-None-Match", `"other"`)
	mustDo(t, o, 200, "GET", "/c", "If-Modified-Since", "Sun, 31 Dec 2023 23:59:59 GMT")
	// If-None-Match takes precedence over If-Modified-Since.
	mustDo(t, o, 200, "GET", "/c", "If-None-Match", `"other"`, "If-Modified-Since", lm)

	// A new version changes the validator, so old conditionals miss.
	o.Set("/c", Object{Size: 500, Version: 2})
	mustDo(t, o, 200, "GET", "/c", "If-None-Match", etag)

	if s := o.Stats(); s.Conditional != 7 || s.NotModified != 3 || s.Requests != 7 {
		t.Errorf("stats %+v, want 7 requests, 7 conditional, 3 not modified", s)
	}
}

func TestHeadAndChunked(t *testing.T) {
	o := New(t)
	o.Set("/h", Object{Size: 12345})
	resp, body := mustDo(t, o, 200, "HEAD", "/h")
	if len(body) != 0 || resp.ContentLength != 12345 {
		t.Errorf("HEAD: body %d, ContentLength %d", len(body), resp.ContentLength)
	}
	resp, _ = mustDo(t, o, 206, "HEAD", "/h", "Range", "bytes=0-9")
	if resp.Header.Get("Content-Range") != "bytes 0-9/12345" {
		t.Errorf("HEAD range: %q", resp.Header.Get("Content-Range"))
	}
	if s := o.Stats(); s.BodyBytes != 0 {
		t.Errorf("HEAD counted %d body bytes", s.BodyBytes)
	}

	for _, size := range []int64{10, 100_000} {
		o.Set("/chunked", Object{Size: size, Chunked: true})
		resp, body = mustDo(t, o, 200, "GET", "/chunked")
		if resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "" ||
			len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
			t.Errorf("size %d: ContentLength %d, TransferEncoding %v", size, resp.ContentLength, resp.TransferEncoding)
		}
		if !bytes.Equal(body, o.Want("/chunked")) {
			t.Errorf("size %d: chunked body differs", size)
		}
	}
}

func TestStatsAndRequests(t *testing.T) {
	o := New(t)
	o.Set("/a", Object{Size: 100})
	o.Set("/b", Object{Size: 50})
	mustDo(t, o, 200, "GET", "/a?x=1")
	mustDo(t, o, 206, "GET", "/a", "Range", "bytes=0-9")
	mustDo(t, o, 200, "GET", "/b")
	mustDo(t, o, 404, "GET", "/none")

	if s := o.Stats(); s != (Stats{Requests: 4, RangeRequests: 1, BodyBytes: 160}) {
		t.Errorf("Stats = %+v", s)
	}
	if s := o.PathStats("/a"); s != (Stats{Requests: 2, RangeRequests: 1, BodyBytes: 110}) {
		t.Errorf("PathStats(/a) = %+v", s)
	}
	reqs := o.Requests()
	if len(reqs) != 4 || reqs[0].URI != "/a?x=1" || reqs[0].Method != "GET" || reqs[0].Host != o.Addr ||
		reqs[1].Header.Get("Range") != "bytes=0-9" || reqs[3].URI != "/none" {
		t.Errorf("Requests = %+v", reqs)
	}
	reqs[1].Header.Set("Range", "mutated")
	if o.Requests()[1].Header.Get("Range") != "bytes=0-9" {
		t.Error("Requests returned shared headers")
	}
	o.ResetStats()
	if s := o.Stats(); s != (Stats{}) || len(o.Requests()) != 0 || o.PathStats("/a") != (Stats{}) {
		t.Errorf("after ResetStats: %+v, %d requests", s, len(o.Requests()))
	}
}

func TestHold(t *testing.T) {
	o := New(t)
	o.Set("/h", Object{Size: 1000})
	parked := o.Hold()
	type result struct {
		body []byte
		err  error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			resp, err := o.Client().Get(o.URL + "/h")
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- result{b, err}
		}()
	}
	<-parked
	<-parked
	if s := o.Stats(); s.Requests != 2 || s.BodyBytes != 0 {
		t.Fatalf("while held: %+v", s)
	}
	select {
	case r := <-results:
		t.Fatalf("request finished while held: %v", r.err)
	default:
	}
	o.Unhold()
	for range 2 {
		r := <-results
		if r.err != nil || !bytes.Equal(r.body, o.Want("/h")) {
			t.Fatalf("after Unhold: err %v, %d bytes", r.err, len(r.body))
		}
	}
	// Not held any more: requests go straight through.
	mustDo(t, o, 200, "GET", "/h")
}

func TestTLS(t *testing.T) {
	o := NewTLS(t)
	o.Set("/s", Object{Size: 4096})
	if _, body := mustDo(t, o, 200, "GET", "/s"); !bytes.Equal(body, o.Want("/s")) {
		t.Fatal("TLS body differs")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: o.CertPool()}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(o.URL + "/s")
	if err != nil {
		t.Fatalf("client trusting CertPool: %v", err)
	}
	resp.Body.Close()
	if New(t).CertPool() != nil {
		t.Error("plain origin has a CertPool")
	}
}

// TestLargeObjectConstantMemory streams 64 MiB and checks that neither side
// of the origin materialised the object.
func TestLargeObjectConstantMemory(t *testing.T) {
	const size = 64 << 20
	o := New(t)
	o.Set("/big", Object{Size: size, Version: 7})
	got := make([]byte, 64<<10)
	want := make([]byte, len(got))

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	resp, err := o.Client().Get(o.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	var off int64
	for {
		n, err := io.ReadFull(resp.Body, got)
		Fill(want[:n], "/big", 7, off)
		if !bytes.Equal(got[:n], want[:n]) {
			t.Fatalf("wrong bytes at offset %d", off)
		}
		off += int64(n)
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if off != size {
		t.Fatalf("read %d bytes, want %d", off, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("serving 64 MiB allocated %d bytes", alloc)
	} else {
		t.Logf("serving 64 MiB allocated %d bytes", alloc)
	}
}
