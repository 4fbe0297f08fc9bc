package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// redirectClient asks a node without following redirects itself: what the
// node relays is what the test looks at.
var redirectClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// An allowed origin that redirects elsewhere never makes the node an open
// proxy: the redirect is followed only to an origin the allow list names
// and never to the node's own listeners; otherwise it is relayed to the
// client, and nothing is stored.
func TestRedirectsOnlyToAllowedOriginsAndNeverToTheNodeItself(t *testing.T) {
	var otherHits atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		io.WriteString(w, "secret of a host nobody allowed")
	}))
	t.Cleanup(other.Close)
	// The node's summary port, named in the allow list by mistake. It is
	// bound here and passed in by socket activation, so that no other
	// process can take it between choosing and binding it.
	summaryAddr, summarySocket := listenerFile(t)
	_, contentSocket := listenerFile(t)
	_, summaryPort, _ := net.SplitHostPort(summaryAddr)

	redirects := map[string]struct {
		code     int
		location string
	}{
		"/301-other":      {http.StatusMovedPermanently, "http://" + other.Listener.Addr().String() + "/secret"},
		"/302-other":      {http.StatusFound, "http://" + other.Listener.Addr().String() + "/secret"},
		"/303-other":      {http.StatusSeeOther, "http://" + other.Listener.Addr().String() + "/secret"},
		"/307-other":      {http.StatusTemporaryRedirect, "http://" + other.Listener.Addr().String() + "/secret"},
		"/308-other":      {http.StatusPermanentRedirect, "http://" + other.Listener.Addr().String() + "/secret"},
		"/scheme-rel":     {http.StatusFound, "//" + other.Listener.Addr().String() + "/secret"},
		"/summary-port":   {http.StatusFound, "http://" + summaryAddr + "/summary"},
		"/summary-byname": {http.StatusTemporaryRedirect, "http://localhost:" + summaryPort + "/metrics"},
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/relative" {
			http.Redirect(w, r, "/real", http.StatusFound)
			return
		}
		if r.URL.Path == "/real" {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			io.WriteString(w, "the real thing")
			return
		}
		rd, ok := redirects[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Location", rd.location)
		w.WriteHeader(rd.code)
		io.WriteString(w, "moved")
	}))
	t.Cleanup(origin.Close)
	originAddr := origin.Listener.Addr().String()

	n := runNode(t, activatedCmd("content:summary", []*os.File{contentSocket, summarySocket}, chainEnv(t, originAddr, 1,
		"CACHEABLE_CUSTOM_2_HOST="+summaryAddr,
		"CACHEABLE_CUSTOM_3_HOST=localhost:"+summaryPort)...))
	if n.summary != summaryAddr {
		t.Fatalf("summary on %s, want %s", n.summary, summaryAddr)
	}

	ask := func(path string) (*http.Response, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+n.addr+path+"?cacheHostOrigin="+originAddr, nil)
		resp, err := redirectClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, chainLog(n))
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: body: %v", path, err)
		}
		return resp, string(b)
	}
	for path, rd := range redirects {
		for round := range 2 { // the second ask shows that nothing was stored
			resp, body := ask(path)
			if resp.StatusCode != rd.code || resp.Header.Get("Location") != rd.location {
				t.Errorf("%s (ask %d): status %d, Location %q, body %.80q; want the origin's %d to %q relayed",
					path, round+1, resp.StatusCode, resp.Header.Get("Location"), body, rd.code, rd.location)
			}
			if cs := resp.Header.Get("Cache-Status"); strings.Contains(cs, "hit") || strings.Contains(cs, "stored") {
				t.Errorf("%s (ask %d): Cache-Status %q: a relayed redirect must not be stored", path, round+1, cs)
			}
			if strings.Contains(body, "secret") || strings.Contains(body, "gatecache_") || strings.Contains(body, "cacheNodeId") {
				t.Errorf("%s (ask %d): body %.80q is the redirect target's", path, round+1, body)
			}
		}
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the host nobody allowed was asked %d times", n)
	}

	// A redirect within the allowed origin is followed, and the answer
	// stored under the client's key.
	for round := range 2 {
		resp, body := ask("/relative")
		if resp.StatusCode != http.StatusOK || body != "the real thing" {
			t.Fatalf("relative redirect (ask %d): status %d, body %q", round+1, resp.StatusCode, body)
		}
		if round == 1 && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Errorf("relative redirect, second ask: Cache-Status %q, want a hit", resp.Header.Get("Cache-Status"))
		}
	}
}
