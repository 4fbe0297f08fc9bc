package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The real apt-get through the gatecache binary against a private
// repository behind Basic auth, with its credentials in an auth.conf.d file,
// as the proxy and with the origin as the first path segment (RFC 9111 §3.5).
// The origin marks its packages public, its indexes nothing: packages are
// stored and then served to anyone, indexes pass through every time and are
// refused to a client without credentials.
func TestAptPrivateRepositoryThroughTheCache(t *testing.T) {
	aptRequireTools(t)
	key := aptNewKey(t)
	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		aptAuthScenario(t, key, func(n *node, originAddr, keyring string) (string, string, string, string) {
			return "deb [signed-by=" + keyring + "] http://" + originAddr + "/ stable main", "http://" + n.addr + "/",
				"http://" + originAddr, "http://" + originAddr
		})
	})
	t.Run("path-prefix", func(t *testing.T) {
		t.Parallel()
		aptAuthScenario(t, key, func(n *node, originAddr, keyring string) (string, string, string, string) {
			base := "http://" + n.addr + "/" + originAddr
			return "deb [signed-by=" + keyring + "] " + base + "/ stable main", "", base, base
		})
	})
}

// aptAuthScenario runs apt-get update and install with credentials, then
// checks what a client without them gets from the node. sources gives the
// sources.list line, the proxy ("" for none), the auth.conf machine and the
// base URL that reaches the repository through the node.
func aptAuthScenario(t *testing.T, key *aptKey, sources func(n *node, originAddr, keyring string) (line, proxy, machine, viaNode string)) {
	repo := aptNewRepo(t, key)
	repo.publish(t, "1.0")
	origin := aptServeAuth(t, repo.dir, "device", "s3cret")
	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+origin.addr, "STORAGE_1_SIZE=64MiB")
	line, proxy, machine, viaNode := sources(n, origin.addr, key.keyring)
	apt := aptNewClient(t, n, line, proxy)
	// apt reads Dir::Etc::netrcparts (auth.conf.d below Dir::Etc); the
	// protocol in the machine token is needed for plain http.
	aptWrite(t, filepath.Join(apt.root, "etc/apt/auth.conf.d/private.conf"),
		[]byte("machine "+machine+" login device password s3cret\n"))
	if err := os.Chmod(filepath.Join(apt.root, "etc/apt/auth.conf.d/private.conf"), 0o600); err != nil {
		t.Fatal(err)
	}

	apt.run(t, "apt-get update", "apt-get", "update")
	if v := apt.candidate(t, "apt-cache policy"); v != "1.0" {
		t.Fatalf("candidate %q, want 1.0", v)
	}
	apt.run(t, "apt-get install --download-only hello", "apt-get", "install", "--download-only", "hello")
	apt.wantDeb(t, "apt-get install --download-only hello", "1.0", repo.debs["1.0"])
	if ok, refused := origin.counts(); ok == 0 || refused != 0 {
		t.Fatalf("origin answered %d requests with credentials and refused %d; want all with credentials", ok, refused)
	}

	// A client without credentials: the public package comes from the
	// store, the index is the origin's 401, never the stored copy.
	okBefore, _ := origin.counts()
	deb := aptGetViaNode(t, viaNode+"/pool/main/h/hello/hello_1.0_amd64.deb", proxy)
	if deb.status != http.StatusOK || !strings.Contains(deb.cacheStatus, "hit") || !bytes.Equal(deb.body, repo.debs["1.0"]) {
		t.Fatalf("package without credentials: %d, Cache-Status %q, %d bytes; want the stored public copy", deb.status, deb.cacheStatus, len(deb.body))
	}
	index := aptGetViaNode(t, viaNode+"/dists/stable/InRelease", proxy)
	if index.status != http.StatusUnauthorized {
		t.Fatalf("index without credentials: %d, Cache-Status %q; want the origin's 401", index.status, index.cacheStatus)
	}
	if ok, refused := origin.counts(); ok != okBefore || refused != 1 {
		t.Fatalf("origin: %d more answers with credentials, %d refused; want none and 1", ok-okBefore, refused)
	}
}

type aptAnswer struct {
	status      int
	cacheStatus string
	body        []byte
}

// aptGetViaNode fetches rawURL without credentials, through proxy when set.
func aptGetViaNode(t *testing.T, rawURL, proxy string) aptAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true, DisableCompression: true}
	if proxy != "" {
		tr.Proxy = func(*http.Request) (*url.URL, error) { return url.Parse(proxy) }
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return aptAnswer{resp.StatusCode, resp.Header.Get("Cache-Status"), body}
}

// aptAuthOrigin serves a repository directory behind Basic auth: packages
// with Cache-Control: public, indexes without Cache-Control.
type aptAuthOrigin struct {
	*aptOrigin
	mu          sync.Mutex
	ok, refused int
}

func (o *aptAuthOrigin) counts() (ok, refused int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok, o.refused
}

func aptServeAuth(t *testing.T, dir, user, password string) *aptAuthOrigin {
	t.Helper()
	o := &aptAuthOrigin{}
	files := http.FileServer(http.Dir(dir))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		o.mu.Lock()
		if ok && u == user && p == password {
			o.ok++
		} else {
			o.refused++
		}
		o.mu.Unlock()
		if !ok || u != user || p != password {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".deb") {
			w.Header().Set("Cache-Control", "public, max-age=86400")
		}
		files.ServeHTTP(w, r)
	})
	o.aptOrigin = aptServeHandler(t, h)
	return o
}
