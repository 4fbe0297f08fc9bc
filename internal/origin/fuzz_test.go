package origin

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func FuzzResolve(f *testing.F) {
	for _, tt := range resolveTests {
		target, host := "", ""
		line, headers, _ := strings.Cut(tt.raw, "\r\n")
		if parts := strings.Split(line, " "); len(parts) == 3 {
			target = parts[1]
		}
		if h, ok := strings.CutPrefix(headers, "Host: "); ok {
			host, _, _ = strings.Cut(h, "\r\n")
		}
		path, query, _ := strings.Cut(target, "?")
		f.Add(path, host, query)
	}
	f.Add("/a", "gw", "cacheHostOrigin=repo.com&cacheHostOrigin=REPO.COM.:80")
	f.Add("http://gw/a", "", "cacheHost%4Frigin=repo.com")
	r := NewResolver(testHosts)
	f.Fuzz(func(t *testing.T, target, host, query string) {
		if query != "" {
			target += "?" + query
		}
		raw := "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		got, err := r.Resolve(req)
		if err != nil {
			var na *NotAllowedError
			var br *BadRequestError
			if !errors.As(err, &na) && !errors.As(err, &br) {
				t.Fatalf("%q: error %v of type %T", raw, err, err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("%q: error message is not one line: %q", raw, err)
			}
			return
		}
		check := func(got Target) {
			switch {
			case !strings.HasPrefix(got.Key, got.Alias) || got.Alias == "":
				t.Fatalf("%q: key %q does not start with alias %q", raw, got.Key, got.Alias)
			case !strings.HasPrefix(got.Path, "/"):
				t.Fatalf("%q: path %q", raw, got.Path)
			case got.Scheme != "http" && got.Scheme != "https":
				t.Fatalf("%q: scheme %q", raw, got.Scheme)
			case got.Host == "" || got.Host != strings.ToLower(got.Host) && !strings.Contains(got.Host, "%"):
				t.Fatalf("%q: host %q", raw, got.Host)
			}
		}
		check(got)
		u, err := url.Parse(got.URL())
		if err != nil {
			t.Fatalf("%q: upstream URL %q: %v", raw, got.URL(), err)
		}
		if u.Host != got.Host || u.EscapedPath() != got.Path || u.RawQuery != got.Query {
			t.Fatalf("%q: upstream URL %q reads back as host %q path %q query %q", raw, got.URL(), u.Host, u.EscapedPath(), u.RawQuery)
		}
		for p := range strings.SplitSeq(u.RawQuery, "&") {
			k, _, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(k); err == nil && strings.EqualFold(name, originParam) {
				t.Fatalf("%q: upstream URL %q still has cacheHostOrigin", raw, got.URL())
			}
		}
		// The upstream URL names the same origin and object: resolving it
		// again (as a redirect or a warm-up list would) gives the same key.
		// (That holds for testHosts, where no concrete host comes after a
		// wildcard covering it: the first-path-segment form skips
		// wildcards, an absolute URL does not.)
		again, err := resolveURL(r, got.URL())
		if err != nil {
			t.Fatalf("%q: resolveURL(%q): %v", raw, got.URL(), err)
		}
		check(again)
		if again.Scheme != got.Scheme || again.Host != got.Host || again.Path != got.Path || again.Query != got.Query {
			t.Fatalf("%q: resolveURL(%q) = %+v, want %+v", raw, got.URL(), again, got)
		}
		if again.Key != got.Key {
			t.Fatalf("%q: resolveURL(%q) key %q, want %q", raw, got.URL(), again.Key, got.Key)
		}
	})
}
