package main

import (
	"net/http"
	"net/http/pprof"
	"os"

	"gatecache/internal/config"
	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/server"
	"gatecache/internal/store"
	"gatecache/internal/summary"
)

// nodeSources hands the summary the store's, the upstream client's and the
// fill group's own figures; the one thing it adds is each drive's number
// in the configuration, which the store does not know.
type nodeSources struct {
	store    *store.Store
	upstream *fetch.Client
	flights  *flight.Group
	handler  *server.Handler
	drives   []config.Drive
}

func (n nodeSources) Drives() []summary.Drive {
	stats := n.store.Stats()
	out := make([]summary.Drive, len(stats))
	for i, d := range stats {
		out[i] = summary.Drive{Index: n.drives[i].Index, DriveStats: d}
	}
	return out
}

func (n nodeSources) Upstreams() []fetch.UpstreamStats { return n.upstream.Stats() }

// Fills is the fill group's figures, with the content handler's count of
// coalesced requests: each request answered from a fill, discovery or
// revalidation another request started, once.
func (n nodeSources) Fills() flight.Stats {
	st := n.flights.Stats()
	st.Coalesced = n.handler.Coalesced()
	return st
}

// statusHandler serves the summary port: the report, metrics, health and
// dashboard, plus Go's profiler when GATECACHE_PPROF is set (for
// performance work on a test gateway; never on by default).
func statusHandler(report *summary.Server) http.Handler {
	if os.Getenv("GATECACHE_PPROF") == "" {
		return report.Handler()
	}
	mux := http.NewServeMux()
	mux.Handle("/", report.Handler())
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	return mux
}
