package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// node is one gatecache process. Its two listening sockets are bound by the
// benchmark and passed in by socket activation (as systemd does), so that
// their addresses are known before it runs and no other process can take
// them meanwhile.
type node struct {
	name             string
	content, summary string // host:port
	root             string
	logPath          string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// startNode runs bin as a node named name under work, allowing originAddr,
// with extra environment, and waits until its summary port answers
// (/healthz: asking /readyz would make it a watched node, which drains
// for 2 s when stopped).
func startNode(bin, work, name, originAddr string, extra ...string) (*node, error) {
	n := &node{name: name, root: filepath.Join(work, name), logPath: filepath.Join(work, name+".log")}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	var files []*os.File
	for _, addr := range []*string{&n.content, &n.summary} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		f, err := l.(*net.TCPListener).File()
		l.Close() // f keeps the socket listening
		if err != nil {
			return nil, err
		}
		defer f.Close()
		*addr = l.Addr().String()
		files = append(files, f)
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// LISTEN_PID must be gatecache's own pid: a shell sets it and execs
	// gatecache in its place.
	n.cmd = exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, bin)
	n.cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "LISTEN_FDS=2", "LISTEN_FDNAMES=content:summary",
		"CACHE_ROOT=" + n.root, "CACHEABLE_CUSTOM_1_HOST=" + originAddr, "STORAGE_1_SIZE=2GiB",
		"ACCESS_LOG=false", "LOG_FORMAT=json", "CACHE_NODE_ID=" + nodeID(name),
	}, extra...)
	n.cmd.ExtraFiles = files
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); close(n.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + n.summary + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return n, nil
			}
		}
		select {
		case <-n.exited:
			return nil, fmt.Errorf("%s exited at start: %s", name, n.logTail())
		case <-time.After(20 * time.Millisecond):
		}
	}
	n.stop()
	return nil, fmt.Errorf("%s not ready within 30 s: %s", name, n.logTail())
}

// nodeID makes a stable CACHE_NODE_ID from a node's name.
func nodeID(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", h.Sum64()&0xffffffffffff)
}

// stop ends the node with SIGTERM (SIGKILL after 15 s) and waits for it.
func (n *node) stop() {
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(15 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// startLine is the node's first log line: its configuration.
func (n *node) startLine() string {
	b, _ := os.ReadFile(n.logPath)
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

func (n *node) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}

// metrics sums the samples of each metric on the node's /metrics, over
// all label values.
func (n *node) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + n.summary + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err == nil {
			m[name] += v
		}
	}
	return m, sc.Err()
}

// accessCounts counts the node's access-log lines (ACCESS_LOG=true,
// LOG_FORMAT=json) by the path of their URI: the requests it answered.
// Lines reach the log within a fraction of a second, and at exit: call it
// after stop.
func (n *node) accessCounts() (map[string]int, error) {
	f, err := os.Open(n.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts := map[string]int{}
	dec := json.NewDecoder(f)
	for {
		var line struct {
			Msg string `json:"msg"`
			URI string `json:"uri"`
		}
		if err := dec.Decode(&line); errors.Is(err, io.EOF) {
			return counts, nil
		} else if err != nil {
			return counts, fmt.Errorf("%s: %v", n.logPath, err)
		}
		if line.Msg != "access" {
			continue
		}
		path := line.URI
		if i := strings.Index(path, "://"); i >= 0 {
			path = path[i+3:]
			if j := strings.IndexByte(path, '/'); j >= 0 {
				path = path[j:]
			}
		}
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		counts[path]++
	}
}
