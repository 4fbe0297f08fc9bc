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

// nodeSources adapts the store, upstream client, fill group and content
// handler to what the summary reports.
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
		out[i] = summary.Drive{
			Index: n.drives[i].Index, Path: d.Path, SizeBytes: d.SizeBytes, UsedBytes: d.UsedBytes,
			Objects: d.Objects, Evictions: d.Evictions, VerifyFailures: d.VerifyFailures,
			Failed: d.Failed, Error: d.Err,
		}
	}
	return out
}

func (n nodeSources) Upstreams() []summary.Upstream {
	stats := n.upstream.Stats()
	out := make([]summary.Upstream, len(stats))
	for i, u := range stats {
		out[i] = summary.Upstream{
			Name: u.Name, Parent: u.Parent, Requests: u.Requests, Failures: u.Failures,
			Bytes: u.Bytes, Down: u.Down, LastError: u.LastError,
		}
	}
	return out
}

func (n nodeSources) Fills() summary.Fills {
	return summary.Fills{Active: n.flights.Stats().ActiveFills, Coalesced: n.handler.Coalesced()}
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
