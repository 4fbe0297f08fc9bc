package deploy

import (
	"debug/elf"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gatecache/internal/config"
)

// The Debian package's own files (deploy/deb); the units themselves are
// deploy/systemd's, copied unchanged.
const (
	debDefaults = "deb/default"                  // /etc/default/gatecache
	debDropIn   = "deb/gatecache.service.d.conf" // gatecache.service.d/debian.conf
	debBuild    = "deb/build.sh"
	debCache    = "/var/cache/gatecache"
	debUser     = "gatecache"
)

// debUnitEnv is the environment the installed unit gives gatecache before
// /etc/default/gatecache: the unit's Environment=, then the drop-in's.
func debUnitEnv(t *testing.T) map[string]string {
	t.Helper()
	env := parseUnit(t, unitFile).environment(t)
	maps.Copy(env, parseUnit(t, debDropIn).environment(t))
	return env
}

func withoutWarnings(c config.Config) config.Config {
	c.Warnings = nil
	return c
}

// TestDebDefaultsAreTheDefaults: /etc/default/gatecache shows every setting
// commented out at the value the service really uses, so uncommenting a
// line as it is changes nothing.
func TestDebDefaultsAreTheDefaults(t *testing.T) {
	ok := understood(t)
	base := debUnitEnv(t)
	if set := readEnvFile(t, debDefaults, false); len(set) > 0 {
		t.Errorf("%s sets %v: every line must be a commented default", debDefaults, set)
	}
	shown := readEnvFile(t, debDefaults, true)
	if len(shown) < 20 {
		t.Fatalf("%s: only %d settings shown", debDefaults, len(shown))
	}
	for _, name := range slices.Sorted(maps.Keys(shown)) {
		if !ok(name) {
			t.Errorf("%s: gatecache does not read %s", debDefaults, name)
			continue
		}
		// A custom host's flags need the host itself to be valid.
		ctx := maps.Clone(base)
		for k, v := range representative {
			if k != name {
				ctx[k] = v
			}
		}
		want, err := config.FromEnv(mapLookup(ctx))
		if err != nil {
			t.Fatal(err)
		}
		ctx[name] = shown[name]
		got, err := config.FromEnv(mapLookup(ctx))
		if err != nil {
			t.Errorf("%s: #%s=%s uncommented: %v", debDefaults, name, shown[name], err)
			continue
		}
		if !reflect.DeepEqual(withoutWarnings(got), withoutWarnings(want)) {
			t.Errorf("%s: #%s=%s is not the default:\n got %+v\nwant %+v", debDefaults, name, shown[name], got, want)
		}
	}
	for _, must := range []string{"LISTEN_ADDR", "SUMMARY_ADDR", "CACHE_ROOT", "STORAGE_1_SIZE_GB", "CACHEABLE_CUSTOM_1_HOST", "UPSTREAM_HOST", "IS_SUMMARY_ACCESS_UNRESTRICTED", "SUMMARY_API_KEY"} {
		if _, ok := shown[must]; !ok {
			t.Errorf("%s does not show %s", debDefaults, must)
		}
	}
}

// TestDebDropIn: what the package changes in the unit, and nothing that
// would undo its hardening.
func TestDebDropIn(t *testing.T) {
	d := parseUnit(t, debDropIn)
	for key, want := range map[string][]string{
		"ExecStart":       {"", "/usr/bin/gatecache"},
		"EnvironmentFile": {"", "-/etc/default/gatecache"},
		"DynamicUser":     {"no"},
		"User":            {debUser},
		"Group":           {debUser},
		"StateDirectory":  {""},
		"CacheDirectory":  {"gatecache"},
	} {
		if got := d["Service"][key]; !slices.Equal(got, want) {
			t.Errorf("%s: [Service] %s=%q, want %q", debDropIn, key, got, want)
		}
	}
	if env := debUnitEnv(t); env["CACHE_ROOT"] != debCache {
		t.Errorf("CACHE_ROOT=%q with the drop-in, want %s (CacheDirectory=gatecache)", env["CACHE_ROOT"], debCache)
	}
	u := parseUnit(t, unitFile)
	for key := range d["Service"] {
		switch key {
		case "ExecStart", "EnvironmentFile", "DynamicUser", "User", "Group", "StateDirectory",
			"CacheDirectory", "CacheDirectoryMode", "Environment", "RemoveIPC":
		default:
			if _, inUnit := u["Service"][key]; inUnit {
				t.Errorf("%s overrides %s of the unit: only what Debian needs may change", debDropIn, key)
			}
		}
	}
}

// debArch is the Debian architecture of a GOARCH.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "arm": "armhf"}

// elfMachine is the ELF machine each package's binary must be built for.
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "armhf": elf.EM_ARM}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// debPackages are the packages to inspect: GATECACHE_DEBS (CI builds one
// per architecture with deb/build.sh), else one built here for this
// machine's architecture.
func debPackages(t *testing.T) []string {
	t.Helper()
	if list := strings.Fields(os.Getenv("GATECACHE_DEBS")); len(list) > 0 {
		return list
	}
	for _, tool := range []string{"dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: the package cannot be built here (apt-get install dpkg)", tool)
		}
	}
	arch, ok := debArch[runtime.GOARCH]
	if !ok {
		t.Skipf("no Debian package is built for GOARCH=%s", runtime.GOARCH)
	}
	return []string{strings.TrimSpace(run(t, debBuild, arch, t.TempDir()))}
}

// debFiles is every path a package holds besides its directories.
var debFiles = map[string]string{ // path -> mode as dpkg-deb -c shows it
	"./usr/bin/gatecache":                                      "-rwxr-xr-x",
	"./usr/lib/systemd/system/gatecache.service":               "-rw-r--r--",
	"./usr/lib/systemd/system/gatecache.service.d/debian.conf": "-rw-r--r--",
	"./etc/default/gatecache":                                  "-rw-------",
	"./usr/share/doc/gatecache/README.md":                      "-rw-r--r--",
	"./usr/share/doc/gatecache/README.deploy.md":               "-rw-r--r--",
	"./usr/share/doc/gatecache/changelog.gz":                   "-rw-r--r--",
}

// socketUnit is the socket-activation unit, packaged when the tree has it.
const socketUnit = "systemd/gatecache.socket"

func TestDebPackageContents(t *testing.T) {
	version := strings.TrimSpace(run(t, "deb/version.sh"))
	want := maps.Clone(debFiles)
	if _, err := os.Stat(socketUnit); err == nil {
		want["./usr/lib/systemd/system/gatecache.socket"] = "-rw-r--r--"
	}
	for _, deb := range debPackages(t) {
		t.Run(filepath.Base(deb), func(t *testing.T) {
			checkDeb(t, deb, version, want)
		})
	}
}

func checkDeb(t *testing.T, deb, version string, want map[string]string) {
	fields := strings.Split(strings.TrimRight(run(t, "dpkg-deb", "-f", deb, "Package", "Version", "Architecture"), "\n"), "\n")
	got := map[string]string{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, ": ")
		got[k] = v
	}
	arch := got["Architecture"]
	if got["Package"] != "gatecache" || got["Version"] != version || elfMachine[arch] == 0 {
		t.Errorf("control fields %v, want gatecache %s for amd64, arm64 or armhf", got, version)
	}
	if base := filepath.Base(deb); base != "gatecache_"+version+"_"+arch+".deb" {
		t.Errorf("file name %s, want gatecache_%s_%s.deb", base, version, arch)
	}

	// Files, modes and owners.
	files := map[string]string{}
	for line := range strings.Lines(run(t, "dpkg-deb", "-c", deb)) {
		f := strings.Fields(line) // mode owner size date time path
		if len(f) < 6 {
			t.Fatalf("dpkg-deb -c line %q", line)
		}
		if f[1] != "root/root" {
			t.Errorf("%s owned by %s, want root/root", f[5], f[1])
		}
		if !strings.HasPrefix(f[0], "d") {
			files[f[5]] = f[0]
		}
	}
	if !maps.Equal(files, want) {
		t.Errorf("files\n%v\nwant\n%v", files, want)
	}

	dir := t.TempDir()
	run(t, "dpkg-deb", "-x", deb, dir)
	run(t, "dpkg-deb", "-e", deb, filepath.Join(dir, "DEBIAN"))
	if b, _ := os.ReadFile(filepath.Join(dir, "DEBIAN/conffiles")); string(b) != "/etc/default/gatecache\n" {
		t.Errorf("conffiles %q, want /etc/default/gatecache", b)
	}
	for _, script := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(dir, "DEBIAN", script)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("no %s: %v", script, err)
			continue
		}
		run(t, "sh", "-n", p)
		if strings.Contains(string(b), "@") {
			t.Errorf("%s has an unsubstituted @...@ placeholder", script)
		}
	}
	run(t, "sh", "-c", `cd "$1" && md5sum --quiet -c DEBIAN/md5sums`, "sh", dir)

	// The units are deploy/systemd's, byte for byte.
	for _, u := range []string{unitFile, socketUnit} {
		src, err := os.ReadFile(u)
		if err != nil {
			continue
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "usr/lib/systemd/system", filepath.Base(u))); string(b) != string(src) {
			t.Errorf("packaged %s differs from deploy/%s", filepath.Base(u), u)
		}
	}

	// The binary is static and for the package's architecture.
	f, err := elf.Open(filepath.Join(dir, "usr/bin/gatecache"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elfMachine[arch] {
		t.Errorf("binary for %s, package for %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("binary has %s: not static (build with CGO_ENABLED=0)", p.Type)
		}
	}
}
