package config

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// reader wraps the lookup function; its methods are FromEnv's steps, one
// per group of variables, run in the documented order.
type reader struct {
	lookup func(string) (string, bool)
}

// get returns the trimmed value of name; ok is false when the variable is
// unset or blank, which both mean "use the default".
func (r reader) get(name string) (string, bool) {
	v, ok := r.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// boolVar reads a boolean into *dst, leaving the default when unset.
func (r reader) boolVar(name string, dst *bool) error {
	v, ok := r.get(name)
	if !ok {
		return nil
	}
	b, valid := parseBool(v)
	if !valid {
		return &Error{name, v, "true or false (also 1/0, yes/no)"}
	}
	*dst = b
	return nil
}

func (r reader) listeners(c *Config) error {
	for _, l := range []struct {
		name string
		dst  *string
	}{{"LISTEN_ADDR", &c.ListenAddr}, {"SUMMARY_ADDR", &c.SummaryAddr}} {
		v, ok := r.get(l.name)
		if !ok {
			continue
		}
		if !validListenAddr(v) {
			return &Error{l.name, v, `host:port with a numeric port, like ":8081" or "127.0.0.1:8081"`}
		}
		*l.dst = v
	}
	return nil
}

func (r reader) cacheRoot(c *Config) error {
	if v, ok := r.get("CACHE_ROOT"); ok {
		c.CacheRoot = v
	}
	return nil
}

func (r reader) identity(c *Config) error {
	for _, g := range []struct {
		name   string
		dst    *string
		secret bool
	}{
		{"CUSTOMER_ID", &c.CustomerID, false},
		{"CACHE_NODE_ID", &c.CacheNodeID, false},
		{"CUSTOMER_KEY", &c.CustomerKey, true},
	} {
		v, ok := r.get(g.name)
		if !ok {
			continue
		}
		guid, valid := parseGUID(v)
		if !valid {
			if g.secret {
				v = redacted // a mistyped key is still nearly the key
			}
			return &Error{g.name, v, "a GUID like 01234567-89ab-cdef-0123-456789abcdef"}
		}
		*g.dst = guid
	}
	return nil
}

func (r reader) drives(c *Config) error {
	owner := map[string]int{} // cleaned path -> drive index, to refuse sharing
	for n := 1; n <= maxDrives; n++ {
		gbVar := fmt.Sprintf("STORAGE_%d_SIZE_GB", n)
		sizeVar := fmt.Sprintf("STORAGE_%d_SIZE", n)
		pathVar := fmt.Sprintf("STORAGE_%d_PATH", n)
		gb, gbSet := r.get(gbVar)
		size, sizeSet := r.get(sizeVar)
		path, pathSet := r.get(pathVar)
		if !gbSet && !sizeSet && !pathSet {
			continue
		}
		d := Drive{Index: n, SizeBytes: defaultDriveBytes}
		from := ""
		// Both size variables are validated even though _SIZE wins: an
		// invalid value anywhere is a startup error.
		if gbSet {
			if !allDigits(strings.TrimPrefix(gb, "-")) {
				return &Error{gbVar, gb, "a whole number of GB"}
			}
			g, err := strconv.ParseInt(gb, 10, 64)
			if err != nil || g > maxInt64/int64(1e9) {
				return &Error{gbVar, gb, "a whole number of GB, at most 9223372036"}
			}
			if g <= 0 {
				return &Error{gbVar, gb, "a whole number of GB, at least 1"}
			}
			d.SizeBytes, from = g*1e9, gbVar+"="+gb
		}
		if sizeSet {
			s, err := ParseSize(size)
			if err != nil || s == 0 {
				return &Error{sizeVar, size, "a size above 0 like 512MiB or 2GB"}
			}
			d.SizeBytes, from = s, sizeVar+"="+size
		}
		d.Path = filepath.Join(c.CacheRoot, fmt.Sprintf("cache%d", n))
		if pathSet {
			d.Path = filepath.Clean(path)
		}
		if prev, taken := owner[d.Path]; taken {
			return &Error{pathVar, path, fmt.Sprintf("a directory not already used by drive %d (%s)", prev, d.Path)}
		}
		owner[d.Path] = n
		if d.SizeBytes < minDriveBytes {
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"drive %d (%s) has %d bytes, below MCC's minimum of 10 GB; using it anyway",
				n, from, d.SizeBytes))
		}
		c.Drives = append(c.Drives, d)
	}
	if len(c.Drives) == 0 {
		c.Drives = []Drive{{Index: 1, Path: filepath.Join(c.CacheRoot, "cache1"), SizeBytes: defaultDriveBytes}}
	}
	// Out-of-range drive numbers are not drives, but an operator who wrote
	// STORAGE_10_SIZE_GB expects a tenth drive: say why it is missing.
	for n := 0; n <= 99; n++ {
		if n >= 1 && n <= maxDrives {
			continue
		}
		for _, suffix := range []string{"SIZE_GB", "SIZE", "PATH"} {
			name := fmt.Sprintf("STORAGE_%d_%s", n, suffix)
			if _, ok := r.get(name); ok {
				c.Warnings = append(c.Warnings, name+" is ignored: drives are numbered 1 to 9")
			}
		}
	}
	return nil
}

func (r reader) upstreams(c *Config) error {
	name := "UPSTREAM_HOST"
	v, ok := r.get(name)
	if !ok {
		// IoT Edge sets this for modules of a lower layer; MCC's nested
		// samples give the child no UPSTREAM_HOST, so it must be the default.
		name = "IOTEDGE_PARENTHOSTNAME"
		v, ok = r.get(name)
	}
	weighted := false
	if ok {
		for _, item := range strings.Split(v, ",") {
			item, weight, valid := cutWeight(strings.TrimSpace(item))
			if !valid {
				return &Error{name, v, fmt.Sprintf(`a weight from 1 to %d after "=", like gw-a=2`, maxWeight)}
			}
			weighted = weighted || weight != 1
			hp, valid := parseUpstream(item)
			if !valid {
				return &Error{name, v, "a comma-separated list of host or host:port (no scheme, no path, port 1-65535)"}
			}
			c.Upstreams = append(c.Upstreams, hp)
			c.UpstreamWeights = append(c.UpstreamWeights, weight)
		}
	}
	if err := r.boolVar("UPSTREAM_FALLBACK_DIRECT", &c.FallbackDirect); err != nil {
		return err
	}
	if c.FallbackDirect && len(c.Upstreams) == 0 {
		c.Warnings = append(c.Warnings, "UPSTREAM_FALLBACK_DIRECT has no effect without UPSTREAM_HOST: origins are fetched directly anyway")
	}
	return r.upstreamPolicy(c, name, v, weighted)
}

// cutWeight splits an UPSTREAM_HOST entry "host[:port][=W]" into the
// parent and its weight (1 when none is given).
func cutWeight(item string) (string, int, bool) {
	host, w, found := strings.Cut(item, "=")
	if !found {
		return item, 1, true
	}
	w = strings.TrimSpace(w)
	n, err := strconv.Atoi(w)
	if !allDigits(w) || err != nil || n < 1 || n > maxWeight {
		return "", 0, false
	}
	return strings.TrimSpace(host), n, true
}

// upstreamPolicy reads UPSTREAM_POLICY, once the parents (from hostVar,
// value hostValue) are known: under hash every parent must be listed once,
// since two entries for one name would be one parent with a doubled say.
func (r reader) upstreamPolicy(c *Config, hostVar, hostValue string, weighted bool) error {
	if v, ok := r.get("UPSTREAM_POLICY"); ok {
		switch strings.ToLower(v) {
		case "failover":
		case "hash":
			c.UpstreamHash = true
		default:
			return &Error{"UPSTREAM_POLICY", v, "failover (the parents in order) or hash (each key to one parent of the pool)"}
		}
	}
	if c.UpstreamHash {
		seen := map[string]bool{}
		for _, p := range c.Upstreams {
			if seen[p] {
				return &Error{hostVar, hostValue, fmt.Sprintf("each parent once under UPSTREAM_POLICY=hash (%s is listed twice)", p)}
			}
			seen[p] = true
		}
		if len(c.Upstreams) == 0 {
			c.Warnings = append(c.Warnings, "UPSTREAM_POLICY=hash has no effect without UPSTREAM_HOST: origins are fetched directly")
		}
	} else if weighted {
		c.Warnings = append(c.Warnings, hostVar+" gives weights, which only UPSTREAM_POLICY=hash uses: failover tries the parents in order")
	}
	return nil
}

func (r reader) proxy(c *Config) error {
	v, ok := r.get("UPSTREAM_PROXY")
	if !ok {
		return nil
	}
	p, valid := parseProxy(v)
	if !valid {
		return &Error{"UPSTREAM_PROXY", redactUserinfo(v), "host:port or user:pass@host:port (an http:// prefix is allowed)"}
	}
	c.Proxy = p
	return nil
}

func (r reader) customHosts(c *Config) error {
	indexes, err := r.customIndexes()
	if err != nil {
		return err
	}
	owner := map[string]int{} // host and port -> index, to refuse duplicates
	for _, n := range indexes {
		hostVar := fmt.Sprintf("CACHEABLE_CUSTOM_%d_HOST", n)
		canonVar := fmt.Sprintf("CACHEABLE_CUSTOM_%d_CANONICAL", n)
		keepVar := fmt.Sprintf("CACHEABLE_CUSTOM_%d_KEEP_QUERY", n)
		host, hostSet := r.get(hostVar)
		if !hostSet {
			// A lone alias or flag is a typo in N, not something to ignore.
			for _, name := range []string{canonVar, keepVar} {
				if v, ok := r.get(name); ok {
					return &Error{name, v, hostVar + " to be set as well"}
				}
			}
			continue
		}
		h, valid := parseCustomHost(host)
		if !valid {
			return &Error{hostVar, host, `host, host:port, *.suffix or https://host[:port] (no path)`}
		}
		h.Index = n
		key := h.Host + " " + h.Port
		if prev, taken := owner[key]; taken {
			return &Error{hostVar, host, fmt.Sprintf("a host not already listed in CACHEABLE_CUSTOM_%d_HOST", prev)}
		}
		owner[key] = n
		if v, ok := r.get(canonVar); ok {
			if !validCanonical(v) {
				return &Error{canonVar, v, "a name without '/', '?', '#' or spaces, like deb.debian.org"}
			}
			h.Canonical = strings.ToLower(v)
		}
		if err := r.boolVar(keepVar, &h.KeepQuery); err != nil {
			return err
		}
		c.CustomHosts = append(c.CustomHosts, h)
	}
	return nil
}

// customName matches the names of the CACHEABLE_CUSTOM_N_* variables.
var customName = regexp.MustCompile(`^CACHEABLE_CUSTOM_([0-9]+)_(HOST|CANONICAL|KEEP_QUERY)$`)

// customIndexes lists, in increasing order, the N of CACHEABLE_CUSTOM_N_*
// to read. MCC sets "no limit to the number of custom hosts", but lookup
// cannot list names: every N up to maxProbedCustom is probed through it,
// and a larger N is found by listing the process environment (os.Environ),
// its value still read through lookup. An N that is 0, has leading zeros
// or is above maxCustomIndex is an error, not a variable silently ignored.
func (r reader) customIndexes() ([]int, error) {
	indexes := make([]int, 0, maxProbedCustom)
	for n := 1; n <= maxProbedCustom; n++ {
		indexes = append(indexes, n)
	}
	environ := os.Environ()
	slices.Sort(environ) // the same first error for the same environment
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		m := customName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		v, set := r.get(name)
		if !set {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil || n < 1 || n > maxCustomIndex || m[1][0] == '0' {
			return nil, &Error{name, v, fmt.Sprintf("N from 1 to %d, without leading zeros", maxCustomIndex)}
		}
		if n > maxProbedCustom {
			indexes = append(indexes, n)
		}
	}
	slices.Sort(indexes)
	return slices.Compact(indexes), nil
}

func (r reader) summary(c *Config) error {
	if err := r.boolVar("IS_SUMMARY_PUBLIC", &c.SummaryPublic); err != nil {
		return err
	}
	if err := r.boolVar("IS_SUMMARY_ACCESS_UNRESTRICTED", &c.SummaryUnrestricted); err != nil {
		return err
	}
	c.SummaryAPIKey = c.CustomerKey
	if v, ok := r.get("SUMMARY_API_KEY"); ok {
		c.SummaryAPIKey = v
	}
	if c.SummaryPublic && !c.SummaryUnrestricted && c.SummaryAPIKey == "" {
		c.Warnings = append(c.Warnings, "IS_SUMMARY_PUBLIC is true but neither SUMMARY_API_KEY nor CUSTOMER_KEY is set: only loopback clients can read the summary")
	}
	return nil
}

func (r reader) rate(c *Config) error {
	v, ok := r.get("UPSTREAM_MAX_RATE")
	if !ok {
		return nil
	}
	n, valid := parseRate(v)
	if !valid {
		return &Error{"UPSTREAM_MAX_RATE", v, "bytes per second like 10MB or 5MiB (0 or unlimited: no cap)"}
	}
	c.UpstreamMaxRate = n
	return nil
}

// timeouts reads the upstream timeouts: durations above zero, since
// nothing may wait forever. Values at or above the Delivery Optimization
// agent's budget are allowed but warned about.
func (r reader) timeouts(c *Config) error {
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"UPSTREAM_HEADER_TIMEOUT", &c.UpstreamHeaderTimeout}, {"UPSTREAM_IDLE_TIMEOUT", &c.UpstreamIdleTimeout}} {
		v, ok := r.get(d.name)
		if !ok {
			continue
		}
		dur, valid := parseMaxStale(v)
		if !valid || dur <= 0 {
			return &Error{d.name, v, "a duration above zero like 15s or 1m, or a number of seconds"}
		}
		*d.dst = dur
		if dur >= doBudget {
			c.Warnings = append(c.Warnings, fmt.Sprintf(
				"%s=%s is not under 20 s: a Delivery Optimization client gives up on the cache first, and avoids it for all hosts for 15 minutes", d.name, v))
		}
	}
	return nil
}

func (r reader) stale(c *Config) error {
	if v, ok := r.get("MAX_STALE"); ok {
		d, valid := parseMaxStale(v)
		if !valid {
			return &Error{"MAX_STALE", v, "a duration like 72h or 30m, a number of seconds, or unlimited"}
		}
		c.MaxStale = d
	}
	if v, ok := r.get("REVALIDATE_WAIT"); ok {
		d, valid := parseMaxStale(v)
		if !valid || d < 0 {
			return &Error{"REVALIDATE_WAIT", v, "a duration like 3s or 500ms, or a number of seconds (0: serve the stored copy at once)"}
		}
		c.RevalidateWait = d
	}
	if c.RevalidateWait >= c.UpstreamHeaderTimeout {
		c.Warnings = append(c.Warnings, fmt.Sprintf(
			"REVALIDATE_WAIT (%v) is not under UPSTREAM_HEADER_TIMEOUT (%v): a stale entry is never served while its revalidation is slow",
			c.RevalidateWait, c.UpstreamHeaderTimeout))
	}
	return nil
}

func (r reader) freshness(c *Config) error {
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"INDEX_MAX_AGE", &c.IndexMaxAge}, {"NEGATIVE_MAX_AGE", &c.NegativeMaxAge}} {
		v, ok := r.get(d.name)
		if !ok {
			continue
		}
		dur, valid := parseMaxStale(v)
		if !valid || dur < 0 {
			return &Error{d.name, v, "a duration like 30s or 5m, or a number of seconds"}
		}
		*d.dst = dur
	}
	for _, l := range []struct {
		name string
		dst  *[]string
	}{{"INDEX_PATTERNS", &c.IndexPatterns}, {"PAYLOAD_PATTERNS", &c.PayloadPatterns}} {
		v, ok := r.get(l.name)
		if !ok {
			continue
		}
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if _, err := path.Match(p, ""); err != nil || p == "" || strings.Contains(p, "/") {
				return &Error{l.name, v, "comma-separated file-name patterns like *.deb,Packages*"}
			}
			*l.dst = append(*l.dst, p)
		}
	}
	return nil
}

func (r reader) logFormat(c *Config) error {
	v, ok := r.get("LOG_FORMAT")
	if !ok {
		return r.boolVar("ACCESS_LOG", &c.AccessLog)
	}
	switch f := strings.ToLower(v); f {
	case "text", "json":
		c.LogFormat = f
		return r.boolVar("ACCESS_LOG", &c.AccessLog)
	}
	return &Error{"LOG_FORMAT", v, "text or json"}
}
