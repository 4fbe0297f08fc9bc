package server

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"
	"time"

	"gatecache/internal/flight"
	"gatecache/internal/httprange"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// serveObject answers from a stored object whose current age is age.
// http.ServeContent does the Range, If-Range and conditional logic (RFC 9110
// §13, §14); the body comes
// straight from the data file (sendfile) when every block the response needs
// is present and verified, else through a flight.Reader that fetches what is
// missing. seeded is the fill of the response that discovered the object.
func (h *Handler) serveObject(w http.ResponseWriter, r *http.Request, t origin.Target, obj *store.Object, seeded *flight.Fill, status string, age time.Duration) {
	meta := obj.Meta()
	hdr := w.Header()
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
		hdr.Set("Content-Type", "application/octet-stream")
	}
	hdr.Set("Accept-Ranges", "bytes")

	first, last, needs := neededBlocks(r, meta.Size, obj.BlockSize())
	if seeded == nil && (!needs || obj.Verified(first, last)) {
		if status == "" {
			status = statusHit
		}
		hdr.Set("Cache-Status", status)
		if mem := obj.MemoryCopy(); mem != nil {
			// Small objects from memory, through Write so that the
			// header and body leave in one write.
			if plainGet(r) {
				// The common case needs none of ServeContent's range
				// and precondition work: answer it directly.
				if meta.LastModified != "" {
					hdr.Set("Last-Modified", meta.LastModified)
				}
				hdr.Set("Content-Length", strconv.Itoa(len(mem)))
				w.WriteHeader(http.StatusOK)
				w.Write(mem)
				return
			}
			http.ServeContent(writerOnly{w}, r, "", parseHTTPTime(meta.LastModified), bytes.NewReader(mem))
			return
		}
		if f, err := obj.Open(); err == nil {
			http.ServeContent(w, r, "", parseHTTPTime(meta.LastModified), f)
			f.Close()
			return
		}
	}
	if status == "" {
		switch present := obj.PresentCount(first, last); {
		case !needs || present == last-first+1:
			status = statusHit
		case present == 0:
			status = statusMiss
		default:
			status = statusPartial
		}
	}
	hdr.Set("Cache-Status", status)
	limit := obj.Size()
	if needs {
		_, limit = obj.BlockBounds(last)
	}
	src := &upstreamSource{up: h.upstream, t: t, meta: meta, hdr: upstreamHeader(r)}
	rd := h.flights.NewReader(r.Context(), obj, src, limit, seeded)
	http.ServeContent(w, r, "", parseHTTPTime(meta.LastModified), rd)
	rd.Close()
	addMiss(w, rd.MissBytes())
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

// neededBlocks is the span of blocks a GET needs: the blocks of its Range, or
// the whole object. A conditional range (If-Range) may turn into the whole
// object, so it counts as whole. HEAD needs none.
func neededBlocks(r *http.Request, size, blockSize int64) (first, last int64, needs bool) {
	if r.Method == http.MethodHead || size == 0 {
		return 0, -1, false
	}
	whole := func() (int64, int64, bool) { return 0, (size - 1) / blockSize, true }
	rh := r.Header.Get("Range")
	if rh == "" || r.Header.Get("If-Range") != "" {
		return whole()
	}
	ranges, err := httprange.Parse(rh, size)
	if err != nil || len(ranges) == 0 {
		return 0, -1, false // ServeContent answers 416, no body
	}
	span, _ := httprange.Span(ranges)
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
