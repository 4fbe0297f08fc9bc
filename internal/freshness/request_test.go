package freshness

import (
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

const sec = time.Second

// reuseCase is one request against one stored response.
type reuseCase struct {
	name string
	req  http.Header
	s    Stored
	want Decision
}

func runReuse(t *testing.T, cases []reuseCase) {
	t.Helper()
	p := DefaultPolicy() // IndexMaxAge 10 s
	for _, c := range cases {
		if got := p.Reuse(ParseRequest(c.req), c.s); got != c.want {
			t.Errorf("%s: decision %d, want %d (request %+v)", c.name, got, c.want, ParseRequest(c.req))
		}
	}
}

// other is a stored response of no package class: age, lifetime, and the
// time since this cache last checked it.
func other(age, lifetime, since time.Duration) Stored {
	return Stored{Host: "example.com", Path: "/files/a.bin", Age: age, Lifetime: lifetime, SinceCheck: since}
}

// RFC 9111 §5.2.1.1: max-age limits the age of what the client accepts, and
// without max-stale it does not accept stale.
func TestRFC9111_5_2_1_1_RequestMaxAge(t *testing.T) {
	runReuse(t, []reuseCase{
		{"younger", hdr("Cache-Control", "max-age=60"), other(30*sec, time.Hour, 30*sec), Serve},
		{"as old", hdr("Cache-Control", "max-age=60"), other(60*sec, time.Hour, 60*sec), Serve},
		{"older", hdr("Cache-Control", "max-age=60"), other(61*sec, time.Hour, 61*sec), Validate},
		{"max-age=0 just received", hdr("Cache-Control", "max-age=0"), other(sec, time.Hour, sec), Validate},
		{"max-age does not admit stale", hdr("Cache-Control", "max-age=600"), other(120*sec, 60*sec, 120*sec), Validate},
		{"duplicates: the smallest", hdr("Cache-Control", "max-age=600, max-age=10"), other(30*sec, time.Hour, 30*sec), Validate},
		{"invalid counts as 0", hdr("Cache-Control", "max-age=soon"), other(sec, time.Hour, sec), Validate},
		{"quoted form accepted", hdr("Cache-Control", `max-age="60"`), other(30*sec, time.Hour, 30*sec), Serve},
		{"unknown directive ignored", hdr("Cache-Control", "foo, bar=1"), other(30*sec, time.Hour, 30*sec), Serve},
	})
}

// RFC 9111 §5.2.1.2: max-stale admits stale responses, by a bounded or any
// amount; whether the response allows it is the caller's second test
// (ServeStale).
func TestRFC9111_5_2_1_2_RequestMaxStale(t *testing.T) {
	runReuse(t, []reuseCase{
		{"within", hdr("Cache-Control", "max-stale=100"), other(150*sec, 60*sec, 150*sec), ServeStale},
		{"beyond", hdr("Cache-Control", "max-stale=100"), other(200*sec, 60*sec, 200*sec), Validate},
		{"no value: any staleness", hdr("Cache-Control", "max-stale"), other(1000*time.Hour, 60*sec, time.Hour), ServeStale},
		{"fresh is served", hdr("Cache-Control", "max-stale=5"), other(10*sec, 60*sec, 10*sec), Serve},
		{"with max-age", hdr("Cache-Control", "max-age=100, max-stale=1000"), other(150*sec, 60*sec, 150*sec), Validate},
		{"duplicates: the smallest", hdr("Cache-Control", "max-stale, max-stale=10"), other(150*sec, 60*sec, 150*sec), Validate},
		{"invalid is ignored", hdr("Cache-Control", "max-stale=lots"), other(150*sec, 60*sec, 150*sec), Validate},
		{"no-cache wins", hdr("Cache-Control", "max-stale, no-cache"), other(150*sec, 60*sec, 150*sec), Validate},
	})
}

// RFC 9111 §5.2.1.3: min-fresh asks for a response fresh for at least so
// long.
func TestRFC9111_5_2_1_3_RequestMinFresh(t *testing.T) {
	runReuse(t, []reuseCase{
		{"enough left", hdr("Cache-Control", "min-fresh=60"), other(10*sec, 100*sec, 10*sec), Serve},
		{"exactly enough", hdr("Cache-Control", "min-fresh=60"), other(40*sec, 100*sec, 40*sec), Serve},
		{"not enough", hdr("Cache-Control", "min-fresh=60"), other(50*sec, 100*sec, 50*sec), Validate},
		{"invalid: nothing is fresh enough", hdr("Cache-Control", "min-fresh=x"), other(sec, time.Hour, sec), Validate},
		{"duplicates: the largest", hdr("Cache-Control", "min-fresh=1, min-fresh=3600"), other(sec, time.Hour, sec), Validate},
		{"not lifted by the index window", hdr("Cache-Control", "min-fresh=60"), Stored{Host: "deb.debian.org", Path: "/debian/dists/stable/InRelease", Age: sec, Lifetime: 11 * sec, SinceCheck: sec}, Validate},
	})
}

// RFC 9111 §5.2.1.4 and §5.4: no-cache, and Pragma: no-cache when there is
// no Cache-Control.
func TestRFC9111_5_2_1_4_RequestNoCacheAndPragma(t *testing.T) {
	runReuse(t, []reuseCase{
		{"no-cache", hdr("Cache-Control", "no-cache"), other(0, time.Hour, 0), Validate},
		{"No-Cache", hdr("Cache-Control", "No-Cache"), other(0, time.Hour, 0), Validate},
		{"Pragma", hdr("Pragma", "no-cache"), other(0, time.Hour, 0), Validate},
		{"Pragma in a list", hdr("Pragma", "x-foo, NO-CACHE"), other(0, time.Hour, 0), Validate},
		{"Pragma ignored with Cache-Control", hdr("Cache-Control", "max-age=3600", "Pragma", "no-cache"), other(0, time.Hour, 0), Serve},
		{"Pragma ignored with any Cache-Control directive", hdr("Cache-Control", "x-ext", "Pragma", "no-cache"), other(0, time.Hour, 0), Serve},
		{"Pragma used with an empty Cache-Control", hdr("Cache-Control", "", "Pragma", "no-cache"), other(0, time.Hour, 0), Validate},
		{"other Pragma", hdr("Pragma", "x-foo"), other(0, time.Hour, 0), Serve},
		{"no directives: fresh", hdr(), other(0, time.Hour, 0), Serve},
		{"no directives: stale", hdr(), other(time.Hour, time.Hour, time.Hour), Validate},
		{"only-if-cached does not decide freshness", hdr("Cache-Control", "only-if-cached"), other(2*time.Hour, time.Hour, time.Hour), Validate},
		{"no-store does not keep a stored answer from a request", hdr("Cache-Control", "no-store"), other(0, time.Hour, 0), Serve},
	})
}

// The package-repository window (beyond §5.2.1.1 and §5.2.1.4): apt's
// max-age=0 for an index (and no-cache, Pragma) is answered by a fresh
// response this cache checked within IndexMaxAge, however old it is;
// content of no package class gets the RFC's answer.
func TestRFC9111_5_2_1_4_PackageWindowDeviation(t *testing.T) {
	idx := func(age, lifetime, since time.Duration) Stored {
		return Stored{Host: "deb.debian.org", Path: "/debian/dists/stable/InRelease", Age: age, Lifetime: lifetime, SinceCheck: since}
	}
	pay := Stored{Host: "deb.debian.org", Path: "/debian/dists/stable/main/binary-amd64/by-hash/SHA256/ab12", Age: 5 * sec, Lifetime: forever, SinceCheck: 5 * sec}
	runReuse(t, []reuseCase{
		{"apt max-age=0 within the window", hdr("Cache-Control", "max-age=0"), idx(3*sec, 11*sec, 3*sec), Serve},
		{"behind a CDN: old but just checked", hdr("Cache-Control", "max-age=0"), idx(3000*sec, 3010*sec, 2*sec), Serve},
		{"no-cache within the window", hdr("Cache-Control", "no-cache"), idx(3*sec, 11*sec, 3*sec), Serve},
		{"Pragma within the window", hdr("Pragma", "no-cache"), idx(3*sec, 11*sec, 3*sec), Serve},
		{"after the window", hdr("Cache-Control", "max-age=0"), idx(10*sec, time.Hour, 10*sec), Validate},
		{"never for a stale response", hdr("Cache-Control", "max-age=0"), idx(20*sec, 10*sec, 2*sec), Validate},
		{"by-hash payload", hdr("Cache-Control", "max-age=0"), pay, Serve},
		{"other content: max-age=0", hdr("Cache-Control", "max-age=0"), other(3*sec, time.Hour, 3*sec), Validate},
		{"other content: no-cache", hdr("Cache-Control", "no-cache"), other(3*sec, time.Hour, 3*sec), Validate},
	})
	p := DefaultPolicy()
	p.IndexMaxAge = 0
	if p.Reuse(ParseRequest(hdr("Cache-Control", "max-age=0")), idx(sec, time.Hour, 0)) != Validate {
		t.Error("IndexMaxAge 0 must leave no window")
	}
}

func TestRFC9111_5_2_1_ParseRequest(t *testing.T) {
	q := ParseRequest(hdr("Cache-Control", `Max-Age=5, max-stale, min-fresh="7", no-store, ONLY-IF-CACHED`))
	want := Request{MaxAge: 5 * sec, HasMaxAge: true, MaxStale: math.MaxInt64, HasMaxStale: true,
		MinFresh: 7 * sec, HasMinFresh: true, NoStore: true, OnlyIfCached: true}
	if q != want {
		t.Fatalf("parsed %+v, want %+v", q, want)
	}
	if !HasRequestDirectives(hdr("Pragma", "no-cache")) || HasRequestDirectives(hdr("Accept", "*/*")) {
		t.Fatal("HasRequestDirectives")
	}
}

// The older entry points keep their meaning on the new parser.
func TestRFC9111_5_2_1_7_OnlyIfCachedAndWantsValidation(t *testing.T) {
	req := func(kv ...string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header = hdr(kv...)
		return r
	}
	if !RequestWantsValidation(req("Cache-Control", "no-cache"), 0) ||
		!RequestWantsValidation(req("Cache-Control", "max-age=0"), time.Second) ||
		RequestWantsValidation(req("Cache-Control", "max-age=60"), time.Second) ||
		!RequestWantsValidation(req("Pragma", "no-cache"), 0) ||
		RequestWantsValidation(req(), time.Hour) {
		t.Fatal("request directives misread")
	}
	for cc, want := range map[string]bool{"only-if-cached": true, "max-stale, Only-If-Cached": true, `x="only-if-cached"`: false, "": false} {
		if got := OnlyIfCached(req("Cache-Control", cc)); got != want {
			t.Errorf("%q: only-if-cached %v, want %v", cc, got, want)
		}
	}
	if OnlyIfCached(req()) {
		t.Error("only-if-cached without Cache-Control")
	}
}

// The request-directive path of a hit: parse what apt sends and decide.
func BenchmarkRequestDirectives(b *testing.B) {
	p := DefaultPolicy()
	for _, bc := range []struct{ name, cc string }{
		{"apt-max-age=0", "max-age=0"},
		{"no-cache", "no-cache"},
		{"mixed", `max-age=60, max-stale=30, min-fresh=5, x-ext="a, b"`},
	} {
		h := hdr("Cache-Control", bc.cc)
		s := Stored{Host: "deb.debian.org", Path: "/debian/dists/bookworm/main/binary-arm64/Packages.xz", Age: 3 * sec, Lifetime: 13 * sec, SinceCheck: 3 * sec}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p.Reuse(ParseRequest(h), s) == ServeStale {
					b.Fatal("unexpected decision")
				}
			}
		})
	}
	b.Run("classify-index", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p.Classify("deb.debian.org", "/debian/dists/bookworm/main/binary-arm64/Packages.xz") != Index {
				b.Fatal("class")
			}
		}
	})
	b.Run("classify-other", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if p.Classify("example.com", "/files/some/readme.txt") != Other {
				b.Fatal("class")
			}
		}
	})
}
