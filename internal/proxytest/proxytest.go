// Package proxytest is a forward HTTP proxy for tests: the "OT proxy" a
// gateway may have to send its upstream traffic through. It serves
// absolute-form requests (GET http://host/path) and CONNECT tunnels, can
// require Basic proxy authentication, counts what passes and refuses every
// destination that is not loopback, so a test can never reach the outside.
package proxytest

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Stats counts what the proxy saw.
//
// Requests counts absolute-form requests and Connects CONNECT requests, as
// they arrive (refused ones included). Refused counts the requests of either
// kind answered 400, 403 or 407 without being passed on. BodyBytes counts
// the bytes sent back to clients: response bodies of forwarded requests and
// the server-to-client direction of tunnels.
type Stats struct {
	Requests, Connects, Refused int64
	BodyBytes                   int64
}

// Proxy is a running forward proxy on 127.0.0.1.
type Proxy struct {
	Addr string // "127.0.0.1:PORT"
	URL  string // "http://127.0.0.1:PORT"

	srv       *http.Server
	ln        net.Listener
	transport *http.Transport
	done      chan struct{} // closed by Close: ends tunnels
	closeOnce sync.Once
	tunnels   sync.WaitGroup

	requests, connects, refused, bodyBytes atomic.Int64

	mu      sync.Mutex
	auth    string // expected Proxy-Authorization credentials (base64), "" = none
	targets []string
	conns   map[net.Conn]struct{} // hijacked connections, closed by Close
}

// dialTimeout bounds a connection to a (loopback) destination.
const dialTimeout = 5 * time.Second

// New starts a proxy on 127.0.0.1, closed by t.Cleanup.
func New(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	p := &Proxy{
		Addr:  ln.Addr().String(),
		ln:    ln,
		done:  make(chan struct{}),
		conns: make(map[net.Conn]struct{}),
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: dialTimeout}).DialContext,
			DisableCompression:  true,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	p.URL = "http://" + p.Addr
	p.srv = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		// Clients hanging up mid-body make net/http log; that is expected.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go p.srv.Serve(ln)
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy: the listener, open connections and tunnels. Safe
// to call more than once; New registers it with t.Cleanup.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		close(p.done)
		p.srv.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.tunnels.Wait()
		p.transport.CloseIdleConnections()
	})
}

// RequireAuth makes the proxy answer 407 (Proxy-Authenticate: Basic
// realm="test") to every request and CONNECT that does not carry
// Proxy-Authorization: Basic with user:pass.
func (p *Proxy) RequireAuth(user, pass string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.auth = base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Requests:  p.requests.Load(),
		Connects:  p.connects.Load(),
		Refused:   p.refused.Load(),
		BodyBytes: p.bodyBytes.Load(),
	}
}

// Targets returns what was passed on, in arrival order:
// "GET http://host/path?query" for absolute-form requests (the request
// target as the client wrote it), "CONNECT host:port" for tunnels. Refused
// requests are not listed.
func (p *Proxy) Targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...)
}

func (p *Proxy) addTarget(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.targets = append(p.targets, s)
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	connect := r.Method == http.MethodConnect
	if connect {
		p.connects.Add(1)
	} else {
		p.requests.Add(1)
	}
	if !p.authorized(r) {
		p.refused.Add(1)
		w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	hostport := r.Host
	if !connect {
		if !r.URL.IsAbs() || r.URL.Scheme != "http" || r.URL.Host == "" {
			p.refused.Add(1)
			http.Error(w, "proxytest: want an absolute-form http:// request or CONNECT", http.StatusBadRequest)
			return
		}
		hostport = r.URL.Host
	}
	dest, ok := loopback(hostport, connect)
	if !ok {
		p.refused.Add(1)
		http.Error(w, "proxytest: destination "+hostport+" is not loopback: refused", http.StatusForbidden)
		return
	}
	if connect {
		p.tunnel(w, r, dest)
		return
	}
	p.forward(w, r)
}

// authorized reports whether r carries the required proxy credentials.
func (p *Proxy) authorized(r *http.Request) bool {
	p.mu.Lock()
	want := p.auth
	p.mu.Unlock()
	if want == "" {
		return true
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Proxy-Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), []byte(want)) == 1
}

// loopback returns the address to dial for hostport when its host is a
// literal loopback IP (127.0.0.0/8 or ::1). Host names are refused: resolving
// them could already reach the outside. A missing port defaults to 80
// (443 for CONNECT).
func loopback(hostport string, connect bool) (string, bool) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = strings.Trim(hostport, "[]"), "80"
		if connect {
			port = "443"
		}
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || port == "" {
		return "", false
	}
	return net.JoinHostPort(ip.String(), port), true
}

// hopByHop are the connection-specific fields a proxy must not forward
// (RFC 9110 §7.6.1), plus the de-facto ones.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// forward passes an absolute-form request on and streams the answer back.
// Redirects are returned to the client, never followed.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	p.addTarget(r.Method + " " + r.RequestURI)
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header = r.Header.Clone()
	removeHopByHop(out.Header)
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "proxytest: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopByHop(resp.Header)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return
	}
	fw := &flushWriter{w: w, rc: http.NewResponseController(w), n: &p.bodyBytes}
	if _, err := io.Copy(fw, resp.Body); err != nil {
		// Upstream broke mid-body: let the client see a broken
		// transfer, not a short body that looks complete.
		panic(http.ErrAbortHandler)
	}
}

// flushWriter sends each chunk at once (a proxy must not hold bytes back)
// and counts them.
type flushWriter struct {
	w  io.Writer
	rc *http.ResponseController
	n  *atomic.Int64
}

func (f *flushWriter) Write(b []byte) (int, error) {
	n, err := f.w.Write(b)
	f.n.Add(int64(n))
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// tunnel answers CONNECT: dial dest, hijack the client connection, answer
// 200 and copy both ways until either side closes (or the proxy does).
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request, dest string) {
	ctx, cancel := context.WithTimeout(r.Context(), dialTimeout)
	up, err := (&net.Dialer{}).DialContext(ctx, "tcp", dest)
	cancel()
	if err != nil {
		http.Error(w, "proxytest: "+err.Error(), http.StatusBadGateway)
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		http.Error(w, "proxytest: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if !p.track(client, up) {
		return
	}
	defer p.tunnels.Done()
	defer p.untrack(client, up)
	p.addTarget("CONNECT " + r.Host)
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	// Bytes the client sent right after its CONNECT may sit in brw.
	go p.pipe(&wg, up, brw.Reader, client, up, nil)
	go p.pipe(&wg, client, up, client, up, &p.bodyBytes)
	wg.Wait()
}

// pipe copies src to dst, then closes both ends of the tunnel so the other
// direction ends too.
func (p *Proxy) pipe(wg *sync.WaitGroup, dst io.Writer, src io.Reader, a, b net.Conn, count *atomic.Int64) {
	defer wg.Done()
	if count != nil {
		dst = &countWriter{w: dst, n: count}
	}
	io.Copy(dst, src)
	a.Close()
	b.Close()
}

type countWriter struct {
	w io.Writer
	n *atomic.Int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n.Add(int64(n))
	return n, err
}

// track registers a tunnel's connections so Close can end it. It reports
// false (having closed them) when the proxy is already closing.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		for _, c := range conns {
			c.Close()
		}
		return false
	default:
	}
	p.tunnels.Add(1)
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(p.conns, c)
	}
}
