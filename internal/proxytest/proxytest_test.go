package proxytest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// body is what the test servers answer: big enough to span many reads.
var body = bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

// backend records the proxy-related headers it receives and answers body.
type backend struct {
	got chan http.Header
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case b.got <- r.Header.Clone():
	default:
	}
	w.Header().Set("X-Backend", "yes")
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.URL.Path == "/redirect" {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func newBackend(t *testing.T, useTLS bool) (*httptest.Server, *backend) {
	b := &backend{got: make(chan http.Header, 16)}
	var srv *httptest.Server
	if useTLS {
		srv = httptest.NewTLSServer(b)
	} else {
		srv = httptest.NewServer(b)
	}
	t.Cleanup(srv.Close)
	return srv, b
}

// client returns a client that goes through p with optional credentials and
// trusts roots; it never follows redirects.
func client(t *testing.T, p *Proxy, user *url.Userinfo, roots *x509.CertPool) *http.Client {
	u, err := url.Parse(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = user
	tr := &http.Transport{
		Proxy:              http.ProxyURL(u),
		TLSClientConfig:    &tls.Config{RootCAs: roots},
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func get(t *testing.T, c *http.Client, rawURL string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", rawURL, err)
	}
	return resp, b
}

func TestAbsoluteFormIsForwarded(t *testing.T) {
	p := New(t)
	srv, _ := newBackend(t, false)
	c := client(t, p, nil, nil)

	resp, got := get(t, c, srv.URL+"/pool/a.deb?x=1")
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("status %d, %d bytes; want 200 and the backend's %d bytes", resp.StatusCode, len(got), len(body))
	}
	if resp.Header.Get("X-Backend") != "yes" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("response header not copied: %v (length %d)", resp.Header, resp.ContentLength)
	}
	// Redirects are the client's business: passed back, not followed.
	resp, _ = get(t, c, srv.URL+"/redirect")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" {
		t.Fatalf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	want := []string{"GET " + srv.URL + "/pool/a.deb?x=1", "GET " + srv.URL + "/redirect"}
	if got := p.Targets(); !slices.Equal(got, want) {
		t.Fatalf("targets %q, want %q", got, want)
	}
	st := p.Stats()
	if st.Requests != 2 || st.Connects != 0 || st.Refused != 0 || st.BodyBytes < int64(len(body)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestConnectTunnelsTLS(t *testing.T) {
	p := New(t)
	srv, _ := newBackend(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := client(t, p, nil, roots)

	for range 2 {
		resp, got := get(t, c, srv.URL+"/secure.bin")
		if resp.StatusCode != 200 || !bytes.Equal(got, body) {
			t.Fatalf("status %d, %d bytes", resp.StatusCode, len(got))
		}
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	// The second request reused the tunnel.
	if got := p.Targets(); !slices.Equal(got, []string{"CONNECT " + host}) {
		t.Fatalf("targets %q", got)
	}
	st := p.Stats()
	if st.Connects != 1 || st.Requests != 0 || st.BodyBytes < 2*int64(len(body)) {
		t.Fatalf("stats %+v", st)
	}
}

func TestAuth(t *testing.T) {
	p := New(t)
	p.RequireAuth("user", "s3cret")
	srv, b := newBackend(t, false)
	tlsSrv, _ := newBackend(t, true)
	roots := x509.NewCertPool()
	roots.AddCert(tlsSrv.Certificate())

	for _, u := range []*url.Userinfo{nil, url.UserPassword("user", "wrong"), url.UserPassword("other", "s3cret")} {
		resp, _ := get(t, client(t, p, u, nil), srv.URL+"/a")
		if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="test"` {
			t.Fatalf("%v: status %d, Proxy-Authenticate %q; want 407 with a Basic challenge",
				u, resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
		}
		if _, err := client(t, p, u, roots).Get(tlsSrv.URL + "/a"); err == nil {
			t.Fatalf("%v: CONNECT without the right credentials succeeded", u)
		}
	}
	if st := p.Stats(); st.Refused != 6 || len(p.Targets()) != 0 {
		t.Fatalf("after refusals: stats %+v, targets %q", st, p.Targets())
	}
	select {
	case h := <-b.got:
		t.Fatalf("a refused request reached the backend: %v", h)
	default:
	}

	good := url.UserPassword("user", "s3cret")
	resp, got := get(t, client(t, p, good, nil), srv.URL+"/a")
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("with credentials: status %d", resp.StatusCode)
	}
	if h := <-b.got; h.Get("Proxy-Authorization") != "" {
		t.Fatal("Proxy-Authorization was forwarded to the destination")
	}
	resp, got = get(t, client(t, p, good, roots), tlsSrv.URL+"/a")
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("CONNECT with credentials: status %d", resp.StatusCode)
	}
	if st := p.Stats(); st.Requests != 4 || st.Connects != 4 || st.Refused != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNonLoopbackIsRefused(t *testing.T) {
	p := New(t)
	c := client(t, p, nil, nil)
	// None of these may be dialled or resolved: the proxy refuses first.
	for _, u := range []string{"http://192.0.2.1/x", "http://192.0.2.1:8080/x", "http://example.com/x", "http://localhost/x", "http://[2001:db8::1]/x"} {
		resp, _ := get(t, c, u)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", u, resp.StatusCode)
		}
	}
	for _, target := range []string{"192.0.2.1:443", "example.com:443", "[2001:db8::1]:443"} {
		resp := rawRequest(t, p, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("CONNECT %s: status %d, want 403", target, resp.StatusCode)
		}
	}
	// Origin-form is not a proxy request.
	if resp := rawRequest(t, p, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form: status %d, want 400", resp.StatusCode)
	}
	if st := p.Stats(); st.Refused != 9 || len(p.Targets()) != 0 {
		t.Fatalf("stats %+v, targets %q", st, p.Targets())
	}
}

// rawRequest writes req on a new connection to p and reads the answer.
func rawRequest(t *testing.T, p *Proxy, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestHopByHopFieldsAreDropped(t *testing.T) {
	p := New(t)
	srv, b := newBackend(t, false)
	host := strings.TrimPrefix(srv.URL, "http://")
	resp := rawRequest(t, p, "GET "+srv.URL+"/h HTTP/1.1\r\nHost: "+host+"\r\n"+
		"Connection: X-Hop\r\nX-Hop: 1\r\nX-Kept: 1\r\nProxy-Connection: keep-alive\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\nKeep-Alive: 30\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := <-b.got
	for _, name := range []string{"X-Hop", "Proxy-Connection", "Proxy-Authorization", "Keep-Alive"} {
		if v := h.Get(name); v != "" {
			t.Errorf("%s: %q reached the destination", name, v)
		}
	}
	if h.Get("X-Kept") != "1" {
		t.Error("an end-to-end field was dropped")
	}
}

// A tunnel carries bytes both ways and ends when either side closes.
func TestTunnelEndsWhenEitherSideCloses(t *testing.T) {
	p := New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	open := func() (net.Conn, *bufio.Reader, net.Conn) {
		conn, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, "CONNECT "+ln.Addr().String()+" HTTP/1.1\r\nHost: "+ln.Addr().String()+"\r\n\r\nearly")
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		var back net.Conn
		select {
		case back = <-accepted:
		case <-time.After(10 * time.Second):
			t.Fatal("the proxy did not dial the destination")
		}
		t.Cleanup(func() { back.Close() })
		back.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(back, buf); err != nil || string(buf) != "early" {
			t.Fatalf("bytes sent with the CONNECT: %q %v", buf, err)
		}
		io.WriteString(back, "pong")
		if _, err := io.ReadFull(br, buf[:4]); err != nil || string(buf[:4]) != "pong" {
			t.Fatalf("back to the client: %q %v", buf[:4], err)
		}
		return conn, br, back
	}

	// The destination closes: the client sees EOF.
	_, br, back := open()
	back.Close()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("client read after the destination closed: %v, want EOF", err)
	}
	// The client closes: the destination sees EOF.
	conn, _, back := open()
	conn.Close()
	if _, err := back.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("destination read after the client closed: %v, want EOF", err)
	}
	// Close ends open tunnels (and returns: it waits for them).
	_, br, _ = open()
	p.Close()
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("tunnel still open after Close")
	}
	if st := p.Stats(); st.Connects != 3 || st.BodyBytes != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnreachableDestinationIs502(t *testing.T) {
	p := New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	resp, _ := get(t, client(t, p, nil, nil), "http://"+dead+"/x")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if r := rawRequest(t, p, "CONNECT "+dead+" HTTP/1.1\r\nHost: "+dead+"\r\n\r\n"); r.StatusCode != http.StatusBadGateway {
		t.Fatalf("CONNECT: status %d, want 502", r.StatusCode)
	}
}
