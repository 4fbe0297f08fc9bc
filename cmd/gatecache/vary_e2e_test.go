package main

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// curl with different Accept fields against an origin that negotiates
// (Vary: Accept), through the binary in the proxy and path-prefix forms:
// each client gets its own variant, each variant is fetched once (RFC 9111
// §4.1).
func TestCurlAcceptVariantsThroughTheBinary(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	var requests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Vary", "Accept")
		w.Header().Set("Cache-Control", "max-age=600")
		if strings.Contains(r.Header.Get("Accept"), "json") {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"format":"json"}`))
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<format>xml</format>`))
	}))
	t.Cleanup(origin.Close)
	addr := strings.TrimPrefix(origin.URL, "http://")
	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+addr, "STORAGE_1_SIZE=64MiB")

	// run returns the body and the Cache-Status of one curl request.
	run := func(accept string, args ...string) (string, string) {
		t.Helper()
		out, err := exec.Command(curl, append([]string{"-sS", "--fail", "-D", "-", "-H", "Accept: " + accept}, args...)...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		head, body, _ := strings.Cut(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n\n")
		status := ""
		for _, line := range strings.Split(head, "\n") {
			if v, ok := strings.CutPrefix(line, "Cache-Status: "); ok {
				status = v
			}
		}
		return body, status
	}
	proxy := []string{"-x", "http://" + n.addr, "http://" + addr + "/api/format"}
	prefix := []string{"http://" + n.addr + "/" + addr + "/api/format"}
	for i, step := range []struct {
		accept string
		form   []string
		body   string
		hit    bool
	}{
		{"application/json", proxy, `{"format":"json"}`, false},
		{"application/xml", proxy, `<format>xml</format>`, false},
		{"application/json", prefix, `{"format":"json"}`, true},
		{"application/xml", prefix, `<format>xml</format>`, true},
		{"application/json", proxy, `{"format":"json"}`, true},
	} {
		body, status := run(step.accept, step.form...)
		if body != step.body || strings.HasSuffix(status, "; hit") != step.hit {
			t.Fatalf("step %d (Accept %s): body %q, Cache-Status %q; want %q, hit %v", i, step.accept, body, status, step.body, step.hit)
		}
	}
	if got := requests.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want one per variant (2)", got)
	}
}
