package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"gatecache/internal/origin"
)

// poolKeys are the cache keys the ranking tests place.
func poolKeys() []string {
	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("repo.example/pool/main/p/pkg%05d_1.0_amd64.deb", i)
	}
	return keys
}

func hashClient(parents []string, weights ...int) *Client {
	return New(Options{Parents: parents, Weights: weights, Policy: Hash, Logger: quiet()})
}

// owners maps each key to its first parent; next to its second.
func owners(c *Client, keys []string) (first, second map[string]string) {
	first, second = map[string]string{}, map[string]string{}
	for _, k := range keys {
		r := c.rank(k)
		first[k] = r[0].name
		if len(r) > 1 {
			second[k] = r[1].name
		}
	}
	return first, second
}

func TestRendezvousRanksOnlyMoveTheKeysOfTheParentThatLeavesOrJoins(t *testing.T) {
	keys := poolKeys()
	a, b, c, d := "gw-a:80", "gw-b:80", "gw-c:8080", "gw-d:80"
	abc, next := owners(hashClient([]string{a, b, c}), keys)

	// The order of UPSTREAM_HOST does not matter.
	cab, _ := owners(hashClient([]string{c, a, b}), keys)
	for _, k := range keys {
		if cab[k] != abc[k] {
			t.Fatalf("%s: owner %s with parents a,b,c but %s with c,a,b", k, abc[k], cab[k])
		}
	}

	share := map[string]int{}
	for _, k := range keys {
		share[abc[k]]++
	}
	t.Logf("shares of %d keys: a %d, b %d, c %d", len(keys), share[a], share[b], share[c])
	for _, p := range []string{a, b, c} {
		if f := float64(share[p]) / float64(len(keys)); math.Abs(f-1.0/3) > 0.03 {
			t.Errorf("%s owns %.3f of the keys, want 1/3 ± 0.03", p, f)
		}
	}

	// b leaves: only b's keys move, each to its own second.
	ac, _ := owners(hashClient([]string{a, c}), keys)
	moved := 0
	for _, k := range keys {
		switch {
		case abc[k] == b:
			moved++
			if ac[k] != next[k] {
				t.Fatalf("%s: b's key went to %s, want its next in rank %s", k, ac[k], next[k])
			}
		case ac[k] != abc[k]:
			t.Fatalf("%s: moved from %s to %s although its owner stayed", k, abc[k], ac[k])
		}
	}
	t.Logf("b leaves: %d keys move, all b's", moved)
	if moved != share[b] || moved == 0 {
		t.Fatalf("%d keys moved, want b's %d", moved, share[b])
	}

	// d joins: only the keys d now wins move, about 1/4 of them.
	abcd, _ := owners(hashClient([]string{a, b, c, d}), keys)
	moved = 0
	for _, k := range keys {
		if abcd[k] != abc[k] {
			moved++
			if abcd[k] != d {
				t.Fatalf("%s: moved from %s to %s when d joined, want only keys moving to d", k, abc[k], abcd[k])
			}
		}
	}
	t.Logf("d joins: %d keys move, all to d", moved)
	if f := float64(moved) / float64(len(keys)); math.Abs(f-0.25) > 0.03 {
		t.Errorf("%.3f of the keys moved to d, want 1/4 ± 0.03", f)
	}
}

func TestWeightedRendezvousSharesFollowTheWeights(t *testing.T) {
	keys := poolKeys()
	parents := []string{"gw-a:80", "gw-b:80", "gw-c:8080"}
	weights := []int{2, 1, 3}
	first, _ := owners(hashClient(parents, weights...), keys)
	share := map[string]int{}
	for _, k := range keys {
		share[first[k]]++
	}
	t.Logf("weights 2,1,3: shares of %d keys %d, %d, %d", len(keys), share[parents[0]], share[parents[1]], share[parents[2]])
	for i, p := range parents {
		want := float64(weights[i]) / 6
		if f := float64(share[p]) / float64(len(keys)); math.Abs(f-want) > 0.03 {
			t.Errorf("%s (weight %d) owns %.3f of the keys, want %.3f ± 0.03", p, weights[i], f, want)
		}
	}
	// Raising one parent's weight only moves keys to it.
	even, _ := owners(hashClient(parents), keys)
	heavier, _ := owners(hashClient(parents, 3, 1, 1), keys)
	for _, k := range keys {
		if heavier[k] != even[k] && heavier[k] != parents[0] {
			t.Fatalf("%s moved from %s to %s when %s got heavier", k, even[k], heavier[k], parents[0])
		}
	}
}

func TestVariantsAndRangesOfOneURLRankAlike(t *testing.T) {
	c := hashClient([]string{"gw-a:80", "gw-b:80", "gw-c:80", "gw-d:80", "gw-e:80"})
	for _, k := range poolKeys()[:500] {
		if got, want := c.Owner(k+"\x00vary\x00"+"0123abcd"), c.Owner(k); got != want {
			t.Fatalf("%s: a variant goes to %s, the URL to %s", k, got, want)
		}
	}
}

// stoppable is a fake parent cache on a fixed loopback address that can be
// stopped (connections refused) and started again on the same address.
type stoppable struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *http.Server
	seen []string // request paths
}

func newStoppable(t *testing.T) *stoppable {
	s := &stoppable{t: t}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	t.Cleanup(s.stop)
	return s
}

func (s *stoppable) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.URL.Path)
		s.mu.Unlock()
		io.WriteString(w, "from "+s.addr)
	})}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(l)
}

func (s *stoppable) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *stoppable) start() {
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("restarting the parent on %s: %v", s.addr, err)
	}
	s.serve(l)
}

func (s *stoppable) asked(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.seen {
		if p == path {
			n++
		}
	}
	return n
}

// answeredBy fetches key's path through c and returns the parent that
// answered.
func answeredBy(t *testing.T, c *Client, path string) string {
	t.Helper()
	tg := origin.Target{Scheme: "http", Host: "repo.example", Path: path, Key: "repo.example" + path}
	resp, err := c.Do(context.Background(), "GET", tg, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", path, resp.StatusCode, b, err)
	}
	return strings.TrimPrefix(string(b), "from ")
}

func (c *Client) statsOf(name string) UpstreamStats {
	for _, s := range c.Stats() {
		if s.Name == name {
			return s
		}
	}
	return UpstreamStats{}
}

func TestPoolParentDownHandsItsKeysToTheNextAndGetsThemBack(t *testing.T) {
	parents := map[string]*stoppable{}
	var names []string
	for range 3 {
		p := newStoppable(t)
		parents[p.addr] = p
		names = append(names, p.addr)
	}
	const retry = 100 * time.Millisecond
	c := New(Options{Parents: names, Policy: Hash, ParentRetry: retry, Logger: quiet()})

	// A key, its owner and its next; and a key another parent owns.
	path, other := "", ""
	for i := 0; path == "" || other == ""; i++ {
		p := fmt.Sprintf("/obj/%d.bin", i)
		switch {
		case path == "":
			path = p
		case c.Owner("repo.example"+p) != c.Owner("repo.example"+path):
			other = p
		}
	}
	rank := c.rank("repo.example" + path)
	owner, next := parents[rank[0].name], parents[rank[1].name]
	otherOwner := c.Owner("repo.example" + other)

	if got := answeredBy(t, c, path); got != owner.addr {
		t.Fatalf("with every parent up, %s answered, want its owner %s", got, owner.addr)
	}
	if got := answeredBy(t, c, other); got != otherOwner {
		t.Fatalf("other key: %s answered, want %s", got, otherOwner)
	}

	owner.stop()
	if got := answeredBy(t, c, path); got != next.addr {
		t.Fatalf("owner stopped: %s answered, want the next in the key's rank %s", got, next.addr)
	}
	if st := c.statsOf(owner.addr); st.Failures != 1 {
		t.Fatalf("owner's stats %+v, want one failure", st)
	}
	if got := answeredBy(t, c, other); got != otherOwner {
		t.Fatalf("other key moved to %s while an unrelated parent was down, want %s", got, otherOwner)
	}

	owner.start()
	// The owner is skipped until its retry interval (ParentRetry) ends:
	// wait for that, as the stats show it, bounded.
	for deadline := time.Now().Add(10 * time.Second); c.statsOf(owner.addr).Down; {
		if time.Now().After(deadline) {
			t.Fatal("owner still in backoff 10 s after a 100 ms retry interval")
		}
		time.Sleep(retry / 10)
	}
	if got := answeredBy(t, c, path); got != owner.addr {
		t.Fatalf("owner back: %s answered, want the owner %s again", got, owner.addr)
	}
	if owner.asked(path) != 2 || next.asked(path) != 1 {
		t.Fatalf("owner asked %d times, next %d: want 2 and 1", owner.asked(path), next.asked(path))
	}
}

func TestFromPoolNeedsAGatecacheViaAndAPoolName(t *testing.T) {
	c := hashClient([]string{"gw-a:80", "gw-b:8080", "[fd00::1]:80"})
	failover := New(Options{Parents: []string{"gw-a:80", "gw-b:8080"}, Logger: quiet()})
	via := "1.1 00000000-0000-4000-8000-000000000001 (gatecache)"
	for _, tt := range []struct {
		c    *Client
		host string
		via  []string
		want bool
	}{
		{c, "gw-b:8080", []string{via}, true},
		{c, "GW-A", []string{"1.1 squid", via}, true}, // port 80 implied, any case
		{c, "[fd00::1]", []string{via}, true},
		{c, "gw-b:8080", nil, false},                   // a device, not a node
		{c, "gw-b:8080", []string{"1.1 squid"}, false}, // another product
		{c, "front.example", []string{via}, false},     // a child through a balancer
		{c, "gw-b:80", []string{via}, false},           // another port: not the pool's name
		{failover, "gw-b:8080", []string{via}, false},  // failover never hashes
		{hashClient(nil), "gw-b:8080", []string{via}, false},
	} {
		r, _ := http.NewRequest("GET", "http://"+tt.host+"/p?cacheHostOrigin=repo.example", nil)
		r.Header["Via"] = tt.via
		if got := tt.c.FromPool(r); got != tt.want {
			t.Errorf("Host %s, Via %q: FromPool %v, want %v", tt.host, tt.via, got, tt.want)
		}
	}
}

func TestPoolMembersRequestGoesToTheOriginNotBackIntoThePool(t *testing.T) {
	var parents []*parent
	var names []string
	for range 3 {
		p := newParent(t, 200)
		parents = append(parents, p)
		names = append(names, p.Listener.Addr().String())
	}
	originSrv := newParent(t, 200)
	host := originSrv.Listener.Addr().String()
	tg := origin.Target{Scheme: "http", Host: host, Path: "/f", Key: host + "/f"}
	asked := func() (n int) {
		for _, p := range parents {
			n += len(p.requests())
		}
		return n
	}

	c := New(Options{Parents: names, Policy: Hash, FallbackDirect: true, Logger: quiet()})
	resp, err := c.Do(context.Background(), "GET", tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if asked() != 1 || len(originSrv.requests()) != 0 {
		t.Fatalf("a client's request: parents asked %d times, origin %d: want the owner once", asked(), len(originSrv.requests()))
	}

	tg.FromPool = true
	resp, err = c.Do(context.Background(), "GET", tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	Drain(resp.Body)
	if asked() != 1 || len(originSrv.requests()) != 1 {
		t.Fatalf("a pool member's request: parents asked %d more times, origin %d: want the origin only", asked()-1, len(originSrv.requests()))
	}

	// Without a direct route there is nowhere to go.
	c = New(Options{Parents: names, Policy: Hash, Logger: quiet()})
	if _, err := c.Do(context.Background(), "GET", tg, nil); !errors.Is(err, errNoRoute) {
		t.Fatalf("without fallback: err %v, want errNoRoute", err)
	}
	r, _ := http.NewRequest("POST", "http://x/f", strings.NewReader("body"))
	if _, err := c.Forward(r, tg); !errors.Is(err, errNoRoute) {
		t.Fatalf("Forward without fallback: err %v, want errNoRoute", err)
	}
	if asked() != 1 || len(originSrv.requests()) != 1 {
		t.Fatalf("without fallback: parents asked %d more times, origin %d more", asked()-1, len(originSrv.requests())-1)
	}
}

func TestThisNodeInItsOwnPoolFetchesItsKeysFromTheOrigin(t *testing.T) {
	self := newParent(t, 200) // stands for this node's content listener
	other := newParent(t, 200)
	originSrv := newParent(t, 200)
	selfAddr, otherAddr := self.Listener.Addr().String(), other.Listener.Addr().String()
	c := New(Options{Parents: []string{selfAddr, otherAddr}, Policy: Hash, FallbackDirect: true, Logger: quiet()})
	c.SetSelf(self.Listener.Addr())
	host := originSrv.Listener.Addr().String()
	var mine, theirs int
	for i := 0; mine == 0 || theirs == 0; i++ {
		p := fmt.Sprintf("/k%d", i)
		tg := origin.Target{Scheme: "http", Host: host, Path: p, Key: host + p}
		resp, err := c.Do(context.Background(), "GET", tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		Drain(resp.Body)
		if c.Owner(tg.Key) == selfAddr {
			mine++
		} else {
			theirs++
		}
	}
	if len(self.requests()) != 0 {
		t.Fatalf("this node sent %d requests to itself", len(self.requests()))
	}
	if len(originSrv.requests()) != mine || len(other.requests()) != theirs {
		t.Fatalf("origin asked %d times, the other parent %d: want %d and %d", len(originSrv.requests()), len(other.requests()), mine, theirs)
	}
}

// Without UPSTREAM_FALLBACK_DIRECT this node's own entry is skipped: the
// keys it ranks first for go to their next parent, and when every other
// parent is down, none is sent to this node either.
func TestThisNodeInItsOwnPoolWithoutFallbackPassesItsKeysOn(t *testing.T) {
	self, b, c := newParent(t, 200), newParent(t, 200), newParent(t, 200)
	addr := func(p *parent) string { return p.Listener.Addr().String() }
	byAddr := map[string]*parent{addr(b): b, addr(c): c}
	cl := New(Options{Parents: []string{addr(self), addr(b), addr(c)}, Policy: Hash, Logger: quiet()})
	cl.SetSelf(self.Listener.Addr())
	mine := 0
	for i := 0; mine < 5 && i < 1000; i++ {
		p := fmt.Sprintf("/k%d", i)
		tg := origin.Target{Scheme: "http", Host: "repo.example", Path: p, Key: "repo.example" + p}
		rank := cl.Rank(tg.Key)
		if rank[0] != addr(self) {
			continue
		}
		mine++
		next := byAddr[rank[1]]
		before := len(next.requests())
		resp, err := cl.Do(context.Background(), "GET", tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		Drain(resp.Body)
		if len(next.requests()) != before+1 {
			t.Fatalf("%s, ranked first for this node: not sent to its next parent %s", tg.Key, rank[1])
		}
	}
	if mine == 0 || len(self.requests()) != 0 {
		t.Fatalf("%d keys of this node's; %d requests sent to itself", mine, len(self.requests()))
	}

	down := New(Options{Parents: []string{addr(self), deadAddr(t), deadAddr(t)}, Policy: Hash, Logger: quiet(), ConnectTimeout: time.Second})
	down.SetSelf(self.Listener.Addr())
	for i := range 20 {
		p := fmt.Sprintf("/d%d", i)
		if resp, err := down.Do(context.Background(), "GET", origin.Target{Scheme: "http", Host: "repo.example", Path: p, Key: "repo.example" + p}, nil); err == nil {
			Drain(resp.Body)
		}
	}
	if n := len(self.requests()); n != 0 {
		t.Fatalf("with every other parent down, %d requests were sent to this node itself", n)
	}
}
