package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gatecache/internal/origintest"
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

func with(kv []string, more ...string) []string { return append(append([]string(nil), kv...), more...) }

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
				r.expect(r.get("/f", with(clientFields, "If-None-Match", `"client-tag"`)...), 200, statusMiss, nil)
			}},
		{name: "ranged discovery", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.get("/f", with(clientFields, "Range", "bytes=10-20")...), 206, statusMiss, nil)
			}, wantRange: fmt.Sprintf("bytes=0-%d", testBlock-1)},
		{name: "block fill", obj: origintest.Object{Size: size},
			run: func(r *rig) {
				r.expect(r.get("/f", "Range", "bytes=0-9"), 206, statusMiss, nil)
				r.expect(r.get("/f", with(clientFields, "Range", fmt.Sprintf("bytes=%d-", 2*testBlock))...), 206, statusMiss, nil)
			}, wantRange: fmt.Sprintf("bytes=%d-%d", 2*testBlock, 3*testBlock-1)},
		{name: "revalidation", obj: origintest.Object{Size: 100, CacheControl: "no-cache"},
			run: func(r *rig) {
				r.expect(r.get("/f"), 200, statusMiss, nil)
				r.expect(r.get("/f", with(clientFields, "If-None-Match", `"client-tag"`)...), 200, statusRefreshed, nil)
			}, wantINM: "stored"},
		{name: "pass-through", obj: origintest.Object{Size: size, CacheControl: "no-store"},
			run: func(r *rig) {
				r.expect(r.get("/f", with(clientFields, "Range", "bytes=5-9", "If-None-Match", `"client-tag"`)...), 206, statusNotStored, nil)
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
