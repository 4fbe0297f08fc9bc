package origin

import (
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// One origin object must have one cache key whichever way a client names
// its origin, or the same file is fetched and stored once per form.
func TestFormsShareKey(t *testing.T) {
	r := NewResolver(testHosts)
	tests := []struct {
		host    string // the origin as the client names it
		path    string // path and query
		key     string
		url     string
		hostFwd bool // the Host-header form applies (false for aliases)
	}{
		{"repo.com", "/a/b", "repo.com/a/b", "http://repo.com/a/b", true},
		{"repo.com", "/./InRelease", "repo.com/./InRelease", "http://repo.com/./InRelease", true},
		{"repo.com", "/a/b?token=1", "repo.com/a/b", "http://repo.com/a/b?token=1", true},
		{"deb.debian.org", "/dists/x", "debian/dists/x", "http://deb.debian.org/dists/x", true},
		{"ftp.debian.org", "/dists/x", "debian/dists/x", "http://ftp.debian.org/dists/x", true},
		{"alt.example.net:8080", "/a", "alt.example.net:8080/a", "http://alt.example.net:8080/a", true},
		{"secure.example", "/a", "secure.example/a", "https://secure.example/a", true},
		{"download.windowsupdate.com", "/c/msdownload/x.cab", "download.windowsupdate.com/c/msdownload/x.cab", "http://download.windowsupdate.com/c/msdownload/x.cab", true},
	}
	for _, tt := range tests {
		path, query, _ := strings.Cut(tt.path, "?")
		withQuery := func(q string) string {
			switch {
			case query == "":
				return path + "?" + q
			case q == "":
				return path + "?" + query
			}
			return path + "?" + query + "&" + q
		}
		for _, raw := range []string{
			get("http://"+tt.host+tt.path, gw),
			get(withQuery("cacheHostOrigin="+tt.host), gw),
			get(tt.path, tt.host),
			get("/"+tt.host+tt.path, gw),
		} {
			got, err := r.Resolve(readRequest(t, raw))
			if err != nil {
				t.Errorf("%s: %v", raw, err)
				continue
			}
			if got.Key != tt.key || got.URL() != tt.url {
				t.Errorf("%q: key %q url %q; want %q, %q", raw, got.Key, got.URL(), tt.key, tt.url)
			}
		}
	}
}

// resolveURL resolves raw as the absolute-form target of a GET, as the
// content port receives it from a client that uses the gateway as its
// proxy, and as a redirect's Location or a warm-up list names an object.
func resolveURL(r *Resolver, raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, err
	}
	return r.Resolve(&http.Request{Method: http.MethodGet, URL: u, Host: u.Host})
}

func TestResolveAbsoluteURL(t *testing.T) {
	r := NewResolver(testHosts)
	tests := []struct {
		raw  string
		want want
	}{
		{"http://repo.com/a/b?x=1", want{"http", "repo.com", "repo.com", "/a/b", "x=1", "repo.com/a/b", "http://repo.com/a/b?x=1", ""}},
		{"https://secure.example/x#frag", want{"https", "secure.example", "secure.example", "/x", "", "secure.example/x", "https://secure.example/x", ""}},
		{"http://cache.local/x?cacheHostOrigin=repo.com", want{"http", "repo.com", "repo.com", "/x", "", "repo.com/x", "http://repo.com/x", ""}},
		{"HTTP://Deb.Debian.Org", want{"http", "deb.debian.org", "debian", "/", "", "debian/", "http://deb.debian.org/", ""}},
		{"http://example.org/", want{err: `origin "example.org" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=example.org to allow it`}},
		{"repo.com/a", want{err: "400"}},
		{"mailto:x@repo.com", want{err: "400"}},
		{"ftp://repo.com/a", want{err: "400"}},
		{"", want{err: "400"}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := resolveURL(r, tt.raw)
			checkTarget(t, got, err, tt.want)
		})
	}
}

func TestNilRequest(t *testing.T) {
	var br *BadRequestError
	if _, err := NewResolver(nil).Resolve(nil); !errors.As(err, &br) {
		t.Fatalf("Resolve(nil) error = %v", err)
	}
}

// Custom hosts come first, so an operator can change how a built-in host
// is fetched or keyed.
func TestCustomHostsFirst(t *testing.T) {
	r := NewResolver([]Host{{Name: "x.dl.adu.microsoft.com", Canonical: "adu", Var: "CACHEABLE_CUSTOM_1_HOST"}})
	got, err := r.Resolve(readRequest(t, get("/f?cacheHostOrigin=x.dl.adu.microsoft.com", gw)))
	if err != nil || got.Key != "adu/f" {
		t.Fatalf("got %+v, %v; want key adu/f", got, err)
	}
	got, err = r.Resolve(readRequest(t, get("/f?cacheHostOrigin=y.dl.adu.microsoft.com", gw)))
	if err != nil || got.Key != "y.dl.adu.microsoft.com/f" {
		t.Fatalf("got %+v, %v; want the built-in", got, err)
	}
}

func TestBuiltIn(t *testing.T) {
	b := BuiltIn()
	b[0].Name = "changed"
	if BuiltIn()[0].Name == "changed" {
		t.Fatal("BuiltIn returns a shared slice")
	}
	for _, h := range BuiltIn() {
		if h.TLS || h.Port != "" || h.Canonical != "" || h.KeepQuery || h.Var != "built-in" {
			t.Errorf("built-in %+v", h)
		}
	}
	r := NewResolver(nil)
	for _, host := range []string{
		"a.dl.adu.microsoft.com", "duinstance2.b.nlu.dl.adu.microsoft.com", "x.dcsfe.prod.adu.microsoft.com",
		"tlu.dl.delivery.mp.microsoft.com", "au.download.windowsupdate.com", "download.windowsupdate.com",
	} {
		got, err := r.Resolve(readRequest(t, get("/f?cacheHostOrigin="+host, gw)))
		if err != nil || got.Key != host+"/f" || got.URL() != "http://"+host+"/f" {
			t.Errorf("%s: got %+v, %v", host, got, err)
		}
	}
	for _, host := range []string{"dl.adu.microsoft.com", "microsoft.com", "windowsupdate.com", "evil-download.windowsupdate.com.example"} {
		var na *NotAllowedError
		if _, err := r.Resolve(readRequest(t, get("/f?cacheHostOrigin="+host, gw))); !errors.As(err, &na) {
			t.Errorf("%s: error %v; want NotAllowedError", host, err)
		}
	}
}

func TestParseAuthority(t *testing.T) {
	tests := []struct {
		in         string
		name, port string
		ok         bool
	}{
		{"repo.com", "repo.com", "", true},
		{"Repo.COM.", "repo.com", "", true},
		{"repo.com:", "repo.com", "", true},
		{"repo.com:08080", "repo.com", "8080", true},
		{"repo.com:65535", "repo.com", "65535", true},
		{"under_score.lan", "under_score.lan", "", true},
		{"10.0.0.5:80", "10.0.0.5", "80", true},
		{"[::1]", "::1", "", true},
		{"[0:0::1]:8443", "::1", "8443", true},
		{"[FE80::1%25eth0]:1", "fe80::1%eth0", "1", true},
		{"localhost", "localhost", "", true},

		{"", "", "", false},
		{".", "", "", false},
		{":80", "", "", false},
		{"repo..com", "", "", false},
		{"repo.com..", "", "", false},
		{"-repo.com", "", "", false},
		{"re po.com", "", "", false},
		{"repo.com/x", "", "", false},
		{"user@repo.com", "", "", false},
		{"*.repo.com", "", "", false},
		{"repo.com:0", "", "", false},
		{"repo.com:65536", "", "", false},
		{"repo.com:-1", "", "", false},
		{"repo.com:8o", "", "", false},
		{"::1", "", "", false},
		{"[::1", "", "", false},
		{"[::1]x", "", "", false},
		{"[10.0.0.1]", "", "", false},
		{"[repo.com]", "", "", false},
		{"10.0.0.256", "", "", false},
		{"1.2.3", "", "", false},
	}
	for _, tt := range tests {
		a, err := parseAuthority(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (a.name != tt.name || a.port != tt.port)) {
			t.Errorf("parseAuthority(%q) = %+v, %v", tt.in, a, err)
		}
	}
}

func TestSplitQuery(t *testing.T) {
	tests := []struct {
		in      string
		rest    string
		origins []string
		ok      bool
	}{
		{"", "", nil, true},
		{"a=1&b=2", "a=1&b=2", nil, true},
		{"a=%20&&b;c", "a=%20&&b;c", nil, true},
		{"cacheHostOrigin=h", "", []string{"h"}, true},
		{"cacheHostOrigin=h&a=1", "a=1", []string{"h"}, true},
		{"a=1&cacheHostOrigin=h", "a=1", []string{"h"}, true},
		{"a=1&cacheHostOrigin=h&b=2&cachehostorigin=i", "a=1&b=2", []string{"h", "i"}, true},
		{"cacheHost%4Frigin=h%2Ecom", "", []string{"h.com"}, true},
		{"cacheHostOrigin", "", []string{""}, true},
		{"cacheHostOrigin=", "", []string{""}, true},
		{"xcacheHostOrigin=h&cacheHostOriginx=h", "xcacheHostOrigin=h&cacheHostOriginx=h", nil, true},
		{"a=cacheHostOrigin", "a=cacheHostOrigin", nil, true},
		{"%zz=1&cacheHostOrigin=h", "%zz=1", []string{"h"}, true},
		{"cacheHostOrigin=%zz", "", nil, false},
	}
	for _, tt := range tests {
		rest, origins, err := splitQuery(tt.in)
		if (err == nil) != tt.ok || rest != tt.rest || !reflect.DeepEqual(origins, tt.origins) {
			t.Errorf("splitQuery(%q) = %q, %q, %v", tt.in, rest, origins, err)
		}
	}
}

// NewResolver takes hosts as internal/config or an operator writes them.
func TestNewResolverNormalises(t *testing.T) {
	r := NewResolver([]Host{
		{Name: "[::2]"},
		{Name: "Repo.Org."},
		{Name: "x.org", Port: "443", TLS: true},
		{Name: "y.org", Port: "0080"},
		{Name: "", Canonical: "empty"},
		{Name: "*z.org"}, // not a wildcard: never matches
	})
	for _, tt := range []struct{ url, want string }{
		{"http://[::2]/a", "http://[::2]/a"},
		{"http://repo.org/a", "http://repo.org/a"},
		{"http://x.org/a", "https://x.org/a"},
		{"http://y.org/a", "http://y.org/a"},
	} {
		got, err := resolveURL(r, tt.url)
		if err != nil || got.URL() != tt.want {
			t.Errorf("resolveURL(%q) = %+v, %v; want %s", tt.url, got, err, tt.want)
		}
	}
	for _, raw := range []string{get("/a/b", gw), get("/empty/b", gw), get("/a", "az.org"), get("/a", "a.z.org")} {
		var na *NotAllowedError
		if got, err := r.Resolve(readRequest(t, raw)); !errors.As(err, &na) {
			t.Errorf("%q: got %+v, %v; want NotAllowedError", raw, got, err)
		}
	}
}
