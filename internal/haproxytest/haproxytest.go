// Package haproxytest runs a real haproxy in front of gatecache nodes, with
// the configuration deploy/haproxy/render.sh prints for them, for the
// end-to-end tests and the fleet benchmarks. haproxy runs in the
// foreground on a socket bound here (descriptor 3, "bind fd@3"), its admin
// socket in a temporary directory of its own.
package haproxytest

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Node is a gatecache node as the front sees it: where its content port
// listens (also its server name in haproxy) and the port of its summary
// listener, where haproxy checks /readyz.
type Node struct {
	Addr      string
	CheckPort string
}

// Options says which haproxy and which render.sh to run, and where
// haproxy's own output goes (nil: nowhere).
type Options struct {
	HAProxy string
	Render  string
	Log     io.Writer
}

// Front is a running haproxy.
type Front struct {
	Addr   string // where devices connect
	admin  string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// ServerState is one node's row of haproxy's "show stat".
type ServerState struct {
	Status, Check, Code string // e.g. "UP", "L7OK", "200"
}

// waitFor bounds every wait on haproxy: it checks a node every second
// (every 250 ms after a failure) and needs two checks to change its mind.
const waitFor = 30 * time.Second

// Start renders the configuration for nodes, has haproxy check it
// (haproxy -c), runs it, and waits until every node is in rotation.
func Start(o Options, nodes []Node) (*Front, error) {
	// A short directory: a unix socket's path is limited to 107 bytes.
	dir, err := os.MkdirTemp("", "gc-haproxy")
	if err != nil {
		return nil, err
	}
	f := &Front{admin: filepath.Join(dir, "admin.sock"), dir: dir, exited: make(chan struct{})}
	if err := f.start(o, nodes); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	for _, n := range nodes {
		if _, _, err := f.Wait(n.Addr, func(s ServerState) bool { return s.Status == "UP" && s.Check == "L7OK" }); err != nil {
			f.Stop()
			return nil, fmt.Errorf("node %s not in rotation: %w", n.Addr, err)
		}
	}
	return f, nil
}

func (f *Front) start(o Options, nodes []Node) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sock, err := l.(*net.TCPListener).File()
	l.Close() // sock keeps the socket listening
	if err != nil {
		return err
	}
	defer sock.Close()
	f.Addr = l.Addr().String()
	args := []string{o.Render, "-u", "-l", "stderr", "-b", "fd@3", "-s", f.admin}
	for _, n := range nodes {
		args = append(args, n.Addr+":"+n.CheckPort)
	}
	cfg, err := exec.Command("sh", args...).Output()
	if err != nil {
		return fmt.Errorf("%s: %v", o.Render, err)
	}
	path := filepath.Join(f.dir, "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return err
	}
	check := exec.Command(o.HAProxy, "-c", "-f", path)
	check.ExtraFiles = []*os.File{sock} // haproxy -c looks at the socket it is to listen on
	if out, err := check.CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy -c: %v\n%s\n%s", err, out, cfg)
	}
	f.cmd = exec.Command(o.HAProxy, "-db", "-f", path)
	f.cmd.ExtraFiles = []*os.File{sock}
	f.cmd.Stdout, f.cmd.Stderr = o.Log, o.Log
	if err := f.cmd.Start(); err != nil {
		return err
	}
	go func() { f.cmd.Wait(); close(f.exited) }()
	return nil
}

// Stop ends haproxy and waits for it.
func (f *Front) Stop() {
	f.cmd.Process.Kill()
	<-f.exited
	os.RemoveAll(f.dir)
}

// Stats reads the backend's server rows from the admin socket, keyed by
// server name (the node's content address). It fails while haproxy has
// not yet opened the socket.
func (f *Front) Stats() (map[string]ServerState, error) {
	c, err := net.Dial("unix", f.admin)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
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
	m := map[string]ServerState{}
	for _, r := range rows[1:] {
		if len(r) != len(rows[0]) || r[col["pxname"]] != "gatecache" || r[col["svname"]] == "BACKEND" || r[col["svname"]] == "FRONTEND" {
			continue
		}
		m[r[col["svname"]]] = ServerState{r[col["status"]], r[col["check_status"]], r[col["check_code"]]}
	}
	return m, nil
}

// Wait polls until the state of node (its content address) satisfies ok,
// within 30 s, and returns that state and how long it took.
func (f *Front) Wait(node string, ok func(ServerState) bool) (ServerState, time.Duration, error) {
	began := time.Now()
	for {
		all, err := f.Stats()
		s, found := all[node]
		if found && ok(s) {
			return s, time.Since(began), nil
		}
		if time.Since(began) > waitFor {
			return s, 0, fmt.Errorf("state %+v after %v (%v)", s, waitFor, err)
		}
		select {
		case <-f.exited:
			return s, 0, errors.New("haproxy exited")
		case <-time.After(20 * time.Millisecond): // haproxy's checks run on their own clock
		}
	}
}
