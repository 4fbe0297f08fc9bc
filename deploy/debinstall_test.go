package deploy

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gatecache/internal/origintest"
)

// installedUnits are where the package puts the units.
const (
	installedUnitDir = "/usr/lib/systemd/system"
	installedDefault = "/etc/default/gatecache"
	wantsLink        = "/etc/systemd/system/multi-user.target.wants/gatecache.service"
)

// TestDebInstall installs the package given in GATECACHE_DEB_INSTALL on this
// machine (as root; deploy/deb/ci.sh does it in CI), checks what it set up,
// serves a request through the installed binary with the installed
// defaults, upgrades it in place, and purges it. The maintainer scripts run
// as they do in a container: without a running systemd.
func TestDebInstall(t *testing.T) {
	deb := os.Getenv("GATECACHE_DEB_INSTALL")
	if deb == "" {
		t.Skip("GATECACHE_DEB_INSTALL is not set: it names a package to install on this machine (deploy/deb/ci.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("installing a package needs root")
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "gatecache").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("gatecache is already installed here (%s): this test would replace it; purge it first", out)
	}
	run(t, "dpkg", "-i", deb)
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "gatecache").Run() })

	checkInstalled(t)
	serveInstalled(t)

	// An upgrade in place (the same version again: postinst configure with
	// the old version) keeps the user, the cache and its contents.
	marker := filepath.Join(debCache, "cache1", "upgrade-marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "dpkg", "-i", deb)
	checkInstalled(t)
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("an upgrade lost the cache: %v", err)
	}

	// Remove keeps the conffile and the cache; purge removes both and
	// every trace of the units' enablement.
	files := strings.Fields(run(t, "dpkg-query", "-L", "gatecache"))
	run(t, "dpkg", "--remove", "gatecache")
	for _, keep := range []string{installedDefault, debCache} {
		if _, err := os.Stat(keep); err != nil {
			t.Errorf("after dpkg --remove: %v, want it kept until purge", err)
		}
	}
	run(t, "dpkg", "--purge", "gatecache")
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "gatecache").Output(); strings.Contains(string(out), "installed") {
		t.Errorf("after purge dpkg says %q", out)
	}
	for _, f := range append(files, debCache, wantsLink, "/var/lib/systemd/deb-systemd-helper-enabled/gatecache.service.dsh-also") {
		if info, err := os.Lstat(f); err == nil && !(info.IsDir() && shared(f)) {
			t.Errorf("after purge %s is still there", f)
		}
	}
	if _, err := user.Lookup(debUser); err != nil {
		t.Errorf("the system user is gone after purge (%v); Debian packages keep it", err)
	}
}

// shared reports whether a directory of the package is one other packages
// use too (dpkg leaves those).
func shared(dir string) bool {
	for _, own := range []string{"/usr/share/doc/gatecache", installedUnitDir + "/gatecache.service.d"} {
		if dir == own {
			return false
		}
	}
	return true
}

func checkInstalled(t *testing.T) {
	t.Helper()
	u, err := user.Lookup(debUser)
	if err != nil {
		t.Fatalf("no %s user: %v", debUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	if uid == 0 || uid >= 1000 {
		t.Errorf("%s has uid %d, want a system uid (1..999)", debUser, uid)
	}
	pw := run(t, "getent", "passwd", debUser)
	if !strings.HasSuffix(strings.TrimSpace(pw), ":/usr/sbin/nologin") {
		t.Errorf("passwd entry %q: want the shell /usr/sbin/nologin", pw)
	}
	info, err := os.Stat(debCache)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if strconv.Itoa(int(st.Uid)) != u.Uid || strconv.Itoa(int(st.Gid)) != u.Gid || info.Mode().Perm() != 0o750 {
		t.Errorf("%s: %v uid %d gid %d, want drwxr-x--- %s:%s", debCache, info.Mode(), st.Uid, st.Gid, u.Uid, u.Gid)
	}
	if info, err := os.Stat(installedDefault); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, want mode 0600", installedDefault, err)
	}
	if cf := run(t, "dpkg-query", "-W", "-f=${Conffiles}", "gatecache"); !strings.Contains(cf, installedDefault+" ") {
		t.Errorf("conffiles %q, want %s", cf, installedDefault)
	}
	// Enabled without a running systemd: deb-systemd-helper made the link.
	if target, err := os.Readlink(wantsLink); err != nil || !strings.HasSuffix(target, "/gatecache.service") {
		t.Errorf("gatecache.service not enabled: %s -> %q, %v", wantsLink, target, err)
	}
	units := []string{filepath.Join(installedUnitDir, "gatecache.service")}
	if _, err := os.Stat(filepath.Join(installedUnitDir, "gatecache.socket")); err == nil {
		units = append(units, filepath.Join(installedUnitDir, "gatecache.socket"))
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Errorf("systemd-analyze not found (apt-get install systemd): the units cannot be verified")
		return
	}
	// verify loads the drop-in too, and checks that ExecStart exists.
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, units...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
	}
}

// installedEnv is the environment systemd would give the service: the
// installed unit's and drop-in's Environment=, then /etc/default/gatecache.
func installedEnv(t *testing.T) map[string]string {
	t.Helper()
	env := parseUnit(t, filepath.Join(installedUnitDir, "gatecache.service")).environment(t)
	dropins, _ := filepath.Glob(filepath.Join(installedUnitDir, "gatecache.service.d", "*.conf"))
	slices.Sort(dropins)
	for _, d := range dropins {
		maps.Copy(env, parseUnit(t, d).environment(t))
	}
	maps.Copy(env, readEnvFile(t, installedDefault, false))
	return env
}

// serveInstalled runs /usr/bin/gatecache as the gatecache user with the
// installed defaults, only its listeners moved to 127.0.0.1 (same ports) and
// a local origin allowed, and serves one object through it twice.
func serveInstalled(t *testing.T) {
	t.Helper()
	origin := origintest.New(t)
	origin.Set("/pool/main/g/gatecache.deb", origintest.Object{Size: 2<<20 + 5})
	env := installedEnv(t)
	if env["CACHE_ROOT"] != debCache {
		t.Errorf("installed CACHE_ROOT=%q, want %s", env["CACHE_ROOT"], debCache)
	}
	needCap := false
	for _, l := range []struct{ name, def string }{{"LISTEN_ADDR", ":8081"}, {"SUMMARY_ADDR", ":5001"}} {
		addr := env[l.name]
		if addr == "" {
			addr = l.def // gatecache's own default
		}
		port := portOf(t, addr)
		if n, _ := strconv.Atoi(port); n < 1024 {
			needCap = true
		}
		env[l.name] = net.JoinHostPort("127.0.0.1", port)
		ln, err := net.Listen("tcp", env[l.name])
		if err != nil {
			t.Fatalf("%s (the installed %s) is taken on this machine: %v", env[l.name], l.name, err)
		}
		ln.Close()
	}
	env["CACHEABLE_CUSTOM_1_HOST"] = origin.Addr
	var environ []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		environ = append(environ, k+"="+env[k])
	}
	// As the unit runs it: the service's user, CAP_NET_BIND_SERVICE only
	// (AmbientCapabilities=) when a port is below 1024.
	argv := []string{"setpriv", "--reuid=" + debUser, "--regid=" + debUser, "--init-groups", "--no-new-privs"}
	if needCap {
		argv = append(argv, "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service")
	}
	argv = append(argv, "/usr/bin/gatecache")
	p := startGatecache(t, argv, environ)
	checkContent(t, env["LISTEN_ADDR"], "/pool/main/g/gatecache.deb", origin.Addr, origin.Want("/pool/main/g/gatecache.deb"))
	checkSummary(t, env["SUMMARY_ADDR"], "") // loopback: no key needed
	if !p.stop(syscall.SIGTERM) {
		t.Errorf("gatecache did not stop on SIGTERM:\n%s", p.stderr())
	}
	// The cache was written as the service's user.
	var owned int
	filepath.Walk(filepath.Join(debCache, "cache1"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if u, _ := user.LookupId(fmt.Sprint(info.Sys().(*syscall.Stat_t).Uid)); u == nil || u.Username != debUser {
				t.Errorf("%s not owned by %s", path, debUser)
			}
			owned++
		}
		return nil
	})
	if owned == 0 {
		t.Errorf("nothing was written under %s/cache1", debCache)
	}
}
