package summary

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"gatecache/internal/fetch"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("gatecache_"+name, help, labels, nil)
}

var (
	descHit      = desc("hit_bytes_total", "Body bytes served from cache, by canonical origin alias.", "origin")
	descMiss     = desc("miss_bytes_total", "Body bytes served that came from upstream, by canonical origin alias.", "origin")
	descEgress   = desc("egress_bytes_total", "Body bytes served to clients (hit + miss), by canonical origin alias.", "origin")
	descRequests = desc("requests_total", "Responses served, by canonical origin alias.", "origin")

	descUpRequests = desc("upstream_requests_total", "Requests sent upstream, by parent or origin.", "upstream")
	descUpFailures = desc("upstream_failures_total", "Upstream requests that failed, by parent or origin.", "upstream")
	descUpBytes    = desc("upstream_bytes_total", "Body bytes received from upstream, by parent or origin.", "upstream")
	descUpUp       = desc("upstream_up", "1 when the upstream is in use, 0 while it is skipped as down.", "upstream")

	descDriveSize    = desc("drive_size_bytes", "Byte budget of the drive.", "drive")
	descDriveUsed    = desc("drive_used_bytes", "Bytes stored on the drive.", "drive")
	descDriveObjects = desc("drive_objects", "Objects stored on the drive.", "drive")
	descDriveEvicted = desc("drive_evictions_total", "Objects evicted from the drive to stay within its budget.", "drive")
	descDriveFailed  = desc("drive_failed", "1 when the drive is taken out of use and content passes through uncached.", "drive")
	descVerifyFailed = desc("verify_failures_total", "Blocks whose checksum did not match when verified, and were refetched.", "drive")

	descFillsActive = desc("fills_active", "Upstream fills in progress.")
	descCoalesced   = desc("coalesced_requests_total", "Requests answered from another request's upstream fill, discovery or revalidation, without asking upstream themselves.")
)

// collector reads the Recorder and Sources at scrape time, so /metrics is
// always current and the hot path updates nothing but the Recorder.
type collector struct {
	rec *Recorder
	src Sources
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHit, descMiss, descEgress, descRequests,
		descUpRequests, descUpFailures, descUpBytes, descUpUp,
		descDriveSize, descDriveUsed, descDriveObjects, descDriveEvicted, descDriveFailed, descVerifyFailed,
		descFillsActive, descCoalesced} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, o := range c.rec.snapshot() {
		counter(descHit, o.hit, o.alias)
		counter(descMiss, o.miss, o.alias)
		counter(descEgress, o.hit+o.miss, o.alias)
		counter(descRequests, o.requests, o.alias)
	}
	for _, u := range mergeUpstreams(c.src.Upstreams()) {
		counter(descUpRequests, u.Requests, u.Name)
		counter(descUpFailures, u.Failures, u.Name)
		counter(descUpBytes, u.Bytes, u.Name)
		gauge(descUpUp, boolValue(!u.Down), u.Name)
	}
	seen := map[int]bool{}
	for _, d := range c.src.Drives() {
		if seen[d.Index] {
			continue // one series per label set, or the whole scrape fails
		}
		seen[d.Index] = true
		drive := strconv.Itoa(d.Index)
		gauge(descDriveSize, float64(d.SizeBytes), drive)
		gauge(descDriveUsed, float64(d.UsedBytes), drive)
		gauge(descDriveObjects, float64(d.Objects), drive)
		counter(descDriveEvicted, d.Evictions, drive)
		gauge(descDriveFailed, boolValue(d.Failed), drive)
		counter(descVerifyFailed, d.VerifyFailures, drive)
	}
	f := c.src.Fills()
	gauge(descFillsActive, float64(f.ActiveFills))
	counter(descCoalesced, f.Coalesced)
}

// mergeUpstreams folds entries with the same name into one, since two
// series with one label set would fail the whole scrape; the merged
// upstream is down only when every entry is.
func mergeUpstreams(us []fetch.UpstreamStats) []fetch.UpstreamStats {
	out := make([]fetch.UpstreamStats, 0, len(us))
	at := map[string]int{}
	for _, u := range us {
		i, dup := at[u.Name]
		if !dup {
			at[u.Name] = len(out)
			out = append(out, u)
			continue
		}
		m := &out[i]
		m.Requests += u.Requests
		m.Failures += u.Failures
		m.Bytes += u.Bytes
		m.Down = m.Down && u.Down
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func goCollector() prometheus.Collector { return collectors.NewGoCollector() }

func processCollector() prometheus.Collector {
	return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	// ContinueOnError: a failing process collector (no /proc in a sandbox)
	// must not hide the cache's own series.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
