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
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gatecache/internal/origintest"
)

// pendingRequest is a request written on a connection that no process may
// be accepting yet.
type pendingRequest struct {
	conn net.Conn
	path string
}

// sendEarly connects to addr and writes a GET for path, without waiting for
// an answer. The connection must be established (not refused) even if no
// process accepts on the socket right now.
func sendEarly(t *testing.T, addr, host, path string) pendingRequest {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	return pendingRequest{conn: c, path: path}
}

// answer reads the response to a pending request. The deadline only stops
// a test that would otherwise hang on a request no process serves.
func (p pendingRequest) answer(t *testing.T) (int, []byte) {
	t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(p.conn), nil)
	if err != nil {
		t.Fatalf("%s: no answer on a connection made before gatecache accepted: %v", p.path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: %v", p.path, err)
	}
	return resp.StatusCode, body
}

// activatedCmd is gatecache run with the given listening sockets as
// descriptors 3 and on, as systemd passes them. LISTEN_PID must be the
// pid of gatecache itself, known only once it runs: a shell sets it and
// execs gatecache in its own place.
func activatedCmd(names string, sockets []*os.File, env ...string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, binary)
	cmd.Env = append([]string{
		"LISTEN_ADDR=127.0.0.1:0", "SUMMARY_ADDR=127.0.0.1:0", "PATH=" + os.Getenv("PATH"),
		fmt.Sprintf("LISTEN_FDS=%d", len(sockets)), "LISTEN_FDNAMES=" + names,
	}, env...)
	cmd.ExtraFiles = sockets
	return cmd
}

func listenerFile(t *testing.T) (string, *os.File) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // f keeps the socket listening
	t.Cleanup(func() { f.Close() })
	return l.Addr().String(), f
}

// Without socket activation, a connection made while gatecache restarts is
// refused: the premise of the test below.
func TestRestartWithoutSocketActivationRefuses(t *testing.T) {
	n := startNode(t, "CACHE_ROOT="+t.TempDir())
	n.kill(syscall.SIGTERM)
	if _, err := net.Dial("tcp", n.addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connect while stopped: %v, want connection refused", err)
	}
}

// With the listening sockets held outside gatecache, as systemd holds a
// socket unit's, connections made before gatecache accepts, and while it
// restarts, wait in the accept queue and are all served: none is refused.
// The sockets are named as the shipped gatecache.socket names them (the
// unit's name for both), so content and summary are told apart by order.
func TestSocketActivationQueuesConnectionsAcrossARestart(t *testing.T) {
	o := origintest.New(t)
	o.Set("/pool/a.deb", origintest.Object{Size: 1<<20 + 3})
	contentAddr, contentSock := listenerFile(t)
	summaryAddr, summarySock := listenerFile(t)
	sockets := []*os.File{contentSock, summarySock}
	env := []string{"CACHE_ROOT=" + t.TempDir(), "CACHEABLE_CUSTOM_1_HOST=" + o.Addr, "STORAGE_1_SIZE=64MiB"}
	path := "/pool/a.deb?cacheHostOrigin=" + o.Addr

	for round := range 2 {
		// Connections made while no gatecache runs (before the first
		// start, and between the stop and the next start).
		var early []pendingRequest
		for range 20 {
			early = append(early, sendEarly(t, contentAddr, "gateway", path))
		}
		health := sendEarly(t, summaryAddr, "gateway", "/healthz")

		n := runNode(t, activatedCmd("gatecache.socket:gatecache.socket", sockets, env...))
		if n.addr != contentAddr || n.summary != summaryAddr {
			t.Fatalf("round %d: serving content on %s and summary on %s, want the passed sockets %s and %s",
				round, n.addr, n.summary, contentAddr, summaryAddr)
		}
		for i, p := range early {
			if code, body := p.answer(t); code != 200 || !bytes.Equal(body, o.Want("/pool/a.deb")) {
				t.Fatalf("round %d: early request %d: status %d, %d bytes", round, i, code, len(body))
			}
		}
		if code, _ := health.answer(t); code != 200 {
			t.Fatalf("round %d: summary /healthz on the passed socket: %d", round, code)
		}
		if !strings.Contains(n.stderr.String(), "listening on a socket passed by socket activation") {
			t.Fatalf("no log line for the passed sockets:\n%s", n.stderr)
		}
		n.kill(syscall.SIGTERM)
	}
	if st := o.Stats(); st.Requests < 1 {
		t.Fatalf("origin saw %d requests", st.Requests)
	}
}

// Under systemd-socket-activate (systemd's own tool for the protocol), which
// binds the sockets and starts gatecache only when the first connection
// arrives: that connection, made before gatecache exists, is served, and so
// is the summary on the second socket, matched by its name.
func TestUnderSystemdSocketActivate(t *testing.T) {
	tool := ""
	for _, p := range []string{"/usr/bin/systemd-socket-activate", "/lib/systemd/systemd-socket-activate"} {
		if _, err := os.Stat(p); err == nil {
			tool = p
			break
		}
	}
	if tool == "" {
		t.Skip("systemd-socket-activate not installed (/usr/bin or /lib/systemd): socket activation under systemd's tool not tested")
	}
	o := origintest.New(t)
	o.Set("/x.swu", origintest.Object{Size: 300000})
	ports := freePorts(t, 2)
	// Named in the reverse order of the listeners: names win over order.
	cmd := exec.Command(tool, "-l", ports[1], "-l", ports[0], "--fdname=summary:content",
		"-E", "CACHE_ROOT="+t.TempDir(), "-E", "CACHEABLE_CUSTOM_1_HOST="+o.Addr, "-E", "STORAGE_1_SIZE=64MiB",
		"-E", "LISTEN_ADDR=127.0.0.1:0", "-E", "SUMMARY_ADDR=127.0.0.1:0", binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	listening := regexp.MustCompile(`^Listening on `)
	var log []string
	for seen := 0; seen < 2; {
		line, ok := <-lines
		if !ok {
			t.Fatalf("systemd-socket-activate exited:\n%s", strings.Join(log, "\n"))
		}
		log = append(log, line)
		if listening.MatchString(line) {
			seen++
		}
	}

	// gatecache does not run yet: it starts on this connection.
	first := sendEarly(t, ports[0], "gateway", "/x.swu?cacheHostOrigin="+o.Addr)
	if code, body := first.answer(t); code != 200 || !bytes.Equal(body, o.Want("/x.swu")) {
		t.Fatalf("first request: status %d, %d bytes", code, len(body))
	}
	resp, err := http.Get("http://" + ports[1] + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("summary on the socket named summary: %v %v", resp, err)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gatecache after SIGTERM: %v", err)
	}
}

// freePorts returns loopback addresses with ports free just now.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out
}

func TestAssignSockets(t *testing.T) {
	cases := []struct {
		n     int
		names string
		want  []int
		err   string
	}{
		{1, "", []int{0}, ""},
		{2, "", []int{0, 1}, ""},
		{2, "gatecache.socket:gatecache.socket", []int{0, 1}, ""},
		{2, "summary:content", []int{1, 0}, ""},
		{2, "x:content", []int{1, 0}, ""},
		{1, "summary", []int{1}, ""},
		{2, "content:content", nil, `LISTEN_FDNAMES="content:content": two sockets named content`},
		{2, "content", nil, `LISTEN_FDNAMES="content": 1 names for 2 sockets`},
	}
	for _, c := range cases {
		got, err := assignSockets(c.n, c.names)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("assignSockets(%d, %q) error %v, want %q", c.n, c.names, err, c.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("assignSockets(%d, %q) = %v, %v; want %v", c.n, c.names, got, err, c.want)
		}
	}
}

// A passed descriptor that is not a listening socket, or too many of them,
// stops startup with exit status 2 naming LISTEN_FDS.
func TestBadSocketActivationIsAStartupError(t *testing.T) {
	file, err := os.Create(filepath.Join(t.TempDir(), "not-a-socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	_, sock := listenerFile(t)
	for _, c := range []struct {
		files []*os.File
		fds   string
		want  string
	}{
		{[]*os.File{file}, "1", `descriptor 3: `},
		{[]*os.File{sock, sock, sock}, "3", `want 1 or 2 sockets`},
	} {
		cmd := activatedCmd("", c.files, "CACHE_ROOT="+t.TempDir())
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+c.fds)
		// A gatecache that ignored the sockets would serve on: stop it.
		stop := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
		out, err := cmd.CombinedOutput()
		stop.Stop()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "LISTEN_FDS=") || !strings.Contains(string(out), c.want) {
			t.Errorf("LISTEN_FDS=%s: %v\n%s\nwant exit status 2 and %q", c.fds, err, out, c.want)
		}
	}
}
