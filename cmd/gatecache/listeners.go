package main

import (
	"io"
	"log"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

// connLimits bounds the connections of one listener: how many may be open,
// and how long each may wait for the client at every stage. Connections
// over the cap wait in the kernel's accept queue (they are not refused) until
// one closes.
type connLimits struct {
	maxConns          int
	readHeaderTimeout time.Duration // request line and header fields
	readTimeout       time.Duration // whole request; 0: none
	idleTimeout       time.Duration // keep-alive connection between requests
	writeTimeout      time.Duration // whole response; 0: none
	writeProgress     time.Duration // longest one write waits for the client to take bytes; 0: none
	maxHeaderBytes    int
}

// contentLimits: downloads of hundreds of MB to devices on slow links must
// not be cut, so there is no whole-response bound, only one on progress: a
// client that takes no byte for a minute is gone (the Delivery Optimization
// agent itself gives up after 20 s under 4,000 B/s). Request headers are a
// few hundred bytes and come at once.
func contentLimits(maxConns int) connLimits {
	return connLimits{
		maxConns:          maxConns,
		readHeaderTimeout: 10 * time.Second,
		idleTimeout:       2 * time.Minute,
		writeProgress:     time.Minute,
		maxHeaderBytes:    64 << 10,
	}
}

// summaryLimits: small requests and answers (report, metrics, dashboard),
// polled every few seconds at most. The write bound leaves room for the
// profiler's default 30 s CPU profile (GATECACHE_PPROF).
func summaryLimits(maxConns int) connLimits {
	return connLimits{
		maxConns:          maxConns,
		readHeaderTimeout: 5 * time.Second,
		readTimeout:       10 * time.Second,
		idleTimeout:       30 * time.Second,
		writeTimeout:      time.Minute,
		maxHeaderBytes:    16 << 10,
	}
}

// Connection caps. Each content connection may hold three descriptors (its
// socket, a data file it is served from, an upstream connection); a reserve
// covers the drives' indexes, fills' files and upstream connections, and
// logs. The caps shrink to fit a lower descriptor limit, so that accepting
// never fails for lack of descriptors (EMFILE), which would stall both ports.
const (
	maxContentConns   = 8192
	maxSummaryConns   = 256
	fdsPerContentConn = 3
	fdReserve         = 512
)

// connCaps returns the content and summary connection caps for a process
// allowed nofile descriptors.
func connCaps(nofile uint64) (content, summary int) {
	n := int64(min(nofile, 1<<30))
	s := min(maxSummaryConns, n/16)
	c := min(maxContentConns, (n-fdReserve-s)/fdsPerContentConn)
	return int(max(c, 16)), int(max(s, 4))
}

// openFileLimit is the process's descriptor limit (Go raises the soft
// limit to the hard one at start).
func openFileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return r.Cur
}

// limitListener caps the open connections of one listener. Each listener
// has its own cap, so a flood on the summary port never takes the content
// port's connections or descriptors. At the cap it does not accept: new
// connections wait in the kernel's queue, except that a keep-alive
// connection idle between requests is closed to make room (a server may
// close an idle connection at any time, RFC 9112 §9.5; clients retry on a
// new one).
type limitListener struct {
	net.Listener
	lim   connLimits
	slots chan struct{} // one token per open connection
	idled chan struct{} // a connection went idle
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	idle map[*limitedConn]time.Time // keep-alive connections between requests, since when
	high int                        // most connections open since memory was last returned
}

// A burst of at least burstConns connections (about 25 KiB each, mostly
// goroutine stacks and buffers) returns its memory to the system once three
// quarters of it have closed, rather than when the runtime's background
// scavenger gets to it minutes later: on a gateway the memory is wanted back.
const burstConns = 1024

var memory struct {
	sync.Mutex
	returning, again bool
}

// returnMemory runs debug.FreeOSMemory, once more if asked again meanwhile.
func returnMemory() {
	memory.Lock()
	defer memory.Unlock()
	if memory.returning {
		memory.again = true
		return
	}
	memory.returning = true
	for {
		memory.again = false
		memory.Unlock()
		debug.FreeOSMemory()
		memory.Lock()
		if !memory.again {
			break
		}
	}
	memory.returning = false
}

func limitConns(l net.Listener, lim connLimits) *limitListener {
	return &limitListener{
		Listener: l, lim: lim,
		slots: make(chan struct{}, lim.maxConns),
		idled: make(chan struct{}, 1),
		done:  make(chan struct{}),
		idle:  make(map[*limitedConn]time.Time),
	}
}

// server returns an http.Server with the listener's limits; it must serve
// this listener.
func (l *limitListener) server(h http.Handler, errLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.lim.readHeaderTimeout,
		ReadTimeout:       l.lim.readTimeout,
		WriteTimeout:      l.lim.writeTimeout,
		IdleTimeout:       l.lim.idleTimeout,
		MaxHeaderBytes:    l.lim.maxHeaderBytes,
		ErrorLog:          errLog,
		ConnState:         l.connState,
	}
}

// Accept waits for a free slot, then for a connection. Errors are returned
// as they are: http.Server backs off (5 ms doubling to 1 s) on temporary
// ones such as EMFILE instead of spinning.
func (l *limitListener) Accept() (net.Conn, error) {
	if !l.acquire() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.mu.Lock()
	l.high = max(l.high, len(l.slots))
	l.mu.Unlock()
	return &limitedConn{Conn: c, l: l}, nil
}

// acquire takes a slot, making room by closing the longest idle connection
// when all are taken, and waiting when none is idle. It fails once the
// listener is closed.
func (l *limitListener) acquire() bool {
	for {
		select {
		case l.slots <- struct{}{}:
			return true
		default:
		}
		l.closeOldestIdle()
		select {
		case l.slots <- struct{}{}:
			return true
		case <-l.idled: // look again
		case <-l.done:
			return false
		}
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// connState tracks which connections are idle between requests.
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if state != http.StateIdle {
		delete(l.idle, lc)
		return
	}
	l.idle[lc] = time.Now()
	select {
	case l.idled <- struct{}{}:
	default:
	}
}

// closeOldestIdle closes the connection idle the longest, if any.
func (l *limitListener) closeOldestIdle() {
	l.mu.Lock()
	var oldest *limitedConn
	var since time.Time
	for c, t := range l.idle {
		if oldest == nil || t.Before(since) {
			oldest, since = c, t
		}
	}
	delete(l.idle, oldest)
	l.mu.Unlock()
	if oldest != nil {
		oldest.Close()
	}
}

// release gives c's slot back. The connection that ends a burst returns
// its memory before it finishes closing (a GC's time, tens of
// milliseconds, on a goroutine that is going away).
func (l *limitListener) release(c *limitedConn) {
	l.mu.Lock()
	delete(l.idle, c)
	<-l.slots
	open := len(l.slots)
	drained := l.high >= burstConns && open <= l.high/4
	if drained {
		l.high = open
	}
	l.mu.Unlock()
	if drained {
		returnMemory()
	}
}

// progressChunk is the first amount written under one progress deadline:
// small enough that a slow client (1 KiB/s) moves it well within the
// deadline. A chunk that went out quickly doubles the next, up to
// maxProgressChunk, so that fast clients get sendfile in large calls (a
// hit path cost: 64 KiB calls cut warm-hit throughput by a quarter); a slow
// chunk drops back to progressChunk.
const (
	progressChunk    = 64 << 10
	maxProgressChunk = 4 << 20
)

// nextChunk is the chunk after one of size chunk that took took, under a
// progress deadline of d.
func nextChunk(chunk int64, took, d time.Duration) int64 {
	if took < d/64 {
		return min(2*chunk, maxProgressChunk)
	}
	return progressChunk
}

// limitedConn gives its slot back when closed and bounds each write's wait
// for the client (writeProgress).
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}

func (c *limitedConn) Write(p []byte) (int, error) {
	d := c.l.lim.writeProgress
	if d <= 0 {
		return c.Conn.Write(p)
	}
	n := 0
	chunk := int64(progressChunk)
	for len(p) > 0 {
		start := time.Now()
		c.Conn.SetWriteDeadline(start.Add(d))
		m, err := c.Conn.Write(p[:min(int64(len(p)), chunk)])
		n += m
		if err != nil {
			return n, err
		}
		p = p[m:]
		chunk = nextChunk(chunk, time.Since(start), d)
	}
	return n, nil
}

// ReadFrom keeps the socket's own ReadFrom (sendfile for hits) in chunks
// from progressChunk up to maxProgressChunk (see nextChunk), each under a
// fresh progress deadline. It unwraps one
// io.LimitedReader, as sendfile does, so that the chunk's limit is the only
// wrapper around the file.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	d := c.l.lim.writeProgress
	if d <= 0 {
		return rf.ReadFrom(r)
	}
	src, remain := r, int64(-1) // -1: to EOF
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, remain = lr.R, max(lr.N, 0)
	}
	var total int64
	size := int64(progressChunk)
	for remain != 0 {
		chunk := size
		if remain > 0 {
			chunk = min(chunk, remain)
		}
		start := time.Now()
		c.Conn.SetWriteDeadline(start.Add(d))
		n, err := rf.ReadFrom(&io.LimitedReader{R: src, N: chunk})
		size = nextChunk(size, time.Since(start), d)
		total += n
		if remain > 0 {
			remain -= n
		}
		if limited {
			lr.N = remain
		}
		if err != nil || n < chunk {
			return total, err
		}
	}
	return total, nil
}

// CloseWrite lets http.Server half-close before closing (so that a client
// still sending gets the response, not a reset).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
