package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/origin"
)

// guard is the generous deadline after which a test that should have ended
// long before declares a hang (never a timing assertion: the timeouts under
// test are a fraction of it).
const guard = 30 * time.Second

// within runs fn and fails the test if it has not returned by guard.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(guard):
		t.Fatalf("%s: still waiting after %v", what, guard)
	}
}

// staller sends the response headers and the first n body bytes of a body
// it promises to be 1 MB long, then sends nothing until the test ends.
func staller(t *testing.T, n int) *httptest.Server {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(200)
		w.Write(make([]byte, n))
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv
}

// wantTimeout checks that err is an upstream timeout (answered 504).
func wantTimeout(t *testing.T, what string, err error) {
	t.Helper()
	var fe *Error
	if !errors.As(err, &fe) || !fe.Timeout() {
		t.Fatalf("%s: err %v (%T), want an upstream timeout", what, err, err)
	}
}

func TestBodyThatStallsFailsAfterTheIdleTimeout(t *testing.T) {
	for _, n := range []int{0, 5000} { // headers then nothing; stall mid-body
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			srv := staller(t, n)
			c := New(Options{Logger: quiet(), IdleTimeout: 100 * time.Millisecond})
			resp, err := c.Do(context.Background(), "GET", targetAt(srv, "/f"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got []byte
			within(t, "reading a stalled body", func() { got, err = io.ReadAll(resp.Body) })
			if len(got) != n {
				t.Fatalf("read %d bytes, want the %d sent", len(got), n)
			}
			wantTimeout(t, "stalled body", err)
		})
	}
}

// Only the waits for upstream count: a consumer that takes its time between
// reads does not make the upstream idle, and a slow but steady upstream is
// not cut off.
func TestIdleTimeoutCountsOnlyWaitsForUpstream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "20")
		w.WriteHeader(200)
		for range 20 {
			w.Write([]byte{'x'})
			http.NewResponseController(w).Flush()
			time.Sleep(50 * time.Millisecond) // a steady trickle: 1 byte per 50 ms
		}
	}))
	t.Cleanup(srv.Close)
	c := New(Options{Logger: quiet(), IdleTimeout: 400 * time.Millisecond})
	resp, err := c.Do(context.Background(), "GET", targetAt(srv, "/f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // a consumer busy elsewhere (a slow client, a disk)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 19 {
		t.Fatalf("after a pause of the consumer: %d bytes, err %v; want the whole body", len(rest), err)
	}
}

// blackhole returns a loopback address whose connects hang: a listener
// whose accept queue (backlog 0) is already full, so the kernel drops new
// SYNs.
func blackhole(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skip("no raw sockets:", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("cannot fill a listen queue here")
	return ""
}

// The header timeout is one budget from the start of the fetch, connect
// included: an origin whose connect hangs gets a timeout in time even when
// the connect timeout alone would wait much longer.
func TestHeaderTimeoutCountsTheConnect(t *testing.T) {
	host := blackhole(t)
	c := New(Options{Logger: quiet(), ConnectTimeout: time.Hour, HeaderTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := c.Do(ctx, "GET", origin.Target{Scheme: "http", Host: host, Path: "/f"}, nil)
	if ctx.Err() != nil {
		t.Fatalf("still connecting after %v", guard)
	}
	wantTimeout(t, "hanging connect", err)
}

// A parent that accepts but never answers uses up the header budget: the
// client gets a timeout (504) while it still has time to go to the origin
// itself, rather than waiting for the fallback too. The parent is then
// skipped until its backoff ends.
func TestHeaderTimeoutIsOneBudgetForAllUpstreams(t *testing.T) {
	silent, _ := silentServer(t)
	direct, _ := counted(t)
	c := New(Options{Parents: []string{silent.Listener.Addr().String()}, FallbackDirect: true, Logger: quiet(),
		HeaderTimeout: 300 * time.Millisecond})
	tg := targetAt(direct, "/f")
	var err error
	within(t, "parent without headers", func() { _, err = c.Do(context.Background(), "GET", tg, nil) })
	wantTimeout(t, "parent without headers", err)
	if st := c.Stats()[0]; !st.Down {
		t.Fatalf("parent stats %+v: want it in backoff after the timeout", st)
	}
	resp, err := c.Do(context.Background(), "GET", tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("next fetch: status %d, want the origin's answer", resp.StatusCode)
	}
}

// Through UPSTREAM_PROXY the dialed address is the proxy's, yet a request
// for a parent keeps the parent connect limit.
func TestParentConnectLimitHoldsThroughTheProxy(t *testing.T) {
	proxy := blackhole(t)
	p := deadAddr(t)
	c := New(Options{Parents: []string{p}, Proxy: mustURL(t, "http://"+proxy), Logger: quiet(),
		ConnectTimeout: time.Hour, HeaderTimeout: time.Hour, ParentConnectTimeout: 200 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := c.Do(ctx, "GET", target, nil)
	if ctx.Err() != nil {
		t.Fatalf("still connecting to the parent through the proxy after %v", guard)
	}
	wantTimeout(t, "parent through a hanging proxy", err)
	if st := c.Stats()[0]; !st.Down {
		t.Fatalf("parent stats %+v: want it in backoff", st)
	}
}

// Close is shutdown: it ends every upstream request in progress, whether
// waiting for headers or for body bytes, and refuses new ones.
func TestCloseCancelsEveryUpstreamRequest(t *testing.T) {
	silent, arrived := silentServer(t)
	stalled := staller(t, 100)
	c := New(Options{Logger: quiet()}) // default timeouts: far longer than the test
	resp, err := c.Do(context.Background(), "GET", targetAt(stalled, "/f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The caller's context never ends: a fill's outlives its clients.
	headers := make(chan error, 1)
	go func() {
		_, err := c.Do(context.WithoutCancel(t.Context()), "GET", targetAt(silent, "/f"), nil)
		headers <- err
	}()
	body := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		body <- err
	}()
	select {
	case <-arrived: // the header wait has begun
	case err := <-headers:
		t.Fatalf("header wait ended before Close: %v", err)
	}
	c.Close()
	within(t, "header wait after Close", func() { err = <-headers })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("header wait: %v, want ErrClosed", err)
	}
	within(t, "body read after Close", func() { err = <-body })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("body read: %v, want ErrClosed", err)
	}
	if _, err := c.Do(context.Background(), "GET", targetAt(silent, "/f"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("request after Close: %v, want ErrClosed", err)
	}
}

// silentServer accepts requests and never answers them; arrived receives
// once per request.
func silentServer(t *testing.T) (*httptest.Server, <-chan struct{}) {
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv, arrived
}

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
