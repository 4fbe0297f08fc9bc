package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"gatecache/internal/origin"
)

const maxInt64 = math.MaxInt64

// sizeUnits maps a lowercased unit to its multiplier. Bare K/M/G/T are the
// decimal ones because MCC counts drive sizes in decimal GB; Ki/Mi/Gi/Ti
// are accepted because Kubernetes manifests on edge nodes write them so.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6,
	"g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"ki": 1 << 10, "kib": 1 << 10, "mi": 1 << 20, "mib": 1 << 20,
	"gi": 1 << 30, "gib": 1 << 30, "ti": 1 << 40, "tib": 1 << 40,
}

// ParseSize parses a byte count: a whole number with an optional,
// case-insensitive unit: B, K/KB, M/MB, G/GB, T/TB (powers of 1000) or
// KiB, MiB, GiB, TiB (powers of 1024, also written Ki, Mi, Gi, Ti). A space
// may separate number and unit. A plain number is bytes. Negative numbers,
// fractions ("1.5GiB") and values above math.MaxInt64 are rejected:
// fractions would make the byte count depend on rounding rules.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	switch {
	case t == "":
		return 0, errors.New("empty size")
	case t[0] == '-':
		return 0, fmt.Errorf("size %q is negative", s)
	case i == 0:
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	digits, unit := t[:i], strings.TrimSpace(t[i:])
	if unit != "" && (unit[0] == '.' || unit[0] == ',') {
		return 0, fmt.Errorf("size %q: fractions are not supported, use a smaller unit", s)
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, unit)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > maxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// parseRate parses UPSTREAM_MAX_RATE: a size per second, with an optional
// "/s" suffix since that is how people write rates; 0 or "unlimited" means
// no cap.
func parseRate(v string) (int64, bool) {
	if strings.EqualFold(v, "unlimited") {
		return 0, true
	}
	if len(v) > 2 && strings.EqualFold(v[len(v)-2:], "/s") {
		v = v[:len(v)-2]
	}
	n, err := ParseSize(v)
	return n, err == nil
}

// parseMaxStale parses MAX_STALE: "unlimited" (-1), a whole number of
// seconds (the unit of HTTP's stale-if-error), or a non-negative Go duration.
func parseMaxStale(v string) (time.Duration, bool) {
	if strings.EqualFold(v, "unlimited") {
		return -1, true
	}
	if allDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > maxInt64/int64(time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d >= 0
}

// parseBool accepts the spellings found in MCC docs and manifests
// ("True"/"False") and the usual shell ones.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}

// parseGUID accepts 8-4-4-4-12 hex digits in any case, optionally in
// braces (the Windows registry form), and returns the lowercased bare form
// so that IDs compare equal however they were written.
func parseGUID(v string) (string, bool) {
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		v = v[1 : len(v)-1]
	}
	if len(v) != 36 {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			if !isHex(c) {
				return "", false
			}
		}
	}
	return strings.ToLower(v), true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseUpstream normalises one UPSTREAM_HOST item to "host:port", port 80
// by default because MCC parents listen on plain HTTP port 80.
func parseUpstream(item string) (string, bool) {
	if item == "" || strings.ContainsAny(item, "/?#@") {
		return "", false
	}
	return origin.ParentAddr(item)
}

// parseProxy parses "[http://][user:pass@]host:port[/]". The user part is
// split at the last '@' and the first ':', and not percent-decoded, so a
// password may contain '@' or ':' as is.
func parseProxy(v string) (*Proxy, bool) {
	s := v
	if len(s) >= 7 && strings.EqualFold(s[:7], "http://") {
		s = s[7:]
	}
	s = strings.TrimSuffix(s, "/")
	p := &Proxy{}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		p.User, p.Password, _ = strings.Cut(s[:at], ":")
		if p.User == "" {
			return nil, false
		}
		s = s[at+1:]
	}
	if strings.ContainsAny(s, "/?#") {
		return nil, false
	}
	host, port, ok := origin.ParseHostPort(s)
	if !ok || port == "" {
		return nil, false
	}
	p.Addr = net.JoinHostPort(host, port)
	return p, true
}

// redactUserinfo hides the password of a "[scheme://]user:pass@host" value
// so that an error message about it can be logged safely.
func redactUserinfo(v string) string {
	at := strings.LastIndexByte(v, '@')
	if at < 0 {
		return v
	}
	start := 0
	if i := strings.Index(v[:at], "://"); i >= 0 {
		start = i + 3
	}
	colon := strings.IndexByte(v[start:at], ':')
	if colon < 0 {
		return v
	}
	return v[:start+colon+1] + redacted + v[at:]
}

// parseCustomHost parses a CACHEABLE_CUSTOM_N_HOST value (origin.ParseHost
// says what is accepted); the alias is origin's default for the host.
func parseCustomHost(v string) (CustomHost, bool) {
	h, ok := origin.ParseHost(v)
	if !ok {
		return CustomHost{}, false
	}
	return CustomHost{Host: h.Name, Port: h.Port, TLS: h.TLS, Canonical: h.DefaultAlias()}, true
}

// validCanonical accepts a cache-key alias: one non-empty token that can
// stand as the first segment of a cache key and of a request path.
func validCanonical(v string) bool {
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c <= ' ' || c == 0x7f, c == '/', c == '\\', c == '?', c == '#':
			return false
		}
	}
	return v != ""
}

// validListenAddr accepts what net.Listen accepts for TCP and an operator
// means: host:port with a numeric port (0 picks a free one, handy in tests)
// and an empty host, an IP or a host name.
func validListenAddr(v string) bool {
	host, port, err := net.SplitHostPort(v)
	if err != nil || !allDigits(port) || len(port) > 5 {
		return false
	}
	if n, _ := strconv.Atoi(port); n > 65535 {
		return false
	}
	return host == "" || origin.ValidHost(host)
}
