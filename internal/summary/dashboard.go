package summary

import (
	_ "embed"
	"net/http"
)

// dashboardHTML is the whole dashboard: markup, CSS and JS in one file, so
// that a gateway without internet access shows it complete.
//
//go:embed dashboard.html
var dashboardHTML []byte

// dashboardCSP lets the page run its own inline code and talk to this
// node only: the browser itself enforces "no asset from the internet".
const dashboardCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func serveDashboard(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the URL may carry apiKey
	h.Set("Cache-Control", "no-store")
	w.Write(dashboardHTML)
}
