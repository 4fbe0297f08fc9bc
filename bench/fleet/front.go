package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// renderScript prints the front's configuration (run from the repository's
// root, as go run ./bench/fleet is).
const renderScript = "deploy/haproxy/render.sh"

// front is haproxy running deploy/haproxy's configuration for a set of
// nodes, in the foreground, on a socket bound by the benchmark.
type front struct {
	addr, admin string
	cmd         *exec.Cmd
	exited      chan struct{}
	logPath     string
}

// startFront renders the configuration for nodes, checks it with haproxy
// -c, runs haproxy and waits until every node is in rotation.
func startFront(haproxy, dir string, nodes []*node) (*front, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// A short directory for the admin socket: a unix socket's path is
	// limited to 107 bytes.
	sockDir, err := os.MkdirTemp("", "fleet-haproxy")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sock, err := l.(*net.TCPListener).File()
	l.Close() // sock keeps the socket listening
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	f := &front{addr: l.Addr().String(), admin: filepath.Join(sockDir, "admin.sock"), exited: make(chan struct{}), logPath: filepath.Join(dir, "haproxy.log")}
	args := []string{renderScript, "-u", "-l", "stderr", "-b", "fd@3", "-s", f.admin}
	for _, n := range nodes {
		_, port, _ := net.SplitHostPort(n.summary)
		args = append(args, n.content+":"+port)
	}
	cfg, err := exec.Command("sh", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", renderScript, err)
	}
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return nil, err
	}
	check := exec.Command(haproxy, "-c", "-f", path)
	check.ExtraFiles = []*os.File{sock}
	if out, err := check.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("haproxy -c: %v\n%s", err, out)
	}
	logf, err := os.Create(f.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	f.cmd = exec.Command(haproxy, "-db", "-f", path)
	f.cmd.ExtraFiles = []*os.File{sock}
	f.cmd.Stdout, f.cmd.Stderr = logf, logf
	if err := f.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { f.cmd.Wait(); close(f.exited); os.RemoveAll(sockDir) }()
	for _, n := range nodes {
		if _, err := f.wait(n, func(status string) bool { return status == "UP" }); err != nil {
			f.stop()
			return nil, err
		}
	}
	return f, nil
}

// stop ends haproxy and waits for it.
func (f *front) stop() {
	f.cmd.Process.Kill()
	<-f.exited
}

// status reads each node's state ("UP", "DOWN", ...) from the admin
// socket, keyed by server name (the node's content address).
func (f *front) status() (map[string]string, error) {
	c, err := net.Dial("unix", f.admin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
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
	m := map[string]string{}
	for _, r := range rows[1:] {
		if len(r) == len(rows[0]) && r[col["pxname"]] == "gatecache" {
			m[r[col["svname"]]] = r[col["status"]]
		}
	}
	return m, nil
}

// wait polls until n's state satisfies ok (within 30 s) and says how long
// that took.
func (f *front) wait(n *node, ok func(string) bool) (time.Duration, error) {
	began := time.Now()
	for time.Since(began) < 30*time.Second {
		if st, err := f.status(); err == nil && ok(st[n.content]) {
			return time.Since(began), nil
		}
		select {
		case <-f.exited:
			return 0, fmt.Errorf("haproxy exited (log %s)", f.logPath)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("node %s: state not reached within 30 s", n.content)
}
