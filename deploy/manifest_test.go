package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"gatecache/internal/config"
	"gatecache/internal/origintest"
)

// Microsoft's sample createOptions, as pasted from its documents.
const (
	sampleCreateOptions     = "testdata/mcc-createoptions.json"      // 5000/tcp -> 5100
	sampleCreateOptions2021 = "testdata/mcc-createoptions-2021.json" // 5000/tcp -> 5001
)

func readCreateOptions(t *testing.T, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}

// createOptions is the part of a module's createOptions that matters here.
type createOptions struct {
	HostConfig struct {
		Binds        []string
		PortBindings map[string][]struct{ HostIP, HostPort string }
	}
}

func parseCreateOptions(t *testing.T, file string) createOptions {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var o createOptions
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(o.HostConfig.PortBindings) == 0 || len(o.HostConfig.Binds) == 0 {
		t.Fatalf("%s: no port bindings or binds", file)
	}
	return o
}

// containerPorts maps each bound container port ("8081") to its host port.
func (o createOptions) containerPorts(t *testing.T) map[string]string {
	ports := map[string]string{}
	for spec, bindings := range o.HostConfig.PortBindings {
		port, proto, _ := strings.Cut(spec, "/")
		if proto != "tcp" || len(bindings) != 1 {
			t.Fatalf("binding %s: want one tcp host port, got %+v", spec, bindings)
		}
		ports[port] = bindings[0].HostPort
	}
	return ports
}

// imageConfig is the configuration gatecache takes in the image with the
// environment of the manifest's module (placeholders filled in).
func imageConfig(t *testing.T, extra map[string]string) (config.Config, map[string]string) {
	t.Helper()
	env := imageEnv(t)
	mod := readManifest(t, manifests[0]).ModulesContent.EdgeAgent.Desired.Modules[moduleName]
	for name, v := range mod.Env {
		value := *v.Value
		if placeholder.MatchString(value) {
			value = placeholderSamples[name]
		}
		env[name] = value
	}
	maps.Copy(env, extra)
	c, err := config.FromEnv(mapLookup(env))
	if err != nil {
		t.Fatalf("image environment %v: %v", env, err)
	}
	return c, env
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return port
}

// TestSampleCreateOptionsMatchTheImage: with Microsoft's createOptions, old
// and new, every bound container port is one the image listens on (content
// on the one mapped to host port 80), and the bind is drive 1.
func TestSampleCreateOptionsMatchTheImage(t *testing.T) {
	c, _ := imageConfig(t, nil)
	listening := map[string]string{portOf(t, c.ListenAddr): "content", portOf(t, c.SummaryAddr): "summary"}
	for _, file := range []string{sampleCreateOptions, sampleCreateOptions2021} {
		o := parseCreateOptions(t, file)
		ports := o.containerPorts(t)
		for port, host := range ports {
			what, ok := listening[port]
			if !ok {
				t.Errorf("%s: container port %s (host %s) is bound, but the image listens on %v", file, port, host, listening)
			}
			if what == "content" && host != "80" {
				t.Errorf("%s: content on host port %s, want 80 (devices ask caches on port 80)", file, host)
			}
		}
		for port, what := range listening {
			if _, ok := ports[port]; !ok {
				t.Errorf("%s: the image's %s port %s is not bound", file, what, port)
			}
		}
		_, target, _ := strings.Cut(o.HostConfig.Binds[0], ":")
		if got := c.Drives[0].Path; got != path.Clean(target) {
			t.Errorf("%s: drive 1 is %s in the image, but the bind mounts %s", file, got, target)
		}
	}
}

// TestImageEnvServesOnMappedContainerPorts runs the binary with the image's
// environment and the manifest's, on the container ports of Microsoft's
// createOptions (on 127.0.0.1: in the container they are the container's
// own), and checks that content and summary both answer there.
func TestImageEnvServesOnMappedContainerPorts(t *testing.T) {
	origin := origintest.New(t)
	for i := range 2 {
		origin.Set(fmt.Sprintf("/sample%d.bin", i), origintest.Object{Size: 3<<20 + 17})
	}
	c, env := imageConfig(t, map[string]string{"CACHEABLE_CUSTOM_2_HOST": origin.Addr})
	env["CACHE_ROOT"] = t.TempDir() // for /nginx: the bind's target
	content := net.JoinHostPort("127.0.0.1", portOf(t, c.ListenAddr))
	summary := net.JoinHostPort("127.0.0.1", portOf(t, c.SummaryAddr))
	for _, addr := range []string{content, summary} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("%s is taken on this machine, so the image's port cannot be checked here: %v", addr, err)
		}
		l.Close()
	}
	env["LISTEN_ADDR"], env["SUMMARY_ADDR"] = content, summary
	var environ []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		environ = append(environ, k+"="+env[k])
	}
	p := startGatecache(t, []string{gatecacheBinary(t)}, environ)

	for i, file := range []string{sampleCreateOptions, sampleCreateOptions2021} {
		object := fmt.Sprintf("/sample%d.bin", i)
		for port, host := range parseCreateOptions(t, file).containerPorts(t) {
			addr := net.JoinHostPort("127.0.0.1", port)
			switch addr {
			case content:
				checkContent(t, addr, object, origin.Addr, origin.Want(object))
			case summary:
				checkSummary(t, addr, "")
			default:
				t.Errorf("%s: container port %s (host port %s) answers nothing", file, port, host)
			}
		}
	}
	if !p.stop(syscall.SIGTERM) {
		t.Errorf("gatecache did not stop on SIGTERM:\n%s", p.stderr())
	}
}

// checkContent fetches an object of origin through the content port at
// addr twice, in the Delivery Optimization form: both answers carry the
// origin's bytes, the second from the cache.
func checkContent(t *testing.T, addr, object, originAddr string, want []byte) {
	t.Helper()
	url := "http://" + addr + object + "?cacheHostOrigin=" + originAddr
	for i, status := range []string{"gatecache; fwd=miss; stored", "gatecache; hit"} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatalf("content port %s: %v", addr, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			t.Fatalf("content port %s, request %d: %s, %d bytes (want %d), err %v: %.200s", addr, i+1, resp.Status, len(body), len(want), err, body)
		}
		if got := resp.Header.Get("Cache-Status"); got != status {
			t.Errorf("content port %s, request %d: Cache-Status %q, want %q", addr, i+1, got, status)
		}
	}
}

// checkSummary reads the summary at addr (with the API key when not empty)
// and checks that it is gatecache's report.
func checkSummary(t *testing.T, addr, apiKey string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+"/summary", nil)
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("X-Api-Key", apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("summary port %s: %v", addr, err)
	}
	defer resp.Body.Close()
	var report struct {
		CacheNodeID string          `json:"cacheNodeId"`
		Lifetime    json.RawMessage `json:"lifetime"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &report) != nil || report.CacheNodeID == "" || len(report.Lifetime) == 0 {
		t.Fatalf("summary port %s: %s: %.300s", addr, resp.Status, body)
	}
}

// summaryStatus is the status of GET /summary at addr without a key.
func summaryStatus(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/summary")
	if err != nil {
		t.Fatalf("summary port %s: %v", addr, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
