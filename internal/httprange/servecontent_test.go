package httprange

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The cache decides which blocks to fetch with Parse and then serves them
// with http.ServeContent, so the two must agree. These tests serve a
// bytes.Reader with ServeContent and compare what it answers with what
// Parse implies.

// served is what a response says about ranges.
type served struct {
	status int
	cr     string   // Content-Range of a single-part response
	parts  []string // Content-Range of each part of a multipart/byteranges body
}

func content(size int64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// serveContent runs http.ServeContent for a GET with the given Range header
// and checks that every byte it sends matches the ranges it announces.
func serveContent(t testing.TB, header string, size int64) served {
	t.Helper()
	body := content(size)
	req := httptest.NewRequest(http.MethodGet, "/object", nil)
	if header != "" {
		req.Header.Set("Range", header)
	}
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "object", time.Time{}, bytes.NewReader(body))
	res := rec.Result()
	got := served{status: res.StatusCode, cr: res.Header.Get("Content-Range")}
	checkBytes := func(cr string, part []byte) {
		start, end, total, err := ParseContentRange(cr)
		if err != nil || total != size {
			t.Fatalf("Range %q size %d: ServeContent sent Content-Range %q (%v)", header, size, cr, err)
		}
		if !bytes.Equal(part, body[start:end+1]) {
			t.Fatalf("Range %q size %d: part %q has the wrong bytes", header, size, cr)
		}
	}
	data, _ := io.ReadAll(res.Body)
	switch {
	case got.status == http.StatusOK && !bytes.Equal(data, body):
		t.Fatalf("Range %q size %d: 200 with the wrong body", header, size)
	case got.status == http.StatusPartialContent && got.cr != "":
		checkBytes(got.cr, data)
	case got.status == http.StatusPartialContent:
		mt, params, err := mime.ParseMediaType(res.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Range %q size %d: 206 without Content-Range, Content-Type %q", header, size, res.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(bytes.NewReader(data), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Range %q size %d: multipart: %v", header, size, err)
			}
			b, _ := io.ReadAll(p)
			cr := p.Header.Get("Content-Range")
			checkBytes(cr, b)
			got.parts = append(got.parts, cr)
		}
	}
	return got
}

// knownDifference reports the inputs for which Parse deliberately differs
// from net/http (see Parse): net/http builds a zero-length range from a
// suffix "-0", or from any suffix range of an empty object, and answers
// 206 with a Content-Range such as "bytes 10-9/10".
func knownDifference(header string, size int64) bool {
	specs, ok := strings.CutPrefix(header, "bytes=")
	if !ok {
		return false
	}
	for spec := range strings.SplitSeq(specs, ",") {
		first, last, ok := strings.Cut(trim(spec), "-")
		if !ok || trim(first) != "" {
			continue
		}
		if n, err := strconv.ParseInt(trim(last), 10, 64); err == nil && trim(last)[0] != '-' && (n == 0 || size == 0) {
			return true
		}
	}
	return false
}

// expected is what ServeContent should answer according to Parse.
func expected(header string, size int64) served {
	ranges, err := Parse(header, size)
	switch {
	case errors.Is(err, ErrMalformed):
		if specs, ok := strings.CutPrefix(header, "bytes="); ok && strings.Trim(specs, ", \t\r\n") == "" {
			// An empty range set: net/http ignores the header.
			return served{status: http.StatusOK}
		}
		return served{status: http.StatusRequestedRangeNotSatisfiable}
	case errors.Is(err, ErrUnsatisfiable):
		if size == 0 {
			// ServeContent answers 200 with the empty body: "Some
			// clients add a Range header to all requests".
			return served{status: http.StatusOK}
		}
		return served{status: http.StatusRequestedRangeNotSatisfiable, cr: formatContentRange(-1, -1, size)}
	case err != nil:
		panic(err)
	case len(ranges) == 0:
		return served{status: http.StatusOK}
	}
	var sum int64
	for _, r := range ranges {
		sum += r.Length
	}
	if sum > size {
		// ServeContent ignores ranges adding up to more than the object.
		return served{status: http.StatusOK}
	}
	if len(ranges) == 1 {
		return served{status: http.StatusPartialContent, cr: formatContentRange(ranges[0].Start, ranges[0].End()-1, size)}
	}
	s := served{status: http.StatusPartialContent}
	for _, r := range ranges {
		s.parts = append(s.parts, formatContentRange(r.Start, r.End()-1, size))
	}
	return s
}

func checkAgainstServeContent(t testing.TB, header string, size int64) {
	t.Helper()
	if knownDifference(header, size) {
		return
	}
	got, want := serveContent(t, header, size), expected(header, size)
	if got.status != want.status || got.cr != want.cr || strings.Join(got.parts, "|") != strings.Join(want.parts, "|") {
		t.Errorf("Range %q size %d: ServeContent %+v, Parse implies %+v", header, size, got, want)
	}
}

var crossCheckHeaders = []string{
	"",
	"bytes=0-0", "bytes=0-", "bytes=0-9", "bytes=1-3", "bytes=5-100", "bytes=9-",
	"bytes=-1", "bytes=-4", "bytes=-10", "bytes=-1000",
	"bytes=10-", "bytes=10-20", "bytes=1000-", "bytes=10-x",
	"bytes=0-1,4-5", "bytes=4-5,0-1", "bytes=0-1,20-30", "bytes=20-30,-2",
	"bytes=0-,0-", "bytes=0-5,3-8", "bytes=0-0,0-0,0-0",
	"bytes= 0-1 , 4-5 ", "bytes=,0-1,,", "bytes=0 - 1", "bytes=007-008", "bytes=+1-+2", "bytes=-+3",
	"bytes=", "bytes= , ", "bytes", "Bytes=0-1", "items=0-1", "bytes=x", "bytes=1",
	"bytes=-", "bytes=--1", "bytes=5-4", "bytes=1--2", "bytes=0-1,x",
	"bytes=9223372036854775808-", "bytes=0-99999999999999999999",
	"bytes=-0", "bytes=-0,0-1",
}

func TestParseMatchesServeContent(t *testing.T) {
	for _, size := range []int64{0, 1, 2, 10, 1000} {
		for _, h := range crossCheckHeaders {
			checkAgainstServeContent(t, h, size)
		}
	}
}

// With ServeHeader's value, ServeContent answers as Parse reads the
// client's header, the known differences included: "-0" is 416, and an
// empty range beside others is left out.
func TestServeHeaderClosesTheKnownDifferences(t *testing.T) {
	differences := 0
	for _, size := range []int64{0, 1, 2, 10, 1000} {
		for _, h := range append(crossCheckHeaders, "bytes=-0,-0", "bytes=0-1,-0,4-5", "bytes=-00", "bytes=-5") {
			if knownDifference(h, size) {
				differences++
			}
			got, want := serveContent(t, ServeHeader(h, size), size), expected(h, size)
			if got.status != want.status || got.cr != want.cr || strings.Join(got.parts, "|") != strings.Join(want.parts, "|") {
				t.Errorf("Range %q size %d: ServeContent with %q answers %+v, Parse implies %+v", h, size, ServeHeader(h, size), got, want)
			}
		}
	}
	if differences == 0 {
		t.Fatal("no header of the known differences was tried")
	}
}

func TestServeHeaderLeavesOtherHeadersAlone(t *testing.T) {
	for _, h := range crossCheckHeaders {
		if !knownDifference(h, 10) && ServeHeader(h, 10) != h {
			t.Errorf("ServeHeader(%q) = %q, want it unchanged", h, ServeHeader(h, 10))
		}
	}
	if got := ServeHeader("bytes=-0", 10); got != "bytes=10-" {
		t.Errorf(`ServeHeader("bytes=-0", 10) = %q`, got)
	}
}
