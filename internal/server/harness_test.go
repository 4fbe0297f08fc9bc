package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

const testNodeID = "00000000-0000-4000-8000-0000000000aa"

// testBlock is small so that tests cross many block boundaries cheaply.
const testBlock = 64 << 10

// rig is one gatecache content handler in front of one test origin.
type rig struct {
	t       testing.TB
	origin  *origintest.Origin
	store   *store.Store
	specs   []store.DriveSpec
	flights *flight.Group
	handler *Handler
	tally   *tally // what the handler recorded, unless the test gave its own recorder
	cache   *httptest.Server
	client  *http.Client
}

type rigOption func(*rigConfig)

type rigConfig struct {
	budget   int64
	hosts    []origin.Host
	policy   *freshness.Policy
	maxStale time.Duration
	recorder Recorder
	access   *slog.Logger
	backend  store.Backend // nil: files in dir
	fromPool func(*http.Request) bool
}

func withAccessLog(l *slog.Logger) rigOption { return func(c *rigConfig) { c.access = l } }

func withRecorder(rec Recorder) rigOption { return func(c *rigConfig) { c.recorder = rec } }

func withPolicy(p freshness.Policy) rigOption { return func(c *rigConfig) { c.policy = &p } }

func withMaxStale(d time.Duration) rigOption { return func(c *rigConfig) { c.maxStale = d } }

func withFromPool(f func(*http.Request) bool) rigOption {
	return func(c *rigConfig) { c.fromPool = f }
}

func withBudget(b int64) rigOption { return func(c *rigConfig) { c.budget = b } }

// withMemoryDrive keeps the rig's drive in memory: no data file, so hits
// are served through io.ReaderAt, not sendfile.
func withMemoryDrive() rigOption { return func(c *rigConfig) { c.backend = store.NewMemoryDrive() } }

func withHosts(h ...origin.Host) rigOption {
	return func(c *rigConfig) { c.hosts = append(c.hosts, h...) }
}

func newRig(t testing.TB, opts ...rigOption) *rig {
	t.Helper()
	o := origintest.New(t)
	return newRigFor(t, o, filepath.Join(t.TempDir(), "cache1"), opts...)
}

func newRigFor(t testing.TB, o *origintest.Origin, dir string, opts ...rigOption) *rig {
	t.Helper()
	cfg := rigConfig{budget: 1 << 30, maxStale: -1, recorder: &tally{}}
	host, port := splitAddr(o.Addr)
	cfg.hosts = []origin.Host{{Name: host, Port: port, Var: "CACHEABLE_CUSTOM_1_HOST"}}
	for _, opt := range opts {
		opt(&cfg)
	}
	specs := []store.DriveSpec{{Path: dir, Budget: cfg.budget, Backend: cfg.backend}}
	st, err := store.Open(store.Options{Drives: specs, BlockSize: testBlock, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	flights := flight.NewGroup(ctx)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := New(Options{
		Resolver: origin.NewResolver(cfg.hosts), Store: st, Flights: flights,
		Upstream: fetch.New(fetch.Options{NodeID: testNodeID, Logger: log}), Log: log, NodeID: testNodeID,
		Freshness: cfg.policy, MaxStale: cfg.maxStale, Recorder: cfg.recorder, AccessLog: cfg.access,
		FromPool: cfg.fromPool,
	})
	srv := httptest.NewServer(h)
	r := &rig{t: t, origin: o, store: st, specs: specs, flights: flights, handler: h, cache: srv}
	r.tally, _ = cfg.recorder.(*tally)
	// No keep-alive: Go's client silently retries an idempotent request
	// whose reused connection broke before any byte arrived, which would
	// hide the aborts that the fault tests look for.
	r.client = &http.Client{Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
	t.Cleanup(func() {
		srv.Close()
		cancel()
		// Discoveries and revalidations may outlive the requests that
		// waited for them: the store closes once they have ended, as at
		// shutdown.
		flights.Wait()
		st.Close()
	})
	return r
}

func splitAddr(addr string) (string, string) {
	u, _ := url.Parse("http://" + addr)
	return u.Hostname(), u.Port()
}

// get asks the cache for path in the cacheHostOrigin form, the one Delivery
// Optimization clients use, with optional header fields as "Name", "value"
// pairs.
func (r *rig) get(path string, kv ...string) *http.Response {
	r.t.Helper()
	return r.do(http.MethodGet, r.cache.URL+path+"?cacheHostOrigin="+r.origin.Addr, kv...)
}

func (r *rig) do(method, rawURL string, kv ...string) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == "Host" {
			req.Host = kv[i+1]
			continue
		}
		req.Header.Set(kv[i], kv[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// body reads a whole response body and reports a read error.
func body(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// mustBody reads a body that must arrive complete.
func (r *rig) mustBody(resp *http.Response) []byte {
	r.t.Helper()
	b, err := body(resp)
	if err != nil {
		r.t.Fatalf("reading body: %v", err)
	}
	return b
}

// expect checks status, Cache-Status and the exact bytes of a response.
func (r *rig) expect(resp *http.Response, status int, cacheStatus string, want []byte) {
	r.t.Helper()
	got := r.mustBody(resp)
	if resp.StatusCode != status {
		r.t.Fatalf("status %d, want %d (body %.200q)", resp.StatusCode, status, got)
	}
	if cacheStatus != "" && resp.Header.Get("Cache-Status") != cacheStatus {
		r.t.Fatalf("Cache-Status %q, want %q", resp.Header.Get("Cache-Status"), cacheStatus)
	}
	if want != nil && !bytes.Equal(got, want) {
		r.t.Fatalf("body differs from the origin's bytes (got %d bytes, want %d)%s", len(got), len(want), firstDiff(got, want))
	}
}

// upstreamBytes adds up the byte ranges the cache asked the origin for (a
// request without Range asks for all size bytes). Unlike the origin's body
// counters it does not race with the origin's handler finishing.
func (r *rig) upstreamBytes(size int64) (requests int, total int64) {
	r.t.Helper()
	for _, req := range r.origin.Requests() {
		requests++
		rh := req.Header.Get("Range")
		if rh == "" {
			total += size
			continue
		}
		var a, b int64
		if n, _ := fmt.Sscanf(rh, "bytes=%d-%d", &a, &b); n == 2 {
			total += min(b, size-1) - a + 1
		} else if n == 1 {
			total += size - a
		} else {
			r.t.Fatalf("cannot parse upstream Range %q", rh)
		}
	}
	return requests, total
}

func firstDiff(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf(", first difference at byte %d", i)
		}
	}
	return ""
}

// tally is a Recorder that adds up what the handler records.
type tally struct{ hit, miss atomic.Int64 }

func (t *tally) Record(alias string, hit, miss int64) {
	t.hit.Add(hit)
	t.miss.Add(miss)
}

// joined counts the requests that joined a discovery, a revalidation or a
// fill another request started, as they join (Handler.Coalesced counts
// them once answered).
func (r *rig) joined() int64 {
	return r.handler.discoveries.Joined() + r.handler.revalidations.Joined() + r.flights.Stats().Coalesced
}
