package origintest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// reply is the body part of an answer: length bytes of the content stream
// seed starting at start, plus how to frame them.
type reply struct {
	path    string
	seed    uint64
	status  int // 200 or 206
	start   int64
	length  int64
	chunked bool
}

// ServeHTTP serves the installed objects. The Origin is the whole handler
// (no ServeMux) so paths are matched exactly as the server parsed them,
// without cleaning or redirects.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	o.record(r)
	if !o.waitGate(r) {
		panic(http.ErrAbortHandler)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if obj, ok := o.lookup(path); ok && obj.OtherMethods != 0 {
			for k, v := range obj.Header {
				w.Header()[k] = v
			}
			shortStatus(w, obj.OtherMethods)
			return
		}
		w.Header().Set("Allow", "GET, HEAD")
		shortStatus(w, http.StatusMethodNotAllowed)
		return
	}
	obj, ok := o.lookup(path)
	if !ok || (obj.Query != "" && r.URL.RawQuery != obj.Query) {
		shortStatus(w, http.StatusNotFound)
		return
	}
	h := w.Header()
	for k, v := range obj.Header {
		h[k] = append([]string(nil), v...)
	}
	switch {
	case obj.Redirect != "":
		h.Set("Location", obj.Redirect)
		shortStatus(w, http.StatusFound)
		return
	case obj.Status != 0:
		shortStatus(w, obj.Status)
		return
	}
	if code := statusFault(obj.Fault); code != 0 && o.takeFault(path, &obj) {
		shortStatus(w, code)
		return
	}

	etag := obj.etag(path)
	lastMod, hasLastMod := obj.lastModified()
	if etag != "" {
		h.Set("ETag", etag)
	}
	if hasLastMod {
		h.Set("Last-Modified", lastMod.Format(http.TimeFormat))
	}
	switch obj.CacheControl {
	case "-":
	case "":
		h.Set("Cache-Control", "public, max-age=31536000")
	default:
		h.Set("Cache-Control", obj.CacheControl)
	}
	if notModified(r, &obj, etag) {
		o.add(path, Stats{NotModified: 1})
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if obj.ContentType != "" {
		h.Set("Content-Type", obj.ContentType)
	} else {
		h.Set("Content-Type", "application/octet-stream")
	}

	size := obj.size()
	rp := reply{path: path, seed: seedOf(path, obj.Version), status: http.StatusOK, length: size, chunked: obj.Chunked}
	if !obj.IgnoreRange {
		h.Set("Accept-Ranges", "bytes")
		if rh := r.Header.Get("Range"); rh != "" && ifRangeMatches(r.Header.Get("If-Range"), &obj, etag) {
			start, n, kind := parseRange(rh, size)
			switch kind {
			case rangeUnsatisfiable:
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				shortStatus(w, http.StatusRequestedRangeNotSatisfiable)
				return
			case rangePartial:
				rp.status, rp.start, rp.length = http.StatusPartialContent, start, n
				total := size
				if obj.Fault == FaultWrongRange && o.takeFault(path, &obj) {
					rp.start, total = wrongRange(start, n, size)
				}
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rp.start, rp.start+rp.length-1, total))
			}
		}
	}

	if r.Method == http.MethodGet && bodyFault(obj.Fault) && o.takeFault(path, &obj) {
		o.serveFault(w, r, rp, obj.Fault, min(max(obj.FaultAt, 0), rp.length))
		return
	}
	o.writeHeader(w, rp)
	if r.Method == http.MethodHead {
		return
	}
	o.copyBody(w, rp, 0, rp.length)
}

// writeHeader frames rp. For chunked objects it flushes right away, because
// net/http would otherwise compute a Content-Length for small bodies.
func (o *Origin) writeHeader(w http.ResponseWriter, rp reply) {
	if !rp.chunked {
		w.Header().Set("Content-Length", strconv.FormatInt(rp.length, 10))
	}
	w.WriteHeader(rp.status)
	if rp.chunked {
		_ = http.NewResponseController(w).Flush()
	}
}

// shortStatus answers code with a one-line text body.
func shortStatus(w http.ResponseWriter, code int) {
	body := fmt.Sprintf("%d %s\n", code, http.StatusText(code))
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

// notModified evaluates If-None-Match, or If-Modified-Since when there is
// no If-None-Match (RFC 9110 13.2.2).
func notModified(r *http.Request, obj *Object, etag string) bool {
	if inm := r.Header.Values("If-None-Match"); len(inm) > 0 {
		return etagListMatch(strings.Join(inm, ","), etag)
	}
	ims := r.Header.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	lm, ok := obj.lastModified()
	if !ok {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !lm.After(t)
}

// etagListMatch is the weak comparison If-None-Match uses.
func etagListMatch(list, etag string) bool {
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		if etag != "" && tag != "" && strings.TrimPrefix(tag, "W/") == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}

// ifRangeMatches reports whether a Range may be honoured: there is no
// If-Range, or it names the current strong ETag or exact Last-Modified.
func ifRangeMatches(v string, obj *Object, etag string) bool {
	v = strings.TrimSpace(v)
	if v == "" {
		return true
	}
	if strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "W/") {
		// Weak tags never match for If-Range (strong comparison).
		return etag != "" && !strings.HasPrefix(etag, "W/") && v == etag
	}
	lm, ok := obj.lastModified()
	if !ok {
		return false
	}
	t, err := http.ParseTime(v)
	return err == nil && t.Equal(lm)
}

type rangeKind int

const (
	rangeWhole rangeKind = iota // absent, multi-range or malformed: send 200
	rangePartial
	rangeUnsatisfiable
)

// parseRange interprets a single "bytes=" range against size. Multi-range
// and malformed headers are deliberately answered with the whole body (a
// server may ignore Range), which keeps the fake simple and exercises the
// cache's handling of a 200 to a range request.
func parseRange(s string, size int64) (start, n int64, kind rangeKind) {
	const unit = "bytes="
	s = strings.TrimSpace(s)
	if len(s) < len(unit) || !strings.EqualFold(s[:len(unit)], unit) {
		return 0, 0, rangeWhole
	}
	spec := strings.TrimSpace(s[len(unit):])
	first, last, ok := strings.Cut(spec, "-")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, rangeWhole
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" {
		suffix, ok := parseDigits(last)
		if !ok {
			return 0, 0, rangeWhole
		}
		if suffix == 0 || size == 0 {
			return 0, 0, rangeUnsatisfiable
		}
		suffix = min(suffix, size)
		return size - suffix, suffix, rangePartial
	}
	a, ok := parseDigits(first)
	if !ok {
		return 0, 0, rangeWhole
	}
	end := size - 1
	if last != "" {
		b, ok := parseDigits(last)
		if !ok || b < a {
			return 0, 0, rangeWhole
		}
		end = min(b, end)
	}
	if a >= size {
		return 0, 0, rangeUnsatisfiable
	}
	return a, end - a + 1, rangePartial
}

// parseDigits accepts only plain decimal digits (no sign, no spaces), as
// the Range grammar does.
func parseDigits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}
