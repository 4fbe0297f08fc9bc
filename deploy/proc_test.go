package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaryDir holds the gatecache binary built for these tests.
var binaryDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryDir != "" {
		os.RemoveAll(binaryDir)
	}
	os.Exit(code)
}

var buildOnce struct {
	sync.Once
	path string
	err  error
	out  []byte
}

// gatecacheBinary builds ./cmd/gatecache once for the tests of this package.
func gatecacheBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binaryDir, buildOnce.err = os.MkdirTemp("", "gatecache-deploy-test")
		if buildOnce.err != nil {
			return
		}
		buildOnce.path = filepath.Join(binaryDir, "gatecache")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, "../cmd/gatecache")
		buildOnce.out, buildOnce.err = cmd.CombinedOutput()
	})
	if buildOnce.err != nil {
		t.Fatalf("go build ./cmd/gatecache: %v\n%s", buildOnce.err, buildOnce.out)
	}
	return buildOnce.path
}

// servingLine is the log line gatecache writes once both listeners are open.
var servingLine = regexp.MustCompile(`msg="gatecache serving" content=(\S+) summary=(\S+)`)

// proc is a running gatecache started by a test.
type proc struct {
	cmd              *exec.Cmd
	content, summary string // the addresses it reported serving on
	exited           chan struct{}
	mu               sync.Mutex
	log              bytes.Buffer
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startGatecache runs argv with exactly env and waits for its serving line.
// The process is killed at the end of the test if still running.
func startGatecache(t *testing.T, argv, env []string) *proc {
	t.Helper()
	p, err := tryStart(t, argv, env)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// tryStart is startGatecache returning the failure to start as an error.
func tryStart(t *testing.T, argv, env []string) (*proc, error) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m:
				default:
				}
			}
		}
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	select {
	case m := <-found:
		p.content, p.summary = m[1], m[2]
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited at start:\n%s", argv[0], p.stderr())
	case <-time.After(30 * time.Second):
		p.stop(syscall.SIGKILL)
		return nil, fmt.Errorf("%s did not start within 30 s:\n%s", argv[0], p.stderr())
	}
}

// stop sends sig and waits for the process to end; it reports whether the
// process ended by itself before a SIGKILL was needed.
func (p *proc) stop(sig syscall.Signal) bool {
	select {
	case <-p.exited:
		return true
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return true
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		return false
	}
}
