package summary

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/store"
)

// clock is a settable Options.Now, so tests decide where periods end.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// fakeSources returns fixed snapshots.
type fakeSources struct {
	drives    []Drive
	upstreams []fetch.UpstreamStats
	fills     flight.Stats
}

func (f *fakeSources) Drives() []Drive                  { return f.drives }
func (f *fakeSources) Upstreams() []fetch.UpstreamStats { return f.upstreams }
func (f *fakeSources) Fills() flight.Stats              { return f.fills }

// get serves path from a loopback client, which the default Access lets in.
func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "127.0.0.1:40000"
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func report(t *testing.T, s *Server, path string) (Report, map[string]any) {
	t.Helper()
	w := get(t, s.Handler(), path)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %q %s", path, w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var r Report
	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	return r, raw
}

func wantTotals(t *testing.T, what string, got Totals, hit, miss, requests int64) {
	t.Helper()
	want := Totals{HitBytes: hit, MissBytes: miss, EgressBytes: hit + miss, EggressBytes: hit + miss, Requests: requests}
	if hit+miss > 0 {
		want.HitRatioBytes = float64(hit) / float64(hit+miss)
	}
	if got != want {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func TestExactBytes(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	rec := NewRecorder()
	s := New(Options{Recorder: rec, Identity: Identity{"node-1", "cust-1"}, Now: clk.Now})

	// Before any Tick: an empty period at the start, nothing moved, ratio 0.
	r, raw := report(t, s, "/summary")
	wantTotals(t, "initial period", r.Period.Totals, 0, 0, 0)
	wantTotals(t, "initial lifetime", r.Lifetime.Totals, 0, 0, 0)
	if r.Period.Start != "2025-03-01T12:00:00Z" || r.Period.End != r.Period.Start || r.Lifetime.Start != r.Period.Start {
		t.Errorf("initial times: %+v %+v", r.Period, r.Lifetime)
	}
	if r.CacheNodeID != "node-1" || r.CustomerID != "cust-1" || r.PeriodSeconds != 15 {
		t.Errorf("identity/period: %+v", r)
	}
	for _, k := range []string{"origins", "upstreams", "drives"} {
		if l, ok := raw[k].([]any); !ok || len(l) != 0 {
			t.Errorf("%s = %v, want []", k, raw[k])
		}
	}
	if _, ok := raw["history"]; ok {
		t.Error("history present without ?history")
	}

	rec.Record("alpha", 1000, 0)
	rec.Record("alpha", 0, 500)
	rec.Record("beta", 2000, 300)
	clk.Advance(15 * time.Second)
	s.Tick()
	r, raw = report(t, s, "/summary")
	wantTotals(t, "period 1", r.Period.Totals, 3000, 800, 3)
	wantTotals(t, "lifetime 1", r.Lifetime.Totals, 3000, 800, 3)
	p := r.Period
	if p.HitBytesPerSecond != 200 || p.MissBytesPerSecond != 800.0/15 || p.EgressBytesPerSecond != 3800.0/15 || p.RequestsPerSecond != 0.2 {
		t.Errorf("period 1 rates: %+v", p)
	}
	if p.Start != "2025-03-01T12:00:00Z" || p.End != "2025-03-01T12:00:15Z" || r.GeneratedAt != p.End {
		t.Errorf("period 1 window %s..%s generated %s", p.Start, p.End, r.GeneratedAt)
	}
	period := raw["period"].(map[string]any)
	if period["eggressBytes"] != period["egressBytes"] || period["egressBytes"] != 3800.0 {
		t.Errorf("raw period: %v", period)
	}
	lifetime := raw["lifetime"].(map[string]any)
	if lifetime["eggressBytes"] != lifetime["egressBytes"] {
		t.Errorf("raw lifetime: %v", lifetime)
	}

	// A late tick: averages use the real window, 20 s here.
	rec.Record("beta", 600, 0)
	clk.Advance(20 * time.Second)
	s.Tick()
	r, _ = report(t, s, "/summary")
	wantTotals(t, "period 2", r.Period.Totals, 600, 0, 1)
	wantTotals(t, "lifetime 2", r.Lifetime.Totals, 3600, 800, 4)
	if r.Period.HitBytesPerSecond != 30 || r.Period.MissBytesPerSecond != 0 || r.Period.RequestsPerSecond != 0.05 || r.Period.HitRatioBytes != 1 {
		t.Errorf("period 2: %+v", r.Period)
	}
	wantOrigins := []OriginStats{{"alpha", 1000, 500, 1500, 2}, {"beta", 2600, 300, 2900, 2}}
	if fmt.Sprint(r.Origins) != fmt.Sprint(wantOrigins) {
		t.Errorf("origins = %+v, want %+v", r.Origins, wantOrigins)
	}

	// A quiet period: zeros, ratio 0, lifetime unchanged.
	clk.Advance(15 * time.Second)
	s.Tick()
	r, _ = report(t, s, "/summary")
	wantTotals(t, "quiet period", r.Period.Totals, 0, 0, 0)
	if r.Period.EgressBytesPerSecond != 0 || r.Period.HitRatioBytes != 0 {
		t.Errorf("quiet period: %+v", r.Period)
	}
	wantTotals(t, "lifetime 3", r.Lifetime.Totals, 3600, 800, 4)
	if r.Lifetime.Start != t0.Format(time.RFC3339) {
		t.Errorf("lifetime start %s", r.Lifetime.Start)
	}
}

func TestHistory(t *testing.T) {
	clk := newClock()
	rec := NewRecorder()
	s := New(Options{Recorder: rec, Now: clk.Now})
	r, raw := report(t, s, "/summary?history=1")
	if h, ok := raw["history"].([]any); !ok || len(h) != 0 {
		t.Fatalf("history before a tick = %v, want []", raw["history"])
	}
	for i := range 250 {
		rec.Record("a", int64(i), 1)
		clk.Advance(15 * time.Second)
		s.Tick()
	}
	r, _ = report(t, s, "/summary?history=1")
	if len(r.History) != 240 { // one hour of 15 s periods
		t.Fatalf("history has %d samples, want 240", len(r.History))
	}
	first, last := r.History[0], r.History[239]
	if first.HitBytes != 10 || last.HitBytes != 249 || last.MissBytes != 1 || last.End != r.Period.End {
		t.Errorf("history ends: %+v .. %+v (period end %s)", first, last, r.Period.End)
	}

	// After a long pause only the new sample is within the hour.
	clk.Advance(2 * time.Hour)
	s.Tick()
	r, _ = report(t, s, "/summary?history=1")
	if len(r.History) != 1 || r.History[0].End != r.Period.End {
		t.Errorf("history after a pause: %+v", r.History)
	}
}

func TestSourcesInReport(t *testing.T) {
	src := &fakeSources{
		drives: []Drive{{Index: 1, DriveStats: store.DriveStats{Path: "/nginx/cache1", SizeBytes: 10e9, UsedBytes: 4e9, Objects: 12, Evictions: 3, VerifyFailures: 1}},
			{Index: 2, DriveStats: store.DriveStats{Path: "/nginx/cache2", SizeBytes: 5e9, Failed: true, Err: "disk full"}}},
		upstreams: []fetch.UpstreamStats{{Name: "gw-a", Parent: true, Requests: 9, Failures: 2, Bytes: 4096, Down: true, LastError: "connect: refused"},
			{Name: "deb.debian.org", Requests: 1, Bytes: 10}},
		fills: flight.Stats{ActiveFills: 2, Coalesced: 7},
	}
	clk := newClock()
	s := New(Options{Sources: src, Now: clk.Now})
	clk.Advance(15 * time.Second)
	s.Tick()
	r, _ := report(t, s, "/summary")
	wantDrives := []DriveStats{{1, "/nginx/cache1", 10e9, 4e9, 12, 3, 1, false, ""}, {2, "/nginx/cache2", 5e9, 0, 0, 0, 0, true, "disk full"}}
	wantUp := []UpstreamStats{{"gw-a", true, 9, 2, 4096, "down", "connect: refused"}, {"deb.debian.org", false, 1, 0, 10, "up", ""}}
	if fmt.Sprint(r.Drives) != fmt.Sprint(wantDrives) || fmt.Sprint(r.Upstreams) != fmt.Sprint(wantUp) || r.Fills != (FillStats{2, 7}) {
		t.Errorf("sources: %+v %+v %+v", r.Drives, r.Upstreams, r.Fills)
	}
}

// goldenSources covers every figure the report and the metrics show: a
// failed drive with its error, a drive index that is not its position, an
// upstream that is down with its last error, and two entries with one name
// (one JSON row each, one merged metric series).
func goldenSources() *fakeSources {
	return &fakeSources{
		drives: []Drive{{Index: 1, DriveStats: store.DriveStats{Path: "/nginx/cache1", SizeBytes: 10e9, UsedBytes: 4e9, Objects: 12, Evictions: 3, VerifyFailures: 1}},
			{Index: 3, DriveStats: store.DriveStats{Path: "/nginx/cache3", SizeBytes: 5e9, Failed: true, Err: "disk full"}}},
		upstreams: []fetch.UpstreamStats{{Name: "gw-a", Parent: true, Requests: 9, Failures: 2, Bytes: 4096, Down: true, LastError: "connect: refused"},
			{Name: "deb.debian.org", Requests: 1, Bytes: 10},
			{Name: "deb.debian.org", Requests: 2, Failures: 1, Bytes: 5, Down: true, LastError: "reset"}},
		fills: flight.Stats{ActiveFills: 2, Coalesced: 7},
	}
}

// The /summary JSON and the node's /metrics series, to the byte: the
// README documents both, and dashboards and scripts read them.
func TestGoldenFormat(t *testing.T) {
	clk := newClock()
	rec := NewRecorder()
	s := New(Options{Recorder: rec, Sources: goldenSources(), Identity: Identity{"node-1", "cust-1"}, Now: clk.Now})
	rec.Record("deb.debian.org", 1000, 24)
	clk.Advance(15 * time.Second)
	s.Tick()

	const wantSummary = `{"cacheNodeId":"node-1","customerId":"cust-1","generatedAt":"2025-03-01T12:00:15Z","periodSeconds":15,` +
		`"period":{"start":"2025-03-01T12:00:00Z","end":"2025-03-01T12:00:15Z","hitBytes":1000,"missBytes":24,"egressBytes":1024,"eggressBytes":1024,"hitRatioBytes":0.9765625,"requests":1,` +
		`"hitBytesPerSecond":66.66666666666667,"missBytesPerSecond":1.6,"egressBytesPerSecond":68.26666666666667,"requestsPerSecond":0.06666666666666667},` +
		`"lifetime":{"start":"2025-03-01T12:00:00Z","hitBytes":1000,"missBytes":24,"egressBytes":1024,"eggressBytes":1024,"hitRatioBytes":0.9765625,"requests":1},` +
		`"origins":[{"origin":"deb.debian.org","hitBytes":1000,"missBytes":24,"egressBytes":1024,"requests":1}],` +
		`"upstreams":[{"name":"gw-a","parent":true,"requests":9,"failures":2,"bytes":4096,"state":"down","lastError":"connect: refused"},` +
		`{"name":"deb.debian.org","parent":false,"requests":1,"failures":0,"bytes":10,"state":"up"},` +
		`{"name":"deb.debian.org","parent":false,"requests":2,"failures":1,"bytes":5,"state":"down","lastError":"reset"}],` +
		`"drives":[{"index":1,"path":"/nginx/cache1","sizeBytes":10000000000,"usedBytes":4000000000,"objects":12,"evictions":3,"verifyFailures":1,"failed":false},` +
		`{"index":3,"path":"/nginx/cache3","sizeBytes":5000000000,"usedBytes":0,"objects":0,"evictions":0,"verifyFailures":0,"failed":true,"error":"disk full"}],` +
		`"fills":{"active":2,"coalesced":7}}` + "\n"
	if got := get(t, s.Handler(), "/summary").Body.String(); got != wantSummary {
		t.Errorf("/summary:\n got %s\nwant %s", got, wantSummary)
	}

	const wantMetrics = `gatecache_coalesced_requests_total 7
gatecache_drive_evictions_total{drive="1"} 3
gatecache_drive_evictions_total{drive="3"} 0
gatecache_drive_failed{drive="1"} 0
gatecache_drive_failed{drive="3"} 1
gatecache_drive_objects{drive="1"} 12
gatecache_drive_objects{drive="3"} 0
gatecache_drive_size_bytes{drive="1"} 1e+10
gatecache_drive_size_bytes{drive="3"} 5e+09
gatecache_drive_used_bytes{drive="1"} 4e+09
gatecache_drive_used_bytes{drive="3"} 0
gatecache_egress_bytes_total{origin="deb.debian.org"} 1024
gatecache_fills_active 2
gatecache_hit_bytes_total{origin="deb.debian.org"} 1000
gatecache_miss_bytes_total{origin="deb.debian.org"} 24
gatecache_requests_total{origin="deb.debian.org"} 1
gatecache_upstream_bytes_total{upstream="deb.debian.org"} 15
gatecache_upstream_bytes_total{upstream="gw-a"} 4096
gatecache_upstream_failures_total{upstream="deb.debian.org"} 1
gatecache_upstream_failures_total{upstream="gw-a"} 2
gatecache_upstream_requests_total{upstream="deb.debian.org"} 3
gatecache_upstream_requests_total{upstream="gw-a"} 9
gatecache_upstream_up{upstream="deb.debian.org"} 1
gatecache_upstream_up{upstream="gw-a"} 0
gatecache_verify_failures_total{drive="1"} 1
gatecache_verify_failures_total{drive="3"} 0
`
	var own strings.Builder
	for line := range strings.Lines(get(t, s.Handler(), "/metrics").Body.String()) {
		if strings.HasPrefix(line, "gatecache_") {
			own.WriteString(line)
		}
	}
	if own.String() != wantMetrics {
		t.Errorf("/metrics:\n got %s\nwant %s", own.String(), wantMetrics)
	}
}

// Concurrent Records racing Ticks lose nothing: the lifetime is exact.
func TestConcurrentRecordExact(t *testing.T) {
	clk := newClock()
	rec := NewRecorder()
	s := New(Options{Recorder: rec, Now: clk.Now})
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alias := fmt.Sprintf("o%d", w%3)
			for range each {
				rec.Record(alias, 3, 1)
			}
		}()
	}
	var periods Totals
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		clk.Advance(15 * time.Second)
		s.Tick()
		r, _ := report(t, s, "/summary")
		periods.HitBytes += r.Period.HitBytes
		periods.MissBytes += r.Period.MissBytes
		periods.Requests += r.Period.Requests
	}
	r, _ := report(t, s, "/summary")
	n := int64(workers * each)
	wantTotals(t, "lifetime", r.Lifetime.Totals, 3*n, n, n)
	if periods.HitBytes != 3*n || periods.MissBytes != n || periods.Requests != n {
		t.Errorf("periods add up to %+v, want %d/%d/%d", periods, 3*n, n, n)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	rec := NewRecorder()
	rec.Record("download.windowsupdate.com", 1, 1)
	if n := testing.AllocsPerRun(1000, func() { rec.Record("download.windowsupdate.com", 1<<20, 0) }); n != 0 {
		t.Errorf("Record allocates %v times per call for a known alias", n)
	}
}

func TestRecorderOddAliases(t *testing.T) {
	rec := NewRecorder()
	rec.Record("", 5, 0)
	rec.Record("", 0, 5)
	rec.Record("x", -7, -1) // ignored amounts, still a response
	for i := range maxAliases + 10 {
		rec.Record(fmt.Sprintf("h%04d", i), 1, 0)
	}
	got := map[string]originCount{}
	for _, o := range rec.snapshot() {
		got[o.alias] = o
	}
	if len(got) > maxAliases+1 { // the cap itself, plus the overflow label
		t.Errorf("%d aliases kept, want at most %d", len(got), maxAliases+1)
	}
	if u := got[aliasUnknown]; u.hit != 5 || u.miss != 5 || u.requests != 2 {
		t.Errorf("empty alias: %+v", u)
	}
	if x := got["x"]; x.hit != 0 || x.miss != 0 || x.requests != 1 {
		t.Errorf("negative amounts: %+v", x)
	}
	var h int64
	for alias, o := range got {
		if strings.HasPrefix(alias, "h") || alias == aliasOther {
			h += o.hit
		}
	}
	if o := got[aliasOther]; o.hit < 10 || h != maxAliases+10 {
		t.Errorf("overflow: %+v, %d bytes in all, want %d", o, h, maxAliases+10)
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	rec := NewRecorder()
	aliases := []string{"download.windowsupdate.com", "deb.debian.org", "dl.adu.microsoft.com", "packages.example.com"}
	for _, a := range aliases {
		rec.Record(a, 0, 0)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec.Record(aliases[i%len(aliases)], 4096, 0)
			i++
		}
	})
}

func TestHealthAndRouting(t *testing.T) {
	s := New(Options{})
	for _, path := range []string{"/healthz", "/readyz"} {
		req := httptest.NewRequest("GET", path, nil) // 192.0.2.1: remote, no key
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "ok" {
			t.Errorf("%s: %d %q", path, w.Code, w.Body)
		}
	}
	if w := get(t, s.Handler(), "/nope"); w.Code != 404 {
		t.Errorf("/nope: %d", w.Code)
	}
	req := httptest.NewRequest("POST", "/summary", nil)
	req.RemoteAddr = "127.0.0.1:1"
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /summary: %d", w.Code)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	s := New(Options{Period: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	cancel()
	<-done // would hang (and time out the test) if Run ignored ctx
}
