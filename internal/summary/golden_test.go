package summary

import (
	"strings"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/store"
)

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
