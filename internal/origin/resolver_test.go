package origin

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// testHosts is a configuration covering every kind of Host.
var testHosts = []Host{
	{Name: "repo.com", Var: "CACHEABLE_CUSTOM_1_HOST"},
	{Name: "deb.debian.org", Canonical: "debian", Var: "CACHEABLE_CUSTOM_2_HOST"},
	{Name: "ftp.debian.org", Canonical: "Debian", Var: "CACHEABLE_CUSTOM_3_HOST"},
	{Name: "alt.example.net", Port: "8080", Var: "CACHEABLE_CUSTOM_4_HOST"},
	{Name: "secure.example", TLS: true, Var: "CACHEABLE_CUSTOM_5_HOST"},
	{Name: "*.cdn.example", KeepQuery: true, Var: "CACHEABLE_CUSTOM_6_HOST"},
	{Name: "10.0.0.5", Var: "CACHEABLE_CUSTOM_7_HOST"},
	{Name: "::1", Port: "8443", Var: "CACHEABLE_CUSTOM_8_HOST"},
	{Name: "*.wild.example", Canonical: "wild", Var: "CACHEABLE_CUSTOM_9_HOST"},
	// A wildcard whose alias is its DefaultAlias, the pattern itself (as
	// internal/config fills it in).
	{Name: "*.cfg.example", Canonical: "*.cfg.example", Var: "CACHEABLE_CUSTOM_10_HOST"},
	{Name: "tls.example", Port: "8443", TLS: true, Var: "CACHEABLE_CUSTOM_11_HOST"},
	{Name: "plain80.example", Port: "80", Var: "CACHEABLE_CUSTOM_12_HOST"},
}

// readRequest parses raw HTTP/1.1 bytes as net/http's server does.
func readRequest(t testing.TB, raw string) *http.Request {
	t.Helper()
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("ReadRequest(%q): %v", raw, err)
	}
	return req
}

func get(target, host string) string {
	s := "GET " + target + " HTTP/1.1\r\n"
	if host != "" {
		s += "Host: " + host + "\r\n"
	}
	return s + "\r\n"
}

// want is a Target's fields plus its URL; err is "" on success,
// "400" for a BadRequestError or the NotAllowedError message.
type want struct {
	scheme string
	host   string
	alias  string
	path   string
	query  string
	key    string
	url    string
	err    string
}

const gw = "192.168.1.10"

var resolveTests = []struct {
	name string
	raw  string
	want want
}{
	// 1. Absolute form (RFC 9112 §3.2.2); the Host header is ignored.
	{"absolute", get("http://repo.com/a/b", "repo.com"),
		want{"http", "repo.com", "repo.com", "/a/b", "", "repo.com/a/b", "http://repo.com/a/b", ""}},
	{"absolute case, dot, query", get("http://REPO.com./a/b?x=1&y=2", gw),
		want{"http", "repo.com", "repo.com", "/a/b", "x=1&y=2", "repo.com/a/b", "http://repo.com/a/b?x=1&y=2", ""}},
	{"absolute default port", get("http://repo.com:80/a", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"absolute port with zeros", get("http://repo.com:0080/a", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"absolute empty path", get("http://repo.com", gw),
		want{"http", "repo.com", "repo.com", "/", "", "repo.com/", "http://repo.com/", ""}},
	{"absolute empty path with query", get("http://repo.com?x=1", gw),
		want{"http", "repo.com", "repo.com", "/", "x=1", "repo.com/", "http://repo.com/?x=1", ""}},
	{"absolute dot segment kept", get("http://repo.com/./InRelease", gw),
		want{"http", "repo.com", "repo.com", "/./InRelease", "", "repo.com/./InRelease", "http://repo.com/./InRelease", ""}},
	{"absolute escapes kept", get("http://repo.com/a%2Fb/c%20d/../e", gw),
		want{"http", "repo.com", "repo.com", "/a%2Fb/c%20d/../e", "", "repo.com/a%2Fb/c%20d/../e", "http://repo.com/a%2Fb/c%20d/../e", ""}},
	{"absolute other port", get("http://repo.com:8080/a", gw),
		want{err: `origin "repo.com:8080" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=repo.com:8080 to allow it`}},
	{"absolute not allowed", get("http://example.org/x", "repo.com"),
		want{err: `origin "example.org" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=example.org to allow it`}},
	{"absolute explicit port", get("http://alt.example.net:8080/a", gw),
		want{"http", "alt.example.net:8080", "alt.example.net:8080", "/a", "", "alt.example.net:8080/a", "http://alt.example.net:8080/a", ""}},
	{"absolute explicit port missing", get("http://alt.example.net/a", gw),
		want{err: `origin "alt.example.net" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=alt.example.net to allow it`}},
	{"absolute tls origin", get("http://secure.example/a", gw),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"absolute tls origin port 80", get("http://secure.example:80/a", gw),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"absolute tls origin port 443", get("http://secure.example:443/a", gw),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"absolute tls origin other port", get("http://secure.example:8443/a", gw),
		want{err: `origin "secure.example:8443" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=secure.example:8443 to allow it`}},
	{"absolute tls origin explicit port", get("http://tls.example:8443/a", gw),
		want{"https", "tls.example:8443", "tls.example:8443", "/a", "", "tls.example:8443/a", "https://tls.example:8443/a", ""}},
	{"absolute https to a plain origin", get("https://repo.com/a", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"absolute configured port 80", get("http://plain80.example/a", gw),
		want{"http", "plain80.example", "plain80.example", "/a", "", "plain80.example/a", "http://plain80.example/a", ""}},
	{"absolute ipv4", get("http://10.0.0.5/x", gw),
		want{"http", "10.0.0.5", "10.0.0.5", "/x", "", "10.0.0.5/x", "http://10.0.0.5/x", ""}},
	{"absolute ipv6", get("http://[0:0::1]:8443/x", gw),
		want{"http", "[::1]:8443", "[::1]:8443", "/x", "", "[::1]:8443/x", "http://[::1]:8443/x", ""}},
	{"absolute wildcard keeps query", get("http://img.cdn.example/x?sig=a%2Bb&t=1", gw),
		want{"http", "img.cdn.example", "img.cdn.example", "/x", "sig=a%2Bb&t=1", "img.cdn.example/x?sig=a%2Bb&t=1", "http://img.cdn.example/x?sig=a%2Bb&t=1", ""}},
	{"absolute wildcard bare suffix", get("http://cdn.example/x", gw),
		want{err: `origin "cdn.example" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=cdn.example to allow it`}},
	{"absolute wildcard alias", get("http://a.b.wild.example/x", gw),
		want{"http", "a.b.wild.example", "wild", "/x", "", "wild/x", "http://a.b.wild.example/x", ""}},
	{"absolute wildcard config alias", get("http://a.cfg.example/x", gw),
		want{"http", "a.cfg.example", "a.cfg.example", "/x", "", "a.cfg.example/x", "http://a.cfg.example/x", ""}},
	{"absolute built-in", get("http://au.download.windowsupdate.com/mscomtest/wuidt.gif", gw),
		want{"http", "au.download.windowsupdate.com", "au.download.windowsupdate.com", "/mscomtest/wuidt.gif", "", "au.download.windowsupdate.com/mscomtest/wuidt.gif", "http://au.download.windowsupdate.com/mscomtest/wuidt.gif", ""}},
	{"absolute strips cacheHostOrigin", get("http://repo.com/a?cacheHostOrigin=other.org&x=1", gw),
		want{"http", "repo.com", "repo.com", "/a", "x=1", "repo.com/a", "http://repo.com/a?x=1", ""}},
	{"absolute naming the cache, with cacheHostOrigin", get("http://"+gw+"/a?cacheHostOrigin=repo.com", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"authority-form", "CONNECT repo.com:443 HTTP/1.1\r\nHost: repo.com:443\r\n\r\n", want{err: "400"}},
	{"absolute ftp", get("ftp://repo.com/a", gw), want{err: "400"}},
	{"absolute userinfo", get("http://user:pw@repo.com/a", gw), want{err: "400"}},
	{"absolute port too big", get("http://repo.com:99999/a", gw), want{err: "400"}},
	{"absolute port zero", get("http://repo.com:0/a", gw), want{err: "400"}},
	{"absolute bad host", get("http://re!po.com/a", gw), want{err: "400"}},
	{"absolute bad ipv4", get("http://10.0.0.256/a", gw), want{err: "400"}},

	// 2. cacheHostOrigin (Delivery Optimization).
	{"query", get("/a/b?cacheHostOrigin=repo.com", gw),
		want{"http", "repo.com", "repo.com", "/a/b", "", "repo.com/a/b", "http://repo.com/a/b", ""}},
	{"query keeps other parameters byte for byte", get("/a/b?x=1&cacheHostOrigin=repo.com&y=%20z;w&&q", gw),
		want{"http", "repo.com", "repo.com", "/a/b", "x=1&y=%20z;w&&q", "repo.com/a/b", "http://repo.com/a/b?x=1&y=%20z;w&&q", ""}},
	{"query escaped value", get("/a?cacheHostOrigin=REPO%2Ecom", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"query repeated", get("/a?cacheHostOrigin=repo.com&k=v&cacheHostOrigin=repo.com:80", gw),
		want{"http", "repo.com", "repo.com", "/a", "k=v", "repo.com/a", "http://repo.com/a?k=v", ""}},
	{"query name case", get("/a?CACHEHOSTORIGIN=repo.com", gw),
		want{"http", "repo.com", "repo.com", "/a", "", "repo.com/a", "http://repo.com/a", ""}},
	{"query port", get("/a?cacheHostOrigin=alt.example.net:8080", gw),
		want{"http", "alt.example.net:8080", "alt.example.net:8080", "/a", "", "alt.example.net:8080/a", "http://alt.example.net:8080/a", ""}},
	{"query tls origin", get("/a?cacheHostOrigin=secure.example", gw),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"query dot segment", get("/./InRelease?cacheHostOrigin=repo.com", gw),
		want{"http", "repo.com", "repo.com", "/./InRelease", "", "repo.com/./InRelease", "http://repo.com/./InRelease", ""}},
	{"query validation request", get("/mscomtest/wuidt.gif?cacheHostOrigin=au.download.windowsupdate.com", gw),
		want{"http", "au.download.windowsupdate.com", "au.download.windowsupdate.com", "/mscomtest/wuidt.gif", "", "au.download.windowsupdate.com/mscomtest/wuidt.gif", "http://au.download.windowsupdate.com/mscomtest/wuidt.gif", ""}},
	{"query device update", get("/westus2/duinstance2/0f1e/file.json?cacheHostOrigin=duinstance2.b.nlu.dl.adu.microsoft.com", gw),
		want{"http", "duinstance2.b.nlu.dl.adu.microsoft.com", "duinstance2.b.nlu.dl.adu.microsoft.com", "/westus2/duinstance2/0f1e/file.json", "", "duinstance2.b.nlu.dl.adu.microsoft.com/westus2/duinstance2/0f1e/file.json", "http://duinstance2.b.nlu.dl.adu.microsoft.com/westus2/duinstance2/0f1e/file.json", ""}},
	{"query not allowed, no fallthrough", get("/a?cacheHostOrigin=example.org", "repo.com"),
		want{err: `origin "example.org" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=example.org to allow it`}},
	{"query stray fragment", get("/a?x=1#y&cacheHostOrigin=repo.com", gw),
		want{"http", "repo.com", "repo.com", "/a", "x=1%23y", "repo.com/a", "http://repo.com/a?x=1%23y", ""}},
	{"query empty", get("/a?cacheHostOrigin=", "repo.com"), want{err: "400"}},
	{"query no value", get("/a?cacheHostOrigin", "repo.com"), want{err: "400"}},
	{"query conflict", get("/a?cacheHostOrigin=repo.com&cacheHostOrigin=secure.example", gw), want{err: "400"}},
	{"query bad host", get("/a?cacheHostOrigin=repo.com%2Fx", gw), want{err: "400"}},
	{"query bad escape", get("/a?cacheHostOrigin=repo%zz", gw), want{err: "400"}},
	{"query port out of range", get("/a?cacheHostOrigin=repo.com:70000", gw), want{err: "400"}},
	{"query bare ipv6", get("/a?cacheHostOrigin=::1", gw), want{err: "400"}},

	// 3. Host header (DNS redirect).
	{"host", get("/dists/stable/InRelease", "repo.com"),
		want{"http", "repo.com", "repo.com", "/dists/stable/InRelease", "", "repo.com/dists/stable/InRelease", "http://repo.com/dists/stable/InRelease", ""}},
	{"host dot segment", get("/./InRelease", "repo.com"),
		want{"http", "repo.com", "repo.com", "/./InRelease", "", "repo.com/./InRelease", "http://repo.com/./InRelease", ""}},
	{"host case, dot, port", get("/a?x=1", "REPO.COM.:80"),
		want{"http", "repo.com", "repo.com", "/a", "x=1", "repo.com/a", "http://repo.com/a?x=1", ""}},
	{"host explicit port", get("/a", "alt.example.net:8080"),
		want{"http", "alt.example.net:8080", "alt.example.net:8080", "/a", "", "alt.example.net:8080/a", "http://alt.example.net:8080/a", ""}},
	{"host tls", get("/a", "secure.example"),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"host wildcard", get("/x?a=1", "img.cdn.example"),
		want{"http", "img.cdn.example", "img.cdn.example", "/x", "a=1", "img.cdn.example/x?a=1", "http://img.cdn.example/x?a=1", ""}},
	{"host built-in", get("/mscomtest/wuidt.gif", "b1.download.windowsupdate.com"),
		want{"http", "b1.download.windowsupdate.com", "b1.download.windowsupdate.com", "/mscomtest/wuidt.gif", "", "b1.download.windowsupdate.com/mscomtest/wuidt.gif", "http://b1.download.windowsupdate.com/mscomtest/wuidt.gif", ""}},
	{"host wins over path", get("/repo.com/a", "repo.com"),
		want{"http", "repo.com", "repo.com", "/repo.com/a", "", "repo.com/repo.com/a", "http://repo.com/repo.com/a", ""}},
	{"host asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: repo.com\r\n\r\n", want{err: "400"}},

	// 4. Path prefix.
	{"path", get("/repo.com/debian/dists/x", gw),
		want{"http", "repo.com", "repo.com", "/debian/dists/x", "", "repo.com/debian/dists/x", "http://repo.com/debian/dists/x", ""}},
	{"path host only", get("/repo.com", gw),
		want{"http", "repo.com", "repo.com", "/", "", "repo.com/", "http://repo.com/", ""}},
	{"path host slash", get("/repo.com/?x=1", gw),
		want{"http", "repo.com", "repo.com", "/", "x=1", "repo.com/", "http://repo.com/?x=1", ""}},
	{"path dot segment", get("/repo.com/./InRelease", gw),
		want{"http", "repo.com", "repo.com", "/./InRelease", "", "repo.com/./InRelease", "http://repo.com/./InRelease", ""}},
	{"path escaped segment", get("/%72epo.com/x", gw),
		want{"http", "repo.com", "repo.com", "/x", "", "repo.com/x", "http://repo.com/x", ""}},
	{"path with port", get("/alt.example.net:8080/a", gw),
		want{"http", "alt.example.net:8080", "alt.example.net:8080", "/a", "", "alt.example.net:8080/a", "http://alt.example.net:8080/a", ""}},
	{"path alias", get("/debian/dists/x", gw),
		want{"http", "deb.debian.org", "debian", "/dists/x", "", "debian/dists/x", "http://deb.debian.org/dists/x", ""}},
	{"path host with alias", get("/ftp.debian.org/dists/x", gw),
		want{"http", "ftp.debian.org", "debian", "/dists/x", "", "debian/dists/x", "http://ftp.debian.org/dists/x", ""}},
	{"path tls", get("/secure.example/a", gw),
		want{"https", "secure.example", "secure.example", "/a", "", "secure.example/a", "https://secure.example/a", ""}},
	{"path ipv6", get("/[::1]:8443/a", gw),
		want{"http", "[::1]:8443", "[::1]:8443", "/a", "", "[::1]:8443/a", "http://[::1]:8443/a", ""}},
	{"path built-in", get("/download.windowsupdate.com/x", gw),
		want{"http", "download.windowsupdate.com", "download.windowsupdate.com", "/x", "", "download.windowsupdate.com/x", "http://download.windowsupdate.com/x", ""}},
	{"path wildcard is not a prefix", get("/img.cdn.example/x", gw),
		want{err: `origin "192.168.1.10" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=192.168.1.10 to allow it`}},
	{"path wildcard alias is not a prefix", get("/wild/x", gw),
		want{err: `origin "192.168.1.10" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=192.168.1.10 to allow it`}},
	{"path empty first segment", get("//repo.com/x", gw),
		want{err: `origin "192.168.1.10" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=192.168.1.10 to allow it`}},
	{"nothing allowed names the host", get("/a", "Gateway.Local:8081"),
		want{err: `origin "gateway.local:8081" is not cacheable here: set CACHEABLE_CUSTOM_N_HOST=gateway.local:8081 to allow it`}},
	{"no host at all", "GET /a HTTP/1.0\r\n\r\n",
		want{err: "no origin named: use an absolute URL, ?cacheHostOrigin=, a Host header or a /host/path prefix naming a cacheable host"}},
	{"odd host is quoted", get("/a", "a b"),
		want{err: `origin "a b" is not cacheable here: no CACHEABLE_CUSTOM_N_HOST names it`}},
}

func checkTarget(t *testing.T, got Target, err error, w want) {
	t.Helper()
	var na *NotAllowedError
	var br *BadRequestError
	switch {
	case w.err == "400":
		if !errors.As(err, &br) {
			t.Fatalf("got %+v, %v; want a BadRequestError", got, err)
		}
		return
	case w.err != "":
		if !errors.As(err, &na) || err.Error() != w.err {
			t.Fatalf("got %+v, %v (%T); want NotAllowedError %q", got, err, err, w.err)
		}
		return
	case err != nil:
		t.Fatalf("error %v", err)
	}
	gotW := want{got.Scheme, got.Host, got.Alias, got.Path, got.Query, got.Key, got.URL(), ""}
	if gotW != w {
		t.Errorf("got  %+v\nwant %+v", gotW, w)
	}
}

func TestResolve(t *testing.T) {
	r := NewResolver(testHosts)
	for _, tt := range resolveTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(readRequest(t, tt.raw))
			checkTarget(t, got, err, tt.want)
		})
	}
}

// Allows is the test for following a redirect: the URL's own host and port
// must be allowed, whatever its query says.
func TestAllows(t *testing.T) {
	r := NewResolver(testHosts)
	for raw, want := range map[string]bool{
		"http://repo.com/a":                                 true,
		"https://repo.com/a":                                true,
		"http://repo.com:8080/a":                            false,
		"http://alt.example.net:8080/x":                     true,
		"http://alt.example.net/x":                          false,
		"http://a.cdn.example/x?y=1":                        true,
		"http://cdn.example/x":                              false,
		"http://[::1]:8443/x":                               true,
		"http://[::1]:5001/x":                               false,
		"http://10.0.0.5/x":                                 true,
		"http://127.0.0.1:18090/x?cacheHostOrigin=repo.com": false,
		"http://user:pw@repo.com/a":                         false,
		"ftp://repo.com/a":                                  false,
		"http://download.windowsupdate.com/x":               true,
		"http://evil.example/x":                             false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Allows(u); got != want {
			t.Errorf("Allows(%s) = %v, want %v", raw, got, want)
		}
	}
	if r.Allows(nil) {
		t.Error("Allows(nil) = true")
	}
}
