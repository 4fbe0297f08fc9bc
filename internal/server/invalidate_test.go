package server

import (
	"net/http"
	"testing"

	"gatecache/internal/origintest"
)

// TestRFC9111_4_4_UnsafeMethodInvalidatesLocations: a non-error answer to a
// POST invalidates the target URI and the Location and Content-Location
// URIs of the same origin, and nothing of another origin.
func TestRFC9111_4_4_UnsafeMethodInvalidatesLocations(t *testing.T) {
	r := newRig(t)
	for _, p := range []string{"/items/1", "/items/2", "/items/3"} {
		r.origin.Set(p, origintest.Object{Size: 1000})
		r.expect(r.get(p), 200, statusMiss, r.origin.Want(p))
		r.flights.Wait()
		r.expect(r.get(p), 200, statusHit, r.origin.Want(p))
	}
	r.origin.Set("/items", origintest.Object{OtherMethods: http.StatusCreated, Header: http.Header{
		"Location":         {"/items/1"},
		"Content-Location": {"http://" + r.origin.Addr + "/items/2"},
	}})
	r.origin.Set("/other", origintest.Object{OtherMethods: http.StatusOK, Header: http.Header{
		"Location": {"http://elsewhere.example/items/3"},
	}})
	resp := r.do(http.MethodPost, r.cache.URL+"/items?cacheHostOrigin="+r.origin.Addr)
	r.mustBody(resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: status %d, want 201", resp.StatusCode)
	}
	resp = r.do(http.MethodPost, r.cache.URL+"/other?cacheHostOrigin="+r.origin.Addr)
	r.mustBody(resp)
	r.expect(r.get("/items/1"), 200, statusMiss, r.origin.Want("/items/1"))
	r.expect(r.get("/items/2"), 200, statusMiss, r.origin.Want("/items/2"))
	r.expect(r.get("/items/3"), 200, statusHit, r.origin.Want("/items/3"))
}
