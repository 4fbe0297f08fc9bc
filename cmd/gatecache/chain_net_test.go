package main

// Chains across network obstacles: an outbound proxy, an HTTPS origin, a
// network namespace that cannot reach the origin.

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gatecache/internal/origintest"
	"gatecache/internal/proxytest"
)

func TestChildReachesParentThroughProxy(t *testing.T) {
	o := origintest.New(t)
	for _, p := range []string{"/a.bin", "/b.bin", "/c.bin"} {
		o.Set(p, origintest.Object{Size: 2<<20 + 3})
	}
	top := startNode(t, chainEnv(t, o.Addr, 1)...)

	p := proxytest.New(t)
	leaf := startNode(t, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+top.addr, "UPSTREAM_PROXY="+p.Addr)...)
	wantChainBytes(t, "through the proxy", chainAsk(t, leaf, o.Addr, "/a.bin", chainLong), o.Want("/a.bin"))
	if !hasParentTarget(p.Targets(), top.addr, "/a.bin", o.Addr) {
		t.Errorf("proxy targets %q, want GET http://%s/a.bin?cacheHostOrigin=%s", p.Targets(), top.addr, o.Addr)
	}

	authed := proxytest.New(t)
	authed.RequireAuth("gw", "pa55")
	leaf2 := startNode(t, chainEnv(t, o.Addr, 3, "UPSTREAM_HOST="+top.addr, "UPSTREAM_PROXY=gw:pa55@"+authed.Addr)...)
	wantChainBytes(t, "through an authenticating proxy", chainAsk(t, leaf2, o.Addr, "/b.bin", chainLong), o.Want("/b.bin"))
	if !hasParentTarget(authed.Targets(), top.addr, "/b.bin", o.Addr) {
		t.Errorf("proxy targets %q, want GET http://%s/b.bin?cacheHostOrigin=%s", authed.Targets(), top.addr, o.Addr)
	}
	if strings.Contains(leaf2.stderr.String(), "pa55") {
		t.Error("the proxy password appears in the node's log")
	}

	refusedBefore := authed.Stats().Refused
	leaf3 := startNode(t, chainEnv(t, o.Addr, 4, "UPSTREAM_HOST="+top.addr, "UPSTREAM_PROXY=gw:wrong@"+authed.Addr)...)
	a := chainAsk(t, leaf3, o.Addr, "/c.bin", chainShort)
	if a.status < 500 || a.status > 599 {
		t.Errorf("wrong proxy password: status %d (%s), want a 5xx: the proxy's 407 is not the client's business", a.status, a.cacheStatus())
	}
	if authed.Stats().Refused == refusedBefore {
		t.Error("the proxy refused nothing: the request did not go through it")
	}
	// Not stored either: asked again (the proxy still refusing), still no content.
	if a := chainAsk(t, leaf3, o.Addr, "/c.bin", chainShort); a.status == http.StatusOK {
		t.Errorf("second ask with a wrong proxy password: status %d (%s)", a.status, a.cacheStatus())
	}
}

// hasParentTarget reports whether targets hold the absolute-form request
// for path at parent naming origin in cacheHostOrigin (escaped or not).
func hasParentTarget(targets []string, parent, path, origin string) bool {
	return slices.ContainsFunc(targets, func(s string) bool {
		raw, ok := strings.CutPrefix(s, "GET ")
		if !ok {
			return false
		}
		u, err := url.Parse(raw)
		return err == nil && u.Scheme == "http" && u.Host == parent && u.Path == path &&
			u.Query().Get("cacheHostOrigin") == origin
	})
}

// certFile writes the certificate the TLS server at addr presents as a PEM
// file, for SSL_CERT_FILE.
func certFile(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	file := filepath.Join(t.TempDir(), "origin-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestHTTPSOrigin(t *testing.T) {
	o := origintest.NewTLS(t)
	for _, p := range []string{"/secure.swu", "/untrusted.swu", "/tunnel.swu"} {
		o.Set(p, origintest.Object{Size: 2<<20 + 11})
	}
	host := "https://" + o.Addr
	certs := certFile(t, o.Addr)

	top := startNode(t, chainEnv(t, host, 1, "SSL_CERT_FILE="+certs)...)
	a := chainAsk(t, top, o.Addr, "/secure.swu", chainLong)
	wantChainBytes(t, "HTTPS origin", a, o.Want("/secure.swu"))
	wantCacheStatus(t, "HTTPS origin", a, chainStored)

	// A child allows the same origin and asks its parent in plain HTTP.
	leaf := startNode(t, chainEnv(t, host, 2, "UPSTREAM_HOST="+top.addr)...)
	wantChainBytes(t, "HTTPS origin via a parent", chainAsk(t, leaf, o.Addr, "/secure.swu", chainLong), o.Want("/secure.swu"))
	if n := o.Stats().Requests; n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}

	// Without the certificate the origin is not trusted: no content.
	untrusting := startNode(t, chainEnv(t, host, 3)...)
	a = chainAsk(t, untrusting, o.Addr, "/untrusted.swu", chainShort)
	if a.status != http.StatusBadGateway {
		t.Errorf("untrusted certificate: status %d (%s), want 502", a.status, a.cacheStatus())
	}

	// Through an outbound proxy an HTTPS origin is reached by CONNECT.
	p := proxytest.New(t)
	proxied := startNode(t, chainEnv(t, host, 4, "SSL_CERT_FILE="+certs, "UPSTREAM_PROXY="+p.Addr)...)
	wantChainBytes(t, "HTTPS origin through a proxy", chainAsk(t, proxied, o.Addr, "/tunnel.swu", chainLong), o.Want("/tunnel.swu"))
	if !slices.Contains(p.Targets(), "CONNECT "+o.Addr) {
		t.Errorf("proxy targets %q, want CONNECT %s", p.Targets(), o.Addr)
	}
}

// TestLeafInNetworkNamespace puts the leaf where the origin is unreachable:
// in a network namespace joined to the host by a veth pair. Only the top
// node, on the host, can reach the origin on the host's loopback.
func TestLeafInNetworkNamespace(t *testing.T) {
	const hostIP, nsIP = "169.254.213.1", "169.254.213.2"
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed")
	}
	if out, _ := exec.Command("ip", "-4", "addr", "show").Output(); bytes.Contains(out, []byte("169.254.213.")) {
		t.Skip("169.254.213.0/30 is already in use on this host")
	}
	id := os.Getpid() % 100000
	ns, vethHost, vethNS := fmt.Sprintf("gatecache-test-%d", id), fmt.Sprintf("gch%d", id), fmt.Sprintf("gcn%d", id)
	if err := ipRun("netns", "add", ns); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	// Registered first, so it runs after the nodes' cleanups have killed
	// them. Deleting the host end takes the peer with it at once.
	t.Cleanup(func() {
		ipRun("link", "del", vethHost)
		if err := ipRun("netns", "del", ns); err != nil {
			t.Errorf("deleting the namespace: %v", err)
		}
		if ipRun("link", "show", vethHost) == nil {
			t.Errorf("veth %s left behind", vethHost)
		}
		if out, _ := exec.Command("ip", "netns", "list").Output(); bytes.Contains(out, []byte(ns)) {
			t.Errorf("namespace %s left behind", ns)
		}
	})
	if err := ipRun("link", "add", vethHost, "type", "veth", "peer", "name", vethNS); err != nil {
		t.Skipf("cannot create a veth pair: %v", err)
	}
	for _, args := range [][]string{
		{"link", "set", vethNS, "netns", ns},
		{"addr", "add", hostIP + "/30", "dev", vethHost},
		{"link", "set", vethHost, "up"},
		{"-n", ns, "addr", "add", nsIP + "/30", "dev", vethNS},
		{"-n", ns, "link", "set", vethNS, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := ipRun(args...); err != nil {
			t.Skipf("setting up the namespace: %v", err)
		}
	}
	inNS := []string{"ip", "netns", "exec", ns}

	o := origintest.New(t)
	const path = "/isolated/update.swu"
	o.Set(path, origintest.Object{Size: 3<<20 + 99})
	want := o.Want(path)

	// The namespace really cannot reach the origin.
	if out, err := exec.Command("ip", "netns", "exec", ns, curl, "-sS", "--max-time", "5", "-o", "/dev/null", o.URL+path).CombinedOutput(); err == nil {
		t.Fatalf("the origin is reachable from inside the namespace: %s", out)
	}

	top := startNode(t, chainEnv(t, o.Addr, 1, "LISTEN_ADDR="+hostIP+":0")...)
	leaf := startNodeWith(t, inNS, chainEnv(t, o.Addr, 2, "UPSTREAM_HOST="+top.addr)...)

	file := filepath.Join(t.TempDir(), "body")
	target := "http://" + leaf.addr + path + "?cacheHostOrigin=" + o.Addr
	out, err := exec.Command("ip", "netns", "exec", ns, curl, "-sS", "--fail", "--max-time", "60", "-D", "-", "-o", file, target).CombinedOutput()
	if err != nil {
		t.Fatalf("curl in the namespace: %v\n%s\n%s", err, out, chainLog(leaf))
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the leaf in the namespace served %d bytes (first difference at %d), want the origin's %d", len(got), chainFirstDiff(got, want), len(want))
	}
	if !bytes.Contains(bytes.ToLower(out), []byte("cache-status: "+chainStored)) {
		t.Errorf("leaf's answer:\n%s\nwant Cache-Status: %s", out, chainStored)
	}
	if n := o.Stats().Requests; n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	a := chainAsk(t, top, o.Addr, path, chainLong)
	wantChainBytes(t, "top after the leaf's miss", a, want)
	wantCacheStatus(t, "top after the leaf's miss", a, chainHit)
}

func ipRun(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
