package freshness

import (
	"net/http"
	"testing"
)

type storableCase struct {
	name   string
	method string
	req    http.Header
	status int
	h      http.Header
	want   bool
}

func runStorable(t *testing.T, cases []storableCase) {
	t.Helper()
	for _, c := range cases {
		method := c.method
		if method == "" {
			method = http.MethodGet
		}
		if got := Storable(method, c.req, c.status, c.h); got != c.want {
			t.Errorf("%s: storable %v, want %v", c.name, got, c.want)
		}
	}
}

// RFC 9111 §3 with §4.2.2 and RFC 9110 §15.1: explicit freshness or public
// makes any recognized final status storable; without them, only the
// heuristically cacheable statuses are.
func TestRFC9111_3_StorableStatuses(t *testing.T) {
	var cases []storableCase
	for _, s := range []int{200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501} {
		cases = append(cases,
			storableCase{name: http.StatusText(s) + " heuristic", status: s, h: hdr(), want: true})
	}
	for _, s := range []int{201, 202, 205, 302, 303, 307, 400, 403, 409, 500, 502, 503, 504} {
		cases = append(cases,
			storableCase{name: http.StatusText(s) + " without freshness", status: s, h: hdr(), want: false},
			storableCase{name: http.StatusText(s) + " max-age", status: s, h: hdr("Cache-Control", "max-age=60"), want: true},
			storableCase{name: http.StatusText(s) + " s-maxage", status: s, h: hdr("Cache-Control", "s-maxage=60"), want: true},
			storableCase{name: http.StatusText(s) + " Expires", status: s, h: hdr("Expires", "Thu, 01 Dec 2094 16:00:00 GMT"), want: true},
			storableCase{name: http.StatusText(s) + " public", status: s, h: hdr("Cache-Control", "public"), want: true})
	}
	cases = append(cases,
		storableCase{name: "304 is not stored", status: 304, h: hdr("Cache-Control", "max-age=60"), want: false},
		storableCase{name: "1xx", status: 103, h: hdr("Cache-Control", "max-age=60"), want: false},
		storableCase{name: "unrecognized status (RFC 9110 §15)", status: 299, h: hdr("Cache-Control", "max-age=60"), want: false},
		storableCase{name: "unrecognized 4xx", status: 499, h: hdr("Cache-Control", "public"), want: false},
		storableCase{name: "qualified private is not private", status: 200, h: hdr("Cache-Control", `private="X-Foo"`), want: true},
		storableCase{name: "unknown directive is not freshness", status: 302, h: hdr("Cache-Control", "immutable"), want: false},
	)
	runStorable(t, cases)
}

// RFC 9111 §5.2.2.5 no-store, §5.2.2.7 private, §5.2.2.3 must-understand.
func TestRFC9111_5_2_2_5_NoStoreAndPrivate(t *testing.T) {
	runStorable(t, []storableCase{
		{name: "no-store", status: 200, h: hdr("Cache-Control", "no-store"), want: false},
		{name: "NO-STORE among others", status: 200, h: hdr("Cache-Control", "public, max-age=60, NO-STORE"), want: false},
		{name: "no-store on its own line", status: 200, h: hdr("Cache-Control", "max-age=60", "Cache-Control", "no-store"), want: false},
		{name: "malformed no-store still restricts", status: 200, h: hdr("Cache-Control", "no-store junk"), want: false},
		{name: "private", status: 200, h: hdr("Cache-Control", "private, max-age=60"), want: false},
		{name: "private wins over public", status: 200, h: hdr("Cache-Control", "public, private"), want: false},
		{name: "empty private list is private", status: 200, h: hdr("Cache-Control", `private=""`), want: false},
		{name: "no-store inside a quoted argument", status: 200, h: hdr("Cache-Control", `ext="no-store, private", max-age=60`), want: true},
		{name: "must-understand lifts no-store for a known status", status: 200, h: hdr("Cache-Control", "max-age=60, must-understand, no-store"), want: true},
		{name: "must-understand lifts no-store for a 404", status: 404, h: hdr("Cache-Control", "must-understand, no-store"), want: true},
		{name: "must-understand with an unknown status", status: 299, h: hdr("Cache-Control", "max-age=60, must-understand, no-store"), want: false},
		{name: "must-understand keeps private", status: 200, h: hdr("Cache-Control", "must-understand, no-store, private"), want: false},
	})
}

// RFC 9111 §5.2.1.5: a request's no-store forbids storing its response;
// §3: only understood methods are stored.
func TestRFC9111_5_2_1_5_RequestNoStoreAndMethods(t *testing.T) {
	runStorable(t, []storableCase{
		{name: "request no-store", req: hdr("Cache-Control", "no-store"), status: 200, h: hdr("Cache-Control", "max-age=60"), want: false},
		{name: "request No-Store with max-age", req: hdr("Cache-Control", "max-age=0, No-Store"), status: 200, h: hdr(), want: false},
		{name: "request no-cache stores", req: hdr("Cache-Control", "no-cache"), status: 200, h: hdr(), want: true},
		{name: "Pragma no-store is not a thing", req: hdr("Pragma", "no-store"), status: 200, h: hdr(), want: true},
		{name: "HEAD", method: http.MethodHead, status: 200, h: hdr(), want: true},
		{name: "POST", method: http.MethodPost, status: 200, h: hdr("Cache-Control", "max-age=60"), want: false},
		{name: "PUT", method: http.MethodPut, status: 200, h: hdr("Cache-Control", "public"), want: false},
	})
}

// RFC 9111 §3.5: what may be stored from a request with Authorization.
func TestRFC9111_3_5_StorableWithAuthorization(t *testing.T) {
	for cc, want := range map[string]bool{
		"public": true, "s-maxage=60": true, "must-revalidate, max-age=60": true,
		"max-age=60": false, "proxy-revalidate": false, "": false, `ext="public"`: false,
	} {
		if got := StorableWithAuthorization(hdr("Cache-Control", cc)); got != want {
			t.Errorf("%q: %v, want %v", cc, got, want)
		}
	}
}
