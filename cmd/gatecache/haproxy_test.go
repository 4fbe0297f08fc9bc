package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// front is a real haproxy running the configuration deploy/haproxy/render.sh
// prints for a set of nodes, in the foreground, listening on a socket bound
// by the test (descriptor 3, "bind fd@3"), with its admin socket in a
// temporary directory.
type front struct {
	t      *testing.T
	addr   string // where devices connect
	admin  string // admin socket path
	cmd    *exec.Cmd
	exited chan struct{}
	log    *lockedBuffer
}

// renderScript is deploy/haproxy/render.sh, from this package's directory.
const renderScript = "../../deploy/haproxy/render.sh"

// startFront renders the configuration for nodes, has haproxy check it
// (haproxy -c), runs it, and waits until every node is in rotation.
func startFront(t *testing.T, haproxy string, nodes []*node) *front {
	t.Helper()
	// A short directory: a unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "gc-haproxy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr, sock := listenerFile(t)
	f := &front{t: t, addr: addr, admin: filepath.Join(dir, "admin.sock"), exited: make(chan struct{}), log: &lockedBuffer{}}
	args := []string{renderScript, "-u", "-l", "stderr", "-b", "fd@3", "-s", f.admin}
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(n.summary)
		args = append(args, n.addr+":"+port)
	}
	cfg, err := exec.Command("sh", args...).Output()
	if err != nil {
		t.Fatalf("render.sh: %v", err)
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(haproxy, "-c", "-f", path)
	check.ExtraFiles = []*os.File{sock} // haproxy -c looks at the socket it is to listen on
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	f.cmd = exec.Command(haproxy, "-db", "-f", path)
	f.cmd.ExtraFiles = []*os.File{sock}
	f.cmd.Stdout, f.cmd.Stderr = logWriter{f.log}, logWriter{f.log}
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.exited
		if t.Failed() {
			t.Logf("--- haproxy log:\n%s", f.log)
		}
	})
	for _, n := range nodes {
		f.waitServer(n, func(s serverState) bool { return s.status == "UP" && s.check == "L7OK" }, "in rotation")
	}
	return f
}

// logWriter lets a lockedBuffer take a process's output.
type logWriter struct{ *lockedBuffer }

func (w logWriter) Write(p []byte) (int, error) {
	w.WriteString(string(p))
	return len(p), nil
}

// serverState is one node's row of haproxy's "show stat".
type serverState struct {
	status, check, code string
}

// stats reads the backend's server rows from the admin socket, keyed by
// server name (the node's content address). It fails while haproxy has
// not yet opened the socket.
func (f *front) stats() (map[string]serverState, error) {
	c, err := net.Dial("unix", f.admin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(e2eGuard))
	io.WriteString(c, "show stat\n")
	out, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(out, []byte("# ")))).ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("show stat: %v: %q", err, out)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	m := map[string]serverState{}
	for _, r := range rows[1:] {
		if len(r) != len(rows[0]) || r[col["pxname"]] != "gatecache" || r[col["svname"]] == "BACKEND" || r[col["svname"]] == "FRONTEND" {
			continue
		}
		m[r[col["svname"]]] = serverState{r[col["status"]], r[col["check_status"]], r[col["check_code"]]}
	}
	return m, nil
}

// waitServer waits until node n's state satisfies ok, and returns it.
func (f *front) waitServer(n *node, ok func(serverState) bool, what string) serverState {
	f.t.Helper()
	deadline := time.Now().Add(e2eGuard)
	for {
		all, err := f.stats()
		s, found := all[n.addr]
		if found && ok(s) {
			return s
		}
		select {
		case <-f.exited:
			f.t.Fatalf("haproxy exited waiting for node %s %s:\n%s", n.addr, what, f.log)
		default:
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("node %s not %s within %v: %+v %v", n.addr, what, e2eGuard, s, err)
		}
		time.Sleep(20 * time.Millisecond) // haproxy's checks run on their own clock
	}
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
