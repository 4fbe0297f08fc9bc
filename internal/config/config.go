// Package config reads gatecache's configuration from environment variables
// (the README's Configuration table). MCC's variable names are used unchanged so that an
// IoT Edge deployment manifest written for Microsoft Connected Cache works
// as is; gatecache-only variables fill the gaps.
//
// Values are trimmed of surrounding white space, and a variable set to the
// empty string counts as unset: deployment manifests often carry `"value": ""`
// for settings an operator left alone.
//
// FromEnv reports only the first invalid variable, and always the same one
// for the same environment, because it checks in this fixed order:
//
//	LISTEN_ADDR, SUMMARY_ADDR, CACHE_ROOT,
//	CUSTOMER_ID, CACHE_NODE_ID, CUSTOMER_KEY,
//	for N = 1..9: STORAGE_N_SIZE_GB, STORAGE_N_SIZE, STORAGE_N_PATH,
//	UPSTREAM_HOST (or IOTEDGE_PARENTHOSTNAME), UPSTREAM_FALLBACK_DIRECT,
//	UPSTREAM_POLICY, UPSTREAM_PROXY,
//	CACHEABLE_CUSTOM_N_* with an N that is not 1..999999999 (no leading zeros),
//	for each N in increasing order: CACHEABLE_CUSTOM_N_HOST, _CANONICAL, _KEEP_QUERY,
//	IS_SUMMARY_PUBLIC, IS_SUMMARY_ACCESS_UNRESTRICTED, SUMMARY_API_KEY,
//	UPSTREAM_MAX_RATE, UPSTREAM_HEADER_TIMEOUT, UPSTREAM_IDLE_TIMEOUT,
//	MAX_STALE, REVALIDATE_WAIT, INDEX_MAX_AGE, NEGATIVE_MAX_AGE,
//	INDEX_PATTERNS, PAYLOAD_PATTERNS, LOG_FORMAT, ACCESS_LOG.
package config

import (
	"fmt"
	"time"
)

const (
	// minDriveBytes is MCC's documented minimum drive size. Smaller drives
	// are allowed (tests, tiny gateways) but earn a warning.
	minDriveBytes = 10 * 1000 * 1000 * 1000
	// defaultDriveBytes is used for a drive whose size is not given.
	defaultDriveBytes = minDriveBytes
	// defaultBlockSize is the storage block size; not configurable yet.
	defaultBlockSize = 1 << 20
	// maxDrives matches MCC's "up to nine drives" (STORAGE_1..STORAGE_9).
	maxDrives = 9
	// maxProbedCustom is how many CACHEABLE_CUSTOM_N_* are probed through
	// lookup, which cannot list names; larger N are found in os.Environ.
	maxProbedCustom = 999
	// maxCustomIndex is the largest N of CACHEABLE_CUSTOM_N_*: nine digits,
	// an int on every platform. A larger N is a startup error.
	maxCustomIndex = 999999999
	// redacted replaces secrets in logs and error messages.
	redacted = "REDACTED"
	// doBudget is how long the Delivery Optimization agent lets a transfer
	// make no progress (under 4,000 B/s, response headers included) before
	// it aborts it; a timeout bans the cache for all hosts for 15 minutes.
	// Upstream timeouts must stay below it, so that the agent gets a 504
	// (which only sends it to the origin for that download) first.
	doBudget = 20 * time.Second
	// maxWeight bounds a parent's weight in UPSTREAM_HOST ("gw-a=2"): a
	// pool whose largest parent is a thousand times its smallest is a
	// typo more likely than a plan.
	maxWeight = 1000
)

// Config is gatecache's whole configuration. Every field documents its
// environment variable and default.
type Config struct {
	ListenAddr  string // LISTEN_ADDR, default ":8081"
	SummaryAddr string // SUMMARY_ADDR, default ":5001"
	CacheRoot   string // CACHE_ROOT, default "./gatecache-data"

	// CUSTOMER_ID, CACHE_NODE_ID, CUSTOMER_KEY: GUIDs in lowercased
	// canonical 8-4-4-4-12 form (braces stripped), or "" when unset.
	CustomerID, CacheNodeID, CustomerKey string

	// Drives come from STORAGE_N_* (N = 1..9), sorted by Index. Never empty:
	// with no drive configured there is one 10 GB drive at CacheRoot/cache1.
	Drives []Drive

	// Upstreams is UPSTREAM_HOST (comma list, failover in order), else
	// IOTEDGE_PARENTHOSTNAME; each "host:port" (port 80 by default, IPv6
	// as "[::1]:80"). Empty: fetch from origins.
	Upstreams []string
	// UpstreamWeights are the weights of Upstreams, index by index: an
	// UPSTREAM_HOST entry "host[:port]=W" weighs W (1 to maxWeight), one
	// without "=W" 1. Used by the hash policy only.
	UpstreamWeights []int
	// UpstreamHash is UPSTREAM_POLICY=hash: each cache key goes to the
	// parent its rendezvous hash ranks first among those that answer. The
	// default, UPSTREAM_POLICY=failover, tries the parents in order.
	UpstreamHash bool

	Proxy          *Proxy // UPSTREAM_PROXY, nil when unset
	FallbackDirect bool   // UPSTREAM_FALLBACK_DIRECT, default false

	CustomHosts []CustomHost // CACHEABLE_CUSTOM_N_*, sorted by Index

	SummaryPublic       bool   // IS_SUMMARY_PUBLIC, default false
	SummaryUnrestricted bool   // IS_SUMMARY_ACCESS_UNRESTRICTED, default false
	SummaryAPIKey       string // SUMMARY_API_KEY, default CustomerKey

	// UpstreamMaxRate is UPSTREAM_MAX_RATE in bytes/s, 0 = unlimited.
	// Units as in ParseSize; a "/s" suffix and "unlimited" are accepted.
	UpstreamMaxRate int64

	// UpstreamHeaderTimeout is UPSTREAM_HEADER_TIMEOUT: how long a request
	// that needs upstream waits for the response headers — connects,
	// redirects and the failover from one parent to the next included —
	// before it is answered 504; default 15 s, under the 20 s after which
	// the Delivery Optimization agent gives up on (and bans) the cache.
	UpstreamHeaderTimeout time.Duration
	// UpstreamIdleTimeout is UPSTREAM_IDLE_TIMEOUT: how long an upstream
	// body may send no byte before the transfer is aborted (the client's
	// response is cut off, the complete blocks are kept); default 15 s.
	UpstreamIdleTimeout time.Duration

	// MaxStale is MAX_STALE: how long past freshness an entry may be served
	// when upstream fails. A Go duration, a number of seconds, or
	// "unlimited". Default -1, meaning unlimited.
	MaxStale time.Duration
	// RevalidateWait is REVALIDATE_WAIT: how long a request for a stale
	// entry waits for upstream's answer to its revalidation before the
	// stored copy is served, the revalidation finishing in the background
	// (RFC 5861 stale-while-revalidate in spirit); default 3 s, 0 serves it
	// at once. An entry the origin marked must-revalidate, or staler than
	// MAX_STALE, always waits for the answer.
	RevalidateWait time.Duration

	// IndexMaxAge is INDEX_MAX_AGE: how long a repository index without
	// freshness of its own counts as fresh (a Go duration or seconds);
	// default 10 s. NegativeMaxAge is NEGATIVE_MAX_AGE: how long a 404 or
	// 410 from upstream is remembered; default 30 s, 0 disables.
	IndexMaxAge    time.Duration
	NegativeMaxAge time.Duration
	// IndexPatterns and PayloadPatterns are INDEX_PATTERNS and
	// PAYLOAD_PATTERNS: comma-separated shell patterns of file names that
	// replace the built-in lists of repository indexes (revalidated) and
	// content-addressed payloads (kept until evicted); nil: built-in.
	IndexPatterns   []string
	PayloadPatterns []string

	LogFormat string // LOG_FORMAT, "text" (default) or "json"
	AccessLog bool   // ACCESS_LOG: one log line per request, default true
	BlockSize int64  // not from env in this version; 1 MiB

	// Warnings are non-fatal findings to log at start, such as a drive
	// below MCC's 10 GB minimum.
	Warnings []string
}

// Drive is one cache drive: a directory with a byte budget.
type Drive struct {
	Index     int    // N of STORAGE_N_*, 1..9
	Path      string // STORAGE_N_PATH (cleaned), default CacheRoot/cacheN
	SizeBytes int64  // STORAGE_N_SIZE wins over STORAGE_N_SIZE_GB (10^9 bytes); default 10 GB
}

// Proxy is the outbound forward proxy from UPSTREAM_PROXY.
type Proxy struct {
	Addr     string // "host:port"; the port is required
	User     string // from an optional "user:pass@" prefix, taken literally
	Password string
}

// CustomHost is one extra cacheable origin from CACHEABLE_CUSTOM_N_*.
type CustomHost struct {
	Index int // N of CACHEABLE_CUSTOM_N_HOST

	// Host is a lowercased host name, an IP (IPv6 without brackets, as
	// net.SplitHostPort returns it), or "*.suffix" for a wildcard. No port.
	Host string
	Port string // explicit port from "host:port", "" when none given
	TLS  bool   // the value had the "https://" prefix: fetch over TLS

	// Canonical is CACHEABLE_CUSTOM_N_CANONICAL lowercased; default Host,
	// plus ":"+Port when Port is not the scheme's default (80, or 443
	// with TLS). An IPv6 host is bracketed here, as in a URL.
	Canonical string
	KeepQuery bool // CACHEABLE_CUSTOM_N_KEEP_QUERY, default false
}

// Error is a configuration error. Its message is one line that names the
// variable, its value and what was expected, so an operator can fix the
// manifest without reading code:
//
//	STORAGE_1_SIZE_GB="abc": want a whole number of GB
//
// Value is "REDACTED" (or has its password part redacted) for secrets.
type Error struct{ Var, Value, Want string }

func (e *Error) Error() string {
	return fmt.Sprintf("%s=%q: want %s", e.Var, e.Value, e.Want)
}

// FromEnv reads the configuration through lookup (os.LookupEnv in main, a
// map in tests). It returns the first invalid variable, in the order given
// in the package documentation, as *Error, and a zero Config with it:
// nothing may start half-configured. CACHEABLE_CUSTOM_N_* with N above 999
// are found by listing os.Environ; their values, like all others, come from
// lookup.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	r := reader{lookup: lookup}
	c := Config{
		ListenAddr:     ":8081",
		SummaryAddr:    ":5001",
		CacheRoot:      "./gatecache-data",
		MaxStale:       -1,
		IndexMaxAge:    10 * time.Second,
		NegativeMaxAge: 30 * time.Second,
		LogFormat:      "text",
		AccessLog:      true,
		BlockSize:      defaultBlockSize,

		UpstreamHeaderTimeout: 15 * time.Second,
		UpstreamIdleTimeout:   15 * time.Second,
		RevalidateWait:        3 * time.Second,
	}
	steps := []func(*Config) error{
		r.listeners, r.cacheRoot, r.identity, r.drives, r.upstreams,
		r.proxy, r.customHosts, r.summary, r.rate, r.timeouts, r.stale, r.freshness, r.logFormat,
	}
	for _, step := range steps {
		if err := step(&c); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}
