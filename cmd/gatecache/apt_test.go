package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// aptIndexMaxAge is the node's INDEX_MAX_AGE: for so long after a fetch,
// index files without Cache-Control are answered from the cache without
// asking the origin. Short, so that the test waits little past it.
const aptIndexMaxAge = 2 * time.Second

// The real apt-get, through the gatecache binary, against a signed
// repository on a local origin, in both ways devices use the cache: as
// their HTTP proxy and with the origin as the first path segment. A new
// version published at the origin reaches apt through the cache; with the
// origin gone, apt-get update and apt-get install --download-only of the
// cached package still succeed.
func TestAptThroughTheCache(t *testing.T) {
	aptRequireTools(t)
	key := aptNewKey(t)
	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		aptScenario(t, key, func(n *node, originAddr, keyring string) (string, string) {
			return "deb [signed-by=" + keyring + "] http://" + originAddr + "/ stable main", "http://" + n.addr + "/"
		})
	})
	t.Run("path-prefix", func(t *testing.T) {
		t.Parallel()
		aptScenario(t, key, func(n *node, originAddr, keyring string) (string, string) {
			return "deb [signed-by=" + keyring + "] http://" + n.addr + "/" + originAddr + "/ stable main", ""
		})
	})
}

// aptScenario runs the steps against a fresh origin, node and apt root;
// sources gives the sources.list line and the proxy ("" for none).
func aptScenario(t *testing.T, key *aptKey, sources func(n *node, originAddr, keyring string) (line, proxy string)) {
	repo := aptNewRepo(t, key)
	repo.publish(t, "1.0")
	origin := aptServe(t, repo.dir)
	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+origin.addr, "STORAGE_1_SIZE=64MiB",
		"INDEX_MAX_AGE="+aptIndexMaxAge.String())
	line, proxy := sources(n, origin.addr, key.keyring)
	apt := aptNewClient(t, n, line, proxy)

	// 1. Cold cache: the indexes and the package come from the origin.
	step := "1 cold: apt-get update"
	updated := time.Now()
	apt.run(t, step, "apt-get", "update")
	if v := apt.candidate(t, "1 cold: apt-cache policy"); v != "1.0" {
		t.Fatalf("1 cold: candidate %q, want 1.0", v)
	}
	step = "1 cold: apt-get install --download-only hello"
	apt.run(t, step, "apt-get", "install", "--download-only", "hello")
	apt.wantDeb(t, step, "1.0", repo.debs["1.0"])

	// 2. A new version at the origin. The cache may answer index files from
	// what it has for a short window (a burst of apt-get update makes one
	// upstream check); past it, they are revalidated.
	aptWaitPastIndexWindow(updated)
	repo.publish(t, "1.1")
	step = "2 new version: apt-get update"
	updated = time.Now()
	apt.run(t, step, "apt-get", "update")
	if v := apt.candidate(t, "2 new version: apt-cache policy"); v != "1.1" {
		t.Fatalf("2 new version: apt-cache policy shows candidate %q after the origin published 1.1; the cache served a stale index\n--- gatecache log:\n%s", v, n.stderr)
	}
	step = "2 new version: apt-get install --download-only hello"
	apt.run(t, step, "apt-get", "install", "--download-only", "hello")
	apt.wantDeb(t, step, "1.1", repo.debs["1.1"])

	// 3. The uplink goes down once the cached indexes are stale: the cache
	// answers from what it has (stale-if-error).
	aptWaitPastIndexWindow(updated)
	origin.stop()
	step = "3 origin down: apt-get update"
	apt.run(t, step, "apt-get", "update")
	if v := apt.candidate(t, "3 origin down: apt-cache policy"); v != "1.1" {
		t.Fatalf("3 origin down: candidate %q, want 1.1", v)
	}
	apt.removeDebs(t)
	step = "3 origin down: apt-get install --download-only hello"
	apt.run(t, step, "apt-get", "install", "--download-only", "hello")
	apt.wantDeb(t, step, "1.1", repo.debs["1.1"])

	// The stale path was taken, not a fresh hit: the cache says so.
	aptWantStale(t, n, origin.addr, "/dists/stable/InRelease")
}

// aptWaitPastIndexWindow sleeps until index files fetched at since are no
// longer fresh in the cache.
func aptWaitPastIndexWindow(since time.Time) {
	time.Sleep(time.Until(since.Add(aptIndexMaxAge + time.Second)))
}

// aptWantStale asks the node for path at the (stopped) origin and wants
// the stored copy, marked stale, with an Age.
func aptWantStale(t *testing.T, n *node, originAddr, path string) {
	t.Helper()
	resp, err := noRetryClient.Get("http://" + n.addr + "/" + originAddr + path)
	if err != nil {
		t.Fatalf("3 origin down: GET %s: %v", path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=stale") || resp.Header.Get("Age") == "" {
		t.Errorf("3 origin down: GET %s: %s, Cache-Status %q, Age %q; want 200 with fwd=stale and an Age\n--- gatecache log:\n%s",
			path, resp.Status, resp.Header.Get("Cache-Status"), resp.Header.Get("Age"), n.stderr)
	}
}
