package origintest

import (
	"crypto/x509"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Fault selects a misbehaviour injected into a response.
type Fault int

const (
	FaultNone Fault = iota
	// FaultTruncate promises the full Content-Length, sends FaultAt body
	// bytes, then aborts the connection (panic(http.ErrAbortHandler)).
	FaultTruncate
	// FaultReset is like FaultTruncate but ends with a TCP RST (SO_LINGER 0)
	// instead of a FIN.
	FaultReset
	// FaultStatus500 answers 500 with a short body.
	FaultStatus500
	// FaultStatus503 answers 503 with a short body.
	FaultStatus503
	// FaultWrongLength hijacks the connection, writes a valid 200/206 header
	// with the right Content-Length, FaultAt body bytes, then closes cleanly.
	FaultWrongLength
	// FaultWrongRange answers a satisfiable single-range request with 206 and
	// the bytes of a different range, correctly labelled in Content-Range.
	FaultWrongRange
	// FaultStall sends FaultAt body bytes, then blocks until Release, the end
	// of the request context, or the origin closing; after Release the rest
	// of the body follows normally.
	FaultStall
)

var faultNames = [...]string{"None", "Truncate", "Reset", "Status500", "Status503", "WrongLength", "WrongRange", "Stall"}

func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return "Fault" + faultNames[f]
	}
	return "Fault(?)"
}

// Object describes what the origin serves at one path.
type Object struct {
	Size    int64
	Version int // content version: changes the bytes (and by default the ETag)
	// ETag defaults to a strong tag derived from path, version and size;
	// "-" means send no ETag.
	ETag string
	// LastModified defaults to 2024-01-01T00:00:00Z when zero;
	// NoLastModified omits the header.
	LastModified   time.Time
	NoLastModified bool
	CacheControl   string      // default "public, max-age=31536000"; "-" for none
	ContentType    string      // default "application/octet-stream"
	Header         http.Header // extra headers, sent on every answer for this path
	IgnoreRange    bool        // answer every GET with 200 and the whole body, no Accept-Ranges
	Chunked        bool        // omit Content-Length (chunked transfer)
	Fault          Fault
	FaultAt        int64 // offset within the response body where the fault happens
	FaultTimes     int   // how many requests get the fault (0 = every one)
	Status         int   // if non-zero, answer this status with a short body
	Redirect       string
	// Query, when set, is the only raw query answered: any other gets
	// 404, as a signed URL with an expired or foreign signature does.
	Query string
	// OtherMethods, if non-zero, is the status that methods other than
	// GET and HEAD get (with Header); else they get 405.
	OtherMethods int
}

// DefaultLastModified is the Last-Modified of objects that do not set one.
var DefaultLastModified = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (ob *Object) etag(path string) string {
	switch ob.ETag {
	case "-":
		return ""
	case "":
		return defaultETag(path, ob.Version, ob.size())
	}
	return ob.ETag
}

func (ob *Object) lastModified() (time.Time, bool) {
	if ob.NoLastModified {
		return time.Time{}, false
	}
	if ob.LastModified.IsZero() {
		return DefaultLastModified, true
	}
	// HTTP dates have second precision; comparing truncated values keeps
	// If-Modified-Since/If-Range exact for callers that echo the header.
	return ob.LastModified.UTC().Truncate(time.Second), true
}

func (ob *Object) size() int64 { return max(ob.Size, 0) }

// Stats counts what the origin saw. A request is Conditional when it carries
// If-None-Match or If-Modified-Since (If-Range alone does not count: it
// guards a range, it does not revalidate). BodyBytes counts body bytes as
// they are written, including partial bodies of faulted answers.
type Stats struct {
	Requests, RangeRequests, Conditional, NotModified int64
	BodyBytes                                         int64
}

// Request is one recorded upstream request.
type Request struct {
	Method, URI, Host string
	Header            http.Header
}

// Origin is a running fake origin server.
type Origin struct {
	URL  string // "http://127.0.0.1:PORT" (https for NewTLS)
	Addr string // "127.0.0.1:PORT"

	srv       *httptest.Server
	tls       bool
	done      chan struct{} // closed when the origin shuts down
	closeOnce sync.Once

	mu         sync.Mutex
	objects    map[string]Object
	faultsUsed map[string]int // per path, reset by Set
	total      Stats
	paths      map[string]*Stats
	reqs       []Request
	gate       chan struct{} // non-nil while held; closed by Unhold
	parked     chan struct{} // what Hold returned; one send per parked request
	release    chan struct{} // closed (and replaced) by Release
}

// New starts an origin on 127.0.0.1, closed by t.Cleanup.
func New(t testing.TB) *Origin { return start(t, false) }

// NewTLS starts an HTTPS origin; Client and CertPool give what a client
// needs to trust it.
func NewTLS(t testing.TB) *Origin { return start(t, true) }

func start(t testing.TB, useTLS bool) *Origin {
	t.Helper()
	o := &Origin{
		tls:        useTLS,
		done:       make(chan struct{}),
		objects:    make(map[string]Object),
		faultsUsed: make(map[string]int),
		paths:      make(map[string]*Stats),
		release:    make(chan struct{}),
	}
	o.srv = httptest.NewUnstartedServer(o)
	// Injected faults and clients hanging up make net/http log; that noise
	// is expected here and would only bury real test output.
	o.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if useTLS {
		o.srv.StartTLS()
	} else {
		o.srv.Start()
	}
	o.URL = o.srv.URL
	o.Addr = o.srv.Listener.Addr().String()
	t.Cleanup(o.Close)
	return o
}

// Close stops the origin. It first frees held and stalled requests, because
// httptest.Server.Close waits for every outstanding handler. Safe to call
// more than once; New registers it with t.Cleanup.
func (o *Origin) Close() {
	o.closeOnce.Do(func() {
		close(o.done)
		o.srv.Close()
	})
}

// Client returns an http.Client that trusts the origin (for NewTLS) and
// whose idle connections are closed with the origin.
func (o *Origin) Client() *http.Client { return o.srv.Client() }

// CertPool returns a pool holding the origin's certificate, or nil for a
// plain-HTTP origin.
func (o *Origin) CertPool() *x509.CertPool {
	if !o.tls {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(o.srv.Certificate())
	return pool
}

// Set installs obj at path (the request URL path, e.g. "/pool/a.deb") and
// resets its FaultTimes budget.
func (o *Origin) Set(path string, obj Object) {
	// Clone so that a test mutating its Header afterwards cannot race with
	// handlers reading it.
	obj.Header = obj.Header.Clone()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[path] = obj
	delete(o.faultsUsed, path)
}

// Get returns the object at path.
func (o *Origin) Get(path string) (Object, bool) {
	o.mu.Lock()
	obj, ok := o.objects[path]
	o.mu.Unlock()
	obj.Header = obj.Header.Clone()
	return obj, ok
}

// Remove deletes path; later requests for it get 404.
func (o *Origin) Remove(path string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.objects, path)
	delete(o.faultsUsed, path)
}

// Want returns the bytes a client must receive for path's current object,
// or nil if there is none.
func (o *Origin) Want(path string) []byte {
	obj, ok := o.Get(path)
	if !ok {
		return nil
	}
	return Bytes(path, obj.Version, 0, obj.size())
}

// lookup is Get without the defensive Header copy: handlers only read it.
func (o *Origin) lookup(path string) (Object, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	obj, ok := o.objects[path]
	return obj, ok
}

// takeFault reports whether this request gets obj's fault, consuming one
// unit of its FaultTimes budget. Callers ask only when the fault applies to
// the answer, so e.g. HEADs do not use up a body fault.
func (o *Origin) takeFault(path string, obj *Object) bool {
	if obj.Fault == FaultNone {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if obj.FaultTimes > 0 && o.faultsUsed[path] >= obj.FaultTimes {
		return false
	}
	o.faultsUsed[path]++
	return true
}
