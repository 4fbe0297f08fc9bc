package origintest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

func statusFault(f Fault) int {
	switch f {
	case FaultStatus500:
		return http.StatusInternalServerError
	case FaultStatus503:
		return http.StatusServiceUnavailable
	}
	return 0
}

// bodyFault reports whether f happens inside a body, so it only applies to
// GETs that send one.
func bodyFault(f Fault) bool {
	switch f {
	case FaultTruncate, FaultReset, FaultWrongLength, FaultStall:
		return true
	}
	return false
}

// wrongRange picks a range of the same length as the requested [start,
// start+n) that differs from it, and the total size to claim. Off by one is
// the subtlest lie, so a cache that only checks the status code is caught.
func wrongRange(start, n, size int64) (newStart, total int64) {
	switch {
	case start > 0:
		return start - 1, size
	case start+n < size:
		return start + 1, size
	}
	// The request covered the whole object: no other range of this length
	// exists, so lie about the total instead.
	return start, size + 1
}

// serveFault answers with body fault f happening after at body bytes.
func (o *Origin) serveFault(w http.ResponseWriter, r *http.Request, rp reply, f Fault, at int64) {
	switch f {
	case FaultTruncate:
		o.writeHeader(w, rp)
		o.copyBody(w, rp, 0, at)
		_ = http.NewResponseController(w).Flush()
		// net/http closes the connection without finishing the body, so the
		// client sees fewer bytes than Content-Length promised.
		panic(http.ErrAbortHandler)
	case FaultStall:
		// Take the release channel before sending anything: once the client
		// has seen the first bytes, a Release it then calls must free us.
		rel := o.releaseChan()
		o.writeHeader(w, rp)
		o.copyBody(w, rp, 0, at)
		_ = http.NewResponseController(w).Flush()
		select {
		case <-rel:
		case <-r.Context().Done():
			return
		case <-o.done:
			panic(http.ErrAbortHandler)
		}
		o.copyBody(w, rp, at, rp.length)
	case FaultReset, FaultWrongLength:
		o.hijackAndCut(w, rp, at, f == FaultReset)
	}
}

// hijackAndCut writes the response by hand on the raw connection (always
// with the full Content-Length), sends at body bytes and closes: with a FIN,
// or with a RST when reset is set.
func (o *Origin) hijackAndCut(w http.ResponseWriter, rp reply, at int64, reset bool) {
	h := w.Header().Clone()
	conn, bufrw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	raw := conn
	if tc, ok := conn.(*tls.Conn); ok {
		// Close beneath TLS: a close_notify alert would be a clean ending.
		raw = tc.NetConn()
	}
	defer raw.Close()
	h.Set("Content-Length", strconv.FormatInt(rp.length, 10))
	h.Del("Transfer-Encoding")
	h.Set("Connection", "close")
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	bw := bufrw.Writer
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", rp.status, http.StatusText(rp.status))
	_ = h.Write(bw)
	_, _ = bw.WriteString("\r\n")
	o.copyBody(bw, rp, 0, at)
	if bw.Flush() != nil {
		return
	}
	if reset {
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody writes body bytes [from, to) of rp to w, generating them chunk by
// chunk so objects of any size take constant memory, and counts each chunk
// as it is written.
func (o *Origin) copyBody(w io.Writer, rp reply, from, to int64) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for off := from; off < to; {
		chunk := buf[:min(int64(len(buf)), to-off)]
		fillSeed(chunk, rp.seed, rp.start+off)
		n, err := w.Write(chunk)
		if n > 0 {
			o.add(rp.path, Stats{BodyBytes: int64(n)})
		}
		if err != nil {
			return
		}
		off += int64(n)
	}
}
