package freshness

import (
	"net/http"
	"path"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestClassify(t *testing.T) {
	p := DefaultPolicy()
	cases := map[string]Class{
		"/debian/dists/bookworm/InRelease":                     Index,
		"/debian/dists/bookworm/main/binary-arm64/Packages.xz": Index,
		"/./InRelease":                                                 Index,
		"/centos/repodata/repomd.xml":                                  Index,
		"/alpine/v3.20/main/x86_64/APKINDEX.tar.gz":                    Index,
		"/debian/pool/main/h/hello/hello_2.10-3_arm64.deb":             Payload,
		"/fedora/Packages/h/hello-2.12-1.fc40.x86_64.rpm":              Payload,
		"/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abcd": Payload,
		"/images/firmware.swu":                                         Payload,
		"/files/readme.txt":                                            Other,
	}
	for path, want := range cases {
		if got := p.Classify("deb.debian.org", path); got != want {
			t.Errorf("%s: class %d, want %d", path, got, want)
		}
	}
	if got := p.Classify("duinstance.b.nlu.dl.adu.microsoft.com", "/westus2/x/file.json"); got != Payload {
		t.Errorf("Device Update file: class %d, want Payload", got)
	}
}

// The examples follow RFC 9111 §4.2.1's order: s-maxage, max-age, Expires,
// then heuristics.
func TestLifetime(t *testing.T) {
	p := DefaultPolicy()
	date := t0.Format(http.TimeFormat)
	cases := []struct {
		name     string
		class    Class
		h        http.Header
		want     time.Duration
		explicit bool
	}{
		{"s-maxage wins", Other, hdr("Cache-Control", "max-age=60, s-maxage=30"), 30 * time.Second, true},
		{"max-age", Other, hdr("Cache-Control", "public, max-age=600"), 10 * time.Minute, true},
		{"max-age over Expires", Other, hdr("Cache-Control", "max-age=5", "Date", date, "Expires", t0.Add(time.Hour).Format(http.TimeFormat)), 5 * time.Second, true},
		{"Expires minus Date", Other, hdr("Date", date, "Expires", t0.Add(time.Hour).Format(http.TimeFormat)), time.Hour, true},
		{"invalid Expires is expired", Other, hdr("Expires", "0"), 0, true},
		{"no-cache", Payload, hdr("Cache-Control", "no-cache"), 0, true},
		{"payload kept", Payload, hdr("Cache-Control", "max-age=0"), forever, false},
		{"index window", Index, hdr(), 10 * time.Second, false},
		{"index explicit", Index, hdr("Cache-Control", "max-age=120"), 2 * time.Minute, true},
		{"heuristic 10%", Other, hdr("Date", date, "Last-Modified", t0.Add(-100*time.Hour).Format(http.TimeFormat)), 10 * time.Hour, false},
		{"heuristic capped", Other, hdr("Date", date, "Last-Modified", t0.Add(-1000*24*time.Hour).Format(http.TimeFormat)), 24 * time.Hour, false},
		{"nothing to go on", Other, hdr(), 0, false},
		{"negative max-age is invalid: stale", Other, hdr("Cache-Control", "max-age=-1"), 0, true},
	}
	for _, c := range cases {
		got, explicit := p.Lifetime(c.class, c.h)
		if got != c.want || explicit != c.explicit {
			t.Errorf("%s: lifetime %v explicit %v, want %v %v", c.name, got, explicit, c.want, c.explicit)
		}
	}
}

// RFC 9111 §4.2.3: current_age = max(apparent_age, age_value) + resident_time.
func TestAge(t *testing.T) {
	received := t0
	cases := []struct {
		h    http.Header
		now  time.Time
		want time.Duration
	}{
		{hdr("Date", t0.Format(http.TimeFormat)), t0.Add(30 * time.Second), 30 * time.Second},
		{hdr("Date", t0.Add(-10*time.Second).Format(http.TimeFormat)), t0.Add(5 * time.Second), 15 * time.Second},
		{hdr("Date", t0.Format(http.TimeFormat), "Age", "100"), t0.Add(5 * time.Second), 105 * time.Second},
		{hdr("Date", t0.Add(time.Hour).Format(http.TimeFormat)), t0, 0}, // clock skew: never negative
		{hdr(), t0.Add(time.Minute), time.Minute},
	}
	for i, c := range cases {
		if got := Age(c.h, received, c.now); got != c.want {
			t.Errorf("case %d: age %v, want %v", i, got, c.want)
		}
	}
}

// must-revalidate, and s-maxage, which implies it for a shared cache (RFC
// 9111 §5.2.2.10).
func TestMustRevalidate(t *testing.T) {
	if !MustRevalidate(hdr("Cache-Control", "public, must-revalidate")) || !MustRevalidate(hdr("Cache-Control", "s-maxage=5")) || MustRevalidate(hdr("Cache-Control", "max-age=5")) {
		t.Fatal("must-revalidate misread")
	}
}

// matchSegment agrees with path.Match, which it speeds up.
func TestMatchIsPathMatch(t *testing.T) {
	pats := append(append([]string{"*", "**", "a*b*c", "*.tar.*", "x*", "*x", "", "[ab]*", "a?c", `\*`, `\*x`, "[a]b", "[]a]x", "x[]]", "[^a]*", "[a-c]?", "a]b", "a[", "*/*", `a\`}, DefaultIndexPatterns...), DefaultPayloadPatterns...)
	names := []string{"", "/", "a", "abc", "aXbYc", "acb", "InRelease", "Packages", "Packages.xz", "Release.gpg",
		"foo.orig.tar.gz", "foo.tar", "hello_1.0_amd64.deb", "x.deb.part", "Contents-amd64.gz", "abcbc", "*", "repomd.xml", "b", "ab", "]x", "ax", "x]", "bb", "cz", "a]b", "a[", "*x", "a/b", `a\`}
	for _, p := range pats {
		for _, n := range names {
			want, _ := path.Match(p, n)
			if strings.Contains(n, "/") {
				continue // Classify leaves these to path.Match
			}
			if got := matchSegment(p, n); got != want {
				t.Errorf("match(%q, %q) = %v, path.Match says %v", p, n, got, want)
			}
		}
	}
}

// Policy's zero values, as its documentation states them: nil lists are
// the built-in ones, a zero HeuristicMax is 24 h, and a zero IndexMaxAge
// is no window (not DefaultPolicy's 10 s).
func TestZeroPolicy(t *testing.T) {
	var zero Policy
	def := DefaultPolicy()
	for _, c := range [][2]string{
		{"deb.debian.org", "/debian/dists/stable/InRelease"}, {"deb.debian.org", "/pool/main/a/a_1.deb"},
		{"x.dl.adu.microsoft.com", "/f"}, {"repo.example", "/by-hash/SHA256/ab"}, {"repo.example", "/other.txt"},
	} {
		if got, want := zero.Classify(c[0], c[1]), def.Classify(c[0], c[1]); got != want {
			t.Errorf("Policy{}.Classify(%q, %q) = %v, want %v as DefaultPolicy", c[0], c[1], got, want)
		}
	}
	old := hdr("Date", t0.Format(http.TimeFormat), "Last-Modified", t0.Add(-1000*24*time.Hour).Format(http.TimeFormat))
	if d, _ := zero.Lifetime(Other, old); d != 24*time.Hour {
		t.Errorf("Policy{} heuristic lifetime %v, want the 24 h default cap", d)
	}
	if d, _ := zero.Lifetime(Index, hdr("Date", t0.Format(http.TimeFormat))); d != 0 {
		t.Errorf("Policy{} index lifetime %v, want 0 (no window)", d)
	}
}
