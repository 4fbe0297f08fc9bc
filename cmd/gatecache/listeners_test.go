package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"
)

// limitedServer serves h on a loopback listener limited by lim, as serve
// does, and returns the listener's address.
func limitedServer(t *testing.T, h http.Handler, lim connLimits) (string, *limitListener) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(raw, lim)
	srv := l.server(h, nil)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return raw.Addr().String(), l
}

// keepAlive is a raw HTTP/1.1 client connection.
type keepAlive struct {
	net.Conn
	r *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{Conn: c, r: bufio.NewReader(c)}
}

// get sends a GET and reads its answer; the deadline only stops a test that
// would hang.
func (k *keepAlive) get(t *testing.T, path string) string {
	t.Helper()
	fmt.Fprintf(k, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	k.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(b)
}

// closedByServer waits until the server closes the connection.
func (k *keepAlive) closedByServer(t *testing.T) {
	t.Helper()
	k.SetReadDeadline(time.Now().Add(60 * time.Second))
	if n, err := k.r.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, %v; want it closed by the server", n, err)
	}
}

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

// A keep-alive connection left idle is closed after the idle timeout, on
// both ports (the summary port had none: its idle connections stayed open
// until the process ran out of descriptors).
func TestIdleConnectionsAreClosed(t *testing.T) {
	for name, lim := range map[string]connLimits{"content": contentLimits(8), "summary": summaryLimits(8)} {
		if lim.idleTimeout <= 0 || lim.readHeaderTimeout <= 0 {
			t.Fatalf("%s: no idle or header timeout: %+v", name, lim)
		}
		lim.idleTimeout = 50 * time.Millisecond
		addr, _ := limitedServer(t, ok, lim)
		k := dialKeepAlive(t, addr)
		if got := k.get(t, "/healthz"); got != "ok" {
			t.Fatalf("%s: %q", name, got)
		}
		k.closedByServer(t)

		// A connection that never sends its request is closed too.
		lim.readHeaderTimeout = 50 * time.Millisecond
		addr, _ = limitedServer(t, ok, lim)
		silent := dialKeepAlive(t, addr)
		silent.closedByServer(t)
	}
}

// blocking is a handler whose requests wait until released, counting those
// inside.
type blocking struct {
	mu       sync.Mutex
	entered  chan string
	release  chan struct{}
	finished int // held requests finished
	before   int // held requests finished when /now entered
}

func newBlocking() *blocking {
	return &blocking{entered: make(chan string, 100), release: make(chan struct{}, 100)}
}

func (b *blocking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/now" {
		b.mu.Lock()
		b.before = b.finished
		b.mu.Unlock()
		b.entered <- r.URL.Path
		io.WriteString(w, "ok")
		return
	}
	b.entered <- r.URL.Path
	<-b.release
	b.mu.Lock()
	b.finished++
	b.mu.Unlock()
	io.WriteString(w, "ok")
}

// Each listener has its own cap: with the summary port's connections all
// taken, the next one waits (it is accepted only when one closes, not
// refused) while the content port serves on.
func TestConnectionCapWaitsAndNeverStarvesTheOtherPort(t *testing.T) {
	const cap = 4
	b := newBlocking()
	summaryAddr, _ := limitedServer(t, b, summaryLimits(cap))
	contentAddr, _ := limitedServer(t, ok, contentLimits(cap))

	for i := range cap {
		k := dialKeepAlive(t, summaryAddr)
		fmt.Fprintf(k, "GET /held-%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		<-b.entered
	}
	// One more: connected (the kernel queues it) but not accepted, so its
	// request does not reach the handler while all slots are held.
	extra := dialKeepAlive(t, summaryAddr)
	fmt.Fprintf(extra, "GET /now HTTP/1.1\r\nHost: x\r\n\r\n")

	// Meanwhile the content port serves, more connections than the
	// summary's cap.
	for range 2 * cap {
		if got := dialKeepAlive(t, contentAddr).get(t, "/"); got != "ok" {
			t.Fatalf("content port while the summary is at its cap: %q", got)
		}
	}

	b.release <- struct{}{}
	if p := <-b.entered; p != "/now" {
		t.Fatalf("entered %s, want /now", p)
	}
	b.mu.Lock()
	before := b.before
	b.mu.Unlock()
	if before < 1 {
		t.Fatal("the connection over the cap was served before any other finished")
	}
	extra.SetReadDeadline(time.Now().Add(60 * time.Second))
	if resp, err := http.ReadResponse(extra.r, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("connection over the cap: %v %v", resp, err)
	}
	for range cap - 1 {
		b.release <- struct{}{}
	}
}

// At the cap, a keep-alive connection idle between requests gives way to a
// new connection instead of making it wait for the idle timeout.
func TestIdleConnectionGivesWayAtTheCap(t *testing.T) {
	addr, _ := limitedServer(t, ok, contentLimits(2))
	idle := []*keepAlive{dialKeepAlive(t, addr), dialKeepAlive(t, addr)}
	for _, k := range idle {
		k.get(t, "/")
	}
	if got := dialKeepAlive(t, addr).get(t, "/"); got != "ok" {
		t.Fatalf("new connection at the cap: %q", got)
	}
	closed := make(chan int, 2)
	for i, k := range idle {
		go func() {
			k.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := k.r.ReadByte(); err == io.EOF {
				closed <- i
			} else {
				closed <- -1
			}
		}()
	}
	if i := <-closed; i < 0 {
		t.Fatal("no idle connection was closed to make room")
	}
}

// fakeListener fails its first accepts with EMFILE, as accept4 does when
// the process is out of descriptors, then hands out real connections.
type fakeListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (f *fakeListener) Accept() (net.Conn, error) {
	f.mu.Lock()
	if f.fails > 0 {
		f.fails--
		f.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	f.mu.Unlock()
	return f.Listener.Accept()
}

// An accept that fails for lack of descriptors gives its slot back and
// reaches http.Server as the temporary error it is, so that the server
// backs off and retries instead of spinning or stopping.
func TestAcceptErrorsKeepSlotsAndAreTemporary(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	l := limitConns(&fakeListener{Listener: raw, fails: 10}, contentLimits(1))
	for range 10 {
		_, err := l.Accept()
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Temporary() || !errors.Is(err, syscall.EMFILE) {
			t.Fatalf("accept error %v, want the temporary EMFILE error as it is", err)
		}
		if _, direct := err.(net.Error); !direct {
			t.Fatalf("accept error %T: http.Server only backs off on a net.Error itself", err)
		}
	}
	// With a cap of 1, a leaked slot would block this accept forever.
	go net.Dial("tcp", raw.Addr().String())
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// Served through http.Server, the errors cost nothing but a pause.
	srvL := limitConns(&fakeListener{Listener: raw, fails: 3}, contentLimits(1))
	srv := srvL.server(ok, nil)
	go srv.Serve(srvL)
	defer srv.Close()
	if got := dialKeepAlive(t, raw.Addr().String()).get(t, "/"); got != "ok" {
		t.Fatalf("after accept errors: %q", got)
	}
}

// A content client that stops reading is cut after the progress bound, not
// held forever; one that keeps reading, however long the whole transfer,
// is not.
func TestContentWritesNeedProgressNotAWholeResponseBound(t *testing.T) {
	lim := contentLimits(8)
	if lim.writeTimeout != 0 || lim.writeProgress <= 0 {
		t.Fatalf("content limits %+v: want a progress bound and no whole-response bound", lim)
	}
	lim.writeProgress = 300 * time.Millisecond
	file := filepath.Join(t.TempDir(), "big")
	const size = 16 << 20
	if err := os.WriteFile(file, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(file)
		if err != nil {
			results <- err
			return
		}
		defer f.Close()
		w.Header().Set("Content-Length", fmt.Sprint(size))
		var n int64
		if r.URL.Path == "/write" {
			n, err = io.Copy(struct{ io.Writer }{w}, f) // Write path
		} else {
			n, err = io.Copy(w, f) // ReadFrom (sendfile) path
		}
		if err == nil && n != size {
			err = fmt.Errorf("wrote %d bytes", n)
		}
		results <- err
	})
	addr, _ := limitedServer(t, h, lim)

	for _, path := range []string{"/write", "/sendfile"} {
		stalled := dialKeepAlive(t, addr)
		fmt.Fprintf(stalled, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		select {
		case err := <-results:
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("%s to a client that reads nothing: %v, want a write timeout", path, err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: a client that reads nothing holds its response for over a minute", path)
		}

		// A reader pausing 10 ms every 256 KiB (0.6 s in all) takes longer in total than
		// the progress bound but never lacks progress for that long.
		slow := dialKeepAlive(t, addr)
		fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		start := time.Now()
		resp, err := http.ReadResponse(slow.r, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		buf := make([]byte, 256<<10)
		for {
			n, err := io.ReadFull(resp.Body, buf)
			got += int64(n)
			if err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := <-results; err != nil || got != size {
			t.Fatalf("%s to a slow reader: %v, %d of %d bytes after %v", path, err, got, size, time.Since(start))
		}
		if time.Since(start) < lim.writeProgress {
			t.Logf("%s: the slow transfer took %v, under the progress bound: not a test of it", path, time.Since(start))
		}
	}
}

func TestConnCapsFitTheDescriptorLimit(t *testing.T) {
	for _, c := range []struct {
		nofile           uint64
		content, summary int
	}{
		{65536, 8192, 256}, // the systemd unit's LimitNOFILE
		{1048576, 8192, 256},
		{20000, 6410, 256},
		{4096, 1109, 256},
		{1024, 149, 64},
		{100, 16, 6},
	} {
		content, summary := connCaps(c.nofile)
		if content != c.content || summary != c.summary {
			t.Errorf("connCaps(%d) = %d, %d; want %d, %d", c.nofile, content, summary, c.content, c.summary)
		}
		if c.nofile >= 1024 && uint64(fdsPerContentConn*content+summary+fdReserve) > c.nofile {
			t.Errorf("connCaps(%d): %d content and %d summary connections can exhaust the descriptors", c.nofile, content, summary)
		}
	}
	if n := openFileLimit(); n < 64 {
		t.Fatalf("descriptor limit %d", n)
	}
}

// After a burst of connections, the memory they held is returned to the
// system once most of them have closed (a forced collection and scavenge),
// not left to the runtime's background scavenger for minutes.
func TestMemoryIsReturnedAfterABurst(t *testing.T) {
	const burst = burstConns + 100
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(raw, contentLimits(2*burst))
	srv := l.server(ok, nil)
	closed := make(chan struct{}, burst)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		l.connState(c, s)
		if s == http.StateClosed {
			closed <- struct{}{} // after the connection's slot was released
		}
	}
	go srv.Serve(l)
	defer srv.Close()

	before := forcedGCs()
	var clients []*keepAlive
	for range burst {
		k := dialKeepAlive(t, raw.Addr().String())
		k.get(t, "/")
		clients = append(clients, k)
	}
	if forcedGCs() != before {
		t.Fatal("memory returned while the burst is still open")
	}
	for _, k := range clients {
		k.Close()
	}
	for range burst {
		<-closed
	}
	if forcedGCs() == before {
		t.Fatalf("%d connections opened and closed, and no memory returned", burst)
	}
}

func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Body chunks double while they go out quickly, up to maxProgressChunk,
// and drop back to progressChunk after one that was slow.
func TestProgressChunksGrowWhileFastAndShrinkWhenSlow(t *testing.T) {
	const d = time.Minute
	chunk := int64(progressChunk)
	for range 10 {
		chunk = nextChunk(chunk, time.Millisecond, d)
	}
	if chunk != maxProgressChunk {
		t.Fatalf("after ten fast chunks: %d bytes, want %d", chunk, maxProgressChunk)
	}
	if got := nextChunk(progressChunk, time.Millisecond, d); got != 2*progressChunk {
		t.Fatalf("after one fast chunk: %d bytes, want %d", got, 2*progressChunk)
	}
	if got := nextChunk(chunk, d/2, d); got != progressChunk {
		t.Fatalf("after a slow chunk: %d bytes, want %d", got, progressChunk)
	}
}
