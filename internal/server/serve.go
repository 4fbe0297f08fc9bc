package server

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"gatecache/internal/flight"
	"gatecache/internal/httprange"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// serveObject answers from a stored object whose current age is age.
// http.ServeContent does the Range, If-Range and conditional logic (RFC 9110
// §13, §14); the body comes straight from the stored data (by sendfile
// from a data file) when every block the response needs is present and
// verified, else through a flight.Reader that fetches what is missing.
// seeded is the fill of the response that discovered the object.
func (h *Handler) serveObject(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, seeded *flight.Fill, status string, age time.Duration) {
	meta := obj.Meta()
	hdr := w.Header()
	replayHeader(hdr, meta, age)
	emptyRangesUnsatisfiable(r, meta.Size)

	first, last, needs := neededBlocks(r, meta.Size, obj.BlockSize())
	if seeded == nil && (!needs || obj.Verified(first, last)) {
		if status == "" {
			status = statusHit
		}
		hdr.Set("Cache-Status", status)
		served, damaged := h.serveVerified(w, r, t, obj, meta)
		if served {
			return
		}
		if damaged {
			// Dropped before anything is sent, so that the next
			// request stores it anew; the reader below then passes
			// this response through from upstream, exactly sized.
			h.store.RemoveObject(obj)
		}
	}
	if status == "" {
		status = h.forwardStatus(obj, first, last, needs)
	}
	hdr.Set("Cache-Status", status)
	limit := obj.Size()
	if needs {
		_, limit = obj.BlockBounds(last)
	}
	src := &upstreamSource{up: h.upstream, t: t, meta: meta, hdr: forwardedFields(r)}
	rd := h.flights.NewReader(r.Context(), obj, src, limit, seeded)
	http.ServeContent(w, r, "", parseHTTPTime(meta.LastModified), rd)
	rd.Close()
	addMiss(w, rd.MissBytes())
	if err := rd.FileFault(); err != nil {
		h.log.Warn("cache data file came up short: passed the rest through, dropping the object",
			"key", t.Key, "err", err)
		h.store.RemoveObject(obj)
	}
	if err := rd.Err(); err != nil {
		if errors.Is(err, flight.ErrChanged) {
			// A new version upstream: forget this one so the next
			// request discovers it, and never splice the two.
			h.store.RemoveObject(obj)
		}
		if r.Context().Err() == nil {
			h.log.Warn("response aborted: upstream failed mid-body", "key", t.Key, "err", err)
		}
		// The status line is gone already: abort the response so the
		// client sees a broken transfer, never a wrong or short body
		// that looks complete.
		panic(http.ErrAbortHandler)
	}
}

// replayHeader sets the stored response's fields, with Age replaced.
func replayHeader(hdr http.Header, meta store.Meta, age time.Duration) {
	for _, f := range meta.Header {
		// Stored names are canonical and their values exactly sized and
		// never changed: shared, not copied, on every hit.
		hdr[f.Name] = f.Values
	}
	if age > 0 {
		// RFC 9111 §5.1, §4.2.3: a response from the store says its
		// current age, replacing the Age it was stored with. A miss (age
		// 0) keeps the Age upstream sent, if any.
		hdr["Age"] = []string{strconv.FormatInt(int64(age/time.Second), 10)}
	}
	if meta.ETag != "" {
		hdr.Set("Etag", meta.ETag)
	}
	if _, ok := hdr["Content-Type"]; !ok {
		// Set, so that ServeContent does not sniff (read) the body.
		hdr["Content-Type"] = octetStream
	}
	hdr["Accept-Ranges"] = acceptBytes
}

// Values every hit sends, shared as stored values are: a header's value
// slices are replaced, never written into.
var (
	octetStream = []string{"application/octet-stream"}
	acceptBytes = []string{"bytes"}
)

// emptyRangesUnsatisfiable rewrites a Range that net/http would answer with
// a zero-length 206 ("bytes=-0") so that it answers 416, as RFC 9110
// §14.1.1 says (see httprange.ServeHeader).
func emptyRangesUnsatisfiable(r *http.Request, size int64) {
	rh := r.Header.Get("Range")
	if rh == "" {
		return
	}
	if v := httprange.ServeHeader(rh, size); v == "" {
		delete(r.Header, "Range")
	} else if v != rh {
		r.Header["Range"] = []string{v}
	}
}

// serveVerified answers from memory or the stored data, when every block
// the response needs is verified. It reports whether it served the request;
// when not, it has written nothing, and damaged says that the stored data's
// size is wrong.
func (h *Handler) serveVerified(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, meta store.Meta) (served, damaged bool) {
	hdr := w.Header()
	if mem := h.hot.memoryCopy(obj); mem != nil {
		// Small objects from memory, through Write so that the header
		// and body leave in one write.
		if plainGet(r) {
			// The common case needs none of ServeContent's range and
			// precondition work: answer it directly.
			if meta.LastModified != "" {
				hdr.Set("Last-Modified", meta.LastModified)
			}
			hdr.Set("Content-Length", strconv.Itoa(len(mem)))
			w.WriteHeader(http.StatusOK)
			w.Write(mem)
			return true, false
		}
		http.ServeContent(writerOnly{w}, r, "", parseHTTPTime(meta.LastModified), bytes.NewReader(mem))
		return true, false
	}
	data, err := obj.Open()
	if err != nil {
		return false, false // the reader passes it through
	}
	defer data.Close()
	// ServeContent takes the length from its content (it seeks to its
	// end): a file cut short or extended under the cache would be served
	// with the wrong length and junk. One fstat (Size) keeps the *os.File,
	// and so sendfile, on the healthy path.
	size, err := data.Size()
	if err == nil && size == meta.Size {
		var content io.ReadSeeker
		if f, ok := data.(interface{ File() *os.File }); ok {
			content = f.File() // net/http sends an *os.File with sendfile
		} else {
			content = io.NewSectionReader(data, 0, size)
		}
		http.ServeContent(w, r, "", parseHTTPTime(meta.LastModified), content)
		return true, false
	}
	if err != nil {
		size = -1
	}
	// A storage fault. The reader serves exactly the object's bytes:
	// what the file still holds, the rest passed through.
	h.log.Warn("cache data file has the wrong size: serving the object through checks and dropping it",
		"key", t.Key, "path", obj.Location(), "file_size", size, "size", meta.Size, "err", err)
	return false, true
}

// forwardStatus is the Cache-Status of a response read through a reader:
// what this request forwards itself (RFC 9211 §2.2, §2.4). Blocks another
// request is filling cost it no upstream request: it was collapsed with
// that one.
func (h *Handler) forwardStatus(obj *store.Object, first, last int64, needs bool) string {
	present, filling := h.flights.Coverage(obj, first, last)
	switch total := last - first + 1; {
	case !needs || present == total:
		return statusHit
	case present+filling == total:
		return statusCollapsed
	case present == 0:
		return statusMiss
	}
	return statusPartial
}

// neededBlocks is the span of blocks a GET needs: the blocks of its Range, or
// the whole object. A conditional range (If-Range) may turn into the whole
// object, so it counts as whole. HEAD needs none.
func neededBlocks(r *http.Request, size, blockSize int64) (first, last int64, needs bool) {
	if r.Method == http.MethodHead || size == 0 {
		return 0, -1, false
	}
	span := httprange.Range{Start: 0, Length: size}
	if rh := r.Header.Get("Range"); rh != "" && r.Header.Get("If-Range") == "" {
		ranges, err := httprange.Parse(rh, size)
		if err != nil || len(ranges) == 0 {
			return 0, -1, false // ServeContent answers 416, no body
		}
		span, _ = httprange.Span(ranges)
	}
	first, last = httprange.Blocks(span.Start, span.Length, blockSize)
	return first, last, true
}

func parseHTTPTime(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}
	}
	return t
}

// plainGet reports a GET with no Range and no precondition: its answer is
// the whole object, status 200.
func plainGet(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, name := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if _, ok := r.Header[name]; ok {
			return false
		}
	}
	return true
}
