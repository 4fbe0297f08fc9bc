package config

import (
	"math"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"512", 512},
		{"10B", 10},
		{"1k", 1000},
		{"1KB", 1000},
		{"2GB", 2e9},
		{"10G", 10e9},
		{"3 TB", 3e12},
		{"1KiB", 1024},
		{"512MiB", 512 << 20},
		{"512mib", 512 << 20},
		{"4Gi", 4 << 30},
		{"1TiB", 1 << 40},
		{" 7MB ", 7e6},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 << 40},
	}
	for _, tt := range good {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	bad := []string{
		"", " ", "-1", "-1GB", "+5", "1.5GiB", "1,5GB", "GB", "10 parsecs", "10PB", "10MBs",
		"9223372036854775808", "8388608TiB", "9300000000GB", "0x10", "1e9",
	}
	for _, in := range bad {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestRedactUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"proxy:3128":                 "proxy:3128",
		"bob@proxy:3128":             "bob@proxy:3128",
		"bob:pw@proxy:3128":          "bob:REDACTED@proxy:3128",
		"http://bob:p@w:d@proxy":     "http://bob:REDACTED@proxy",
		"https://bob:pw@proxy:3128/": "https://bob:REDACTED@proxy:3128/",
	} {
		if got := redactUserinfo(in); got != want {
			t.Errorf("redactUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseGUID(t *testing.T) {
	const want = "01234567-89ab-cdef-0123-456789abcdef"
	for _, in := range []string{want, "01234567-89AB-CDEF-0123-456789ABCDEF", "{" + want + "}"} {
		if got, ok := parseGUID(in); !ok || got != want {
			t.Errorf("parseGUID(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "{" + want, want + "0", "0123456789abcdef0123456789abcdef0000", "01234567-89ab-cdef-0123_456789abcdef"} {
		if got, ok := parseGUID(in); ok {
			t.Errorf("parseGUID(%q) = %q, want failure", in, got)
		}
	}
}

// FuzzParseSize checks that ParseSize never panics, never returns a
// negative size, and round-trips plain integers.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "512", "512MiB", "2GB", "10G", "1.5GiB", "-1", "9223372036854775807", "8388608TiB", " 3 kb "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		if allDigits(s) {
			want, perr := strconv.ParseInt(s, 10, 64)
			if perr != nil || n != want {
				t.Fatalf("ParseSize(%q) = %d, want %d (%v)", s, n, want, perr)
			}
		}
		back, err := ParseSize(strconv.FormatInt(n, 10))
		if err != nil || back != n {
			t.Fatalf("ParseSize(%d) = %d, %v: does not round-trip", n, back, err)
		}
	})
}
