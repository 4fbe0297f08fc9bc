package deploy

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const (
	containerfile = "Containerfile"
	// imageSummaryPort is the container port of the summary: the one
	// Microsoft's createOptions publish (SUMMARY_ADDR=:5000 in the image).
	imageSummaryPort = "5000"
)

// dockerStage is one FROM ... stage: its base image and instructions.
type dockerStage struct {
	from         string   // the FROM line without "FROM"
	instructions []string // "RUN ...", continuation lines joined
}

func parseDockerfile(t *testing.T, file string) []dockerStage {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	pending := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || (line == "" && pending == "") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		line, pending = pending+line, ""
		word, rest, _ := strings.Cut(line, " ")
		switch word = strings.ToUpper(word); {
		case word == "FROM":
			stages = append(stages, dockerStage{from: rest})
		case len(stages) == 0:
			if word != "ARG" {
				t.Fatalf("%s: %q before the first FROM", file, line)
			}
		default:
			s := &stages[len(stages)-1]
			s.instructions = append(s.instructions, word+" "+strings.TrimSpace(rest))
		}
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", file)
	}
	return stages
}

// with returns the stage's instructions of one kind, without the keyword.
func (s dockerStage) with(word string) []string {
	var out []string
	for _, in := range s.instructions {
		if w, rest, _ := strings.Cut(in, " "); w == word {
			out = append(out, rest)
		}
	}
	return out
}

// dockerEnv parses ENV arguments: "A=1 B=2" or the legacy "A 1".
func dockerEnv(arg string) map[string]string {
	env := map[string]string{}
	if name, value, ok := strings.Cut(arg, " "); ok && !strings.Contains(name, "=") {
		env[name] = strings.TrimSpace(value)
		return env
	}
	for _, a := range strings.Fields(arg) {
		name, value, _ := strings.Cut(a, "=")
		env[name] = strings.Trim(value, `"`)
	}
	return env
}

// imageLayout is what a final stage gives the running container.
type imageLayout struct {
	env        map[string]string
	exposed    []string // sorted, without "/tcp"
	entrypoint []string
	copiedTo   []string // COPY destinations, sorted
}

func layoutOf(s dockerStage) imageLayout {
	l := imageLayout{env: map[string]string{}, entrypoint: s.with("ENTRYPOINT")}
	for _, e := range s.with("ENV") {
		maps.Copy(l.env, dockerEnv(e))
	}
	for _, e := range s.with("EXPOSE") {
		for _, p := range strings.Fields(e) {
			l.exposed = append(l.exposed, strings.TrimSuffix(p, "/tcp"))
		}
	}
	for _, c := range s.with("COPY") {
		f := strings.Fields(c)
		l.copiedTo = append(l.copiedTo, f[len(f)-1])
	}
	slices.Sort(l.exposed)
	slices.Sort(l.copiedTo)
	return l
}

// imageEnv is the environment the image gives gatecache (Containerfile).
func imageEnv(t *testing.T) map[string]string {
	t.Helper()
	stages := parseDockerfile(t, containerfile)
	return layoutOf(stages[len(stages)-1]).env
}

// checkFinalStage checks what both image files must give the container.
func checkFinalStage(t *testing.T, file string, final dockerStage) {
	t.Helper()
	base := strings.Fields(final.from)[0]
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("%s: final FROM %q, want scratch or distroless static", file, final.from)
	}
	l := layoutOf(final)
	if !strings.Contains(strings.Join(final.with("COPY"), "\n"), "ca-certificates.crt") {
		t.Errorf("%s: final stage does not copy CA certificates (needed for https:// origins)", file)
	}
	if l.env["CACHE_ROOT"] != imageRoot {
		t.Errorf("%s: ENV CACHE_ROOT=%q, want %s", file, l.env["CACHE_ROOT"], imageRoot)
	}
	if l.env["SUMMARY_ADDR"] != ":"+imageSummaryPort {
		t.Errorf("%s: ENV SUMMARY_ADDR=%q, want :%s (Microsoft's createOptions publish container port %s)", file, l.env["SUMMARY_ADDR"], imageSummaryPort, imageSummaryPort)
	}
	ok := understood(t)
	for _, name := range slices.Sorted(maps.Keys(l.env)) {
		if !ok(name) {
			t.Errorf("%s: ENV %s: gatecache does not read it", file, name)
		}
	}
	if !slices.Equal(l.exposed, []string{imageSummaryPort, contentPort}) {
		t.Errorf("%s: EXPOSE %q, want %s and %s", file, l.exposed, contentPort, imageSummaryPort)
	}
	if !slices.Equal(l.entrypoint, []string{`["/gatecache"]`}) {
		t.Errorf("%s: ENTRYPOINT %q, want [\"/gatecache\"]", file, l.entrypoint)
	}
	owned := false
	for _, c := range final.with("COPY") {
		if strings.Contains(c, "--chown="+containerUID+":"+containerUID) && strings.HasSuffix(c, " "+imageRoot) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("%s: %s is not copied with --chown=%s:%s (README: run as that uid if you wish)", file, imageRoot, containerUID, containerUID)
	}
	if users := final.with("USER"); len(users) > 0 {
		t.Errorf("%s: USER %s: the image runs as root like Microsoft's module, so its bind works unchanged", file, users)
	}
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, dockerfile)
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a builder and a final stage", dockerfile, len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !regexp.MustCompile(`(^|\s|=)golang:1\.26(\s|$)`).MatchString(build.from) {
		t.Errorf("builder FROM %q, want golang:1.26", build.from)
	}
	runs := strings.Join(build.with("RUN"), "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/gatecache", "chown -R " + containerUID} {
		if !strings.Contains(runs, want) {
			t.Errorf("builder RUN lines lack %s", want)
		}
	}
	checkFinalStage(t, dockerfile, final)
}

// TestContainerfile: the offline image is one stage on scratch with no RUN
// (nothing to pull, nothing to emulate for arm images), and its layout is
// the Dockerfile's.
func TestContainerfile(t *testing.T) {
	stages := parseDockerfile(t, containerfile)
	if len(stages) != 1 || strings.TrimSpace(stages[0].from) != "scratch" {
		t.Fatalf("%s: %d stages from %q, want one FROM scratch", containerfile, len(stages), stages[0].from)
	}
	c := stages[0]
	if runs := c.with("RUN"); len(runs) > 0 {
		t.Errorf("%s: RUN %q: a RUN step cannot run on scratch, nor for another architecture without emulation", containerfile, runs)
	}
	for _, src := range c.with("COPY") {
		if strings.Contains(src, "--from") {
			t.Errorf("%s: COPY %s: everything comes from the build context", containerfile, src)
		}
	}
	checkFinalStage(t, containerfile, c)

	d := parseDockerfile(t, dockerfile)
	want, got := layoutOf(d[len(d)-1]), layoutOf(c)
	if !maps.Equal(got.env, want.env) || !slices.Equal(got.exposed, want.exposed) ||
		!slices.Equal(got.entrypoint, want.entrypoint) || !slices.Equal(got.copiedTo, want.copiedTo) {
		t.Errorf("%s and %s give different images:\n%+v\n%+v", containerfile, dockerfile, got, want)
	}
}

// TestImageBuildScriptContext: every file the Containerfile copies is one
// that deploy/image/build.sh puts in the build context.
func TestImageBuildScriptContext(t *testing.T) {
	script, err := os.ReadFile("image/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat("image/build.sh"); err != nil || info.Mode()&0o111 == 0 {
		t.Errorf("image/build.sh is not executable: %v", err)
	}
	for _, c := range parseDockerfile(t, containerfile)[0].with("COPY") {
		f := strings.Fields(c)
		src := f[len(f)-2]
		if !strings.Contains(string(script), `"$ctx/`+src) {
			t.Errorf("Containerfile copies %s, which image/build.sh does not put in the context", src)
		}
	}
	if !strings.Contains(string(script), "podman build") || !strings.Contains(string(script), "--pull=never") {
		t.Errorf("image/build.sh does not run podman build --pull=never")
	}
}
