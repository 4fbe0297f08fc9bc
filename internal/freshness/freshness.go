// Package freshness decides how long a stored response may be served
// without asking upstream (RFC 9111 §4.2), with defaults that know package
// repositories: index files at fixed URLs (apt InRelease and Packages, yum
// repomd.xml, apk APKINDEX, opkg Packages) change in place and are
// revalidated; content-addressed payloads (.deb, .rpm, .apk, .ipk, Device
// Update files) never change and are kept until evicted.
package freshness

import (
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Class is what a path holds, as far as freshness goes.
type Class int

const (
	Other   Class = iota // RFC 9111 rules, with a bounded heuristic
	Index                // a repository index at a fixed URL
	Payload              // a content-addressed file: never changes
)

// forever is the lifetime of payloads: they are kept until evicted.
const forever = 100 * 365 * 24 * time.Hour

// Policy decides freshness lifetimes. Zero fields take the defaults of
// DefaultPolicy.
type Policy struct {
	// IndexPatterns are shell patterns (path.Match) matched against the
	// last segment of a path: repository indexes, revalidated when their
	// origin gives them no freshness of its own.
	IndexPatterns []string
	// PayloadPatterns are patterns of content-addressed files.
	PayloadPatterns []string
	// PayloadHosts are host suffixes whose every file is content-addressed
	// (Device Update and Delivery Optimization content).
	PayloadHosts []string
	// IndexMaxAge is how long an index without explicit freshness counts
	// as fresh: a short window, so that a burst of `apt-get update` from a
	// fleet makes one upstream check, not one per device.
	IndexMaxAge time.Duration
	// HeuristicMax caps the heuristic lifetime (10% of the time since
	// Last-Modified, RFC 9111 §4.2.2) of other responses.
	HeuristicMax time.Duration
}

// DefaultIndexPatterns and DefaultPayloadPatterns are the built-in lists.
var (
	DefaultIndexPatterns = []string{
		"InRelease", "Release", "Release.gpg", "Packages", "Packages.*", "Sources", "Sources.*",
		"Contents-*", "Translation-*", "Components-*", "icons-*", "Index", "*.diff", // apt
		"repomd.xml", "repomd.xml.asc", // yum / dnf
		"APKINDEX.tar.gz",                 // apk
		"Packages.sig", "Packages.stamps", // opkg
	}
	DefaultPayloadPatterns = []string{
		"*.deb", "*.udeb", "*.ddeb", "*.rpm", "*.drpm", "*.apk", "*.ipk", "*.swu", "*.dsc", "*.orig.tar.*", "*.debian.tar.*",
	}
	DefaultPayloadHosts = []string{".dl.adu.microsoft.com", ".prod.adu.microsoft.com", ".delivery.mp.microsoft.com"}
)

// DefaultPolicy returns the built-in policy.
func DefaultPolicy() Policy {
	return Policy{
		IndexPatterns:   DefaultIndexPatterns,
		PayloadPatterns: DefaultPayloadPatterns,
		PayloadHosts:    DefaultPayloadHosts,
		IndexMaxAge:     10 * time.Second,
		HeuristicMax:    24 * time.Hour,
	}
}

// Classify says what the file at host and path is. by-hash paths of apt
// (…/by-hash/SHA256/<digest>) are content-addressed too.
func (p Policy) Classify(host, urlPath string) Class {
	for _, suffix := range p.PayloadHosts {
		if strings.HasSuffix(host, suffix) {
			return Payload
		}
	}
	if strings.Contains(urlPath, "/by-hash/") {
		return Payload
	}
	base := path.Base(urlPath)
	for _, pat := range p.PayloadPatterns {
		if ok, _ := path.Match(pat, base); ok {
			return Payload
		}
	}
	for _, pat := range p.IndexPatterns {
		if ok, _ := path.Match(pat, base); ok {
			return Index
		}
	}
	return Other
}

// Directives parses Cache-Control field values into lower-cased directive
// names and their (unquoted) arguments.
func Directives(values []string) map[string]string {
	d := map[string]string{}
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
				d[name] = strings.Trim(strings.TrimSpace(arg), `"`)
			}
		}
	}
	return d
}

func seconds(v string) (time.Duration, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(min(n, int64(forever/time.Second))) * time.Second, true
}

// Lifetime is the freshness lifetime of a stored response of class c with
// header h (RFC 9111 §4.2.1, shared cache), and whether the origin set it
// explicitly.
func (p Policy) Lifetime(c Class, h http.Header) (time.Duration, bool) {
	cc := Directives(h.Values("Cache-Control"))
	if _, ok := cc["no-cache"]; ok && cc["no-cache"] == "" {
		return 0, true // §5.2.2.4: always revalidate
	}
	if c == Payload {
		return forever, false
	}
	if v, ok := cc["s-maxage"]; ok {
		if d, valid := seconds(v); valid {
			return d, true
		}
	}
	if v, ok := cc["max-age"]; ok {
		if d, valid := seconds(v); valid {
			return d, true
		}
	}
	if e := h.Get("Expires"); e != "" {
		exp, err := http.ParseTime(e)
		if err != nil {
			return 0, true // §5.3: an invalid Expires means already expired
		}
		date := dateOr(h, exp)
		return max(exp.Sub(date), 0), true
	}
	if c == Index {
		return p.IndexMaxAge, false
	}
	if lm, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		date := dateOr(h, lm)
		return min(max(date.Sub(lm)/10, 0), p.HeuristicMax), false
	}
	return 0, false
}

func dateOr(h http.Header, fallback time.Time) time.Time {
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		return d
	}
	return fallback
}

// Age is the current age of a stored response received at responseTime
// (RFC 9111 §4.2.3, with the request time taken as the response time).
func Age(h http.Header, responseTime, now time.Time) time.Duration {
	apparent := time.Duration(0)
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		apparent = max(responseTime.Sub(d), 0)
	}
	corrected := time.Duration(0)
	if v, ok := seconds(h.Get("Age")); ok {
		corrected = v
	}
	return max(apparent, corrected) + max(now.Sub(responseTime), 0)
}

// MustRevalidate reports whether a stale copy may not be served when
// revalidation fails (must-revalidate, proxy-revalidate, §5.2.2.2; s-maxage
// implies it for shared caches, §5.2.2.10).
func MustRevalidate(h http.Header) bool {
	cc := Directives(h.Values("Cache-Control"))
	for _, name := range []string{"must-revalidate", "proxy-revalidate", "s-maxage"} {
		if _, ok := cc[name]; ok {
			return true
		}
	}
	return false
}

// RequestWantsValidation reports whether a request's own directives ask a
// cache to check with upstream before answering (no-cache, max-age=0,
// Pragma: no-cache; RFC 9111 §5.2.1, §5.4).
func RequestWantsValidation(r *http.Request, age time.Duration) bool {
	cc := Directives(r.Header.Values("Cache-Control"))
	if _, ok := cc["no-cache"]; ok {
		return true
	}
	if v, ok := cc["max-age"]; ok {
		if d, valid := seconds(v); valid && age > d {
			return true
		}
	}
	if len(cc) == 0 && strings.EqualFold(strings.TrimSpace(r.Header.Get("Pragma")), "no-cache") {
		return true
	}
	return false
}

// OnlyIfCached reports the only-if-cached request directive (§5.2.1.7).
func OnlyIfCached(r *http.Request) bool {
	_, ok := Directives(r.Header.Values("Cache-Control"))["only-if-cached"]
	return ok
}
