package summary

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
)

// DefaultPeriod is the report's period: Microsoft Connected Cache's summary
// is recomputed every 15 s, and so is ours.
const DefaultPeriod = 15 * time.Second

// historySpan is how far back the dashboard's chart reaches.
const historySpan = time.Hour

// Options configure a Server.
type Options struct {
	Recorder *Recorder // traffic counts; a fresh one when nil
	Sources  Sources   // drives, upstreams, fills; none when nil
	Identity Identity
	Access   Access
	Period   time.Duration    // default DefaultPeriod
	Now      func() time.Time // default time.Now; tests control time with it
}

// Server computes the report and serves the summary port.
type Server struct {
	rec     *Recorder
	src     Sources
	id      Identity
	access  Access
	period  time.Duration
	now     func() time.Time
	start   time.Time
	handler http.Handler

	mu      sync.Mutex // serialises Tick
	prevAt  time.Time
	prev    Totals // lifetime totals at prevAt
	history []timedSample

	// out is the JSON served by /summary, replaced whole on every Tick so
	// that requests never wait for a Tick.
	out atomic.Pointer[rendered]

	draining  atomic.Bool  // set by Drain: /readyz answers 503
	readyLast atomic.Int64 // when /readyz was last asked, Unix nanoseconds
}

type rendered struct{ plain, withHistory []byte }

type timedSample struct {
	end time.Time
	Sample
}

// reportWithHistory always carries "history", [] when still empty: its
// History hides Report's, which is omitted when empty.
type reportWithHistory struct {
	Report
	History []Sample `json:"history"`
}

type noSources struct{}

func (noSources) Drives() []Drive                  { return nil }
func (noSources) Upstreams() []fetch.UpstreamStats { return nil }
func (noSources) Fills() flight.Stats              { return flight.Stats{} }

// New returns a Server whose lifetime and first period start now. Traffic
// recorded on o.Recorder before New counts in the first period.
func New(o Options) *Server {
	s := &Server{rec: o.Recorder, src: o.Sources, id: o.Identity, access: o.Access, period: o.Period, now: o.Now}
	if s.rec == nil {
		s.rec = NewRecorder()
	}
	if s.src == nil {
		s.src = noSources{}
	}
	if s.period <= 0 {
		s.period = DefaultPeriod
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.start = s.now()
	s.prevAt = s.start
	s.render(s.compute(s.start, s.start, Totals{}, s.rec.snapshot()))

	// A private registry: the node's metrics only, and no clash with
	// whatever else a test or an embedding program registers globally.
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{rec: s.rec, src: s.src}, goCollector(), processCollector())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /summary", s.guard(http.HandlerFunc(s.serveSummary)))
	mux.Handle("GET /metrics", s.guard(metricsHandler(reg)))
	mux.Handle("GET /{$}", s.guard(http.HandlerFunc(serveDashboard)))
	s.handler = mux
	return s
}

// Handler serves /summary, /metrics, /healthz, /readyz and the dashboard.
func (s *Server) Handler() http.Handler { return s.handler }

// Drain makes /readyz answer 503 from now on, while /healthz still answers
// 200: the node is shutting down and finishing the responses in progress.
// A load balancer that checks /readyz takes the node out of rotation
// before it stops, instead of learning it from refused connections.
func (s *Server) Drain() { s.draining.Store(true) }

// ReadyCheckedSince reports whether /readyz was asked at t or later: whether
// something (a load balancer, an orchestrator) watches the node's
// readiness.
func (s *Server) ReadyCheckedSince(t time.Time) bool { return s.readyLast.Load() >= t.UnixNano() }

// ready serves /readyz: 200 while the node takes new requests, 503 once it
// drains (RFC 9110 §15.6.4: unavailable, and for a reason that passes).
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	s.readyLast.Store(s.now().UnixNano())
	if !s.draining.Load() {
		ok(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte("draining\n"))
}

// Run recomputes the report every Period until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Tick()
		}
	}
}

// Tick closes the current period now and recomputes the report.
func (s *Server) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	origins := s.rec.snapshot()
	r := s.compute(s.prevAt, now, s.prev, origins)
	s.history = append(s.history, timedSample{now, Sample{End: r.Period.End, HitBytes: r.Period.HitBytes, MissBytes: r.Period.MissBytes}})
	s.history = trimHistory(s.history, now, s.period)
	s.prevAt, s.prev = now, r.Lifetime.Totals
	s.render(r)
}

// trimHistory keeps the samples that ended within the last hour, and never
// more than an hour's worth of periods, reusing the slice's array.
func trimHistory(h []timedSample, now time.Time, period time.Duration) []timedSample {
	limit := int(historySpan / period)
	if limit < 1 {
		limit = 1
	}
	cut := 0
	if len(h) > limit {
		cut = len(h) - limit
	}
	for cut < len(h) && now.Sub(h[cut].end) >= historySpan {
		cut++
	}
	return append(h[:0], h[cut:]...)
}

// compute builds the report for the period [from, to], given the lifetime
// totals at from and every alias's totals now.
func (s *Server) compute(from, to time.Time, before Totals, origins []originCount) Report {
	var hit, miss, req int64
	per := make([]OriginStats, 0, len(origins))
	for _, o := range origins {
		hit, miss, req = hit+o.hit, miss+o.miss, req+o.requests
		per = append(per, OriginStats{o.alias, o.hit, o.miss, o.hit + o.miss, o.requests})
	}
	window := to.Sub(from)
	p := PeriodStats{Start: stamp(from), End: stamp(to),
		Totals: totals(hit-before.HitBytes, miss-before.MissBytes, req-before.Requests)}
	p.HitBytesPerSecond = perSecond(p.HitBytes, window)
	p.MissBytesPerSecond = perSecond(p.MissBytes, window)
	p.EgressBytesPerSecond = perSecond(p.EgressBytes, window)
	p.RequestsPerSecond = perSecond(p.Requests, window)
	f := s.src.Fills()
	return Report{
		CacheNodeID:   s.id.CacheNodeID,
		CustomerID:    s.id.CustomerID,
		GeneratedAt:   stamp(to),
		PeriodSeconds: s.period.Seconds(),
		Period:        p,
		Lifetime:      LifetimeStats{Start: stamp(s.start), Totals: totals(hit, miss, req)},
		Origins:       per,
		Upstreams:     upstreamStats(s.src.Upstreams()),
		Drives:        driveStats(s.src.Drives()),
		Fills:         FillStats{f.ActiveFills, f.Coalesced},
	}
}

// render stores the report's JSON, with and without the history.
func (s *Server) render(r Report) {
	plain, err := json.Marshal(r)
	if err != nil {
		return // cannot happen: the report holds only strings and numbers
	}
	h := reportWithHistory{Report: r, History: make([]Sample, len(s.history))}
	for i, t := range s.history {
		h.History[i] = t.Sample
	}
	withHistory, _ := json.Marshal(h)
	s.out.Store(&rendered{append(plain, '\n'), append(withHistory, '\n')})
}

func (s *Server) serveSummary(w http.ResponseWriter, r *http.Request) {
	out := s.out.Load()
	body := out.plain
	if r.URL.Query().Has("history") {
		body = out.withHistory
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

func ok(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
