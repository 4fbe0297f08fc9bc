package main

// Helpers of the apt end-to-end test (apt_test.go): a throwaway signed
// Debian repository, the local HTTP origin that serves it, and apt-get with
// a private configuration.

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// aptTools are the programs the apt test runs, with the Debian package
// that brings each one.
var aptTools = []struct{ prog, pkg string }{
	{"apt-get", "apt"},
	{"apt-cache", "apt"},
	{"gpgv", "gpgv"}, // apt verifies InRelease with it
	{"dpkg-deb", "dpkg"},
	{"apt-ftparchive", "apt-utils"},
	{"gpg", "gnupg"},
}

// aptRequireTools skips the test when a tool is missing (CI installs them).
func aptRequireTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range aptTools {
		if _, err := exec.LookPath(tool.prog); err != nil {
			missing = append(missing, tool.prog+" (package "+tool.pkg+")")
		}
	}
	if len(missing) > 0 {
		t.Skipf("apt end-to-end test needs %s", strings.Join(missing, ", "))
	}
}

// aptCmd runs a command in dir with a bounded time and returns its
// combined output, failing the test if it fails.
func aptCmd(t *testing.T, dir string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.Bytes())
	}
	return out.Bytes()
}

// aptKey is a throwaway signing key.
type aptKey struct {
	home    string // GnuPG home
	keyring string // the public key, for signed-by=
}

// aptNewKey makes an ed25519 signing key without passphrase in a fresh
// GnuPG home and exports its public half to a keyring file.
func aptNewKey(t *testing.T) *aptKey {
	t.Helper()
	// Short path: gpg-agent's socket lives in the home, and socket paths
	// are limited to about 100 bytes; t.TempDir() names can be longer.
	home, err := os.MkdirTemp("", "aptgpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	k := &aptKey{home: home, keyring: filepath.Join(t.TempDir(), "gatecache-test.gpg")}
	aptCmd(t, home, "gpg", "--batch", "--homedir", home, "--passphrase", "", "--quick-gen-key", "gatecache test", "ed25519", "sign", "never")
	aptCmd(t, home, "gpg", "--batch", "--homedir", home, "--output", k.keyring, "--export")
	return k
}

// aptRepo is a signed repository with one suite, stable, one component,
// main, and one architecture, amd64.
type aptRepo struct {
	dir  string
	key  *aptKey
	debs map[string][]byte // version → the .deb's bytes
	last time.Time         // when the indexes were last written
}

func aptNewRepo(t *testing.T, key *aptKey) *aptRepo {
	return &aptRepo{dir: t.TempDir(), key: key, debs: map[string][]byte{}}
}

// aptBuildDeb builds hello_<version>_amd64.deb and returns its bytes.
func aptBuildDeb(t *testing.T, version string) []byte {
	t.Helper()
	work := t.TempDir()
	root := filepath.Join(work, "hello")
	control := "Package: hello\nVersion: " + version + "\nArchitecture: amd64\n" +
		"Maintainer: gatecache test <test@example.invalid>\nSection: misc\nPriority: optional\n" +
		"Description: gatecache end-to-end test package\n a file to download through the cache\n"
	aptWrite(t, filepath.Join(root, "DEBIAN", "control"), []byte(control))
	aptWrite(t, filepath.Join(root, "usr", "share", "hello", "version"), []byte("hello "+version+"\n"))
	deb := filepath.Join(work, "hello.deb")
	aptCmd(t, work, "dpkg-deb", "--root-owner-group", "--build", root, deb)
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// publish adds hello <version> to the pool and rewrites Packages,
// Packages.gz, Release and InRelease, signed.
func (r *aptRepo) publish(t *testing.T, version string) {
	t.Helper()
	// http.FileServer's Last-Modified has a resolution of one second: an
	// index rewritten within the second of the previous one would look
	// unmodified to an If-Modified-Since revalidation.
	if wait := time.Until(r.last.Truncate(time.Second).Add(time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	deb := aptBuildDeb(t, version)
	r.debs[version] = deb
	aptWrite(t, filepath.Join(r.dir, "pool", "main", "h", "hello", "hello_"+version+"_amd64.deb"), deb)

	suite := filepath.Join(r.dir, "dists", "stable")
	packages := aptCmd(t, r.dir, "apt-ftparchive", "packages", "pool/main")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(packages)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	aptWrite(t, filepath.Join(suite, "main", "binary-amd64", "Packages"), packages)
	aptWrite(t, filepath.Join(suite, "main", "binary-amd64", "Packages.gz"), gz.Bytes())

	// apt-ftparchive release hashes every Release it finds below the suite,
	// its own old one included: remove the old ones first.
	for _, name := range []string{"Release", "InRelease"} {
		os.Remove(filepath.Join(suite, name))
	}
	release := aptCmd(t, r.dir, "apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin=gatecache-test",
		"-o", "APT::FTPArchive::Release::Label=gatecache-test",
		"-o", "APT::FTPArchive::Release::Suite=stable",
		"-o", "APT::FTPArchive::Release::Codename=stable",
		"-o", "APT::FTPArchive::Release::Architectures=amd64",
		"-o", "APT::FTPArchive::Release::Components=main",
		"release", "dists/stable")
	aptWrite(t, filepath.Join(suite, "Release"), release)
	aptCmd(t, suite, "gpg", "--batch", "--homedir", r.key.home, "--passphrase", "", "--yes",
		"--output", "InRelease", "--clearsign", "Release")
	r.last = time.Now()
}

func aptWrite(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// aptOrigin serves a repository directory over HTTP on loopback, as most
// mirrors do: Last-Modified, no Cache-Control, no ETag.
type aptOrigin struct {
	addr string
	srv  *http.Server
	done chan struct{}
}

func aptServe(t *testing.T, dir string) *aptOrigin {
	return aptServeHandler(t, http.FileServer(http.Dir(dir)))
}

// aptServeHandler serves h as the origin, on a loopback port of its own.
func aptServeHandler(t *testing.T, h http.Handler) *aptOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := &aptOrigin{addr: ln.Addr().String(), srv: &http.Server{Handler: h}, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("origin: %v", err)
		}
	}()
	t.Cleanup(o.stop)
	return o
}

// stop closes the listener and every connection: the uplink is down, and
// connecting to the origin is refused from now on.
func (o *aptOrigin) stop() {
	o.srv.Close()
	<-o.done
}

// aptClient is apt with a private root: its own sources.list, lists,
// archives and empty dpkg status; nothing of the system's apt state or
// configuration is read or written.
type aptClient struct {
	root   string
	config string // the APT_CONFIG file
	node   *node  // whose log to show when apt fails
}

// aptNewClient makes the private root. sourcesLine is the sources.list
// line; proxy, when not empty, is Acquire::http::Proxy.
func aptNewClient(t *testing.T, n *node, sourcesLine, proxy string) *aptClient {
	t.Helper()
	root := t.TempDir()
	c := &aptClient{root: root, config: filepath.Join(root, "apt.conf"), node: n}
	for _, d := range []string{
		"etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d", "etc/apt/trusted.gpg.d",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt",
	} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	aptWrite(t, filepath.Join(root, "var/lib/dpkg/status"), nil)
	aptWrite(t, filepath.Join(root, "etc/apt/sources.list"), []byte(sourcesLine+"\n"))
	// APT_CONFIG is read before anything else, so Dir set here also moves
	// the configuration parts (/etc/apt/apt.conf.d of the system, with its
	// hooks, is never read).
	conf := []string{
		`Dir "` + root + `/";`,
		`Dir::Etc "etc/apt/";`,
		`Dir::State "var/lib/apt/";`,
		`Dir::State::status "` + root + `/var/lib/dpkg/status";`,
		`Dir::Cache "var/cache/apt/";`,
		`Dir::Log "var/log/apt/";`,
		`Debug::NoLocking "true";`,
		`APT::Architecture "amd64";`,
		`APT::Architectures { "amd64"; };`,
		`APT::Sandbox::User "root";`, // no privilege drop to _apt when run as root
		`APT::Get::Assume-Yes "true";`,
		`Acquire::Languages "none";`,
		`Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled "false";`,
		`Acquire::Retries "0";`, // a failure shows at once, as Err:
		`Acquire::http::Timeout "20";`,
		`Binary::apt-get::APT::Color "false";`,
	}
	if proxy != "" {
		conf = append(conf, `Acquire::http::Proxy "`+proxy+`";`)
	} else {
		conf = append(conf, `Acquire::http::Proxy "DIRECT";`)
	}
	aptWrite(t, c.config, []byte(strings.Join(conf, "\n")+"\n"))
	return c
}

// run runs apt-get or apt-cache and fails the test, showing apt's output
// and the gatecache log, unless it exits 0 and prints no Err:, W: or E:
// line (apt exits 0 even when it could not fetch an index).
func (c *aptClient) run(t *testing.T, step, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "APT_CONFIG=" + c.config}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("%s: %s %s:\n%s", step, prog, strings.Join(args, " "), out.String())
	var bad []string
	for _, line := range strings.Split(out.String(), "\n") {
		for _, p := range []string{"Err:", "W:", "E:"} {
			if strings.HasPrefix(line, p) {
				bad = append(bad, line)
			}
		}
	}
	if err != nil || len(bad) > 0 {
		t.Fatalf("%s: %s %s: exit %v, %d Err/W/E lines\n--- apt output:\n%s--- gatecache log:\n%s",
			step, prog, strings.Join(args, " "), err, len(bad), out.String(), c.node.stderr)
	}
	return out.String()
}

// archives is the directory where apt-get install --download-only puts
// the packages.
func (c *aptClient) archives() string { return filepath.Join(c.root, "var/cache/apt/archives") }

// wantDeb fails unless the archives hold exactly want, byte for byte.
func (c *aptClient) wantDeb(t *testing.T, step, version string, want []byte) {
	t.Helper()
	name := filepath.Join(c.archives(), "hello_"+version+"_amd64.deb")
	got, err := os.ReadFile(name)
	if err != nil {
		entries, _ := os.ReadDir(c.archives())
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("%s: %v; archives hold %v\n--- gatecache log:\n%s", step, err, names, c.node.stderr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s differs from the published package (%d bytes, want %d)", step, name, len(got), len(want))
	}
}

// removeDebs empties the archives, so that the next install downloads.
func (c *aptClient) removeDebs(t *testing.T) {
	t.Helper()
	debs, _ := filepath.Glob(filepath.Join(c.archives(), "*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
}

// candidate is the candidate version of hello that apt-cache policy shows.
func (c *aptClient) candidate(t *testing.T, step string) string {
	t.Helper()
	out := c.run(t, step, "apt-cache", "policy", "hello")
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Candidate:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s: no candidate in apt-cache policy:\n%s", step, out)
	return ""
}
