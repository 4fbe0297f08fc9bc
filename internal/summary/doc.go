// Package summary is the operator's view of one gatecache node, served on
// the summary port (SUMMARY_ADDR, default :5001):
//
//	GET /summary   JSON report, recomputed every Period (15 s); ?history=1 adds the last hour
//	GET /metrics   Prometheus text, read live from the Recorder and Sources at scrape time
//	GET /          self-contained dashboard (no asset from the internet)
//	GET /healthz   200 "ok", always open
//	GET /readyz    200 "ok", 503 "draining" once Drain is called (shutdown); always open
//
// Access to /summary, /metrics and / follows these rules (README, "Access"): with
// Access.Unrestricted anyone; otherwise loopback clients always, and any
// other client that sends Access.APIKey in X-Api-Key or ?apiKey=. Public
// only changes how a remote client without the key is refused (401 "send a
// key" rather than 403 "loopback only"). An empty APIKey matches nothing, so
// Public without a key lets in loopback clients only (the configuration
// warns about that at start).
//
// The figures come from the packages that count them, in their own types
// (store.DriveStats, fetch.UpstreamStats, flight.Stats), through the
// Sources interface; this package only renders them, and nothing it
// imports imports it back. The report's JSON rows (DriveStats,
// UpstreamStats, FillStats) are defined here, as the format, so that a
// figure a producer adds changes no byte of the report until it is given
// a name in it. The content handler calls Recorder.Record once per
// response. The README documents the JSON with an example.
package summary
