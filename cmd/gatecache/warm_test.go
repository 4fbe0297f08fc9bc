package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"gatecache/internal/origintest"
	"gatecache/internal/warm"
)

// TestWarmThroughTheBinary warms a real gatecache from an HTTPS origin
// (asked for as http://, fetched over TLS by the gateway) and checks that
// a device then gets the file from the cache without reaching the origin.
func TestWarmThroughTheBinary(t *testing.T) {
	o := origintest.NewTLS(t)
	o.Set("/fw/update.swu", origintest.Object{Size: 3<<20 + 5})
	n := startNode(t,
		"CACHE_ROOT="+t.TempDir(), "STORAGE_1_SIZE=64MiB",
		"CACHEABLE_CUSTOM_1_HOST=https://"+o.Addr, "SSL_CERT_FILE="+certFile(t, o.Addr))

	var out, errOut bytes.Buffer
	code := warm.Main([]string{"--cache", n.addr, "https://" + o.Addr + "/fw/update.swu"}, &out, &errOut)
	stdout, stderr := out.String(), errOut.String()
	if code != 0 {
		t.Fatalf("warm: exit %d\nstdout:\n%s\nstderr:\n%s\ngatecache:\n%s", code, stdout, stderr, n.stderr)
	}
	if !strings.Contains(stdout, "warm: 1 files, 1 ok, 0 failed, 3.1 MB in ") {
		t.Errorf("stdout:\n%s", stdout)
	}
	before := o.Stats().Requests

	resp, err := n.get(o, "/fw/update.swu")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(body, o.Want("/fw/update.swu")) {
		t.Fatalf("device read %d bytes (err %v), not the origin's", len(body), err)
	}
	if cs := resp.Header.Get("Cache-Status"); cs != "gatecache; hit" {
		t.Errorf("after warm-up, Cache-Status %q, want gatecache; hit", cs)
	}
	if after := o.Stats().Requests; after != before {
		t.Errorf("origin saw %d requests after the warm-up, want none", after-before)
	}
}
