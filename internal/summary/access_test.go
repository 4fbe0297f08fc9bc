package summary

import (
	"net/http/httptest"
	"testing"
)

func TestAccessMatrix(t *testing.T) {
	const (
		loop    = "127.0.0.1:40000"
		remote  = "192.0.2.7:40000"
		secret  = "s3cret-key"
		allowed = ""
	)
	cases := []struct {
		name   string
		access Access
		addr   string
		header string // X-Api-Key
		query  string // apiKey=
		want   string // refusal body, or allowed
	}{
		{"unrestricted remote no key", Access{Unrestricted: true, APIKey: secret}, remote, "", "", allowed},
		{"unrestricted remote wrong key", Access{Unrestricted: true, Public: true, APIKey: secret}, remote, "nope", "", allowed},
		{"unrestricted without key set", Access{Unrestricted: true}, remote, "", "", allowed},

		{"public remote no key", Access{Public: true, APIKey: secret}, remote, "", "", msgNeedKey},
		{"public remote key header", Access{Public: true, APIKey: secret}, remote, secret, "", allowed},
		{"public remote key query", Access{Public: true, APIKey: secret}, remote, "", secret, allowed},
		{"public remote wrong header", Access{Public: true, APIKey: secret}, remote, "s3cret-kez", "", msgWrongKey},
		{"public remote wrong query", Access{Public: true, APIKey: secret}, remote, "", "s3cret", msgWrongKey},
		{"public remote prefix of key", Access{Public: true, APIKey: secret}, remote, secret + "x", "", msgWrongKey},
		{"public loopback no key", Access{Public: true, APIKey: secret}, loop, "", "", allowed},
		{"public loopback wrong key", Access{Public: true, APIKey: secret}, loop, "nope", "", allowed},
		{"public empty key remote", Access{Public: true}, remote, "", "", msgNeedKey},
		{"public empty key remote any key", Access{Public: true}, remote, "anything", "", msgWrongKey},
		{"public empty key loopback", Access{Public: true}, loop, "", "", allowed},

		{"restricted remote no key", Access{APIKey: secret}, remote, "", "", msgRestricted},
		{"restricted remote key header", Access{APIKey: secret}, remote, secret, "", allowed},
		{"restricted remote key query", Access{APIKey: secret}, remote, "", secret, allowed},
		{"restricted remote wrong key", Access{APIKey: secret}, remote, "nope", "", msgWrongKey},
		{"restricted loopback", Access{APIKey: secret}, loop, "", "", allowed},
		{"restricted loopback 127/8", Access{}, "127.8.9.10:1", "", "", allowed},
		{"restricted loopback v6", Access{}, "[::1]:40000", "", "", allowed},
		{"restricted loopback v4-mapped", Access{}, "[::ffff:127.0.0.1]:40000", "", "", allowed},
		{"restricted remote v6", Access{}, "[2001:db8::1]:40000", "", "", msgRestricted},
		{"restricted no key set remote", Access{}, remote, "", "", msgRestricted},
		{"restricted no key set remote any key", Access{}, remote, "anything", "", msgWrongKey},
		{"restricted unparsable addr", Access{}, "garbage", "", "", msgRestricted},
	}
	codes := map[string]int{allowed: 200, msgNeedKey: 401, msgWrongKey: 403, msgRestricted: 403}
	for _, c := range cases {
		s := New(Options{Access: c.access})
		for _, path := range []string{"/summary", "/metrics", "/"} {
			target := path
			if c.query != "" {
				target += "?apiKey=" + c.query
			}
			req := httptest.NewRequest("GET", target, nil)
			req.RemoteAddr = c.addr
			if c.header != "" {
				req.Header.Set("X-Api-Key", c.header)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != codes[c.want] {
				t.Errorf("%s %s: status %d, want %d (%q)", c.name, path, w.Code, codes[c.want], w.Body)
				continue
			}
			if c.want != allowed && w.Body.String() != c.want+"\n" {
				t.Errorf("%s %s: body %q, want %q", c.name, path, w.Body, c.want+"\n")
			}
		}
		// Health checks stay open whatever the settings and the client.
		for _, path := range []string{"/healthz", "/readyz"} {
			req := httptest.NewRequest("GET", path, nil)
			req.RemoteAddr = c.addr
			req.Header.Set("X-Api-Key", "nope")
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code != 200 || w.Body.String() != "ok\n" {
				t.Errorf("%s %s: %d %q", c.name, path, w.Code, w.Body)
			}
		}
	}
}
