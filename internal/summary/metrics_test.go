package summary

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/store"
)

// scrape returns the /metrics samples as "name{labels}" -> value.
func scrape(t *testing.T, s *Server) (map[string]float64, string) {
	t.Helper()
	w := get(t, s.Handler(), "/metrics")
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	text := w.Body.String()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out, text
}

func TestMetrics(t *testing.T) {
	rec := NewRecorder()
	src := &fakeSources{
		drives: []Drive{{Index: 1, DriveStats: store.DriveStats{SizeBytes: 10e9, UsedBytes: 3 << 30, Objects: 42, Evictions: 5, VerifyFailures: 2}},
			{Index: 2, DriveStats: store.DriveStats{SizeBytes: 1e9, Failed: true}}},
		upstreams: []fetch.UpstreamStats{{Name: "gw-a", Parent: true, Requests: 10, Failures: 3, Bytes: 5 << 20, Down: true},
			{Name: "deb.debian.org", Requests: 4, Bytes: 1000},
			{Name: "deb.debian.org", Requests: 1, Failures: 1, Bytes: 1, Down: true}}, // merged, still up
		fills: flight.Stats{ActiveFills: 3, Coalesced: 17},
	}
	s := New(Options{Recorder: rec, Sources: src})
	rec.Record("download.windowsupdate.com", 3<<20, 0)
	rec.Record("download.windowsupdate.com", 0, 1<<20)
	rec.Record("deb.debian.org", 100, 23)

	// No Tick: metrics are read at scrape time.
	m, text := scrape(t, s)
	want := map[string]float64{
		`gatecache_hit_bytes_total{origin="download.windowsupdate.com"}`:    3 << 20,
		`gatecache_miss_bytes_total{origin="download.windowsupdate.com"}`:   1 << 20,
		`gatecache_egress_bytes_total{origin="download.windowsupdate.com"}`: 4 << 20,
		`gatecache_requests_total{origin="download.windowsupdate.com"}`:     2,
		`gatecache_hit_bytes_total{origin="deb.debian.org"}`:                100,
		`gatecache_miss_bytes_total{origin="deb.debian.org"}`:               23,
		`gatecache_egress_bytes_total{origin="deb.debian.org"}`:             123,
		`gatecache_requests_total{origin="deb.debian.org"}`:                 1,
		`gatecache_upstream_requests_total{upstream="gw-a"}`:                10,
		`gatecache_upstream_failures_total{upstream="gw-a"}`:                3,
		`gatecache_upstream_bytes_total{upstream="gw-a"}`:                   5 << 20,
		`gatecache_upstream_up{upstream="gw-a"}`:                            0,
		`gatecache_upstream_requests_total{upstream="deb.debian.org"}`:      5,
		`gatecache_upstream_failures_total{upstream="deb.debian.org"}`:      1,
		`gatecache_upstream_bytes_total{upstream="deb.debian.org"}`:         1001,
		`gatecache_upstream_up{upstream="deb.debian.org"}`:                  1,
		`gatecache_drive_size_bytes{drive="1"}`:                             10e9,
		`gatecache_drive_used_bytes{drive="1"}`:                             3 << 30,
		`gatecache_drive_objects{drive="1"}`:                                42,
		`gatecache_drive_evictions_total{drive="1"}`:                        5,
		`gatecache_drive_failed{drive="1"}`:                                 0,
		`gatecache_verify_failures_total{drive="1"}`:                        2,
		`gatecache_drive_size_bytes{drive="2"}`:                             1e9,
		`gatecache_drive_failed{drive="2"}`:                                 1,
		`gatecache_fills_active`:                                            3,
		`gatecache_coalesced_requests_total`:                                17,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok {
			t.Errorf("missing %s", k)
		} else if got != v {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	for _, typ := range []string{"# TYPE gatecache_hit_bytes_total counter", "# TYPE gatecache_drive_used_bytes gauge", "# TYPE gatecache_upstream_up gauge"} {
		if !strings.Contains(text, typ) {
			t.Errorf("missing %q", typ)
		}
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("Go collector missing")
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if _, ok := m["process_resident_memory_bytes"]; !ok {
			t.Error("process collector missing")
		}
	}

	// Later traffic shows at the next scrape.
	rec.Record("deb.debian.org", 1, 0)
	if m, _ = scrape(t, s); m[`gatecache_hit_bytes_total{origin="deb.debian.org"}`] != 101 {
		t.Errorf("hit after more traffic = %v", m[`gatecache_hit_bytes_total{origin="deb.debian.org"}`])
	}
}
