package server

import (
	"net/http/httptest"
	"testing"
)

// A discovery asks upstream for the blocks around the client's one range,
// and for the whole object whenever that range depends on the length it
// does not know yet.
func TestDiscoveryRange(t *testing.T) {
	const bs = 64 << 10
	for _, c := range []struct {
		method, rng, ifRange string
		header               string
		start                int64
	}{
		{"GET", "bytes=0-99", "", "bytes=0-65535", 0},
		{"GET", "bytes=70000-70010", "", "bytes=65536-131071", 65536},
		{"GET", "bytes=65535-65536", "", "bytes=0-131071", 0},
		{"GET", "bytes=100000-", "", "bytes=65536-", 65536},
		{"GET", "bytes= 70000 - 70010 ", "", "bytes=65536-131071", 65536}, // whitespace as net/http allows
		{"GET", "bytes=0-", "", "", 0},                                    // the whole object
		{"GET", "bytes=-100", "", "", 0},                                  // a suffix: from the unknown end
		{"GET", "bytes=0-9,20-29", "", "", 0},
		{"GET", "bytes=100-50", "", "", 0}, // malformed
		{"GET", "bytes=x-y", "", "", 0},
		{"GET", "items=0-9", "", "", 0},
		{"GET", "bytes=0-9", `"v1"`, "", 0}, // may turn into the whole object
		{"HEAD", "bytes=0-9", "", "", 0},
		{"GET", "", "", "", 0},
		// A last byte in int64's last block: no block end to round up
		// to, so the rest of the object from the range's block.
		{"GET", "bytes=70000-9223372036854775806", "", "bytes=65536-", 65536},
	} {
		r := httptest.NewRequest(c.method, "/", nil)
		if c.rng != "" {
			r.Header.Set("Range", c.rng)
		}
		if c.ifRange != "" {
			r.Header.Set("If-Range", c.ifRange)
		}
		if h, start := discoveryRange(r, bs); h != c.header || start != c.start {
			t.Errorf("%s Range %q If-Range %q: upstream Range %q from %d, want %q from %d", c.method, c.rng, c.ifRange, h, start, c.header, c.start)
		}
	}
}
