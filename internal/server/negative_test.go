package server

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"gatecache/internal/origintest"
)

// waitUntil polls cond, for conditions no event announces (a request
// waiting inside the handler); it fails the test after a generous bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// The query is not part of the key (KEEP_QUERY=false) but it is sent
// upstream: a 404 for one query (an expired signature) must not answer
// another query of the same path, while the same query is answered from
// memory.
func TestNegativeAnswerStandsOnlyForItsQuery(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/s", origintest.Object{Size: 3000, Query: "sig=good"})
	want := r.origin.Want("/s")
	url := func(q string) string { return r.cache.URL + "/s?" + q + "&cacheHostOrigin=" + r.origin.Addr }

	r.expect(r.do("GET", url("sig=expired")), 404, "gatecache; fwd=miss", nil)
	r.expect(r.do("GET", url("sig=good")), 200, "gatecache; fwd=miss; stored", want)
	r.store.Remove(r.origin.Addr + "/s")
	r.origin.ResetStats()
	r.expect(r.do("GET", url("sig=expired")), 404, "gatecache; hit; detail=negative", nil)
	if n := r.origin.Stats().Requests; n != 0 {
		t.Fatalf("%d upstream requests for a query answered 404 moments ago", n)
	}
}

// The same for a request that waited on another query's discovery.
func TestNegativeAnswerOfALeaderDoesNotAnswerAFollowerWithAnotherQuery(t *testing.T) {
	r := newRig(t)
	r.origin.Set("/s", origintest.Object{Size: 3000, Query: "sig=good"})
	want := r.origin.Want("/s")
	url := func(q string) string { return r.cache.URL + "/s?" + q + "&cacheHostOrigin=" + r.origin.Addr }

	held := r.origin.Hold()
	leader := make(chan *http.Response)
	go func() { leader <- r.do("GET", url("sig=expired")) }()
	<-held
	follower := make(chan *http.Response)
	go func() { follower <- r.do("GET", url("sig=good")) }()
	waitUntil(t, "the follower waits on the leader's discovery", func() bool { return r.joined() == 1 })
	r.origin.Unhold()
	r.expect(<-leader, 404, "", nil)
	r.expect(<-follower, 200, "", want)
}
