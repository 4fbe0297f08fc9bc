package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// node is one gatecache process started by the campaign.
type node struct {
	bin     string
	env     []string
	content string // host:port
	summary string
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *bytes.Buffer
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newNode prepares a node on root whose only allowed origin is originAddr.
func newNode(bin, root, originAddr string, extra ...string) *node {
	n := &node{bin: bin, content: freePort(), summary: freePort()}
	n.env = append([]string{
		"LISTEN_ADDR=" + n.content, "SUMMARY_ADDR=" + n.summary, "CACHE_ROOT=" + root,
		"CACHEABLE_CUSTOM_1_HOST=" + originAddr, "STORAGE_1_SIZE=2GiB", "ACCESS_LOG=false",
	}, extra...)
	return n
}

// start runs the binary and waits until both ports answer.
func (n *node) start() error {
	n.log = &bytes.Buffer{}
	n.cmd = exec.Command(n.bin)
	n.cmd.Env = append(os.Environ(), n.env...)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		return err
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + n.summary + "/healthz")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("gatecache exited at start: %s", tail(n.log.String()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	n.kill()
	return errors.New("gatecache did not answer /healthz within 30 s")
}

// kill ends the process with SIGKILL and waits for it.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// term sends SIGTERM and returns how long the process took to exit, or an
// error after limit (the process is then killed).
func (n *node) term(limit time.Duration) (time.Duration, error) {
	began := time.Now()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return time.Since(began), nil
	case <-time.After(limit):
		n.kill()
		return time.Since(began), fmt.Errorf("still running %v after SIGTERM", limit)
	}
}

// url is the proxy-form URL of path on origin through this node.
func (n *node) get(c *http.Client, originAddr, path string, hdr ...string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+originAddr+path, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return c.Do(req)
}

// proxyClient sends every request to the node as a forward proxy.
func (n *node) proxyClient(timeout time.Duration) *http.Client {
	u := "http://" + n.content
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               func(*http.Request) (*urlT, error) { return parseURL(u) },
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// sample is the process's resident memory and open descriptors.
type sample struct {
	rssKB, hwmKB int64
	fds          int
}

func (s sample) String() string {
	return fmt.Sprintf("RSS %.1f MiB (peak %.1f), %d fds", float64(s.rssKB)/1024, float64(s.hwmKB)/1024, s.fds)
}

func (n *node) sample() sample {
	var s sample
	pid := n.cmd.Process.Pid
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			switch k {
			case "VmRSS":
				s.rssKB = kb
			case "VmHWM":
				s.hwmKB = kb
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	return s
}

func tail(s string) string {
	if len(s) > 600 {
		s = s[len(s)-600:]
	}
	return s
}

// readAll reads a body, returning what arrived and whether it ended cleanly.
func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }
