package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gatecache/internal/origin"
	"gatecache/internal/origintest"
)

// negotiatingOrigin answers with a body chosen by the request's Accept (the
// whole field value is the variant's name), Vary as set, and counts the
// requests per Accept. While gate is set, requests wait on it, after
// telling arrived.
type negotiatingOrigin struct {
	addr string

	// Guarded by mu.
	vary string
	cc   string // Cache-Control; "" for max-age=600

	mu       sync.Mutex
	requests map[string]int
	gate     chan struct{}
	arrived  chan string
}

func newNegotiatingOrigin(t *testing.T, vary string) *negotiatingOrigin {
	o := &negotiatingOrigin{vary: vary, requests: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept := r.Header.Get("Accept")
		o.mu.Lock()
		o.requests[accept]++
		gate, arrived, vary, cc := o.gate, o.arrived, o.vary, o.cc
		o.mu.Unlock()
		if gate != nil {
			arrived <- accept
			<-gate
		}
		if vary != "" {
			w.Header().Set("Vary", vary)
		}
		if cc == "" {
			cc = "max-age=600"
		}
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("ETag", fmt.Sprintf("%q", "v-"+accept))
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(variantBody(accept)))
	}))
	t.Cleanup(srv.Close)
	o.addr = strings.TrimPrefix(srv.URL, "http://")
	return o
}

func variantBody(accept string) string { return "content for Accept: " + accept }

func (o *negotiatingOrigin) count(accept string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[accept]
}

func (o *negotiatingOrigin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.requests {
		n += c
	}
	return n
}

func varyRig(t *testing.T, o *negotiatingOrigin) *rig {
	host, port := splitAddr(o.addr)
	return newRig(t, withHosts(origin.Host{Name: host, Port: port}))
}

// getAccept asks the cache for /f with the given Accept field lines (none:
// no Accept).
func (r *rig) getAccept(o *negotiatingOrigin, accept ...string) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.cache.URL+"/f?cacheHostOrigin="+o.addr, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(accept) > 0 {
		req.Header["Accept"] = accept
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp
}

// RFC 9111 §4.1: a stored response is reused only for requests whose
// selecting fields match the ones it was chosen by (normalised as the RFC
// allows); each variant is stored apart.
func TestRFC9111_4_1_VariantsAreSelectedByTheirFields(t *testing.T) {
	o := newNegotiatingOrigin(t, "Accept")
	r := varyRig(t, o)
	for i, step := range []struct {
		accept      []string // field lines sent
		body        string   // the variant expected (its Accept)
		cacheStatus string
	}{
		{[]string{"application/json"}, "application/json", statusMiss},
		{[]string{"application/xml"}, "application/xml", statusMiss},
		{[]string{"application/json"}, "application/json", statusHit},
		{[]string{"application/xml"}, "application/xml", statusHit},
		{[]string{"text/plain,application/json"}, "text/plain,application/json", statusMiss},
		// Same field, other whitespace and split over two lines.
		{[]string{" text/plain ,  application/json "}, "text/plain,application/json", statusHit},
		{[]string{"text/plain", "application/json"}, "text/plain,application/json", statusHit},
		// No Accept matches only no Accept.
		{nil, "", statusMiss},
		{nil, "", statusHit},
		{[]string{""}, "", statusMiss},
	} {
		resp := r.getAccept(o, step.accept...)
		r.expect(resp, 200, step.cacheStatus, []byte(variantBody(step.body)))
		r.settle()
		if resp.Header.Get("Vary") != "Accept" {
			t.Fatalf("step %d: Vary %q not replayed", i, resp.Header.Get("Vary"))
		}
	}
	if n := o.total(); n != 5 {
		t.Fatalf("%d origin requests, want one per variant (5)", n)
	}
}

// Vary: * never matches: nothing is stored.
func TestRFC9111_4_1_VaryStarNeverMatches(t *testing.T) {
	o := newNegotiatingOrigin(t, "*")
	r := varyRig(t, o)
	for range 2 {
		r.expect(r.getAccept(o, "application/json"), 200, statusNotStored, []byte(variantBody("application/json")))
	}
	if n := o.count("application/json"); n != 2 {
		t.Fatalf("%d origin requests, want 2", n)
	}
}

// A Vary naming 50 fields, one of which differs between every client: at
// most maxVariants are stored for the URL, the oldest removed first.
func TestRFC9111_4_1_VariantsPerURLAreBounded(t *testing.T) {
	names := []string{"Accept"}
	for i := range 49 {
		names = append(names, fmt.Sprintf("X-Field-%d", i))
	}
	o := newNegotiatingOrigin(t, strings.Join(names, ", "))
	r := varyRig(t, o)
	accept := func(i int) string { return fmt.Sprintf("type/v%d", i) }
	for i := range maxVariants + 2 {
		r.expect(r.getAccept(o, accept(i)), 200, statusMiss, []byte(variantBody(accept(i))))
		r.settle()
	}
	r.expect(r.getAccept(o, accept(maxVariants+1)), 200, statusHit, []byte(variantBody(accept(maxVariants+1))))
	r.expect(r.getAccept(o, accept(0)), 200, statusMiss, []byte(variantBody(accept(0))))
	if objs := r.store.Stats()[0].Objects; objs != maxVariants+1 {
		t.Fatalf("%d objects stored, want %d variants and their marker", objs, maxVariants)
	}
}

// Each variant is coalesced apart: requests with the Accept of a variant
// being fetched wait for it; a request that waited for another variant's
// discovery is never served that variant.
func TestRFC9111_4_1_VariantsAreCoalescedApart(t *testing.T) {
	o := newNegotiatingOrigin(t, "Accept")
	r := varyRig(t, o)
	// The URL is known to vary, and one variant is stored.
	r.expect(r.getAccept(o, "application/json"), 200, statusMiss, nil)
	r.settle()

	gate, arrived := make(chan struct{}), make(chan string, 8)
	o.mu.Lock()
	o.gate, o.arrived = gate, arrived
	o.mu.Unlock()
	type answer struct {
		status, body string
	}
	results := make(chan answer, 4)
	get := func(accept string) {
		resp := r.getAccept(o, accept)
		b := r.mustBody(resp)
		results <- answer{resp.Header.Get("Cache-Status"), string(b)}
	}
	go get("application/xml")
	select {
	case got := <-arrived:
		if got != "application/xml" {
			t.Fatalf("origin got Accept %q first", got)
		}
	case a := <-results:
		t.Fatalf("xml request answered without asking upstream: %+v", a)
	}
	before := r.joined()
	go get("application/xml")
	waitFor(t, func() bool { return r.joined() == before+1 })
	// The stored variant is still a hit meanwhile.
	r.expect(r.getAccept(o, "application/json"), 200, statusHit, []byte(variantBody("application/json")))
	close(gate)
	for range 2 {
		a := <-results
		if a.body != variantBody("application/xml") {
			t.Fatalf("xml request got %q", a.body)
		}
	}
	if n := o.count("application/xml"); n != 1 {
		t.Fatalf("%d origin requests for the xml variant, want 1", n)
	}
}

// A request that waited for a URL's first discovery, whose response then
// turned out to vary, is served its own variant, never the leader's.
func TestRFC9111_4_1_FollowerOfAnotherVariantGetsItsOwn(t *testing.T) {
	o := newNegotiatingOrigin(t, "Accept")
	r := varyRig(t, o)
	gate, arrived := make(chan struct{}), make(chan string, 8)
	o.gate, o.arrived = gate, arrived
	results := make(chan string, 2)
	get := func(accept string) {
		results <- string(r.mustBody(r.getAccept(o, accept)))
	}
	go get("application/json")
	<-arrived
	before := r.joined()
	go get("application/xml")
	waitFor(t, func() bool { return r.joined() == before+1 })
	o.mu.Lock()
	o.gate = nil // the xml request, when it asks, is not held
	o.mu.Unlock()
	close(gate)
	got := map[string]bool{<-results: true, <-results: true}
	if !got[variantBody("application/json")] || !got[variantBody("application/xml")] {
		t.Fatalf("answers %v, want one of each variant", got)
	}
}

// A stale entry without Vary whose revalidation brings a new version that
// varies: the requests that joined the revalidation get their own variant,
// not the one the first request's fields chose.
func TestJoinersOfARevalidationThatStartsVaryingGetTheirOwnVariant(t *testing.T) {
	o := newNegotiatingOrigin(t, "")
	o.mu.Lock()
	o.cc = "max-age=0"
	o.mu.Unlock()
	r := varyRig(t, o)
	if body := string(r.mustBody(r.getAccept(o, "text/a"))); body != variantBody("text/a") {
		t.Fatalf("first answer %q", body)
	}
	gate, arrived := make(chan struct{}), make(chan string, 8)
	o.mu.Lock()
	o.vary, o.gate, o.arrived = "Accept", gate, arrived
	o.mu.Unlock()
	results := make(chan [2]string, 2)
	get := func(accept string) {
		results <- [2]string{accept, string(r.mustBody(r.getAccept(o, accept)))}
	}
	go get("text/b") // revalidates, and gets a new version that varies
	<-arrived
	before := r.joined()
	go get("text/a")
	waitFor(t, func() bool { return r.joined() > before })
	o.mu.Lock()
	o.gate = nil
	o.mu.Unlock()
	close(gate)
	for range 2 {
		if got := <-results; got[1] != variantBody(got[0]) {
			t.Errorf("Accept: %s got %q", got[0], got[1])
		}
	}
}

// waitFor polls cond until it holds (bounded, so that a broken build fails
// rather than hangs).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 20000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("condition not reached")
}

// A variant whose upstream body breaks off: never a wrong byte, the
// variant is completed and stored, and the other variant is apart.
func TestRFC9111_4_1_TruncatedVariantIsRefetched(t *testing.T) {
	r := newRig(t)
	size := int64(3*testBlock + 11)
	r.origin.Set("/f", origintest.Object{Size: size, Header: http.Header{"Vary": {"Accept"}},
		Fault: origintest.FaultTruncate, FaultAt: testBlock + 100, FaultTimes: 1})
	want := r.origin.Want("/f")
	// The client gets the right bytes (the cache fetches the rest) or a
	// broken transfer, never a wrong body.
	if got, err := body(r.get("/f", "Accept", "a/b")); err == nil && !bytes.Equal(got, want) {
		t.Fatalf("truncated upstream body: the client got %d wrong bytes", len(got))
	}
	r.settle()
	r.expect(r.get("/f", "Accept", "a/b"), 200, "", want)
	r.expect(r.get("/f", "Accept", "c/d"), 200, statusMiss, want)
	r.settle()
	r.expect(r.get("/f", "Accept", "a/b"), 200, statusHit, want)
	r.expect(r.get("/f", "Accept", "c/d"), 200, statusHit, want)
}
