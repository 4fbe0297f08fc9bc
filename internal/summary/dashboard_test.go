package summary

import (
	"context"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/store"
)

const chromiumPath = "/usr/bin/chromium"

func TestDashboardSelfContained(t *testing.T) {
	s := New(Options{})
	w := get(t, s.Handler(), "/")
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// The SVG namespace is a name, not a fetch; nothing else may point out.
	page := strings.ReplaceAll(w.Body.String(), "http://www.w3.org/2000/svg", "")
	for _, bad := range []string{"http://", "https://", "//cdn", "<link", "src=", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("dashboard contains %q: it must not load anything from elsewhere", bad)
		}
	}
	for _, id := range []string{"hit-ratio", "hit-bytes", "miss-bytes", "egress-bytes", "chart", "origins", "drives", "upstreams"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("no element id=%q", id)
		}
	}
}

// browserServer serves a node with known traffic after two Ticks: 3 MiB
// from cache and 1 MiB from upstream in all, the last period 1 MiB : 0.5 MiB.
func browserServer(t *testing.T, access Access, wrap func(http.Handler) http.Handler) *httptest.Server {
	clk := newClock()
	rec := NewRecorder()
	src := &fakeSources{
		drives:    []Drive{{Index: 1, DriveStats: store.DriveStats{Path: "/nginx/cache1", SizeBytes: 10 << 30, UsedBytes: 4 << 30, Objects: 12}}, {Index: 2, DriveStats: store.DriveStats{Path: "/nginx/cache2", SizeBytes: 1 << 30, Failed: true, Err: "disk full"}}},
		upstreams: []fetch.UpstreamStats{{Name: "gw-a", Parent: true, Requests: 3, Down: true, LastError: "connect: refused"}, {Name: "deb.debian.org", Requests: 2, Bytes: 1 << 20}},
		fills:     flight.Stats{ActiveFills: 1, Coalesced: 4},
	}
	s := New(Options{Recorder: rec, Sources: src, Access: access, Now: clk.Now, Identity: Identity{CacheNodeID: "node-<b>1</b>"}})
	rec.Record("download.windowsupdate.com", 2<<20, 0)
	rec.Record("download.windowsupdate.com", 0, 512<<10)
	clk.Advance(15 * time.Second)
	s.Tick()
	rec.Record("deb.debian.org", 1<<20, 512<<10)
	clk.Advance(15 * time.Second)
	s.Tick()
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return srv
}

// chromium loads url headless and returns the DOM after its scripts ran.
// Extra flags (a screenshot) may be appended.
func chromium(t *testing.T, url string, extra ...string) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no browser at %s (CI installs Debian's chromium): %v", chromiumPath, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, chromiumPath, append(args, "--dump-dom", url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// text returns the text inside the element with the given id, and its tag.
func text(t *testing.T, dom, id string) (tag, inner string) {
	t.Helper()
	m := regexp.MustCompile(`(<[^>]*\bid="` + regexp.QuoteMeta(id) + `"[^>]*>)([^<]*)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("no element id=%q in the DOM", id)
	}
	return m[1], m[2]
}

func TestDashboardInBrowser(t *testing.T) {
	srv := browserServer(t, Access{}, nil)
	shot := os.Getenv("GATECACHE_DASHBOARD_SCREENSHOT") // e.g. /tmp/dash.png, to look at the page
	var extra []string
	if shot != "" {
		extra = []string{"--screenshot=" + shot, "--window-size=1200,900"}
	}
	dom := chromium(t, srv.URL+"/", extra...)
	want := map[string]string{
		"hit-ratio":          "75.0 %",
		"hit-bytes":          "3.0 MiB",
		"miss-bytes":         "1.0 MiB",
		"egress-bytes":       "4.0 MiB",
		"requests":           "3",
		"period-hit-ratio":   "66.7 %",
		"period-egress-rate": "102.4 KiB/s", // 1.5 MiB over 15 s
		"fills-active":       "1",
		"node-id":            "node-<b>1</b>", // shown as text, never parsed as HTML
	}
	for id, w := range want {
		if _, got := text(t, dom, id); html.UnescapeString(got) != w {
			t.Errorf("#%s shows %q, want %q", id, got, w)
		}
	}
	if tag, _ := text(t, dom, "hit-bytes"); !strings.Contains(tag, `data-bytes="3145728"`) {
		t.Errorf("hit-bytes element %s lacks the exact count", tag)
	}
	if tag, _ := text(t, dom, "miss-bytes"); !strings.Contains(tag, `data-bytes="1048576"`) {
		t.Errorf("miss-bytes element %s lacks the exact count", tag)
	}
	for _, s := range []string{`data-origin="download.windowsupdate.com"`, `data-origin="deb.debian.org"`,
		`data-upstream="gw-a"`, `class="state down"`, `data-drive="1"`, `width:40.0%`, `class="state failed"`} {
		if !strings.Contains(dom, s) {
			t.Errorf("DOM lacks %s", s)
		}
	}
	if n := strings.Count(dom, `class="hit"`); n != 2 {
		t.Errorf("chart has %d hit bars, want 2 (one per period)", n)
	}
	if _, status := text(t, dom, "status"); !strings.HasPrefix(status, "updated") {
		t.Errorf("status %q", status)
	}
	if shot != "" {
		if _, err := os.Stat(shot); err != nil {
			t.Errorf("screenshot: %v", err)
		}
	}
}

// A remote operator opens /?apiKey=...: the page must pass the key on to
// its fetches.
func TestDashboardInBrowserWithKey(t *testing.T) {
	remote := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.RemoteAddr = "192.0.2.7:40000" // pretend the browser is elsewhere
			h.ServeHTTP(w, r)
		})
	}
	srv := browserServer(t, Access{Public: true, APIKey: "k&y=1"}, remote)
	dom := chromium(t, srv.URL+"/?apiKey=k%26y%3D1")
	if _, got := text(t, dom, "hit-ratio"); got != "75.0 %" {
		t.Errorf("with key: hit-ratio %q", got)
	}
	// Without it the page itself is refused, with the reason in the body.
	if dom = chromium(t, srv.URL+"/"); !strings.Contains(dom, msgNeedKey) || strings.Contains(dom, `id="hit-ratio"`) {
		t.Errorf("without key the browser shows:\n%s", dom)
	}
}
