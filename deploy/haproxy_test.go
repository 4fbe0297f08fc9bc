package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	haproxyRender  = "haproxy/render.sh"
	haproxyExample = "haproxy/gatecache.cfg"
)

// exampleNodes are the nodes the shipped example is rendered for
// (documentation addresses, RFC 5737).
var exampleNodes = []string{"192.0.2.11:8081", "192.0.2.12:8081", "192.0.2.13:8081"}

func render(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{haproxyRender}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

// The shipped example is what render.sh prints for three nodes, so the two
// never drift apart, and HAProxy accepts it.
func TestHAProxyExampleIsRendered(t *testing.T) {
	want, _, code := render(t, exampleNodes...)
	if code != 0 {
		t.Fatalf("render.sh %v: exit %d", exampleNodes, code)
	}
	got, err := os.ReadFile(haproxyExample)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s is not the output of render.sh %s: regenerate it", haproxyExample, strings.Join(exampleNodes, " "))
	}
	for _, n := range exampleNodes {
		if !strings.Contains(want, "server "+n+" "+n+" id ") || !strings.Contains(want, "check port 5001") {
			t.Errorf("no server line for %s checked on its summary port 5001", n)
		}
	}
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy not installed (apt-get install haproxy): configuration not checked by HAProxy")
	}
	if out, err := exec.Command("haproxy", "-c", "-f", haproxyExample).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c -f %s: %v\n%s", haproxyExample, err, out)
	}
}

// A node's id on the hash ring comes from its address alone: listing the
// nodes in another order, or dropping one, leaves every other node's place
// (and so its objects) where it was.
func TestHAProxyServerIDsFollowTheAddress(t *testing.T) {
	ids := func(args ...string) map[string]string {
		out, stderr, code := render(t, args...)
		if code != 0 {
			t.Fatalf("render.sh %v: exit %d: %s", args, code, stderr)
		}
		m := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 5 && f[0] == "server" && f[3] == "id" {
				m[f[2]] = f[4]
			}
		}
		return m
	}
	all := ids("a:8081", "b:8081:5002", "c:8081", "[2001:db8::1]:8081")
	if len(all) != 4 {
		t.Fatalf("server ids: %v", all)
	}
	other := ids("[2001:db8::1]:8081", "c:8081", "a:8081")
	for addr, id := range other {
		if all[addr] != id {
			t.Errorf("%s: id %s in one list, %s in another", addr, all[addr], id)
		}
	}
}

// A malformed node stops render.sh with one line naming it, and nothing
// on standard output that could be taken for a configuration.
func TestHAProxyRenderRefusesBadNodes(t *testing.T) {
	for _, node := range []string{"gw-a", "gw-a:", ":8081", "gw-a:0", "gw-a:65536", "gw-a:8081:5001:1", "gw a:8081", "[::1:8081", "[xyz]:8081", "gw-a:80x"} {
		out, stderr, code := render(t, "gw-b:8081", node)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code != 2 || out != "" || len(lines) != 1 || !strings.Contains(lines[0], node) {
			t.Errorf("render.sh %q: exit %d, stdout %q, stderr %q; want exit 2 and one line naming it", node, code, out, stderr)
		}
	}
	if _, _, code := render(t); code != 2 {
		t.Errorf("render.sh without nodes: exit %d, want 2", code)
	}
	if _, stderr, code := render(t, "gw-a:8081", "gw-a:8081:5002"); code != 2 || !strings.Contains(stderr, "gw-a:8081") {
		t.Errorf("a node listed twice: exit %d, %q", code, stderr)
	}
}

// render.sh is POSIX sh: it parses under sh -n (and passes shellcheck
// where it is installed).
func TestHAProxyRenderIsPlainSh(t *testing.T) {
	if out, err := exec.Command("sh", "-n", haproxyRender).CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v\n%s", err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		if out, err := exec.Command(sc, "-s", "sh", haproxyRender).CombinedOutput(); err != nil {
			t.Fatalf("shellcheck: %v\n%s", err, out)
		}
	}
	if fi, err := os.Stat(filepath.Clean(haproxyRender)); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable: %v", haproxyRender, err)
	}
}
