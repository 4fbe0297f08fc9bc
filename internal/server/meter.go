package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"
)

// meter wraps the ResponseWriter of one request: it notes the status and
// counts body bytes, and how many of them had to come from upstream, for the
// summary and the access log. It keeps io.ReaderFrom so that sendfile still
// applies to hits.
type meter struct {
	http.ResponseWriter
	ctx    context.Context // the request's: done once the client has gone
	alias  string          // origin alias, once resolved
	status int
	bytes  int64
	miss   int64
}

func (m *meter) WriteHeader(code int) {
	if m.status == 0 {
		m.status = code
	}
	m.ResponseWriter.WriteHeader(code)
}

func (m *meter) Write(p []byte) (int, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	n, err := m.ResponseWriter.Write(p)
	m.bytes += int64(n)
	return n, err
}

func (m *meter) ReadFrom(src io.Reader) (int64, error) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	n, err := m.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
	m.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (m *meter) Unwrap() http.ResponseWriter { return m.ResponseWriter }

// addMiss notes that n of the bytes written to w came from upstream.
func addMiss(w http.ResponseWriter, n int64) {
	if m, ok := w.(*meter); ok {
		m.miss += n
	}
}

// writerOnly hides a ResponseWriter's io.ReaderFrom, so that a small body
// goes through Write and leaves in one write with the header.
type writerOnly struct{ http.ResponseWriter }

// clientGone reports whether w's client has closed its connection: nobody
// is left to answer.
func clientGone(w http.ResponseWriter) bool {
	m, ok := w.(*meter)
	return ok && m.gone()
}

func (m *meter) gone() bool { return m.ctx != nil && m.ctx.Err() != nil }

// statusClientGone is logged for a client that left before any byte of its
// response was written (nginx's 499, which operators of MCC know).
const statusClientGone = 499

// done accounts for a finished request: content bytes to the recorder by
// origin alias, and the access log line. panicked says the handler aborted
// the response.
//
// The log records what the client got: status 499 when it left before any
// body byte was written (whatever status line was prepared), and
// aborted=true when the response did not complete: the handler aborted it,
// the client left, or the body is shorter than its Content-Length.
func (h *Handler) done(m *meter, r *http.Request, start time.Time, panicked bool) {
	if (m.status == http.StatusOK || m.status == http.StatusPartialContent) && m.alias != "" && h.recorder != nil {
		h.recorder.Record(m.alias, m.bytes-m.miss, m.miss)
	}
	if cs := m.Header()["Cache-Status"]; len(cs) == 1 && cs[0] == statusCollapsed {
		h.coalesced.Add(1)
	}
	if h.accessLog == nil {
		return // what follows is for the log line only
	}
	status := m.status
	if status == 0 && !panicked {
		status = http.StatusOK // net/http sends 200 for a handler that wrote nothing
	}
	gone := m.gone()
	if gone && m.bytes == 0 {
		status = statusClientGone
	}
	aborted := panicked || gone || m.shortBody(r)
	h.accessLog.Info("access", "method", r.Method, "origin", m.alias, "uri", shortURI(r.URL.RequestURI()),
		"status", status, "bytes", m.bytes, "upstream_bytes", m.miss, "aborted", aborted,
		"cache", m.Header().Get("Cache-Status"), "ms", time.Since(start).Milliseconds())
}

// shortBody reports a body shorter than the Content-Length sent with it
// (net/http then closes the connection, and the client sees a broken
// transfer).
func (m *meter) shortBody(r *http.Request) bool {
	if r.Method == http.MethodHead || m.status == http.StatusNotModified || m.status == http.StatusNoContent {
		return false
	}
	cl := m.Header().Get("Content-Length")
	if cl == "" {
		return false
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	return err == nil && m.bytes < n
}
