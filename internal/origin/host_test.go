package origin

import "testing"

func TestValidName(t *testing.T) {
	for h, want := range map[string]bool{
		"deb.debian.org": true, "Packagerepo.com": true, "parent_gw": true, "127.0.0.1": true,
		"10.0.0.256": false, "": false, "-bad.com": false, "bad-.com": false, "a..b": false,
		"exa mple.com": false, "host/x": false, "1.2.3": false,
	} {
		if got := validName(h); got != want {
			t.Errorf("validName(%q) = %v, want %v", h, got, want)
		}
	}
}

func TestParseHostPort(t *testing.T) {
	for in, want := range map[string][2]string{
		"Parent.Local": {"parent.local", ""}, "10.0.0.1:08080": {"10.0.0.1", "8080"}, "[::1]": {"::1", ""},
		"[::1]:81": {"::1", "81"}, "FE80::1": {"fe80::1", ""}, "fe80::1%Eth0": {"fe80::1%Eth0", ""}, "mcc_parent": {"mcc_parent", ""},
	} {
		if host, port, ok := ParseHostPort(in); !ok || host != want[0] || port != want[1] {
			t.Errorf("ParseHostPort(%q) = %q, %q, %v; want %q, %q", in, host, port, ok, want[0], want[1])
		}
	}
	for _, in := range []string{"", "a:", "a:0", "a:65536", "a:000080", "a:b", "[10.0.0.1]:80", "[::1", "[::1]x", "10.0.0.256", "$up:80", "*.a.com", "a b"} {
		if host, port, ok := ParseHostPort(in); ok {
			t.Errorf("ParseHostPort(%q) = %q, %q; want an error", in, host, port)
		}
	}
}

// A host the configuration accepts is one a request can name: resolved
// with the alias DefaultAlias gives it, except under a wildcard, where
// each concrete host keeps its own.
func TestConfiguredHostsResolve(t *testing.T) {
	tests := []struct {
		value, name, port string
		tls               bool
		request, alias    string // the Host header a client sends; the alias it gets
	}{
		{"Deb.Debian.org", "deb.debian.org", "", false, "deb.debian.org", "deb.debian.org"},
		{"mirror:8080", "mirror", "8080", false, "mirror:8080", "mirror:8080"},
		{"http://a:80", "a", "80", false, "a", "a"},
		{"HTTPS://b:443/", "b", "443", true, "b", "b"},
		{"https://b:80", "b", "80", true, "b:80", "b:80"},
		{"[2001:db8::1]:8080", "2001:db8::1", "8080", false, "[2001:db8::1]:8080", "[2001:db8::1]:8080"},
		{"10.0.0.5", "10.0.0.5", "", false, "10.0.0.5", "10.0.0.5"},
		{"*.Ubuntu.com", "*.ubuntu.com", "", false, "archive.ubuntu.com", "archive.ubuntu.com"},
		{"*.cdn.example:8080", "*.cdn.example", "8080", false, "a.cdn.example:8080", "a.cdn.example:8080"},
	}
	for _, tt := range tests {
		h, ok := ParseHost(tt.value)
		if !ok || h.Name != tt.name || h.Port != tt.port || h.TLS != tt.tls {
			t.Errorf("ParseHost(%q) = %+v, %v", tt.value, h, ok)
			continue
		}
		h.Canonical = h.DefaultAlias()
		got, err := NewResolver([]Host{h}).Resolve(readRequest(t, get("/x", tt.request)))
		if err != nil || got.Alias != tt.alias {
			t.Errorf("%q (alias %q): a request for Host %q resolves to %+v, %v; want alias %q", tt.value, h.Canonical, tt.request, got, err, tt.alias)
		}
	}
	for _, in := range []string{"", "/", "deb.debian.org/debian", "ftp://x", "*", "*.", "*.10.0.0.1", "a:b", "u@a", "a?x", "a#f", "https://", "https://a//"} {
		if h, ok := ParseHost(in); ok {
			t.Errorf("ParseHost(%q) = %+v; want an error", in, h)
		}
	}
}
