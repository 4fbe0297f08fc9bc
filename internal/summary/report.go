package summary

import (
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/store"
)

// Drive is one drive as the store counts it, with the drive's number in
// the configuration (1..9, as in STORAGE_N_*), which the store does not
// know and main pairs in.
type Drive struct {
	Index int
	store.DriveStats
}

// Sources gives the node's current state, in the figures of the packages
// that count them: the store's drives, the fetch client's upstreams and
// the flight group's fills. Its methods are called on every Tick and
// every /metrics scrape, concurrently with everything else, so they must
// be safe for concurrent use and cheap.
type Sources interface {
	Drives() []Drive
	Upstreams() []fetch.UpstreamStats
	Fills() flight.Stats
}

// Identity names the node in the report.
type Identity struct{ CacheNodeID, CustomerID string }

// Access holds IS_SUMMARY_ACCESS_UNRESTRICTED, IS_SUMMARY_PUBLIC and
// SUMMARY_API_KEY (which defaults to CUSTOMER_KEY; main resolves that).
type Access struct {
	Unrestricted, Public bool
	APIKey               string
}

// Report is the /summary JSON; the README documents it with an example.
type Report struct {
	CacheNodeID   string          `json:"cacheNodeId"`
	CustomerID    string          `json:"customerId"`
	GeneratedAt   string          `json:"generatedAt"`
	PeriodSeconds float64         `json:"periodSeconds"`
	Period        PeriodStats     `json:"period"`
	Lifetime      LifetimeStats   `json:"lifetime"`
	Origins       []OriginStats   `json:"origins"`
	Upstreams     []UpstreamStats `json:"upstreams"`
	Drives        []DriveStats    `json:"drives"`
	Fills         FillStats       `json:"fills"`
	History       []Sample        `json:"history,omitempty"` // only with ?history=1
}

// Totals are the byte and request counts shared by period and lifetime.
// EggressBytes repeats EgressBytes under the spelling of Microsoft's
// Connected Cache documents, so that their scripts keep working.
type Totals struct {
	HitBytes      int64   `json:"hitBytes"`
	MissBytes     int64   `json:"missBytes"`
	EgressBytes   int64   `json:"egressBytes"`
	EggressBytes  int64   `json:"eggressBytes"`
	HitRatioBytes float64 `json:"hitRatioBytes"`
	Requests      int64   `json:"requests"`
}

// PeriodStats covers the last complete period: the window between the last
// two Ticks (New counts as the first), with per-second averages over it.
type PeriodStats struct {
	Start string `json:"start"`
	End   string `json:"end"`
	Totals
	HitBytesPerSecond    float64 `json:"hitBytesPerSecond"`
	MissBytesPerSecond   float64 `json:"missBytesPerSecond"`
	EgressBytesPerSecond float64 `json:"egressBytesPerSecond"`
	RequestsPerSecond    float64 `json:"requestsPerSecond"`
}

// LifetimeStats covers everything since New, as of the last Tick.
type LifetimeStats struct {
	Start string `json:"start"`
	Totals
}

// OriginStats are one canonical alias's lifetime totals.
type OriginStats struct {
	Origin      string `json:"origin"`
	HitBytes    int64  `json:"hitBytes"`
	MissBytes   int64  `json:"missBytes"`
	EgressBytes int64  `json:"egressBytes"`
	Requests    int64  `json:"requests"`
}

// UpstreamStats is a fetch.UpstreamStats as reported; State is "up" or
// "down".
type UpstreamStats struct {
	Name      string `json:"name"`
	Parent    bool   `json:"parent"`
	Requests  int64  `json:"requests"`
	Failures  int64  `json:"failures"`
	Bytes     int64  `json:"bytes"`
	State     string `json:"state"`
	LastError string `json:"lastError,omitempty"`
}

// DriveStats is a Drive as reported.
type DriveStats struct {
	Index          int    `json:"index"`
	Path           string `json:"path"`
	SizeBytes      int64  `json:"sizeBytes"`
	UsedBytes      int64  `json:"usedBytes"`
	Objects        int    `json:"objects"`
	Evictions      int64  `json:"evictions"`
	VerifyFailures int64  `json:"verifyFailures"`
	Failed         bool   `json:"failed"`
	Error          string `json:"error,omitempty"`
}

// FillStats is a flight.Stats as reported.
type FillStats struct {
	Active    int64 `json:"active"`
	Coalesced int64 `json:"coalesced"`
}

// Sample is one period of the dashboard's hour-long chart.
type Sample struct {
	End       string `json:"end"`
	HitBytes  int64  `json:"hitBytes"`
	MissBytes int64  `json:"missBytes"`
}

func totals(hit, miss, requests int64) Totals {
	t := Totals{HitBytes: hit, MissBytes: miss, EgressBytes: hit + miss, EggressBytes: hit + miss, Requests: requests}
	if t.EgressBytes > 0 {
		t.HitRatioBytes = float64(hit) / float64(t.EgressBytes)
	}
	return t
}

func perSecond(n int64, window time.Duration) float64 {
	if window <= 0 {
		return 0
	}
	return float64(n) / window.Seconds()
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func upstreamStats(us []fetch.UpstreamStats) []UpstreamStats {
	out := make([]UpstreamStats, 0, len(us))
	for _, u := range us {
		state := "up"
		if u.Down {
			state = "down"
		}
		out = append(out, UpstreamStats{u.Name, u.Parent, u.Requests, u.Failures, u.Bytes, state, u.LastError})
	}
	return out
}

func driveStats(ds []Drive) []DriveStats {
	out := make([]DriveStats, 0, len(ds))
	for _, d := range ds {
		out = append(out, DriveStats{d.Index, d.Path, d.SizeBytes, d.UsedBytes, d.Objects, d.Evictions, d.VerifyFailures, d.Failed, d.Err})
	}
	return out
}
