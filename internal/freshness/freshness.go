// Package freshness is a shared cache's decision layer (RFC 9111): which
// responses may be stored (§3, Storable), how long a stored response stays
// fresh (§4.2, Expiry), and whether it answers a request as it is or after a
// validation (§4, §5.2.1, Reuse), from the response and request directives
// (§5.2) parsed as RFC 9110 §5.6 lists of tokens and quoted-strings.
//
// Its defaults know package repositories: index files at fixed URLs (apt
// InRelease and Packages, yum repomd.xml, apk APKINDEX, opkg Packages)
// change in place and are revalidated; content-addressed payloads (.deb,
// .rpm, .apk, .ipk, Device Update files) never change and are kept until
// evicted.
package freshness

import (
	"path"
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

// Policy decides freshness lifetimes. Nil lists and a zero HeuristicMax
// take the defaults of DefaultPolicy (an empty, non-nil list means none);
// IndexMaxAge is used as given, since zero is a meaningful window (an index
// is revalidated on every use).
type Policy struct {
	// IndexPatterns are shell patterns (path.Match) matched against the
	// last segment of a path: repository indexes, revalidated when their
	// origin gives them no freshness of its own. nil: DefaultIndexPatterns.
	IndexPatterns []string
	// PayloadPatterns are patterns of content-addressed files. nil:
	// DefaultPayloadPatterns.
	PayloadPatterns []string
	// PayloadHosts are host suffixes whose every file is content-addressed
	// (Device Update and Delivery Optimization content). nil:
	// DefaultPayloadHosts.
	PayloadHosts []string
	// IndexMaxAge is the package-repository window: an index without
	// explicit freshness counts as fresh for this long after this cache
	// received or validated it, and a request's own no-cache or max-age
	// for an index or payload is answered by a check made within it (see
	// Reuse), so that a burst of `apt-get update` from a fleet makes one
	// upstream check, not one per device. Zero: no window.
	IndexMaxAge time.Duration
	// HeuristicMax caps the heuristic lifetime (10% of the time since
	// Last-Modified, RFC 9111 §4.2.2) of other responses. Zero: 24 h;
	// negative: no heuristic lifetime.
	HeuristicMax time.Duration
}

// defaultHeuristicMax is DefaultPolicy's HeuristicMax.
const defaultHeuristicMax = 24 * time.Hour

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
		HeuristicMax:    defaultHeuristicMax,
	}
}

// Classify says what the file at host and path is. by-hash paths of apt
// (…/by-hash/SHA256/<digest>) are content-addressed too.
func (p Policy) Classify(host, urlPath string) Class {
	for _, suffix := range orDefault(p.PayloadHosts, DefaultPayloadHosts) {
		if strings.HasSuffix(host, suffix) {
			return Payload
		}
	}
	if strings.Contains(urlPath, "/by-hash/") {
		return Payload
	}
	base := path.Base(urlPath)
	match := matchSegment
	if strings.IndexByte(base, '/') >= 0 {
		match = pathMatch // "/": leave the corner to path.Match
	}
	for _, pat := range orDefault(p.PayloadPatterns, DefaultPayloadPatterns) {
		if match(pat, base) {
			return Payload
		}
	}
	for _, pat := range orDefault(p.IndexPatterns, DefaultIndexPatterns) {
		if match(pat, base) {
			return Index
		}
	}
	return Other
}

func orDefault(list, def []string) []string {
	if list == nil {
		return def
	}
	return list
}

func pathMatch(pat, name string) bool {
	ok, _ := path.Match(pat, name)
	return ok
}

// matchSegment is path.Match(pat, name) for a name without '/' (a
// malformed pattern matches nothing), faster for the patterns whose only
// metacharacter is '*' (all the built-in ones): Classify runs on requests
// that carry directives, and path.Match costs up to a few hundred
// nanoseconds for a pattern such as "*.orig.tar.*".
func matchSegment(pat, name string) bool {
	// Most patterns fail on their first or last character: a literal
	// character there must be name's.
	if n := len(pat); n > 0 {
		if c := pat[0]; !isMeta(c) && (name == "" || name[0] != c) {
			return false
		}
		if c := pat[n-1]; !isMeta(c) && (name == "" || name[len(name)-1] != c) {
			return false
		}
	}
	for i := 0; i < len(pat); i++ {
		if c := pat[i]; c != '*' && isMeta(c) {
			return pathMatch(pat, name)
		}
	}
	// The parts between stars must appear in name in order, the first at
	// its start and the last at its end; taking each middle part's first
	// occurrence leaves the most room for the rest.
	first, rest, starred := strings.Cut(pat, "*")
	if !starred {
		return pat == name
	}
	if !strings.HasPrefix(name, first) {
		return false
	}
	name = name[len(first):]
	for {
		part, more, starred := strings.Cut(rest, "*")
		if !starred {
			return strings.HasSuffix(name, part)
		}
		i := strings.Index(name, part)
		if i < 0 {
			return false
		}
		name, rest = name[i+len(part):], more
	}
}

func isMeta(c byte) bool { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' }
