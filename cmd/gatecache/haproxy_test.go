package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gatecache/internal/haproxytest"
)

// front is a real haproxy running the configuration deploy/haproxy/render.sh
// prints for a set of nodes (haproxytest), ended when the test ends; its
// output is logged when the test fails.
type front struct {
	*haproxytest.Front
	t   *testing.T
	log *lockedBuffer
}

// renderScript is deploy/haproxy/render.sh, from this package's directory.
const renderScript = "../../deploy/haproxy/render.sh"

// startFront runs haproxy in front of nodes and waits until every node is
// in rotation.
func startFront(t *testing.T, haproxy string, nodes []*node) *front {
	t.Helper()
	var hn []haproxytest.Node
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(n.summary)
		hn = append(hn, haproxytest.Node{Addr: n.addr, CheckPort: port})
	}
	log := &lockedBuffer{}
	hf, err := haproxytest.Start(haproxytest.Options{HAProxy: haproxy, Render: renderScript, Log: log}, hn)
	if err != nil {
		t.Fatalf("%v\n--- haproxy log:\n%s", err, log)
	}
	f := &front{Front: hf, t: t, log: log}
	t.Cleanup(func() {
		f.Stop()
		if t.Failed() {
			t.Logf("--- haproxy log:\n%s", f.log)
		}
	})
	return f
}

// waitServer waits until node n's state satisfies ok, and returns it.
func (f *front) waitServer(n *node, ok func(haproxytest.ServerState) bool, what string) haproxytest.ServerState {
	f.t.Helper()
	s, _, err := f.Wait(n.addr, ok)
	if err != nil {
		f.t.Fatalf("node %s not %s: %v\n%s", n.addr, what, err, f.log)
	}
	return s
}

// requestForm is one of the four ways a device names an object's origin,
// as a request through the front.
type requestForm struct {
	name string
	req  func(frontAddr, origin, path string) *http.Request
}

var requestForms = []requestForm{
	{"query", func(fa, o, p string) *http.Request {
		r, _ := http.NewRequest("GET", "http://"+fa+p+"?cacheHostOrigin="+o, nil)
		return r
	}},
	{"host", func(fa, o, p string) *http.Request {
		r, _ := http.NewRequest("GET", "http://"+fa+p, nil)
		r.Host = o
		return r
	}},
	{"absolute", func(fa, o, p string) *http.Request {
		// Sent through the front as a forward proxy (see frontClient).
		r, _ := http.NewRequest("GET", "http://"+o+p, nil)
		return r
	}},
	{"path", func(fa, o, p string) *http.Request {
		r, _ := http.NewRequest("GET", "http://"+fa+"/"+o+p, nil)
		return r
	}},
}

// frontClient sends absolute-form requests to the front as a proxy, and
// the other forms to the front directly.
func frontClient(frontAddr string) *http.Client {
	proxy, _ := url.Parse("http://" + frontAddr)
	return &http.Client{
		Timeout: e2eGuard,
		Transport: &http.Transport{
			Proxy: func(r *http.Request) (*url.URL, error) {
				if r.URL.Host != frontAddr {
					return proxy, nil
				}
				return nil, nil
			},
			DisableCompression:  true,
			MaxIdleConnsPerHost: 8,
		},
	}
}

// fetched is one complete answer through the front.
type fetched struct {
	status int
	cache  string
	body   []byte
}

func fetchThrough(c *http.Client, req *http.Request) (fetched, error) {
	resp, err := c.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return fetched{resp.StatusCode, resp.Header.Get("Cache-Status"), body}, err
}

// onDisk maps each object to the nodes whose drive holds a data file for
// it, told by the file's first bytes (each test object's content is
// distinct from its first bytes on): the copies a node holds, counted on
// disk. prefixes maps an object's first bytes to its path.
func onDisk(t *testing.T, roots []string, prefixes map[string]string, prefixLen int) map[string][]int {
	t.Helper()
	holders := map[string][]int{}
	for i, root := range roots {
		files, err := filepath.Glob(filepath.Join(root, "*", "data", "*", "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			f, err := os.Open(name)
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, prefixLen)
			_, err = io.ReadFull(f, head)
			f.Close()
			if err != nil {
				continue // not one of the objects under test
			}
			if p, ok := prefixes[string(head)]; ok {
				holders[p] = append(holders[p], i)
			}
		}
	}
	return holders
}

// metric reads one unlabelled sample from a node's /metrics.
func metric(t *testing.T, n *node, name string) string {
	t.Helper()
	resp, err := noRetryClient.Get("http://" + n.summary + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return fmt.Sprintf("(no %s)", name)
}
