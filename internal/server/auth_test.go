package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"gatecache/internal/origin"
)

const goodAuth = "Basic ZGV2aWNlOnNlY3JldA==" // device:secret

// authOrigin is a private repository: every path answers 401 without the
// right credentials, else a body naming the path, with Cache-Control cc,
// validators, and 304 to a matching If-None-Match. It records the
// Authorization of every request.
type authOrigin struct {
	*httptest.Server
	addr string
	cc   string

	mu      sync.Mutex
	auth    []string      // Authorization of each request, in order
	gate    chan struct{} // while set, requests wait on it after telling arrived
	arrived chan string
}

func newAuthOrigin(t *testing.T, cc string) *authOrigin {
	o := &authOrigin{cc: cc}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.auth = append(o.auth, r.Header.Get("Authorization"))
		gate, arrived := o.gate, o.arrived
		o.mu.Unlock()
		if gate != nil {
			arrived <- r.Header.Get("Authorization")
			<-gate
		}
		if r.Header.Get("Authorization") != goodAuth {
			w.Header().Set("WWW-Authenticate", `Basic realm="private repo"`)
			http.Error(w, "credentials required", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Cache-Control", o.cc)
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader("private "+r.URL.Path))
	}))
	t.Cleanup(o.Close)
	o.addr = strings.TrimPrefix(o.URL, "http://")
	return o
}

func (o *authOrigin) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.auth...)
}

// RFC 9111 §3.5: a request with Authorization is forwarded with it; its
// answer is stored only when public, s-maxage or must-revalidate says a
// shared cache may, and a stored answer reaches a request without
// credentials only as that directive allows.
func TestRFC9111_3_5_Authorization(t *testing.T) {
	type step struct {
		auth        string // the client's Authorization
		status      int
		cacheStatus string
		upstream    string // the Authorization the origin must see, "none" for no request
	}
	cases := []struct {
		name, path, cc string
		steps          []step
	}{
		{"no directive: passed through", "/dists/stable/InRelease", "max-age=600", []step{
			{goodAuth, 200, statusNotStored, goodAuth},
			{goodAuth, 200, statusNotStored, goodAuth},
			{"", 401, statusNotStored, ""},
		}},
		{"public: shared", "/pool/a.deb", "public, max-age=600", []step{
			{goodAuth, 200, statusMiss, goodAuth},
			{"", 200, statusHit, "none"},
		}},
		{"s-maxage: shared", "/f", "s-maxage=600", []step{
			{goodAuth, 200, statusMiss, goodAuth},
			{"", 200, statusHit, "none"},
		}},
		{"must-revalidate, fresh: reused", "/f", "must-revalidate, max-age=600", []step{
			{goodAuth, 200, statusMiss, goodAuth},
			{"", 200, statusHit, "none"},
		}},
		// A payload path would be kept forever; a restricted one is
		// revalidated with each client's own credentials once stale.
		{"must-revalidate, stale: each client's credentials", "/pool/b.deb", "must-revalidate, max-age=0", []step{
			{goodAuth, 200, statusMiss, goodAuth},
			{"", 401, statusNotStored, ""},
			{"Basic d3Jvbmc6d3Jvbmc=", 401, statusNotStored, "Basic d3Jvbmc6d3Jvbmc="},
			{goodAuth, 200, statusRefreshed, goodAuth},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newAuthOrigin(t, c.cc)
			host, port := splitAddr(o.addr)
			r := newRig(t, withHosts(origin.Host{Name: host, Port: port}))
			for i, s := range c.steps {
				before := len(o.seen())
				kv := []string{}
				if s.auth != "" {
					kv = append(kv, "Authorization", s.auth)
				}
				resp := r.do(http.MethodGet, r.cache.URL+c.path+"?cacheHostOrigin="+o.addr, kv...)
				var want []byte
				if s.status == 200 {
					want = []byte("private " + c.path)
				}
				if s.status == 401 {
					// The origin's own answer, passed through.
					if resp.Header.Get("Www-Authenticate") == "" {
						t.Errorf("step %d: 401 without the origin's WWW-Authenticate", i)
					}
				}
				r.expect(resp, s.status, s.cacheStatus, want)
				r.settle()
				seen := o.seen()[before:]
				switch {
				case s.upstream == "none" && len(seen) != 0:
					t.Fatalf("step %d: origin asked %d times, want none (a hit)", i, len(seen))
				case s.upstream != "none" && (len(seen) != 1 || seen[0] != s.upstream):
					t.Fatalf("step %d: origin saw Authorization %q, want once %q", i, seen, s.upstream)
				}
			}
		})
	}
}

// A request without credentials that waited for the discovery of a client
// with credentials is not served its answer when only must-revalidate let
// it be stored: it asks upstream itself (and gets the origin's 401).
func TestRFC9111_3_5_WaitingRequestsUseTheirOwnCredentials(t *testing.T) {
	o := newAuthOrigin(t, "must-revalidate, max-age=600")
	host, port := splitAddr(o.addr)
	r := newRig(t, withHosts(origin.Host{Name: host, Port: port}))
	url := r.cache.URL + "/dists/stable/InRelease?cacheHostOrigin=" + o.addr
	gate, arrived := make(chan struct{}), make(chan string, 4)
	o.gate, o.arrived = gate, arrived
	statuses := make(chan int, 2)
	get := func(kv ...string) {
		resp := r.do(http.MethodGet, url, kv...)
		r.mustBody(resp)
		statuses <- resp.StatusCode
	}
	go get("Authorization", goodAuth)
	<-arrived
	go get()
	waitFor(t, func() bool { return r.joined() == 1 })
	o.mu.Lock()
	o.gate = nil
	o.mu.Unlock()
	close(gate)
	got := map[int]int{}
	got[<-statuses]++
	got[<-statuses]++
	if got[200] != 1 || got[401] != 1 {
		t.Fatalf("statuses %v, want one 200 (with credentials) and one 401", got)
	}
	if seen := o.seen(); len(seen) != 2 || seen[1] != "" {
		t.Fatalf("origin saw Authorization %q, want the waiting request's own (none) second", seen)
	}
}
