package fetch

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"gatecache/internal/origin"
)

// redirector answers every request with code and Location loc.
func redirector(t *testing.T, code int, loc string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", loc)
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// counted is a server that answers 200 "here" and counts requests.
func counted(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "here")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func targetAt(srv *httptest.Server, path string) origin.Target {
	host := srv.Listener.Addr().String()
	return origin.Target{Scheme: "http", Host: host, Path: path, Key: host + path}
}

func allowAll(*url.URL) bool { return true }

func TestRedirectToAHostNotAllowedIsRelayed(t *testing.T) {
	other, hits := counted(t)
	for _, loc := range []string{other.URL + "/x", "//" + other.Listener.Addr().String() + "/x"} {
		for _, code := range []int{301, 302, 303, 307, 308} {
			from := redirector(t, code, loc)
			allowed := from.Listener.Addr().String()
			c := New(Options{Logger: quiet(), AllowRedirect: func(u *url.URL) bool { return u.Host == allowed }})
			resp, err := c.Do(context.Background(), "GET", targetAt(from, "/f"), nil)
			if err != nil {
				t.Fatal(err)
			}
			Drain(resp.Body)
			if resp.StatusCode != code || resp.Header.Get("Location") != loc {
				t.Errorf("%d to %s: got %d Location %q, want the redirect itself", code, loc, resp.StatusCode, resp.Header.Get("Location"))
			}
		}
	}
	// Without a predicate nothing is followed.
	from := redirector(t, 302, other.URL+"/x")
	resp, err := New(Options{Logger: quiet()}).Do(context.Background(), "GET", targetAt(from, "/f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if resp.StatusCode != 302 || hits.Load() != 0 {
		t.Fatalf("status %d, other host asked %d times: want the 302 and no request", resp.StatusCode, hits.Load())
	}
}

func TestRedirectToAnAllowedOriginIsFollowed(t *testing.T) {
	other, hits := counted(t)
	from := redirector(t, 307, other.URL+"/x")
	c := New(Options{Logger: quiet(), AllowRedirect: allowAll})
	resp, err := c.Do(context.Background(), "GET", targetAt(from, "/f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "here" || hits.Load() != 1 {
		t.Fatalf("status %d body %q, %d requests: want the allowed target's answer", resp.StatusCode, b, hits.Load())
	}
}

// The node's own listeners are never a redirect's target, however they are
// named: the listener's address, a loopback name, any local address for an
// any-address bind.
func TestRedirectToTheNodeItselfIsRelayed(t *testing.T) {
	self, hits := counted(t) // stands for the summary port
	_, port, _ := net.SplitHostPort(self.Listener.Addr().String())
	cases := []struct {
		listen string // what the node says it listens on
		loc    string
	}{
		{self.Listener.Addr().String(), "http://" + self.Listener.Addr().String() + "/summary"},
		{self.Listener.Addr().String(), "http://localhost:" + port + "/metrics"},
		{"[::]:" + port, "http://127.0.0.1:" + port + "/summary"},
		{"0.0.0.0:" + port, "http://127.0.0.2:" + port + "/summary"},
		{"[::]:" + port, "http://0.0.0.0:" + port + "/summary"},
	}
	for _, tc := range cases {
		from := redirector(t, 302, tc.loc)
		c := New(Options{Logger: quiet(), AllowRedirect: allowAll})
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		c.SetSelf(addr)
		resp, err := c.Do(context.Background(), "GET", targetAt(from, "/f"), nil)
		if err != nil {
			t.Fatal(err)
		}
		Drain(resp.Body)
		if resp.StatusCode != 302 {
			t.Errorf("listening on %s, redirect to %s: status %d, want the 302 relayed", tc.listen, tc.loc, resp.StatusCode)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the node's own listener was asked %d times", hits.Load())
	}
	// Another port on the same address is not the node.
	from := redirector(t, 302, self.URL+"/x")
	c := New(Options{Logger: quiet(), AllowRedirect: allowAll})
	c.SetSelf(&net.TCPAddr{IP: net.IPv6unspecified, Port: 1})
	resp, err := c.Do(context.Background(), "GET", targetAt(from, "/f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("redirect to another port: status %d, want it followed", resp.StatusCode)
	}
}

// A parent's redirect to an allowed origin is followed through the parent,
// never by contacting the origin directly.
func TestRedirectFromAParentGoesThroughTheParent(t *testing.T) {
	direct, directHits := counted(t)
	var mu sync.Mutex
	var asked []string
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path == target.Path {
			w.Header().Set("Location", direct.URL+"/moved?v=2")
			w.WriteHeader(http.StatusFound)
			return
		}
		io.WriteString(w, "via parent")
	}))
	t.Cleanup(p.Close)
	c := New(Options{Parents: []string{p.Listener.Addr().String()}, Logger: quiet(), AllowRedirect: allowAll})
	resp, err := c.Do(context.Background(), "GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	wantURI := "/moved?v=2&cacheHostOrigin=" + url.QueryEscape(direct.Listener.Addr().String())
	if string(b) != "via parent" || directHits.Load() != 0 || len(asked) != 2 || asked[1] != wantURI {
		t.Fatalf("body %q, parent asked %q, origin asked directly %d times; want the parent asked for %s",
			b, asked, directHits.Load(), wantURI)
	}
}

func TestTooManyRedirectsFail(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/again", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	c := New(Options{Logger: quiet(), AllowRedirect: allowAll, MaxRedirects: 3})
	_, err := c.Do(context.Background(), "GET", targetAt(srv, "/f"), nil)
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Fatalf("err %v, want the redirect limit", err)
	}
}
