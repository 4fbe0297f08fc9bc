package summary

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

// ReadyCheckedSince tells whether anything watches /readyz: only a
// request to /readyz counts, and only from the time asked about on.
func TestReadyCheckedSince(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }})
	if s.ReadyCheckedSince(now.Add(-time.Hour)) {
		t.Fatal("checked before any request to /readyz")
	}
	get(t, s.Handler(), "/healthz")
	if s.ReadyCheckedSince(now.Add(-time.Hour)) {
		t.Fatal("/healthz counted as a readiness check")
	}
	get(t, s.Handler(), "/readyz")
	if !s.ReadyCheckedSince(now) || s.ReadyCheckedSince(now.Add(time.Nanosecond)) {
		t.Fatal("a /readyz request not dated when it was made")
	}
}
