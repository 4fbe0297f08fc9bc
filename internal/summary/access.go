package summary

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
)

// Refusal bodies: one line each, saying what would let the client in.
const (
	msgNeedKey    = "summary requires an API key: send X-Api-Key"
	msgWrongKey   = "wrong API key"
	msgRestricted = "summary is restricted to this gateway (loopback); set IS_SUMMARY_PUBLIC=true and SUMMARY_API_KEY, or IS_SUMMARY_ACCESS_UNRESTRICTED=true"
)

// guard applies the access rules (see doc.go) to /summary, /metrics and the dashboard.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := s.access.check(r); code != 0 {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, msg, code)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check returns 0 when r may read the summary, else the status and body.
// Loopback clients are always let in: whoever is on the gateway can read
// its files anyway, and the operator must never be locked out of the node.
// RemoteAddr is the TCP peer; X-Forwarded-For is ignored on purpose, since
// any client can send it.
func (a Access) check(r *http.Request) (int, string) {
	if a.Unrestricted || loopback(r.RemoteAddr) {
		return 0, ""
	}
	key := r.Header.Get("X-Api-Key")
	if key == "" {
		key = r.URL.Query().Get("apiKey")
	}
	switch {
	case key != "" && a.keyMatches(key):
		return 0, ""
	case key != "":
		return http.StatusForbidden, msgWrongKey
	case a.Public:
		return http.StatusUnauthorized, msgNeedKey
	default:
		return http.StatusForbidden, msgRestricted
	}
}

// keyMatches compares in constant time so that response timing does not
// reveal how much of a guess was right. An empty configured key matches
// nothing.
func (a Access) keyMatches(key string) bool {
	return a.APIKey != "" && subtle.ConstantTimeCompare([]byte(key), []byte(a.APIKey)) == 1
}

func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr // a bare address, as some test harnesses set it
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
