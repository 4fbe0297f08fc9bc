package server

import (
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// clientFields are end-to-end fields a client sends, which must reach the
// origin, and hop-by-hop ones, which must not (RFC 9110 §7.6.1).
var clientFields = []string{
	"User-Agent", "apt/2.6.1 (amd64)",
	"Accept", "application/x-debian-package",
	"Accept-Language", "de",
	"X-Client-Trace", "trace-42",
	"Connection", "X-Hop-Field",
	"X-Hop-Field", "secret-of-this-hop",
	"Keep-Alive", "timeout=5",
	"Proxy-Connection", "keep-alive",
	"Proxy-Authorization", "Basic cHJveHk6cHJveHk=",
	"Te", "trailers",
}

// checkForwarded fails unless the origin's request carried the client's
// end-to-end fields, this node's product token and Via entry, and none of the
// hop-by-hop fields.
func checkForwarded(t *testing.T, got origintest.Request) {
	t.Helper()
	for _, name := range []string{"Accept", "Accept-Language", "X-Client-Trace"} {
		if want := fieldValue(clientFields, name); got.Header.Get(name) != want {
			t.Errorf("origin got %s %q, want the client's %q", name, got.Header.Get(name), want)
		}
	}
	if ua := got.Header.Get("User-Agent"); ua != "apt/2.6.1 (amd64) gatecache" {
		t.Errorf("origin got User-Agent %q, want the client's with gatecache appended", ua)
	}
	if !strings.Contains(got.Header.Get("Via"), testNodeID) {
		t.Errorf("origin got Via %q, want this node in it", got.Header.Get("Via"))
	}
	for _, name := range []string{"X-Hop-Field", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Te"} {
		if v := got.Header.Get(name); v != "" {
			t.Errorf("hop-by-hop field %s: %q reached the origin", name, v)
		}
	}
}

func fieldValue(kv []string, name string) string {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == name {
			return kv[i+1]
		}
	}
	return ""
}

func withFields(kv []string, more ...string) []string {
	return append(append([]string(nil), kv...), more...)
}

// Every kind of request the cache sends upstream carries the client's
// end-to-end fields; on the requests it makes for itself, it owns the range
// and the preconditions.
func TestRFC9110_7_6_RequestFieldsReachUpstream(t *testing.T) {
	size := int64(3 * testBlock)
	cases := []struct {
		name string
		obj  origintest.Object
		run  func(r *rig) // the last origin request it causes is checked
		// what the checked request must carry of the cache-owned fields
		wantRange, wantINM string
		wantMethod         string
	}{
		{name: "discovery", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.get("/f", withFields(clientFields, "If-None-Match", `"client-tag"`)...), 200, statusMiss, nil)
			}},
		{name: "ranged discovery", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.get("/f", withFields(clientFields, "Range", "bytes=10-20")...), 206, statusMiss, nil)
			}, wantRange: fmt.Sprintf("bytes=0-%d", testBlock-1)},
		{name: "block fill", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.get("/f", "Range", "bytes=0-9"), 206, statusMiss, nil)
				r.expect(r.get("/f", withFields(clientFields, "Range", fmt.Sprintf("bytes=%d-", 2*testBlock))...), 206, statusMiss, nil)
			}, wantRange: fmt.Sprintf("bytes=%d-%d", 2*testBlock, 3*testBlock-1)},
		{name: "revalidation", obj: origintest.Object{Size: 100, CacheControl: "no-cache"},
			run: func(r *rig) {
				r.expect(r.get("/f"), 200, statusMiss, nil)
				r.expect(r.get("/f", withFields(clientFields, "If-None-Match", `"client-tag"`)...), 200, statusRefreshed, nil)
			}, wantINM: "stored"},
		{name: "pass-through", obj: origintest.Object{Size: size, CacheControl: "no-store"},
			run: func(r *rig) {
				r.expect(r.get("/f", withFields(clientFields, "Range", "bytes=5-9", "If-None-Match", `"client-tag"`)...), 206, statusNotStored, nil)
			}, wantRange: "bytes=5-9", wantINM: `"client-tag"`},
		{name: "other method", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.do(http.MethodDelete, r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr, clientFields...), 405, statusMethod, nil)
			}, wantMethod: http.MethodDelete},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.origin.Set("/f", c.obj)
			c.run(r)
			reqs := r.origin.Requests()
			got := reqs[len(reqs)-1]
			checkForwarded(t, got)
			if want := c.wantMethod; want != "" && got.Method != want {
				t.Errorf("origin got %s, want %s", got.Method, want)
			}
			if rh := got.Header.Get("Range"); rh != c.wantRange {
				t.Errorf("origin got Range %q, want %q", rh, c.wantRange)
			}
			switch inm := got.Header.Get("If-None-Match"); c.wantINM {
			case "stored":
				if inm == "" || inm == `"client-tag"` {
					t.Errorf("revalidation sent If-None-Match %q, want the stored validator", inm)
				}
			default:
				if inm != c.wantINM {
					t.Errorf("origin got If-None-Match %q, want %q", inm, c.wantINM)
				}
			}
		})
	}
}

// originFields are end-to-end response fields an origin sends (repository
// managers and registries among them), which a client must get on the miss
// and on every hit, values in order.
var originFields = http.Header{
	"X-Checksum-Sha256":     {"3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b"},
	"Link":                  {`</a>; rel="preload"`, `</b>; rel="duplicate"`},
	"Content-Md5":           {"Q2hlY2sgSW50ZWdyaXR5IQ=="},
	"Digest":                {"sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="},
	"Docker-Content-Digest": {"sha256:0123456789abcdef"},
	"Content-Disposition":   {`attachment; filename="f.bin"`},
	"Server":                {"test-origin/1.0"},
}

// hopFields are response fields of one connection, which must not be
// replayed (RFC 9110 §7.6.1, RFC 9111 §3.1).
var hopFields = http.Header{
	"Connection":         {"X-Hop-Field"},
	"X-Hop-Field":        {"of this hop only"},
	"Keep-Alive":         {"timeout=5"},
	"Proxy-Authenticate": {`Basic realm="proxy"`},
	"Alt-Svc":            {`h3=":443"`},
}

func mergedHeader(hs ...http.Header) http.Header {
	out := http.Header{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

// checkReplayed fails unless resp carries every origin field with the
// origin's values and none of the hop-by-hop ones.
func checkReplayed(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for name, want := range originFields {
		if got := resp.Header.Values(name); !slices.Equal(got, want) {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
	for name := range hopFields {
		if name != "Connection" && resp.Header.Get(name) != "" {
			t.Errorf("%s: per-connection field %s: %q replayed", what, name, resp.Header.Get(name))
		}
	}
}

// Every end-to-end field the origin sent is stored and replayed, on the
// miss, on hits (whole and ranged) and on HEAD; the framing is the cache's
// own.
func TestRFC9111_3_1_ResponseFieldsStoredAndReplayed(t *testing.T) {
	r := newRig(t)
	size := int64(2*testBlock + 7)
	r.origin.Set("/f", origintest.Object{Size: size, Header: mergedHeader(originFields, hopFields)})
	want := r.origin.Want("/f")
	for _, step := range []struct {
		name, rng   string
		status      int
		cacheStatus string
		length      int64
	}{
		{"miss", "", 200, statusMiss, size},
		{"hit", "", 200, statusHit, size},
		{"ranged hit", "bytes=10-19", 206, statusHit, 10},
	} {
		kv := []string{}
		if step.rng != "" {
			kv = append(kv, "Range", step.rng)
		}
		resp := r.get("/f", kv...)
		wantBody := want
		if step.rng != "" {
			wantBody = want[10:20]
		}
		r.expect(resp, step.status, step.cacheStatus, wantBody)
		r.settle()
		checkReplayed(t, step.name, resp)
		if resp.ContentLength != step.length {
			t.Errorf("%s: Content-Length %d, want %d", step.name, resp.ContentLength, step.length)
		}
	}
	if n := r.origin.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests, want 1", n)
	}
}

// RFC 9111 §4.2.3, §5.1: an answer from the store carries its current age,
// which counts the Age it came with; a miss passes upstream's Age on.
func TestRFC9111_5_1_AgeOnHitsAndMisses(t *testing.T) {
	for _, c := range []struct {
		name          string
		upstreamAge   string
		missAge       string // "" for none
		minHitSeconds int
	}{
		{"from a parent cache", "100", "100", 100},
		{"from the origin", "", "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			h := http.Header{}
			if c.upstreamAge != "" {
				h.Set("Age", c.upstreamAge)
			}
			r.origin.Set("/f", origintest.Object{Size: 100, Header: h})
			miss := r.get("/f")
			r.expect(miss, 200, statusMiss, nil)
			r.settle()
			if got := miss.Header.Get("Age"); got != c.missAge {
				t.Errorf("miss: Age %q, want %q", got, c.missAge)
			}
			hit := r.get("/f")
			r.expect(hit, 200, statusHit, nil)
			if age, err := strconv.Atoi(hit.Header.Get("Age")); err != nil || age < c.minHitSeconds {
				t.Errorf("hit: Age %q, want at least %d", hit.Header.Get("Age"), c.minHitSeconds)
			}
		})
	}
}

// RFC 9111 §3.2: a 304 replaces the stored values of the fields it sends and
// keeps the others; the stored body's Content-Type stays.
func TestRFC9111_3_2_NotModifiedUpdatesStoredFields(t *testing.T) {
	r := newRig(t)
	obj := origintest.Object{Size: 100, CacheControl: "no-cache", Header: http.Header{
		"X-Release": {"1"}, "X-Kept": {"kept"}, "Link": {"</old>"}}}
	r.origin.Set("/f", obj)
	r.expect(r.get("/f"), 200, statusMiss, nil)
	r.settle()
	// Same version (same ETag), new metadata; now fresh for an hour.
	obj.CacheControl = "max-age=3600"
	obj.Header = http.Header{"X-Release": {"2"}, "Link": {"</new1>", "</new2>"}}
	r.origin.Set("/f", obj)
	refreshed := r.get("/f")
	r.expect(refreshed, 200, statusRefreshed, nil)
	hit := r.get("/f")
	r.expect(hit, 200, statusHit, nil)
	for what, resp := range map[string]*http.Response{"refreshed": refreshed, "hit": hit} {
		for name, want := range map[string][]string{
			"X-Release": {"2"}, "Link": {"</new1>", "</new2>"}, "X-Kept": {"kept"},
			"Cache-Control": {"max-age=3600"}, "Content-Type": {"application/octet-stream"},
		} {
			if got := resp.Header.Values(name); !slices.Equal(got, want) {
				t.Errorf("%s: %s = %q, want %q", what, name, got, want)
			}
		}
	}
	if st := r.origin.Stats(); st.Requests != 2 || st.NotModified != 1 {
		t.Fatalf("origin: %+v, want a miss and one 304", st)
	}
}

// A header over the stored bound is passed through whole, and not stored.
func TestRFC9111_3_1_HeaderOverTheBoundIsNotStored(t *testing.T) {
	r := newRig(t)
	big := strings.Repeat("x", maxStoredHeader)
	r.origin.Set("/f", origintest.Object{Size: 100, Header: http.Header{"X-Big": {big}}})
	for i := range 2 {
		resp := r.get("/f")
		r.expect(resp, 200, statusNotStored, r.origin.Want("/f"))
		if resp.Header.Get("X-Big") != big {
			t.Fatalf("request %d: the big field did not pass through", i)
		}
	}
	if n := r.origin.Stats().Requests; n != 2 {
		t.Fatalf("%d origin requests, want 2 (not stored)", n)
	}
}

// RFC 9110 §9.3.2: HEAD is answered from a stored GET with the same fields;
// a HEAD miss goes upstream as HEAD and stores nothing.
func TestRFC9110_9_3_2_HeadFromStoredGet(t *testing.T) {
	size := int64(testBlock + 5)
	t.Run("stored GET answers HEAD", func(t *testing.T) {
		r := newRig(t)
		r.origin.Set("/f", origintest.Object{Size: size, Header: originFields})
		get := r.get("/f")
		r.expect(get, 200, statusMiss, r.origin.Want("/f"))
		r.settle()
		head := r.do(http.MethodHead, r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr)
		r.expect(head, 200, statusHit, []byte{})
		checkReplayed(t, "HEAD", head)
		for _, name := range []string{"Content-Length", "Content-Type", "Etag", "Last-Modified", "Cache-Control", "Accept-Ranges"} {
			if g, h := get.Header.Get(name), head.Header.Get(name); g != h || g == "" {
				t.Errorf("%s: GET %q, HEAD %q", name, g, h)
			}
		}
		if n := r.origin.Stats().Requests; n != 1 {
			t.Fatalf("%d origin requests, want 1", n)
		}
	})
	t.Run("HEAD miss stores nothing", func(t *testing.T) {
		r := newRig(t)
		r.origin.Set("/f", origintest.Object{Size: size, Header: originFields})
		head := r.do(http.MethodHead, r.cache.URL+"/f?cacheHostOrigin="+r.origin.Addr)
		r.expect(head, 200, statusNotStored, []byte{})
		checkReplayed(t, "HEAD miss", head)
		if head.ContentLength != size {
			t.Errorf("HEAD miss: Content-Length %d, want %d", head.ContentLength, size)
		}
		if r.store.Lookup(r.origin.Addr+"/f") != nil {
			t.Fatal("a HEAD miss stored an object")
		}
		r.expect(r.get("/f"), 200, statusMiss, r.origin.Want("/f"))
		reqs := r.origin.Requests()
		if len(reqs) != 2 || reqs[0].Method != http.MethodHead || reqs[1].Method != http.MethodGet || reqs[1].Header.Get("Range") != "" {
			t.Fatalf("origin requests %+v, want HEAD then a whole GET", reqs)
		}
	})
}

// The stored fields are part of the object's index record: after a restart
// the hit replays them all.
func TestRFC9111_3_1_FieldsSurviveRestart(t *testing.T) {
	o := origintest.New(t)
	dir := filepath.Join(t.TempDir(), "cache1")
	o.Set("/f", origintest.Object{Size: 100, Header: originFields})
	r := newRigFor(t, o, dir)
	r.expect(r.get("/f"), 200, statusMiss, o.Want("/f"))
	r.settle()
	if err := r.store.Close(); err != nil {
		t.Fatal(err)
	}
	r = newRigFor(t, o, dir)
	resp := r.get("/f")
	r.expect(resp, 200, statusHit, o.Want("/f"))
	checkReplayed(t, "hit after restart", resp)
	if n := o.Stats().Requests; n != 1 {
		t.Fatalf("%d origin requests, want 1", n)
	}
}

// A 304 whose fields would take the stored header over the bound updates
// nothing (the stored fields stay as they were).
func TestRFC9111_3_2_UpdateOverTheBoundIsNotApplied(t *testing.T) {
	stored := []store.Field{{Name: "X-Release", Values: []string{"1"}}}
	got := mergeFields(stored, http.Header{"X-Release": {"2"}, "X-Big": {strings.Repeat("x", maxStoredHeader)}})
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("merged %v, want the stored fields unchanged", got)
	}
	if got := mergeFields(stored, http.Header{"X-Release": {"2"}}); got[0].Values[0] != "2" {
		t.Fatalf("merged %v, want X-Release 2", got)
	}
}

// settle waits until no fill is in progress: a client has all the bytes of a
// miss a moment before the fill commits its last block, and a request in that
// moment would read along the fill (a miss) rather than hit.
func (r *rig) settle() { r.flights.Wait() }
