package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"gatecache/internal/origintest"
)

// curl with ranges against a fresh entry, a revalidated one, and a stale
// one served while the origin is down.
func TestCurlRangesOnFreshAndStaleEntries(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	o := origintest.New(t)
	index := "/debian/dists/stable/main/binary-amd64/Packages.gz"
	deb := "/debian/pool/main/h/hello/hello_1.0_amd64.deb"
	o.Set(index, origintest.Object{Size: 300000, CacheControl: "-"})
	o.Set(deb, origintest.Object{Size: 2<<20 + 3})
	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+o.Addr, "STORAGE_1_SIZE=64MiB", "INDEX_MAX_AGE=0s")

	fetch := func(path, rng string) (body []byte, headers string) {
		t.Helper()
		cmd := exec.Command(curl, "-sS", "--fail", "-D", "-", "-r", rng, "-x", "http://"+n.addr, "http://"+o.Addr+path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("curl %s %s: %v\n%s", path, rng, err, n.stderr)
		}
		head, b, _ := bytes.Cut(out, []byte("\r\n\r\n"))
		return b, string(head)
	}
	check := func(path, rng string, from, to int, cacheStatus string) string {
		t.Helper()
		b, h := fetch(path, rng)
		if !bytes.Equal(b, o.Want(path)[from:to+1]) {
			t.Fatalf("%s %s: wrong bytes", path, rng)
		}
		if !strings.Contains(h, "Cache-Status: "+cacheStatus) {
			t.Fatalf("%s %s: headers\n%s\nwant Cache-Status %q", path, rng, h, cacheStatus)
		}
		return h
	}
	check(index, "1000-1999", 1000, 1999, "gatecache; fwd=miss; stored")
	check(index, "0-99", 0, 99, "gatecache; fwd=stale; fwd-status=304")
	check(deb, "100-200", 100, 200, "gatecache; fwd=miss; stored")
	check(deb, "100-200", 100, 200, "gatecache; hit")

	o.Close() // the uplink is gone
	h := check(index, "1000-1999", 1000, 1999, "gatecache; fwd=stale; detail=upstream-unavailable")
	if !strings.Contains(h, "Age: ") {
		t.Fatalf("stale answer without Age:\n%s", h)
	}
	check(deb, "150-160", 150, 160, "gatecache; hit")
}
