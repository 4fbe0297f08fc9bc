package warm

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGateway stands in for a gateway: it serves absolute-form GETs of the
// URLs in bodies, 404 for any other, and records every request line.
type fakeGateway struct {
	addr   string
	bodies map[string][]byte // absolute http URL -> body

	mu   sync.Mutex
	seen []string // "METHOD request-target"
}

func newFakeGateway(t *testing.T, bodies map[string][]byte) *fakeGateway {
	t.Helper()
	p := &fakeGateway{bodies: bodies}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.addr = srv.Listener.Addr().String()
	return p
}

func (p *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.RequestURI)
	p.mu.Unlock()
	if !strings.HasPrefix(r.RequestURI, "http://") {
		http.Error(w, "not an absolute-form http request", http.StatusBadRequest)
		return
	}
	body, ok := p.bodies[r.RequestURI]
	if !ok {
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	switch {
	case strings.HasSuffix(r.URL.Path, "/slow.bin"):
		// Half now, half later: progress lines show a file in flight.
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		time.Sleep(200 * time.Millisecond)
		w.Write(body[len(body)/2:])
	case strings.HasSuffix(r.URL.Path, "/cut.bin"):
		w.Write(body[:10])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the body ends short of Content-Length
	default:
		w.Write(body)
	}
}

func (p *fakeGateway) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(slices.Values(p.seen))
}

// call runs warm and returns its exit status and output.
func call(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func wantContains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, out)
		}
	}
}

func TestWarmAllOK(t *testing.T) {
	p := newFakeGateway(t, map[string][]byte{
		"http://origin.example/fw/a.bin":     bytes.Repeat([]byte("a"), 300_000),
		"http://repo.example/pool/b.deb":     bytes.Repeat([]byte("b"), 1234),
		"http://repo.example:8443/c.deb?v=1": []byte("c"),
	})
	code, stdout, stderr := call(t, "--cache", p.addr, "--parallel", "2",
		"http://origin.example/fw/a.bin",
		"https://repo.example/pool/b.deb#fragment",
		"https://repo.example:8443/c.deb?v=1")
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^warm: 3 files, 3 ok, 0 failed, 301\.2 kB in \d+\.\ds$`).MatchString(stdout) {
		t.Errorf("summary:\n%s", stdout)
	}
	// https:// URLs go to the gateway as http:// with the same host and
	// port, in absolute form; never CONNECT.
	want := []string{
		"GET http://origin.example/fw/a.bin",
		"GET http://repo.example/pool/b.deb",
		"GET http://repo.example:8443/c.deb?v=1",
	}
	if got := p.requests(); !slices.Equal(got, want) {
		t.Errorf("gateway saw %q, want %q", got, want)
	}
}

func TestWarmFailuresAreReported(t *testing.T) {
	p := newFakeGateway(t, map[string][]byte{
		"http://origin.example/ok.bin":  []byte("fine"),
		"http://origin.example/cut.bin": bytes.Repeat([]byte("x"), 1000),
	})
	code, stdout, _ := call(t, "--cache", p.addr,
		"http://origin.example/ok.bin", "http://origin.example/missing.bin", "http://origin.example/cut.bin")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantContains(t, "stdout", stdout,
		"warm: FAILED http://origin.example/missing.bin: 404 Not Found: no such file\n",
		"warm: FAILED http://origin.example/cut.bin: 200 OK, body cut short after 10 bytes",
		"warm: 3 files, 1 ok, 2 failed, 14 B in ")
	if strings.Contains(stdout, "FAILED http://origin.example/ok.bin") {
		t.Errorf("a good file is reported as failed:\n%s", stdout)
	}
}

func TestWarmGatewayDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	code, stdout, _ := call(t, "--cache", addr, "http://origin.example/a.bin")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantContains(t, "stdout", stdout, "cannot reach the gateway at "+addr, "warm: 1 files, 0 ok, 1 failed, 0 B in ")
}

func TestWarmFromFile(t *testing.T) {
	p := newFakeGateway(t, map[string][]byte{
		"http://origin.example/1": []byte("one"),
		"http://origin.example/2": []byte("two"),
		"http://origin.example/3": []byte("three"),
	})
	list := filepath.Join(t.TempDir(), "urls.txt")
	content := "# firmware for the line 3 rollout\n" +
		"\n" +
		"http://origin.example/1\n" +
		"   # indented comment\n" +
		"  http://origin.example/2   # trailing comment\n" +
		"http://origin.example/1\n" + // a duplicate is fetched once
		"\t\n"
	if err := os.WriteFile(list, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := call(t, "--from", list, "http://origin.example/3", "--cache", p.addr)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	wantContains(t, "stdout", stdout, "warm: 3 files, 3 ok, 0 failed, 11 B in ")
	want := []string{"GET http://origin.example/1", "GET http://origin.example/2", "GET http://origin.example/3"}
	if got := p.requests(); !slices.Equal(got, want) {
		t.Errorf("gateway saw %q, want %q", got, want)
	}
}

func TestWarmUsageErrors(t *testing.T) {
	p := newFakeGateway(t, nil)
	dir := t.TempDir()
	twoPerLine := filepath.Join(dir, "two.txt")
	if err := os.WriteFile(twoPerLine, []byte("http://a.example/1 http://a.example/2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	onlyComments := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(onlyComments, []byte("# nothing yet\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no URLs"},
		{[]string{"--cache", p.addr}, "no URLs"},
		{[]string{"--from", onlyComments}, "no URLs"},
		{[]string{"ftp://a.example/x"}, "absolute http:// or https:// URL"},
		{[]string{"a.example/x"}, "absolute http:// or https:// URL"},
		{[]string{"http://user:pw@a.example/x"}, "without user:password@"},
		{[]string{"--parallel", "0", "http://a.example/x"}, "--parallel 0"},
		{[]string{"--parallel", "many", "http://a.example/x"}, "invalid value"},
		{[]string{"--cache", "gateway", "http://a.example/x"}, "want HOST:PORT"},
		{[]string{"--from", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{[]string{"--from", twoPerLine}, "two.txt:1: want one URL per line"},
		{[]string{"--bogus", "http://a.example/x"}, "flag provided but not defined"},
	} {
		code, stdout, stderr := call(t, tc.args...)
		if code != 2 {
			t.Errorf("warm %q: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, "usage: gatecache warm") {
			t.Errorf("warm %q: stderr does not name %q and the usage:\n%s", tc.args, tc.want, stderr)
		}
		if stdout != "" {
			t.Errorf("warm %q: stdout %q, want nothing", tc.args, stdout)
		}
	}
	if got := p.requests(); len(got) != 0 {
		t.Errorf("usage errors reached the gateway: %q", got)
	}
	if code, _, stderr := call(t, "--help"); code != 0 || !strings.Contains(stderr, "--from FILE") {
		t.Errorf("--help: exit %d, stderr:\n%s", code, stderr)
	}
}

func TestWarmProgressLines(t *testing.T) {
	p := newFakeGateway(t, map[string][]byte{"http://origin.example/slow.bin": bytes.Repeat([]byte("s"), 2_000_000)})
	var stdout, stderr bytes.Buffer
	code := run([]string{"--cache", p.addr, "http://origin.example/slow.bin"}, &stdout, &stderr, 20*time.Millisecond)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	// While the second half is held back, a million bytes have arrived
	// and the ETA is known from Content-Length.
	line := regexp.MustCompile(`(?m)^warm: 0/1 files, 1\.0 MB, [0-9.]+ [kMG]?B/s, ETA \S+$`)
	if !line.MatchString(stderr.String()) {
		t.Errorf("no progress line for a file in flight:\n%s", stderr.String())
	}
	wantContains(t, "stdout", stdout.String(), "warm: 1 files, 1 ok, 0 failed, 2.0 MB in ")
}

func TestWarmCacheFromListenAddr(t *testing.T) {
	for listen, want := range map[string]string{
		"":                "127.0.0.1:8081",
		":8081":           "127.0.0.1:8081",
		"0.0.0.0:80":      "127.0.0.1:80",
		"[::]:9000":       "[::1]:9000",
		"10.1.2.3:8081":   "10.1.2.3:8081",
		"gateway.lan:123": "gateway.lan:123",
	} {
		if got := defaultCache(listen); got != want {
			t.Errorf("defaultCache(%q) = %q, want %q", listen, got, want)
		}
	}
	p := newFakeGateway(t, map[string][]byte{"http://origin.example/x": []byte("x")})
	_, port, _ := strings.Cut(p.addr, ":")
	t.Setenv("LISTEN_ADDR", ":"+port)
	if code, stdout, stderr := call(t, "http://origin.example/x"); code != 0 {
		t.Errorf("without --cache, LISTEN_ADDR=:%s: exit %d\n%s%s", port, code, stdout, stderr)
	}
}

func TestWarmBytesFormat(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 120_500_000: "120.5 MB",
		999_960: "1.0 MB", 1_200_000_000: "1.2 GB", 3 << 40: "3.3 TB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
