package main

// End-to-end tests of parent pools (UPSTREAM_POLICY=hash): a leaf in front
// of three parents, a node asked by a pool member, and three nodes that are
// each other's pool.

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"gatecache/internal/fetch"
	"gatecache/internal/origintest"
)

// poolObject is one object of a pool test: small ones are fetched whole,
// large ones in 1 MiB ranges one after another, as Delivery Optimization
// does.
type poolObject struct {
	path   string
	size   int64
	ranged bool
}

func poolObjects(o *origintest.Origin, small, large int) []poolObject {
	var out []poolObject
	for i := range small {
		out = append(out, poolObject{path: fmt.Sprintf("/pool/small-%03d.deb", i), size: 20_000 + int64(i)*131})
	}
	for i := range large {
		out = append(out, poolObject{path: fmt.Sprintf("/pool/large-%d.swu", i), size: 3<<20 + int64(i)*4099, ranged: true})
	}
	for _, ob := range out {
		o.Set(ob.path, origintest.Object{Size: ob.size})
	}
	return out
}

// fetchObject gets ob through n, whole or in 1 MiB ranges, and checks the
// bytes.
func fetchObject(t *testing.T, n *node, o *origintest.Origin, ob poolObject) {
	t.Helper()
	want := o.Want(ob.path)
	if !ob.ranged {
		wantChainBytes(t, ob.path+" through "+n.addr, chainAsk(t, n, o.Addr, ob.path, chainLong), want)
		return
	}
	const step = 1 << 20
	for off := int64(0); off < ob.size; off += step {
		end := min(off+step, ob.size) - 1
		a := chainAsk(t, n, o.Addr, ob.path, chainLong, "Range", fmt.Sprintf("bytes=%d-%d", off, end))
		if a.status != http.StatusPartialContent || string(a.body) != string(want[off:end+1]) {
			t.Fatalf("%s bytes %d-%d through %s: status %d, %d bytes (%s), want 206 with the origin's bytes\n%s",
				ob.path, off, end, n.addr, a.status, len(a.body), a.cacheStatus(), chainLog(n))
		}
	}
}

// holds reports whether n has ob stored whole: asked with only-if-cached
// (RFC 9111 §5.2.1.7), it answers from its store or 504.
func holds(t *testing.T, n *node, o *origintest.Origin, ob poolObject) bool {
	t.Helper()
	a := chainAsk(t, n, o.Addr, ob.path, chainLong, "Cache-Control", "only-if-cached")
	switch a.status {
	case http.StatusOK:
		wantChainBytes(t, ob.path+" stored on "+n.addr, a, o.Want(ob.path))
		return true
	case http.StatusGatewayTimeout:
		return false
	}
	t.Fatalf("%s only-if-cached from %s: status %d", ob.path, n.addr, a.status)
	return false
}

// storedObjects is the number of objects on n's drives, from its metrics.
func storedObjects(t *testing.T, n *node) int {
	t.Helper()
	resp, err := http.Get("http://" + n.summary + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gatecache_drive_objects{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// fetchedBy returns, for each path, the nodes (by id) the origin's requests
// for it came from: the last element of their Via, the node that fetched
// from the origin. from is the index in o.Requests() to start at.
func fetchedBy(o *origintest.Origin, from int) map[string][]string {
	out := map[string][]string{}
	for _, r := range o.Requests()[from:] {
		path, _, _ := strings.Cut(r.URI, "?")
		via := strings.Split(strings.Join(r.Header.Values("Via"), ","), ",")
		last := strings.TrimSpace(via[len(via)-1])
		id, _, _ := strings.Cut(strings.TrimPrefix(last, "1.1 "), " ")
		out[path] = append(out[path], id)
	}
	return out
}

// wantOriginOnce fails unless ob's bytes came from the origin once (whole
// objects; a ranged one may ask in several ranges) and only through the
// node with id want.
func wantOriginOnce(t *testing.T, o *origintest.Origin, ob poolObject, by []string, want string) {
	t.Helper()
	if len(by) == 0 {
		t.Errorf("%s: never fetched from the origin", ob.path)
	}
	for _, id := range by {
		if id != want {
			t.Errorf("%s: fetched from the origin by node %s, want only its owner %s (all by %q)", ob.path, id, want, by)
			break
		}
	}
	if got := o.PathStats(ob.path).BodyBytes; !ob.ranged && got != ob.size {
		t.Errorf("%s: origin sent %d body bytes, want the object once (%d)", ob.path, got, ob.size)
	}
}

// A leaf hashing over three parents: every object is fetched from the
// origin once and stored on exactly one parent, the one its key ranks first;
// with that parent stopped, a second leaf refetches only its objects, once
// each, through the next parent of their rank.
func TestHashedPoolStoresEachObjectOnce(t *testing.T) {
	o := origintest.New(t)
	objects := poolObjects(o, 24, 2)
	var parents []*node
	var names []string
	for i := range 3 {
		p := startNode(t, chainEnv(t, o.Addr, 1+i)...)
		parents = append(parents, p)
		names = append(names, p.addr)
	}
	pool := "UPSTREAM_HOST=" + strings.Join(names, ",")
	leaf := startNode(t, chainEnv(t, o.Addr, 4, pool, "UPSTREAM_POLICY=hash")...)
	rank := fetch.New(fetch.Options{Parents: names, Policy: fetch.Hash})

	for _, ob := range objects {
		fetchObject(t, leaf, o, ob)
	}
	owned := map[string][]poolObject{}
	id := map[string]string{} // parent address -> node id
	for i, p := range parents {
		id[p.addr] = chainID(1 + i)
	}
	by := fetchedBy(o, 0)
	for _, ob := range objects {
		owner := rank.Owner(o.Addr + ob.path) // the cache key: alias and path
		wantOriginOnce(t, o, ob, by[ob.path], id[owner])
		owned[owner] = append(owned[owner], ob)
		for _, p := range parents {
			if h := holds(t, p, o, ob); h != (p.addr == owner) {
				t.Errorf("%s on parent %s: stored %v, want it stored on its owner %s only", ob.path, p.addr, h, owner)
			}
		}
	}
	total := 0
	for _, p := range parents {
		n := storedObjects(t, p)
		t.Logf("parent %s stores %d of %d objects", p.addr, n, len(objects))
		if n != len(owned[p.addr]) {
			t.Errorf("parent %s stores %d objects, want its %d", p.addr, n, len(owned[p.addr]))
		}
		total += n
	}
	if total != len(objects) {
		t.Fatalf("the parents store %d objects in all, want %d: one copy each", total, len(objects))
	}

	// One parent leaves (the one with the most objects, so that the test
	// has something to show): only its objects are fetched again, once
	// each, by the next parent of their rank.
	gone := parents[0]
	for _, p := range parents {
		if len(owned[p.addr]) > len(owned[gone.addr]) {
			gone = p
		}
	}
	gone.kill(syscall.SIGTERM)
	before := len(o.Requests())
	leaf2 := startNode(t, chainEnv(t, o.Addr, 5, pool, "UPSTREAM_POLICY=hash")...)
	for _, ob := range objects {
		fetchObject(t, leaf2, o, ob)
	}
	by = fetchedBy(o, before)
	for _, ob := range owned[gone.addr] {
		r := rank.Rank(o.Addr + ob.path)
		wantOriginOnce(t, o, poolObject{path: ob.path, ranged: true}, by[ob.path], id[r[1]])
		if got := o.PathStats(ob.path).BodyBytes; !ob.ranged && got != 2*ob.size {
			t.Errorf("%s of the stopped parent: origin sent %d bytes in all, want twice %d", ob.path, got, ob.size)
		}
	}
	t.Logf("with %s stopped, %d of %d objects were fetched again from the origin (%d owned by it)",
		gone.addr, len(by), len(objects), len(owned[gone.addr]))
	if len(by) != len(owned[gone.addr]) {
		t.Errorf("%d objects fetched again, want only the stopped parent's %d: %v", len(by), len(owned[gone.addr]), by)
	}
}

// A node of a hashed pool that is asked by another node of the pool (Via
// names a gatecache node, Host one of this node's parents) fetches from the
// origin itself: it does not hash the request back into the pool.
func TestPoolMemberRequestIsNotHashedBack(t *testing.T) {
	o := origintest.New(t)
	var fakes []*origintest.Origin // the pool's other nodes, recording
	var names []string
	for range 3 {
		f := origintest.New(t)
		fakes = append(fakes, f)
		names = append(names, f.Addr)
	}
	n := startNode(t, chainEnv(t, o.Addr, 1, "UPSTREAM_HOST="+strings.Join(names, ","),
		"UPSTREAM_POLICY=hash", "UPSTREAM_FALLBACK_DIRECT=true")...)
	for i := range 3 {
		path := fmt.Sprintf("/member/%d.bin", i)
		o.Set(path, origintest.Object{Size: 50_000})
		for _, f := range fakes {
			f.Set(path, origintest.Object{Size: 50_000})
		}
	}
	asked := func(path string) (parents int64) {
		for _, f := range fakes {
			parents += f.PathStats(path).Requests
		}
		return parents
	}
	member := names[1]
	via := "1.1 " + chainID(9) + " (gatecache)"
	for _, c := range []struct {
		path, host, via string
		fromPool        bool
	}{
		{"/member/0.bin", member, via, true},  // a pool node sent it here
		{"/member/1.bin", member, "", false},  // a device, no Via: hashed
		{"/member/2.bin", n.addr, via, false}, // a child that used another name: hashed
	} {
		req, err := http.NewRequest("GET", "http://"+n.addr+c.path+"?cacheHostOrigin="+o.Addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = c.host
		if c.via != "" {
			req.Header.Set("Via", c.via)
		}
		resp, err := noRetryClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d\n%s", c.path, resp.StatusCode, chainLog(n))
		}
		fromOrigin, parents := o.PathStats(c.path).Requests, asked(c.path)
		if c.fromPool && (fromOrigin != 1 || parents != 0) {
			t.Errorf("%s from a pool node: origin asked %d times, the pool %d: want the origin only", c.path, fromOrigin, parents)
		}
		if !c.fromPool && (fromOrigin != 0 || parents != 1) {
			t.Errorf("%s (Host %s, Via %q): origin asked %d times, the pool %d: want its owner in the pool", c.path, c.host, c.via, fromOrigin, parents)
		}
	}
}

// Three nodes that list each other, themselves included, in one
// UPSTREAM_HOST: each finds its own entry, fetches the keys it ranks first
// for from the origin and forwards the others once; nothing loops.
func TestPoolOfSiblingsFetchesEachObjectOnce(t *testing.T) {
	o := origintest.New(t)
	objects := poolObjects(o, 15, 1)
	var addrs []string
	var sockets []*os.File
	for range 3 {
		addr, f := listenerFile(t)
		addrs, sockets = append(addrs, addr), append(sockets, f)
	}
	var nodes []*node
	for i := range 3 {
		cmd := activatedCmd("content", []*os.File{sockets[i]}, chainEnv(t, o.Addr, 1+i,
			"UPSTREAM_HOST="+strings.Join(addrs, ","), "UPSTREAM_POLICY=hash", "UPSTREAM_FALLBACK_DIRECT=true")...)
		nodes = append(nodes, runNode(t, cmd))
	}
	rank := fetch.New(fetch.Options{Parents: addrs, Policy: fetch.Hash})
	for i, ob := range objects {
		fetchObject(t, nodes[i%3], o, ob)
	}
	by := fetchedBy(o, 0)
	for _, ob := range objects {
		owner := rank.Owner(o.Addr + ob.path)
		wantOriginOnce(t, o, ob, by[ob.path], chainID(1+slices.Index(addrs, owner)))
		for _, n := range nodes {
			if n.addr == owner && !holds(t, n, o, ob) {
				t.Errorf("%s is not stored on its owner %s", ob.path, owner)
			}
		}
	}
	for _, n := range nodes {
		if log := n.stderr.String(); !strings.Contains(log, "this entry of UPSTREAM_HOST is this node") || strings.Contains(log, "status=508") {
			t.Errorf("node %s did not find itself in its pool, or saw a loop:\n%s", n.addr, chainLog(n))
		}
	}
}

func TestBadPoolSettingsStopStartup(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"UPSTREAM_POLICY=carp", `UPSTREAM_POLICY="carp": want failover (the parents in order) or hash`},
		{"UPSTREAM_HOST=gw-a=0,gw-b", `UPSTREAM_HOST="gw-a=0,gw-b": want a weight from 1 to 1000 after "=", like gw-a=2`},
	} {
		cmd := exec.Command(binary)
		cmd.Env = []string{c.env, "CACHE_ROOT=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("%s: %v, output %q; want exit status 2 and one line containing %q", c.env, err, out, c.want)
		}
	}
}
