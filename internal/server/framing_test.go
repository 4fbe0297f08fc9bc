package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"gatecache/internal/origin"
)

// rawOrigin answers every connection with the same bytes, whatever the
// request: a hand-written upstream that frames its messages wrongly.
type rawOrigin struct {
	addr     string
	requests atomic.Int64
}

func newRawOrigin(t *testing.T, response string) *rawOrigin {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &rawOrigin{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			} else if err != nil {
				continue
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				o.requests.Add(1)
				io.WriteString(c, response)
			}()
		}
	}()
	return o
}

// RFC 9112 §6.3: conflicting or unknown framing from upstream is an error
// (502) and nothing is stored. Go's transport refuses these responses itself;
// a Transfer-Encoding with a Content-Length is read as chunked with the
// Content-Length removed, as the RFC has an intermediary that forwards it do,
// and is passed through uncached (its length is unknown).
func TestRFC9112_6_3_ConflictingFramingFromUpstream(t *testing.T) {
	for _, c := range []struct {
		name, response string
		status         int
		body           string
	}{
		{"two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 5\r\n\r\nhello", 502, ""},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello", 502, ""},
		{"unknown Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 502, ""},
		{"Transfer-Encoding and Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200, "hello"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := newRawOrigin(t, c.response)
			host, port := splitAddr(o.addr)
			r := newRig(t, withHosts(origin.Host{Name: host, Port: port}))
			for i := range 2 {
				resp := r.do(http.MethodGet, r.cache.URL+"/f?cacheHostOrigin="+o.addr)
				got := r.mustBody(resp)
				if resp.StatusCode != c.status || (c.body != "" && string(got) != c.body) {
					t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, got, c.status, c.body)
				}
				if cl := resp.Header.Get("Content-Length"); c.status == 200 && cl == "10" {
					t.Fatalf("request %d: the upstream Content-Length %q was forwarded", i, cl)
				}
			}
			if r.store.Lookup(o.addr+"/f") != nil {
				t.Fatal("a wrongly framed response was stored")
			}
			if n := o.requests.Load(); n < 2 {
				t.Fatalf("%d upstream requests for two client requests: the response was reused", n)
			}
		})
	}
}
