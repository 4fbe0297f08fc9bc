package server

import (
	"net/http"
	"testing"
	"time"

	"gatecache/internal/freshness"
	"gatecache/internal/origintest"
)

// dirOutcome is what one request through the cache came to, as the origin and
// the client saw it.
type dirOutcome string

const (
	hit         dirOutcome = "hit"         // from the cache; nothing reached the origin
	revalidated dirOutcome = "revalidated" // one conditional request reached the origin
	stored      dirOutcome = "stored"      // one plain request; the answer was stored
	passed      dirOutcome = "passed"      // one plain request; the answer was not stored
	notCached   dirOutcome = "504"         // 504 from the cache; nothing reached the origin
)

// step is one client request (header fields as name, value pairs) and what
// it must come to.
type step struct {
	kv   []string
	want dirOutcome
}

func plain(want dirOutcome) step { return step{want: want} }

func with(want dirOutcome, kv ...string) step { return step{kv: kv, want: want} }

// scenario installs obj at path and runs the steps against one cache.
type scenario struct {
	name  string
	path  string
	obj   origintest.Object
	steps []step
}

func runScenarios(t *testing.T, policy freshness.Policy, cases []scenario) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, withPolicy(policy))
			path := c.path
			if path == "" {
				path = "/files/object.bin"
			}
			if c.obj.Size == 0 {
				c.obj.Size = 3000
			}
			r.origin.Set(path, c.obj)
			for i, s := range c.steps {
				r.origin.ResetStats()
				resp := r.get(path, s.kv...)
				got := r.mustBody(resp)
				st := r.origin.Stats()
				cs := resp.Header.Get("Cache-Status")
				var ok bool
				switch s.want {
				case hit:
					ok = resp.StatusCode == 200 && st.Requests == 0 && cs == statusHit
				case revalidated:
					ok = resp.StatusCode == 200 && st.Requests == 1 && st.Conditional == 1 &&
						(cs == statusRefreshed || cs == statusReplaced)
				case stored:
					ok = resp.StatusCode == 200 && st.Requests == 1 && st.Conditional == 0 && cs == statusMiss
				case passed:
					ok = resp.StatusCode == 200 && st.Requests == 1 && st.Conditional == 0 && cs == statusNotStored
				case notCached:
					ok = resp.StatusCode == http.StatusGatewayTimeout && st.Requests == 0
				}
				if !ok {
					t.Fatalf("step %d %q: status %d, Cache-Status %q, origin saw %d requests (%d conditional); want %s",
						i, s.kv, resp.StatusCode, cs, st.Requests, st.Conditional, s.want)
				}
				if resp.StatusCode == 200 && string(got) != string(r.origin.Want(path)) {
					t.Fatalf("step %d: wrong body", i)
				}
			}
		})
	}
}

func cc(v string) origintest.Object { return origintest.Object{CacheControl: v} }

// withAge is an object as a CDN in front of the origin serves it: with an
// Age (RFC 9111 §5.1).
func withAge(obj origintest.Object, age string) origintest.Object {
	obj.Header = http.Header{"Age": {age}}
	return obj
}

const (
	indexPath   = "/debian/dists/stable/InRelease"
	byHashPath  = "/debian/dists/stable/main/binary-amd64/by-hash/SHA256/0123abcd"
	oneYear     = "public, max-age=31536000"
	staleOnHour = "max-age=3600" // with Age 7200: stale on arrival
)

// RFC 9111 §5.2.1.5: a request's no-store keeps its response out of the
// cache; a response stored before still answers it.
func TestRFC9111_5_2_1_5_RequestNoStore(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "not stored", obj: cc(oneYear), steps: []step{
			with(passed, "Cache-Control", "no-store"),
			plain(stored),
			with(hit, "Cache-Control", "no-store"),
		}},
		{name: "among other directives", obj: cc(oneYear), steps: []step{
			with(passed, "Cache-Control", "max-age=0, No-Store"),
			plain(stored),
		}},
	})
}

// RFC 9111 §5.2.1.4 and §5.4: no-cache (or Pragma: no-cache without
// Cache-Control) validates even a fresh response, except in the package
// window for indexes and payloads; §5.2.1.1: so does max-age=0.
func TestRFC9111_5_2_1_4_RequestNoCache(t *testing.T) {
	window := freshness.DefaultPolicy()
	window.IndexMaxAge = time.Hour // a window no test run outlasts
	runScenarios(t, window, []scenario{
		{name: "no-cache", obj: cc(oneYear), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "no-cache"), plain(hit),
		}},
		{name: "Pragma", obj: cc(oneYear), steps: []step{
			plain(stored), with(revalidated, "Pragma", "no-cache"),
		}},
		{name: "Pragma ignored with Cache-Control", obj: cc(oneYear), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=3600", "Pragma", "no-cache"),
		}},
		{name: "max-age=0", obj: cc(oneYear), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-age=0"),
		}},
		{name: "index in the window", path: indexPath, obj: cc("-"), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=0"), with(hit, "Cache-Control", "no-cache"), with(hit, "Pragma", "no-cache"),
		}},
		{name: "by-hash payload in the window", path: byHashPath, obj: cc(oneYear), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=0"),
		}},
	})
}

// The package window counts from this cache's own check: an index that a
// CDN serves with a large Age is fresh for the window after it arrived, and
// apt's max-age=0 is answered from it.
func TestRFC9111_5_2_1_1_IndexWindowBehindACDN(t *testing.T) {
	window := freshness.DefaultPolicy()
	window.IndexMaxAge = time.Hour
	runScenarios(t, window, []scenario{
		{name: "apt", path: indexPath, obj: withAge(cc("-"), "7200"), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=0"), plain(hit),
		}},
		{name: "explicit freshness still counts from generation", path: indexPath, obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-age=0"),
		}},
	})
}

// RFC 9111 §5.2.1.1: the client's max-age bounds the age of a stored
// answer.
func TestRFC9111_5_2_1_1_RequestMaxAge(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "younger than max-age", obj: withAge(cc(oneYear), "100"), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=500"),
		}},
		{name: "older than max-age", obj: withAge(cc(oneYear), "100"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-age=50"),
		}},
		{name: "max-age=600 just after storing", obj: cc(oneYear), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-age=600"), with(revalidated, "Cache-Control", "max-age=0"),
		}},
	})
}

// RFC 9111 §5.2.1.2 and §4.2.4: max-stale serves a stale answer without
// asking upstream, unless the response forbids serving it stale.
func TestRFC9111_5_2_1_2_RequestMaxStale(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "within max-stale", obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), with(hit, "Cache-Control", "max-stale=7200"), with(hit, "Cache-Control", "max-stale"),
		}},
		{name: "beyond max-stale", obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-stale=60"),
		}},
		{name: "without max-stale", obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), plain(revalidated),
		}},
		{name: "must-revalidate", obj: withAge(cc(staleOnHour+", must-revalidate"), "7200"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-stale"),
		}},
		{name: "proxy-revalidate", obj: withAge(cc(staleOnHour+", proxy-revalidate"), "7200"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-stale"),
		}},
		{name: "s-maxage", obj: withAge(cc("s-maxage=3600"), "7200"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-stale"),
		}},
		{name: "no-cache", obj: cc("no-cache"), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "max-stale"),
		}},
	})
}

// RFC 9111 §5.2.1.3: min-fresh asks for an answer that stays fresh long
// enough.
func TestRFC9111_5_2_1_3_RequestMinFresh(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "fresh long enough", obj: cc(staleOnHour), steps: []step{
			plain(stored), with(hit, "Cache-Control", "min-fresh=60"),
		}},
		{name: "not fresh long enough", obj: cc(staleOnHour), steps: []step{
			plain(stored), with(revalidated, "Cache-Control", "min-fresh=7200"),
		}},
	})
}

// RFC 9111 §5.2.1.7: only-if-cached never reaches upstream; a stored
// answer the request does not accept as it is gets 504.
func TestRFC9111_5_2_1_7_OnlyIfCachedWithAStaleCopy(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "stale", obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), with(notCached, "Cache-Control", "only-if-cached"),
		}},
		{name: "stale, with max-stale", obj: withAge(cc(staleOnHour), "7200"), steps: []step{
			plain(stored), with(hit, "Cache-Control", "only-if-cached, max-stale"),
		}},
		{name: "fresh", obj: cc(oneYear), steps: []step{
			plain(stored), with(hit, "Cache-Control", "only-if-cached"),
		}},
		{name: "no-cache with only-if-cached", obj: cc(oneYear), steps: []step{
			plain(stored), with(notCached, "Cache-Control", "no-cache, only-if-cached"),
		}},
	})
}

// RFC 9111 §5.2.2.7, §5.2.2.5, §5.2.2.3 and §5.2 syntax: what is stored.
func TestRFC9111_5_2_2_7_WhatIsStored(t *testing.T) {
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "private", obj: cc("private, max-age=3600"), steps: []step{plain(passed), plain(passed)}},
		{name: "no-store", obj: cc("public, max-age=3600, no-store"), steps: []step{plain(passed), plain(passed)}},
		{name: "qualified private", obj: cc(`private="Set-Cookie", max-age=3600`), steps: []step{plain(stored), plain(hit)}},
		{name: "must-understand lifts no-store", obj: cc("no-store, must-understand, max-age=3600"), steps: []step{plain(stored), plain(hit)}},
		{name: "no-store quoted in an extension", obj: cc(`x-ext="a, no-store, b", max-age=3600`), steps: []step{plain(stored), plain(hit)}},
	})
}

// RFC 9111 §5.2.2.7: a field named by private="…" is never replayed from
// storage.
func TestRFC9111_5_2_2_7_QualifiedPrivateFieldNotReplayed(t *testing.T) {
	r := newRig(t)
	obj := cc(`private="Set-Cookie", max-age=3600`)
	obj.Header = http.Header{"Set-Cookie": {"session=alice"}}
	r.origin.Set("/f", obj)
	r.expect(r.get("/f"), 200, statusMiss, nil)
	resp := r.get("/f")
	r.expect(resp, 200, statusHit, r.origin.Want("/f"))
	if v := resp.Header.Values("Set-Cookie"); len(v) != 0 {
		t.Fatalf("a hit replayed Set-Cookie %q that private=\"Set-Cookie\" keeps out of a shared cache", v)
	}
}

// RFC 9111 §4.2.1, §5.2.2.1, §5.2.2.10, §5.3: invalid or conflicting
// freshness information is stale; s-maxage rules a shared cache.
func TestRFC9111_4_2_1_InvalidOrConflictingFreshness(t *testing.T) {
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	noDate := func(obj origintest.Object, expires string) origintest.Object {
		obj.Header = http.Header{"Date": nil, "Expires": {expires}}
		return obj
	}
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "max-age not a number", obj: cc("max-age=soon"), steps: []step{plain(stored), plain(revalidated)}},
		{name: "conflicting max-age", obj: cc("max-age=0, max-age=3600"), steps: []step{plain(stored), plain(revalidated)}},
		{name: "conflicting s-maxage", obj: cc("s-maxage=0, s-maxage=3600"), steps: []step{plain(stored), plain(revalidated)}},
		{name: "s-maxage over max-age", obj: cc("max-age=0, s-maxage=3600"), steps: []step{plain(stored), plain(hit)}},
		{name: "s-maxage=0 over max-age", obj: cc("max-age=3600, s-maxage=0"), steps: []step{plain(stored), plain(revalidated)}},
		{name: "Expires 0", obj: noDate(cc("-"), "0"), steps: []step{plain(stored), plain(revalidated)}},
		{name: "Expires without Date counts from receipt", obj: noDate(cc("-"), future), steps: []step{plain(stored), plain(hit)}},
	})
}

// RFC 9111 §4.2.2: without explicit freshness, a 200 is fresh for 10% of
// the time since its Last-Modified (at most HeuristicMax), which the cache
// keeps apart from the replayed fields.
func TestRFC9111_4_2_2_HeuristicFreshness(t *testing.T) {
	noLM := cc("-")
	noLM.NoLastModified = true
	future := cc("-")
	future.LastModified = time.Now().Add(time.Hour)
	runScenarios(t, freshness.DefaultPolicy(), []scenario{
		{name: "Last-Modified long ago", obj: cc("-"), steps: []step{plain(stored), plain(hit)}},
		{name: "Last-Modified after Date", obj: future, steps: []step{plain(stored), plain(revalidated)}},
		{name: "no Last-Modified", obj: noLM, steps: []step{plain(stored), plain(revalidated)}},
	})
}
