package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/origintest"
)

// binary is the gatecache command built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatecache-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "gatecache")
	build := exec.Command("go", append(append([]string{"build"}, raceFlags...), "-o", binary, ".")...)
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building gatecache:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one running gatecache process.
type node struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string // content address
	summary string
	exited  chan struct{}
	stderr  *lockedBuffer
}

var servingLine = regexp.MustCompile(`msg="gatecache serving" content=(\S+) summary=(\S+)`)

// startNode runs gatecache with env (plus loopback listeners on free ports)
// and waits until it logs that it serves.
func startNode(t *testing.T, env ...string) *node {
	t.Helper()
	return startNodeWith(t, nil, env...)
}

// runNode starts a prepared gatecache command (stderr not yet set) and
// waits until it logs that it serves.
func runNode(t *testing.T, cmd *exec.Cmd) *node {
	t.Helper()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, cmd: cmd, exited: make(chan struct{}), stderr: &lockedBuffer{}}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			n.stderr.WriteString(sc.Text() + "\n")
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
			}
		}
		cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() { n.kill(syscall.SIGKILL) })
	select {
	case m := <-found:
		n.addr, n.summary = m[1], m[2]
	case <-n.exited:
		t.Fatalf("gatecache exited at start:\n%s", n.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("gatecache did not start:\n%s", n.stderr)
	}
	return n
}

// startNodeWith is startNode with the binary run through a command prefix
// (e.g. ip netns exec NAME), which must exec it in place so that signals
// reach gatecache itself.
func startNodeWith(t *testing.T, prefix []string, env ...string) *node {
	t.Helper()
	argv := append(append([]string(nil), prefix...), binary)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"LISTEN_ADDR=127.0.0.1:0", "SUMMARY_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH")}, env...)
	return runNode(t, cmd)
}

// kill sends sig and waits for the process to end.
func (n *node) kill(sig syscall.Signal) {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// get fetches rawURL from the node in the cacheHostOrigin form.
func (n *node) get(o *origintest.Origin, path string, header ...string) (*http.Response, error) {
	req, err := http.NewRequest("GET", "http://"+n.addr+path+"?cacheHostOrigin="+o.Addr, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return noRetryClient.Do(req)
}

// noRetryClient opens a connection per request: a response cut off by a
// killed node must show as an error, never be retried behind our back.
var noRetryClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

// Write lets a process's output go to the buffer.
func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.WriteString(string(p))
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestInvalidConfigurationStopsStartupNamingTheVariable(t *testing.T) {
	cases := []struct{ env, want string }{
		{"STORAGE_1_SIZE_GB=abc", `STORAGE_1_SIZE_GB="abc": want a whole number of GB`},
		{"CUSTOMER_ID=not-a-guid", `CUSTOMER_ID="not-a-guid": want a GUID`},
		{"LISTEN_ADDR=nowhere", `LISTEN_ADDR="nowhere"`},
		{"CACHEABLE_CUSTOM_1_HOST=http://repo/path", `CACHEABLE_CUSTOM_1_HOST="http://repo/path"`},
		{"UPSTREAM_HOST=parent:99999", `UPSTREAM_HOST="parent:99999"`},
		{"LOG_FORMAT=xml", `LOG_FORMAT="xml"`},
	}
	for _, c := range cases {
		cmd := exec.Command(binary)
		cmd.Env = []string{c.env, "CACHE_ROOT=" + t.TempDir()}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%s: err %v, want exit status 2", c.env, err)
		}
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: stderr %q, want one line containing %q", c.env, stderr.String(), c.want)
		}
	}
}

func TestListenerInUseIsAStartupError(t *testing.T) {
	n := startNode(t, "CACHE_ROOT="+t.TempDir())
	cmd := exec.Command(binary)
	cmd.Env = []string{"LISTEN_ADDR=" + n.addr, "SUMMARY_ADDR=127.0.0.1:0", "CACHE_ROOT=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "LISTEN_ADDR") {
		t.Fatalf("second node on a used port: %v\n%s", err, out)
	}
}

func TestDefaultStartServesAndPersistsNodeID(t *testing.T) {
	root := t.TempDir()
	n := startNode(t, "CACHE_ROOT="+root)
	resp, err := http.Get("http://" + n.summary + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	id, err := os.ReadFile(filepath.Join(root, "node-id"))
	if err != nil || len(strings.TrimSpace(string(id))) != 36 {
		t.Fatalf("node id not persisted: %q %v", id, err)
	}
	if _, err := os.Stat(filepath.Join(root, "cache1", "index.db")); err != nil {
		t.Fatalf("default drive not created: %v", err)
	}
	n.kill(syscall.SIGTERM)
	n2 := startNode(t, "CACHE_ROOT="+root)
	if !strings.Contains(n2.stderr.String(), strings.TrimSpace(string(id))) {
		t.Fatal("node id changed across restarts")
	}
}

// curl, the client operators test with, in its three usual forms.
func TestCurlThroughTheBinary(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	o := origintest.New(t)
	o.Set("/pool/main/h/hello_1.0_amd64.deb", origintest.Object{Size: 3<<20 + 17})
	want := o.Want("/pool/main/h/hello_1.0_amd64.deb")
	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+o.Addr, "STORAGE_1_SIZE=64MiB")

	run := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--fail"}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return out
	}
	url := "http://" + o.Addr + "/pool/main/h/hello_1.0_amd64.deb"
	if got := run("-x", "http://"+n.addr, url); !bytes.Equal(got, want) {
		t.Fatal("proxy form: wrong bytes")
	}
	if got := run("http://" + n.addr + "/pool/main/h/hello_1.0_amd64.deb?cacheHostOrigin=" + o.Addr); !bytes.Equal(got, want) {
		t.Fatal("cacheHostOrigin form: wrong bytes")
	}
	if got := run("-r", "1000-1999", "http://"+n.addr+"/"+o.Addr+"/pool/main/h/hello_1.0_amd64.deb"); !bytes.Equal(got, want[1000:2000]) {
		t.Fatal("path-prefix form with a range: wrong bytes")
	}
	if st := o.Stats(); st.Requests != 1 {
		t.Fatalf("origin saw %d requests, want 1", st.Requests)
	}
}
