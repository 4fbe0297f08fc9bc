package fetch

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"gatecache/internal/origin"
)

// parent is a hand-written parent cache that records what it was asked.
type parent struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	seen   []*http.Request
}

func newParent(t *testing.T, status int) *parent {
	p := &parent{status: status}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r)
		p.mu.Unlock()
		w.WriteHeader(p.status)
		io.WriteString(w, "from "+r.Host)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *parent) requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.seen...)
}

func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var target = origin.Target{Scheme: "http", Host: "repo.example", Path: "/dists/x/InRelease", Query: "a=1", Key: "repo.example/dists/x/InRelease"}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestParentIsAskedInTheCacheHostOriginForm(t *testing.T) {
	p := newParent(t, 200)
	c := New(Options{Parents: []string{p.Listener.Addr().String()}, NodeID: "node-1", Logger: quiet()})
	h := http.Header{"Via": {"1.1 node-0 (gatecache)"}}
	resp, err := c.Do(context.Background(), "GET", target, h)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	r := p.requests()[0]
	if r.URL.RequestURI() != "/dists/x/InRelease?a=1&cacheHostOrigin=repo.example" {
		t.Fatalf("parent asked for %q", r.URL.RequestURI())
	}
	if via := r.Header.Get("Via"); via != "1.1 node-0 (gatecache), 1.1 node-1 (gatecache)" {
		t.Fatalf("Via %q: want the chain so far plus this node", via)
	}
}

func TestDeadOrFailingParentsAreSkipped(t *testing.T) {
	failing := newParent(t, 503)
	live := newParent(t, 200)
	dead := deadAddr(t)
	c := New(Options{Parents: []string{dead, failing.Listener.Addr().String(), live.Listener.Addr().String()}, Logger: quiet()})
	for range 3 {
		resp, err := c.Do(context.Background(), "GET", target, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "from ") {
			t.Fatalf("answer %d %q, want the live parent's", resp.StatusCode, b)
		}
	}
	// After their first failure, the dead and the failing parent are in
	// backoff: the next requests went straight to the live one.
	if n := len(failing.requests()); n != 1 {
		t.Fatalf("failing parent asked %d times, want 1 (then backed off)", n)
	}
	st := c.Stats()
	if !st[0].Down || st[0].Failures != 1 || !st[1].Down || st[2].Down || st[2].Requests != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAllParentsDown(t *testing.T) {
	dead := deadAddr(t)
	c := New(Options{Parents: []string{dead}, Logger: quiet()})
	if _, err := c.Do(context.Background(), "GET", target, nil); err == nil {
		t.Fatal("request to a dead parent succeeded")
	}
	// Still in backoff, the parent is retried rather than nothing asked.
	if _, err := c.Do(context.Background(), "GET", target, nil); err == nil {
		t.Fatal("second request succeeded")
	}
	if st := c.Stats()[0]; st.Requests != 2 || !st.Down {
		t.Fatalf("stats %+v", st)
	}
}

func TestFallbackDirectGoesToTheOrigin(t *testing.T) {
	originSrv := newParent(t, 200)
	host := originSrv.Listener.Addr().String()
	c := New(Options{Parents: []string{deadAddr(t)}, FallbackDirect: true, Logger: quiet()})
	tg := origin.Target{Scheme: "http", Host: host, Path: "/f", Key: host + "/f"}
	resp, err := c.Do(context.Background(), "GET", tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if r := originSrv.requests()[0]; r.URL.RequestURI() != "/f" {
		t.Fatalf("origin asked for %q", r.URL.RequestURI())
	}
}

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{"Connection": {"close, X-Private"}, "X-Private": {"1"}, "Keep-Alive": {"5"}, "Range": {"bytes=0-1"}}
	RemoveHopByHop(h)
	if len(h) != 1 || h.Get("Range") == "" {
		t.Fatalf("after removal: %v", h)
	}
}

func TestFiguresPerOriginHost(t *testing.T) {
	a, b := newParent(t, 200), newParent(t, 404)
	c := New(Options{Logger: quiet()})
	for _, srv := range []*parent{a, a, b} {
		host := srv.Listener.Addr().String()
		resp, err := c.Do(context.Background(), "GET", origin.Target{Scheme: "http", Host: host, Path: "/x", Key: host + "/x"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		Drain(resp.Body)
	}
	st := c.Stats()
	if len(st) != 2 || st[0].Parent || st[0].Requests+st[1].Requests != 3 || st[0].Bytes == 0 {
		t.Fatalf("stats %+v, want one entry per origin host with their requests and bytes", st)
	}
}
