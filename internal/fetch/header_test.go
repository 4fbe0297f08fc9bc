package fetch

import "testing"

// RFC 9110 §10.1.5: the client's product tokens go upstream, with this
// node's appended once.
func TestRFC9110_10_1_5_UserAgentKeepsTheClients(t *testing.T) {
	c := New(Options{})
	for client, want := range map[string]string{
		"":                              "gatecache",
		"apt/2.6.1 (amd64)":             "apt/2.6.1 (amd64) gatecache",
		"  curl/8.5.0 ":                 "curl/8.5.0 gatecache",
		"gatecache":                     "gatecache",
		"Debian APT-HTTP/1.3 gatecache": "Debian APT-HTTP/1.3 gatecache",
	} {
		if got := c.userAgent(client); got != want {
			t.Errorf("userAgent(%q) = %q, want %q", client, got, want)
		}
	}
}
