package summary

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A draining node tells a load balancer to send it nothing new: /readyz
// answers 503, from any client and without a key (a load balancer checks
// from another host), while /healthz still answers 200 because the process
// is alive and finishing its responses.
func TestDrainMakesReadyzAnswer503(t *testing.T) {
	s := New(Options{})
	s.Drain()
	for path, want := range map[string]int{"/readyz": http.StatusServiceUnavailable, "/healthz": http.StatusOK} {
		req := httptest.NewRequest("GET", path, nil) // 192.0.2.1: remote, no key
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != want {
			t.Errorf("%s while draining: %d %q, want %d", path, w.Code, w.Body, want)
		}
	}
	w := get(t, s.Handler(), "/readyz")
	if body := strings.TrimSpace(w.Body.String()); body != "draining" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("/readyz while draining: body %q, Cache-Control %q", body, w.Header().Get("Cache-Control"))
	}
}
