package server

import (
	"io"
	"net/http"
	"time"
)

// meter wraps the ResponseWriter of one request: it notes the status and
// counts body bytes, and how many of them had to come from upstream, for the
// summary and the access log. It keeps io.ReaderFrom so that sendfile still
// applies to hits.
type meter struct {
	http.ResponseWriter
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

// done accounts for a finished request: content bytes to the recorder by
// origin alias, and the access log line.
func (h *Handler) done(m *meter, r *http.Request, alias string, start time.Time) {
	if m.status == 0 {
		m.status = http.StatusOK
	}
	content := m.status == http.StatusOK || m.status == http.StatusPartialContent
	if content && alias != "" {
		if h.recorder != nil {
			h.recorder.Record(alias, m.bytes-m.miss, m.miss)
		}
	}
	if h.accessLog != nil {
		h.accessLog.Info("access", "method", r.Method, "origin", alias, "uri", shortURI(r.URL.RequestURI()),
			"status", m.status, "bytes", m.bytes, "upstream_bytes", m.miss,
			"cache", m.Header().Get("Cache-Status"), "ms", time.Since(start).Milliseconds())
	}
}
