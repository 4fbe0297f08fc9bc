package hostname

import "testing"

func TestValid(t *testing.T) {
	for h, want := range map[string]bool{
		"deb.debian.org": true, "Packagerepo.com": true, "parent_gw": true, "127.0.0.1": true,
		"10.0.0.256": false, "": false, "-bad.com": false, "bad-.com": false, "a..b": false,
		"exa mple.com": false, "host/x": false, "1.2.3": false,
	} {
		if got := Valid(h); got != want {
			t.Errorf("Valid(%q) = %v, want %v", h, got, want)
		}
	}
}
