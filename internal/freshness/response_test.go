package freshness

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// lifetimeCase is one response whose freshness lifetime a shared cache that
// received it at t0 computes.
type lifetimeCase struct {
	name     string
	class    Class
	status   int
	h        http.Header
	want     time.Duration
	explicit bool
}

func runLifetimes(t *testing.T, cases []lifetimeCase) {
	t.Helper()
	p := DefaultPolicy()
	for _, c := range cases {
		status := c.status
		if status == 0 {
			status = http.StatusOK
		}
		got, explicit := p.lifetime(c.class, status, ParseResponse(c.h), c.h, t0, Age(c.h, t0, t0))
		if got != c.want || explicit != c.explicit {
			t.Errorf("%s: lifetime %v explicit %v, want %v %v", c.name, got, explicit, c.want, c.explicit)
		}
	}
}

var (
	date    = t0.Format(http.TimeFormat)
	inHour  = t0.Add(time.Hour).Format(http.TimeFormat)
	hourAgo = t0.Add(-time.Hour).Format(http.TimeFormat)
)

// RFC 9111 §5.2.2.10: for a shared cache s-maxage overrides max-age and
// Expires; an unusable s-maxage makes the response stale (§4.2.1).
func TestRFC9111_5_2_2_10_SMaxAgeOverMaxAge(t *testing.T) {
	runLifetimes(t, []lifetimeCase{
		{"s-maxage below max-age", Other, 0, hdr("Cache-Control", "max-age=60, s-maxage=30"), 30 * time.Second, true},
		{"s-maxage above max-age", Other, 0, hdr("Cache-Control", "s-maxage=600, max-age=60"), 10 * time.Minute, true},
		{"s-maxage over Expires", Other, 0, hdr("Cache-Control", "s-maxage=5", "Date", date, "Expires", inHour), 5 * time.Second, true},
		{"quoted s-maxage accepted", Other, 0, hdr("Cache-Control", `s-maxage="20"`), 20 * time.Second, true},
		{"s-maxage case-insensitive", Other, 0, hdr("Cache-Control", "S-MaxAge=20"), 20 * time.Second, true},
		{"invalid s-maxage is stale over a valid max-age", Other, 0, hdr("Cache-Control", "s-maxage=soon, max-age=60"), 0, true},
		{"valid s-maxage over an invalid max-age", Other, 0, hdr("Cache-Control", "s-maxage=60, max-age=soon"), time.Minute, true},
	})
	if !ParseResponse(hdr("Cache-Control", "s-maxage=60")).NoStale() {
		t.Error("s-maxage must imply proxy-revalidate for a shared cache")
	}
}

// RFC 9111 §5.2.2.1 max-age, §4.2.1: a duplicated max-age with different
// values, or one that is not delta-seconds, makes the response stale.
func TestRFC9111_5_2_2_1_MaxAge(t *testing.T) {
	runLifetimes(t, []lifetimeCase{
		{"max-age", Other, 0, hdr("Cache-Control", "public, max-age=600"), 10 * time.Minute, true},
		{"max-age over Expires", Other, 0, hdr("Cache-Control", "max-age=5", "Date", date, "Expires", inHour), 5 * time.Second, true},
		{"max-age over an invalid Expires", Other, 0, hdr("Cache-Control", "max-age=5", "Expires", "0"), 5 * time.Second, true},
		{"same value twice", Other, 0, hdr("Cache-Control", "max-age=60", "Cache-Control", "max-age=60"), time.Minute, true},
		{"conflicting values", Other, 0, hdr("Cache-Control", "max-age=0, max-age=3600"), 0, true},
		{"conflicting values over two lines", Other, 0, hdr("Cache-Control", "max-age=3600", "Cache-Control", "max-age=60"), 0, true},
		{"negative", Other, 0, hdr("Cache-Control", "max-age=-1"), 0, true},
		{"fraction", Other, 0, hdr("Cache-Control", "max-age=1.5"), 0, true},
		{"junk after the value", Other, 0, hdr("Cache-Control", "max-age=60 s"), 0, true},
		{"overflow is the greatest value", Other, 0, hdr("Cache-Control", "max-age=9999999999999999999999"), forever, true},
		{"explicit index freshness", Index, 0, hdr("Cache-Control", "max-age=120"), 2 * time.Minute, true},
		{"payload kept whatever max-age says", Payload, 0, hdr("Cache-Control", "max-age=0"), forever, false},
		{"payload kept only as content", Payload, 404, hdr("Cache-Control", "max-age=30"), 30 * time.Second, true},
		{"unknown directives ignored", Other, 0, hdr("Cache-Control", "immutable, foo=\"bar, baz\", max-age=60, x-y"), time.Minute, true},
	})
}

// RFC 9111 §5.2.2.4: no-cache stores but revalidates every use; the
// qualified form only holds back the fields it names.
func TestRFC9111_5_2_2_4_NoCache(t *testing.T) {
	runLifetimes(t, []lifetimeCase{
		{"no-cache", Other, 0, hdr("Cache-Control", "no-cache, max-age=3600"), 0, true},
		{"no-cache on a payload", Payload, 0, hdr("Cache-Control", "no-cache"), 0, true},
		{"NO-CACHE", Other, 0, hdr("Cache-Control", "max-age=3600, NO-CACHE"), 0, true},
		{"qualified no-cache keeps max-age", Other, 0, hdr("Cache-Control", `no-cache="Set-Cookie", max-age=3600`), time.Hour, true},
		{"qualified and unqualified: no-cache", Other, 0, hdr("Cache-Control", `no-cache="Set-Cookie", no-cache, max-age=3600`), 0, true},
		{"empty field list counts as no-cache", Other, 0, hdr("Cache-Control", `no-cache="", max-age=3600`), 0, true},
		{"malformed field list counts as no-cache", Other, 0, hdr("Cache-Control", `no-cache="a b", max-age=3600`), 0, true},
	})
	r := ParseResponse(hdr("Cache-Control", "no-cache"))
	if !r.NoCache || !r.NoStale() || r.Omit != nil {
		t.Errorf("no-cache parsed as %+v", r)
	}
}

// RFC 9111 §5.2.2.4 and §5.2.2.7: the qualified forms name fields that are
// not replayed from storage.
func TestRFC9111_5_2_2_7_QualifiedFieldsOmitted(t *testing.T) {
	cases := []struct {
		cc   []string
		want []string
	}{
		{[]string{`private="Set-Cookie"`}, []string{"Set-Cookie"}},
		{[]string{`no-cache="set-cookie, x-user-TOKEN", max-age=60`}, []string{"Set-Cookie", "X-User-Token"}},
		{[]string{`private=x-foo`}, []string{"X-Foo"}},
		{[]string{`private="A"`, `no-cache="a, B"`}, []string{"A", "B"}},
		{[]string{`max-age=60, public`}, nil},
		{[]string{`private`}, nil},
		{[]string{`no-cache=""`}, nil},
	}
	for _, c := range cases {
		h := http.Header{"Cache-Control": c.cc}
		if got := OmittedFields(h); !slices.Equal(got, c.want) {
			t.Errorf("%q: omitted %q, want %q", c.cc, got, c.want)
		}
	}
	r := ParseResponse(hdr("Cache-Control", `private="Set-Cookie", max-age=60`))
	if r.Private || !Storable(http.MethodGet, nil, 200, hdr("Cache-Control", `private="Set-Cookie", max-age=60`)) {
		t.Errorf("qualified private must leave the response storable: %+v", r)
	}
}

// RFC 9111 §5.2.2.2, §5.2.2.8, §4.2.4: must-revalidate and
// proxy-revalidate forbid serving stale; MustRevalidate (the stale-if-error
// test) leaves no-cache to the caller, NoStale (the max-stale test) does
// not.
func TestRFC9111_5_2_2_2_MustRevalidateAndProxyRevalidate(t *testing.T) {
	cases := []struct {
		cc                    string
		mustRevalidate, stale bool
	}{
		{"public, must-revalidate", true, true},
		{"Proxy-Revalidate, max-age=60", true, true},
		{"s-maxage=5", true, true},
		{"no-cache", false, true},
		{"max-age=5", false, false},
		{"must-revalidate-not, x=must-revalidate", false, false},
		{`foo="must-revalidate", max-age=5`, false, false},
	}
	for _, c := range cases {
		h := hdr("Cache-Control", c.cc)
		if got := MustRevalidate(h); got != c.mustRevalidate {
			t.Errorf("%q: MustRevalidate %v, want %v", c.cc, got, c.mustRevalidate)
		}
		if got := ParseResponse(h).NoStale(); got != c.stale {
			t.Errorf("%q: NoStale %v, want %v", c.cc, got, c.stale)
		}
	}
}

// RFC 9111 §5.3: an invalid Expires (notably "0") means already expired;
// two different Expires are conflicting freshness information (§4.2.1); a
// response without Date counts from its time of receipt (RFC 9110 §6.6.1).
func TestRFC9111_5_3_Expires(t *testing.T) {
	runLifetimes(t, []lifetimeCase{
		{"Expires minus Date", Other, 0, hdr("Date", date, "Expires", inHour), time.Hour, true},
		{"Expires in the past", Other, 0, hdr("Date", date, "Expires", hourAgo), 0, true},
		{"Expires 0", Other, 0, hdr("Date", date, "Expires", "0"), 0, true},
		{"Expires garbage", Other, 0, hdr("Date", date, "Expires", "tomorrow"), 0, true},
		{"Expires 0 on an index", Index, 0, hdr("Expires", "0"), 0, true},
		{"two different Expires", Other, 0, hdr("Date", date, "Expires", inHour, "Expires", hourAgo), 0, true},
		{"two equal Expires", Other, 0, hdr("Date", date, "Expires", inHour, "Expires", inHour), time.Hour, true},
		{"RFC 850 date", Other, 0, hdr("Date", date, "Expires", t0.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT")), time.Minute, true},
		{"no Date: from receipt", Other, 0, hdr("Expires", inHour), time.Hour, true},
		{"invalid Date: from receipt", Other, 0, hdr("Date", "yesterday", "Expires", inHour), time.Hour, true},
	})
}

// RFC 9111 §4.2.2 with RFC 9110 §15.1: heuristics only for heuristically
// cacheable statuses or public responses, and never over explicit
// freshness.
func TestRFC9111_4_2_2_HeuristicFreshness(t *testing.T) {
	lm := t0.Add(-100 * time.Hour).Format(http.TimeFormat)
	runLifetimes(t, []lifetimeCase{
		{"10% of Last-Modified", Other, 200, hdr("Date", date, "Last-Modified", lm), 10 * time.Hour, false},
		{"capped", Other, 200, hdr("Date", date, "Last-Modified", t0.Add(-1000*24*time.Hour).Format(http.TimeFormat)), 24 * time.Hour, false},
		{"no Date: from receipt", Other, 200, hdr("Last-Modified", lm), 10 * time.Hour, false},
		{"Last-Modified in the future", Other, 200, hdr("Date", date, "Last-Modified", inHour), 0, false},
		{"heuristic 404", Other, 404, hdr("Date", date, "Last-Modified", lm), 10 * time.Hour, false},
		{"no heuristic for 302", Other, 302, hdr("Date", date, "Last-Modified", lm), 0, false},
		{"no heuristic for 500", Other, 500, hdr("Date", date, "Last-Modified", lm), 0, false},
		{"public allows the heuristic", Other, 302, hdr("Cache-Control", "public", "Date", date, "Last-Modified", lm), 10 * time.Hour, false},
		{"index window", Index, 200, hdr(), 10 * time.Second, false},
		{"index window not for 500", Index, 500, hdr(), 0, false},
		{"nothing to go on", Other, 200, hdr(), 0, false},
	})
	p := Policy{HeuristicMax: -1}
	if d, _ := p.Lifetime(Other, hdr("Date", date, "Last-Modified", lm)); d != 0 {
		t.Errorf("negative HeuristicMax: lifetime %v, want none", d)
	}
}

// RFC 9111 §4.2.3 and the package window: an index that arrives with an
// Age (from a CDN) stays fresh for the window after it was received.
func TestRFC9111_4_2_3_IndexWindowCountsFromReceipt(t *testing.T) {
	p := DefaultPolicy()
	h := hdr("Date", date, "Age", "3000")
	born, expiry := p.Expiry(Index, 200, h, t0)
	if !born.Equal(t0.Add(-3000*time.Second)) || !expiry.Equal(t0.Add(p.IndexMaxAge)) {
		t.Fatalf("born %v expiry %v, want %v %v", born, expiry, t0.Add(-3000*time.Second), t0.Add(p.IndexMaxAge))
	}
	// Explicit freshness counts from generation as RFC 9111 says.
	h = hdr("Date", date, "Age", "3000", "Cache-Control", "max-age=3600")
	if _, expiry := p.Expiry(Index, 200, h, t0); !expiry.Equal(t0.Add(600 * time.Second)) {
		t.Fatalf("explicit expiry %v, want %v", expiry, t0.Add(600*time.Second))
	}
	// A response that arrived late: apparent age from its Date.
	h = hdr("Date", t0.Add(-20*time.Second).Format(http.TimeFormat), "Cache-Control", "max-age=60")
	if born, expiry := p.Expiry(Other, 200, h, t0); !born.Equal(t0.Add(-20*time.Second)) || !expiry.Equal(t0.Add(40*time.Second)) {
		t.Fatalf("born %v expiry %v", born, expiry)
	}
}

// The Policy's zero fields take DefaultPolicy's values, except the window.
func TestPolicyZeroFieldsTakeDefaults(t *testing.T) {
	var zero Policy
	def := DefaultPolicy()
	for _, path := range []string{"/dists/stable/InRelease", "/pool/a.deb", "/readme.txt"} {
		if zero.Classify("deb.debian.org", path) != def.Classify("deb.debian.org", path) {
			t.Errorf("%s: zero policy classifies differently", path)
		}
	}
	if zero.Classify("x.dl.adu.microsoft.com", "/f.json") != Payload {
		t.Error("zero policy lost the payload hosts")
	}
	lm := hdr("Date", date, "Last-Modified", t0.Add(-1000*24*time.Hour).Format(http.TimeFormat))
	if a, _ := zero.Lifetime(Other, lm); a != defaultHeuristicMax {
		t.Errorf("zero HeuristicMax: lifetime %v, want %v", a, defaultHeuristicMax)
	}
	if d, _ := zero.Lifetime(Index, hdr()); d != 0 {
		t.Errorf("zero IndexMaxAge: window %v, want 0 (revalidate every use)", d)
	}
	if (Policy{IndexPatterns: []string{}}).Classify("h", "/InRelease") != Other {
		t.Error("an empty, non-nil list must mean none")
	}
}
