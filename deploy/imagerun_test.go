package deploy

import (
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gatecache/internal/origintest"
)

// slirpHost is the address at which a container on slirp4netns with
// allow_host_loopback reaches the host's 127.0.0.1: the test origin runs on
// loopback, and no traffic leaves the machine's loopback.
const slirpHost = "10.0.2.2"

// podmanWays are the ways tried to run a container, in order. This kind of
// machine refuses crun's setrlimit (podman raises RLIMIT_NOFILE and
// RLIMIT_NPROC, which needs CAP_SYS_RESOURCE) and crun does not support
// its hybrid cgroup layout; runc with limits this process already has runs.
func podmanWays() [][]string {
	var nofile syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	return [][]string{
		nil, // podman's and containers.conf's defaults
		{"--runtime", "runc", "--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Cur), "--ulimit", "nproc=1024:1024"},
	}
}

// TestImageRunsWithSampleCreateOptions runs the image in GATECACHE_IMAGE
// (deploy/image/ci.sh builds it) with each of Microsoft's createOptions as
// docker would apply them (host ports on 127.0.0.1, the bind from a
// temporary directory) and the manifest's environment, and checks content
// and summary on the sample's host ports. With the 2021 sample the summary
// is restricted, to show what a host client meets: loopback is the
// container's own, so it needs the API key.
func TestImageRunsWithSampleCreateOptions(t *testing.T) {
	image := os.Getenv("GATECACHE_IMAGE")
	if image == "" {
		t.Skip("GATECACHE_IMAGE is not set: it names an image built by deploy/image/build.sh (deploy/image/ci.sh)")
	}
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skip("podman not found (apt-get install podman runc slirp4netns)")
	}
	origin := origintest.New(t)
	_, originPort, _ := net.SplitHostPort(origin.Addr)
	originAddr := net.JoinHostPort(slirpHost, originPort)
	const key = "3f2a6c1e-8b4d-4e5f-9a0b-1c2d3e4f5a6b"

	var way []string
	var tried []string
	for i, tt := range []struct {
		file string
		env  map[string]string
	}{
		{sampleCreateOptions, nil},
		{sampleCreateOptions2021, map[string]string{"IS_SUMMARY_ACCESS_UNRESTRICTED": "false", "SUMMARY_API_KEY": key}},
	} {
		object := fmt.Sprintf("/sample%d.bin", i)
		origin.Set(object, origintest.Object{Size: 1<<20 + 3})
		_, env := imageConfig(t, tt.env)
		for name := range imageEnv(t) {
			delete(env, name) // the image's own, not to be passed again
		}
		env["CACHEABLE_CUSTOM_2_HOST"] = originAddr
		o := parseCreateOptions(t, tt.file)
		args := []string{"run", "--rm", "--network", "slirp4netns:allow_host_loopback=true"}
		// The bind's host side (the gateway's /MicrosoftConnectedCache1) is
		// a temporary directory here.
		_, target, _ := strings.Cut(o.HostConfig.Binds[0], ":")
		args = append(args, "-v", t.TempDir()+":"+target)
		ports := o.containerPorts(t)
		for _, cport := range slices.Sorted(maps.Keys(ports)) {
			hostAddr := net.JoinHostPort("127.0.0.1", ports[cport])
			l, err := net.Listen("tcp", hostAddr)
			if err != nil {
				t.Skipf("%s: host port %s is taken on this machine: %v", tt.file, hostAddr, err)
			}
			l.Close()
			args = append(args, "-p", hostAddr+":"+cport)
		}
		for _, name := range slices.Sorted(maps.Keys(env)) {
			args = append(args, "-e", name+"="+env[name])
		}
		name := fmt.Sprintf("gatecache-test-%d-%d", os.Getpid(), i)
		args = append(args, "--name", name)
		t.Cleanup(func() { exec.Command("podman", "rm", "-f", "-i", name).Run() })

		var p *proc
		ways := podmanWays()
		if way != nil {
			ways = [][]string{way}
		}
		for _, w := range ways {
			argv := append(append([]string{"podman"}, args[:1]...), append(slices.Clone(w), args[1:]...)...)
			argv = append(argv, image)
			var err error
			if p, err = tryStart(t, argv, os.Environ()); err == nil {
				way = w
				break
			}
			tried = append(tried, fmt.Sprintf("podman %s: %v", strings.Join(w, " "), lastLine(err.Error())))
			exec.Command("podman", "rm", "-f", "-i", name).Run()
		}
		if p == nil {
			t.Skipf("the image cannot run on this machine; tried:\n%s", strings.Join(tried, "\n"))
		}
		if len(way) > 0 && i == 0 {
			t.Logf("podman run needed %q here; before that:\n%s", way, strings.Join(tried, "\n"))
		}

		content := net.JoinHostPort("127.0.0.1", ports[contentPort])
		summary := net.JoinHostPort("127.0.0.1", ports[imageSummaryPort])
		checkContent(t, content, object, originAddr, origin.Want(object))
		if tt.env == nil {
			checkSummary(t, summary, "")
		} else {
			if got := summaryStatus(t, summary); got != 403 {
				t.Errorf("%s: summary without a key from the host: %d, want 403 (not the container's loopback)", tt.file, got)
			}
			checkSummary(t, summary, key)
		}
		if !p.stop(syscall.SIGTERM) {
			t.Errorf("the container did not stop on SIGTERM:\n%s", p.stderr())
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
