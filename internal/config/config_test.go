package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env turns a map into the lookup function FromEnv takes.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustFromEnv(t *testing.T, m map[string]string) Config {
	t.Helper()
	c, err := FromEnv(env(m))
	if err != nil {
		t.Fatalf("FromEnv(%v): %v", m, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	want := Config{
		ListenAddr:  ":8081",
		SummaryAddr: ":5001",
		CacheRoot:   "./gatecache-data",
		Drives:      []Drive{{Index: 1, Path: filepath.Join("gatecache-data", "cache1"), SizeBytes: 10e9}},
		MaxStale:    -1,
		LogFormat:   "text",
		AccessLog:   true,
		BlockSize:   1 << 20,

		IndexMaxAge:    10 * time.Second,
		NegativeMaxAge: 30 * time.Second,

		UpstreamHeaderTimeout: 15 * time.Second,
		UpstreamIdleTimeout:   15 * time.Second,
		RevalidateWait:        3 * time.Second,
	}
	if got := mustFromEnv(t, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("FromEnv(empty) =\n%+v\nwant\n%+v", got, want)
	}
	// Blank values mean "unset" (manifests carry "value": "").
	if got := mustFromEnv(t, map[string]string{"LISTEN_ADDR": "", "STORAGE_1_SIZE_GB": "  ", "LOG_FORMAT": ""}); !reflect.DeepEqual(got, want) {
		t.Errorf("FromEnv(blank values) =\n%+v\nwant\n%+v", got, want)
	}
}

func TestGoodValues(t *testing.T) {
	const guid = "01234567-89ab-cdef-0123-456789abcdef"
	tests := []struct {
		name string
		env  map[string]string
		got  func(Config) any
		want any
	}{
		{"listen", map[string]string{"LISTEN_ADDR": "127.0.0.1:80"}, func(c Config) any { return c.ListenAddr }, "127.0.0.1:80"},
		{"listen v6", map[string]string{"LISTEN_ADDR": "[::1]:0"}, func(c Config) any { return c.ListenAddr }, "[::1]:0"},
		{"summary addr", map[string]string{"SUMMARY_ADDR": "localhost:5100"}, func(c Config) any { return c.SummaryAddr }, "localhost:5100"},
		{"cache root", map[string]string{"CACHE_ROOT": "/nginx"}, func(c Config) any { return c.Drives[0].Path }, "/nginx/cache1"},
		{"customer id upper", map[string]string{"CUSTOMER_ID": "01234567-89AB-CDEF-0123-456789ABCDEF"}, func(c Config) any { return c.CustomerID }, guid},
		{"node id braces", map[string]string{"CACHE_NODE_ID": "{" + guid + "}"}, func(c Config) any { return c.CacheNodeID }, guid},
		{"customer key", map[string]string{"CUSTOMER_KEY": guid}, func(c Config) any { return c.CustomerKey }, guid},
		{"api key defaults to customer key", map[string]string{"CUSTOMER_KEY": guid}, func(c Config) any { return c.SummaryAPIKey }, guid},
		{"api key", map[string]string{"CUSTOMER_KEY": guid, "SUMMARY_API_KEY": "k"}, func(c Config) any { return c.SummaryAPIKey }, "k"},
		{"drive size gb", map[string]string{"STORAGE_1_SIZE_GB": "150"}, func(c Config) any { return c.Drives }, []Drive{{1, "gatecache-data/cache1", 150e9}}},
		{"drive size units", map[string]string{"STORAGE_2_SIZE": "512MiB"}, func(c Config) any { return c.Drives }, []Drive{{2, "gatecache-data/cache2", 512 << 20}}},
		{"size wins over gb", map[string]string{"STORAGE_1_SIZE_GB": "50", "STORAGE_1_SIZE": "20GB"}, func(c Config) any { return c.Drives[0].SizeBytes }, int64(20e9)},
		{"path only", map[string]string{"STORAGE_3_PATH": "/mnt/c3/"}, func(c Config) any { return c.Drives }, []Drive{{3, "/mnt/c3", 10e9}}},
		{"drives sorted", map[string]string{"STORAGE_9_SIZE_GB": "10", "STORAGE_1_SIZE_GB": "10", "CACHE_ROOT": "/r"},
			func(c Config) any { return c.Drives }, []Drive{{1, "/r/cache1", 10e9}, {9, "/r/cache9", 10e9}}},
		{"upstream list", map[string]string{"UPSTREAM_HOST": " Parent.Local , 10.0.0.1:8080,[::1],fe80::1,[::1]:81"},
			func(c Config) any { return c.Upstreams }, []string{"parent.local:80", "10.0.0.1:8080", "[::1]:80", "[fe80::1]:80", "[::1]:81"}},
		{"upstream underscore", map[string]string{"UPSTREAM_HOST": "mcc_parent"}, func(c Config) any { return c.Upstreams }, []string{"mcc_parent:80"}},
		{"parent hostname fallback", map[string]string{"IOTEDGE_PARENTHOSTNAME": "gw4.plant"}, func(c Config) any { return c.Upstreams }, []string{"gw4.plant:80"}},
		{"upstream wins over parent", map[string]string{"UPSTREAM_HOST": "a", "IOTEDGE_PARENTHOSTNAME": "b"}, func(c Config) any { return c.Upstreams }, []string{"a:80"}},
		{"empty upstream falls back", map[string]string{"UPSTREAM_HOST": "", "IOTEDGE_PARENTHOSTNAME": "b"}, func(c Config) any { return c.Upstreams }, []string{"b:80"}},
		{"fallback direct", map[string]string{"UPSTREAM_HOST": "a", "UPSTREAM_FALLBACK_DIRECT": "True"}, func(c Config) any { return c.FallbackDirect }, true},
		{"proxy", map[string]string{"UPSTREAM_PROXY": "proxy.ot:3128"}, func(c Config) any { return *c.Proxy }, Proxy{Addr: "proxy.ot:3128"}},
		{"proxy url with user", map[string]string{"UPSTREAM_PROXY": "HTTP://bob:p@ss:w@[::1]:8080/"}, func(c Config) any { return *c.Proxy }, Proxy{"[::1]:8080", "bob", "p@ss:w"}},
		{"custom host", map[string]string{"CACHEABLE_CUSTOM_1_HOST": "Deb.Debian.org"}, func(c Config) any { return c.CustomHosts },
			[]CustomHost{{Index: 1, Host: "deb.debian.org", Canonical: "deb.debian.org"}}},
		{"custom host port", map[string]string{"CACHEABLE_CUSTOM_7_HOST": "mirror:8080", "CACHEABLE_CUSTOM_7_KEEP_QUERY": "yes"}, func(c Config) any { return c.CustomHosts },
			[]CustomHost{{Index: 7, Host: "mirror", Port: "8080", Canonical: "mirror:8080", KeepQuery: true}}},
		{"custom default port dropped from canonical", map[string]string{"CACHEABLE_CUSTOM_1_HOST": "http://a:80", "CACHEABLE_CUSTOM_2_HOST": "https://b:443/"}, func(c Config) any { return c.CustomHosts },
			[]CustomHost{{Index: 1, Host: "a", Port: "80", Canonical: "a"}, {Index: 2, Host: "b", Port: "443", TLS: true, Canonical: "b"}}},
		{"custom https other port", map[string]string{"CACHEABLE_CUSTOM_1_HOST": "https://b:80"}, func(c Config) any { return c.CustomHosts[0].Canonical }, "b:80"},
		{"custom wildcard", map[string]string{"CACHEABLE_CUSTOM_3_HOST": "*.Ubuntu.com", "CACHEABLE_CUSTOM_3_CANONICAL": "Ubuntu"}, func(c Config) any { return c.CustomHosts },
			[]CustomHost{{Index: 3, Host: "*.ubuntu.com", Canonical: "ubuntu"}}},
		{"custom ipv6", map[string]string{"CACHEABLE_CUSTOM_1_HOST": "[2001:db8::1]:8080", "CACHEABLE_CUSTOM_2_HOST": "[2001:db8::2]"}, func(c Config) any { return c.CustomHosts },
			[]CustomHost{{Index: 1, Host: "2001:db8::1", Port: "8080", Canonical: "[2001:db8::1]:8080"}, {Index: 2, Host: "2001:db8::2", Canonical: "[2001:db8::2]"}}},
		{"custom high index", map[string]string{"CACHEABLE_CUSTOM_999_HOST": "z"}, func(c Config) any { return c.CustomHosts[0].Index }, 999},
		{"summary public", map[string]string{"IS_SUMMARY_PUBLIC": "TRUE", "SUMMARY_API_KEY": "k"}, func(c Config) any { return c.SummaryPublic }, true},
		{"summary unrestricted", map[string]string{"IS_SUMMARY_ACCESS_UNRESTRICTED": "1"}, func(c Config) any { return c.SummaryUnrestricted }, true},
		{"summary false", map[string]string{"IS_SUMMARY_PUBLIC": "No"}, func(c Config) any { return c.SummaryPublic }, false},
		{"rate", map[string]string{"UPSTREAM_MAX_RATE": "10MB"}, func(c Config) any { return c.UpstreamMaxRate }, int64(10e6)},
		{"rate per second", map[string]string{"UPSTREAM_MAX_RATE": "5MiB/s"}, func(c Config) any { return c.UpstreamMaxRate }, int64(5 << 20)},
		{"rate plain", map[string]string{"UPSTREAM_MAX_RATE": "1000"}, func(c Config) any { return c.UpstreamMaxRate }, int64(1000)},
		{"rate unlimited", map[string]string{"UPSTREAM_MAX_RATE": "unlimited"}, func(c Config) any { return c.UpstreamMaxRate }, int64(0)},
		{"stale duration", map[string]string{"MAX_STALE": "72h"}, func(c Config) any { return c.MaxStale }, 72 * time.Hour},
		{"stale seconds", map[string]string{"MAX_STALE": "90"}, func(c Config) any { return c.MaxStale }, 90 * time.Second},
		{"stale zero", map[string]string{"MAX_STALE": "0"}, func(c Config) any { return c.MaxStale }, time.Duration(0)},
		{"stale unlimited", map[string]string{"MAX_STALE": "Unlimited"}, func(c Config) any { return c.MaxStale }, time.Duration(-1)},
		{"log json", map[string]string{"LOG_FORMAT": "JSON"}, func(c Config) any { return c.LogFormat }, "json"},
		{"header timeout", map[string]string{"UPSTREAM_HEADER_TIMEOUT": "5s"}, func(c Config) any { return c.UpstreamHeaderTimeout }, 5 * time.Second},
		{"header timeout seconds", map[string]string{"UPSTREAM_HEADER_TIMEOUT": "8"}, func(c Config) any { return c.UpstreamHeaderTimeout }, 8 * time.Second},
		{"idle timeout", map[string]string{"UPSTREAM_IDLE_TIMEOUT": "1500ms"}, func(c Config) any { return c.UpstreamIdleTimeout }, 1500 * time.Millisecond},
		{"revalidate wait", map[string]string{"REVALIDATE_WAIT": "250ms"}, func(c Config) any { return c.RevalidateWait }, 250 * time.Millisecond},
		{"revalidate wait zero", map[string]string{"REVALIDATE_WAIT": "0"}, func(c Config) any { return c.RevalidateWait }, time.Duration(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustFromEnv(t, tt.env)
			got := tt.got(c)
			if d, ok := tt.want.([]Drive); ok {
				for i := range d {
					d[i].Path = filepath.FromSlash(d[i].Path)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"LISTEN_ADDR": "8081"}, "LISTEN_ADDR"},
		{map[string]string{"LISTEN_ADDR": ":http"}, "LISTEN_ADDR"},
		{map[string]string{"SUMMARY_ADDR": ":70000"}, "SUMMARY_ADDR"},
		{map[string]string{"CUSTOMER_ID": "not-a-guid"}, "CUSTOMER_ID"},
		{map[string]string{"CACHE_NODE_ID": "0123456789abcdef0123456789abcdef"}, "CACHE_NODE_ID"},
		{map[string]string{"CACHE_NODE_ID": "01234567-89ab-cdef-0123-456789abcdeg"}, "CACHE_NODE_ID"},
		{map[string]string{"STORAGE_1_SIZE_GB": "abc"}, "STORAGE_1_SIZE_GB"},
		{map[string]string{"STORAGE_2_SIZE_GB": "10.5"}, "STORAGE_2_SIZE_GB"},
		{map[string]string{"STORAGE_2_SIZE_GB": "0"}, "STORAGE_2_SIZE_GB"},
		{map[string]string{"STORAGE_2_SIZE_GB": "-3"}, "STORAGE_2_SIZE_GB"},
		{map[string]string{"STORAGE_2_SIZE_GB": "99999999999"}, "STORAGE_2_SIZE_GB"},
		{map[string]string{"STORAGE_1_SIZE_GB": "abc", "STORAGE_1_SIZE": "1GB"}, "STORAGE_1_SIZE_GB"},
		{map[string]string{"STORAGE_3_SIZE": "0"}, "STORAGE_3_SIZE"},
		{map[string]string{"STORAGE_3_SIZE": "-1GB"}, "STORAGE_3_SIZE"},
		{map[string]string{"STORAGE_3_SIZE": "1.5GiB"}, "STORAGE_3_SIZE"},
		{map[string]string{"STORAGE_3_SIZE": "12 parsecs"}, "STORAGE_3_SIZE"},
		{map[string]string{"STORAGE_1_PATH": "/d", "STORAGE_2_PATH": "/d/"}, "STORAGE_2_PATH"},
		{map[string]string{"STORAGE_1_PATH": "r/cache2", "CACHE_ROOT": "r", "STORAGE_2_SIZE_GB": "10"}, "STORAGE_2_PATH"},
		{map[string]string{"UPSTREAM_HOST": "a,,b"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "http://parent"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "parent/path"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "parent:0"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "parent:65536"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "parent:"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "$upstream:8000"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "10.0.0.256"}, "UPSTREAM_HOST"},
		{map[string]string{"UPSTREAM_HOST": "[10.0.0.1]:80"}, "UPSTREAM_HOST"},
		{map[string]string{"IOTEDGE_PARENTHOSTNAME": "bad host"}, "IOTEDGE_PARENTHOSTNAME"},
		{map[string]string{"UPSTREAM_FALLBACK_DIRECT": "maybe"}, "UPSTREAM_FALLBACK_DIRECT"},
		{map[string]string{"UPSTREAM_PROXY": "proxy"}, "UPSTREAM_PROXY"},
		{map[string]string{"UPSTREAM_PROXY": "https://proxy:3128"}, "UPSTREAM_PROXY"},
		{map[string]string{"UPSTREAM_PROXY": "@proxy:3128"}, "UPSTREAM_PROXY"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "deb.debian.org/debian"}, "CACHEABLE_CUSTOM_1_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "ftp://x"}, "CACHEABLE_CUSTOM_1_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "*"}, "CACHEABLE_CUSTOM_1_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "*.10.0.0.1"}, "CACHEABLE_CUSTOM_1_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "a:b"}, "CACHEABLE_CUSTOM_1_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "a", "CACHEABLE_CUSTOM_2_HOST": "A"}, "CACHEABLE_CUSTOM_2_HOST"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "a", "CACHEABLE_CUSTOM_1_CANONICAL": "a/b"}, "CACHEABLE_CUSTOM_1_CANONICAL"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "a", "CACHEABLE_CUSTOM_1_CANONICAL": "a b"}, "CACHEABLE_CUSTOM_1_CANONICAL"},
		{map[string]string{"CACHEABLE_CUSTOM_1_HOST": "a", "CACHEABLE_CUSTOM_1_KEEP_QUERY": "sure"}, "CACHEABLE_CUSTOM_1_KEEP_QUERY"},
		{map[string]string{"CACHEABLE_CUSTOM_5_CANONICAL": "x"}, "CACHEABLE_CUSTOM_5_CANONICAL"},
		{map[string]string{"CACHEABLE_CUSTOM_500_KEEP_QUERY": "true"}, "CACHEABLE_CUSTOM_500_KEEP_QUERY"},
		{map[string]string{"IS_SUMMARY_PUBLIC": "yep"}, "IS_SUMMARY_PUBLIC"},
		{map[string]string{"IS_SUMMARY_ACCESS_UNRESTRICTED": "2"}, "IS_SUMMARY_ACCESS_UNRESTRICTED"},
		{map[string]string{"UPSTREAM_MAX_RATE": "fast"}, "UPSTREAM_MAX_RATE"},
		{map[string]string{"UPSTREAM_MAX_RATE": "-1"}, "UPSTREAM_MAX_RATE"},
		{map[string]string{"MAX_STALE": "-1h"}, "MAX_STALE"},
		{map[string]string{"MAX_STALE": "-5"}, "MAX_STALE"},
		{map[string]string{"MAX_STALE": "forever"}, "MAX_STALE"},
		{map[string]string{"MAX_STALE": "99999999999999999999"}, "MAX_STALE"},
		{map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{map[string]string{"UPSTREAM_HEADER_TIMEOUT": "0"}, "UPSTREAM_HEADER_TIMEOUT"},
		{map[string]string{"UPSTREAM_HEADER_TIMEOUT": "unlimited"}, "UPSTREAM_HEADER_TIMEOUT"},
		{map[string]string{"UPSTREAM_HEADER_TIMEOUT": "-1s"}, "UPSTREAM_HEADER_TIMEOUT"},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "soon"}, "UPSTREAM_IDLE_TIMEOUT"},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "0s"}, "UPSTREAM_IDLE_TIMEOUT"},
		{map[string]string{"REVALIDATE_WAIT": "-1s"}, "REVALIDATE_WAIT"},
		{map[string]string{"REVALIDATE_WAIT": "unlimited"}, "REVALIDATE_WAIT"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.env), func(t *testing.T) {
			c, err := FromEnv(env(tt.env))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("config returned with an error: %+v", c)
			}
			if e.Var != tt.wantVar {
				t.Errorf("Var = %q, want %q (%v)", e.Var, tt.wantVar, err)
			}
			value := strings.TrimSpace(tt.env[tt.wantVar])
			if e.Value != value {
				t.Errorf("Value = %q, want %q", e.Value, value)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, fmt.Sprintf("%s=%q: want ", e.Var, value)) || strings.Contains(msg, "\n") || e.Want == "" {
				t.Errorf("message %q does not name the variable, its value and what was expected on one line", msg)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"STORAGE_1_SIZE_GB": "abc"}, `STORAGE_1_SIZE_GB="abc": want a whole number of GB`},
		{map[string]string{"STORAGE_1_SIZE_GB": "0"}, `STORAGE_1_SIZE_GB="0": want a whole number of GB, at least 1`},
		{map[string]string{"CUSTOMER_ID": "x"}, `CUSTOMER_ID="x": want a GUID like 01234567-89ab-cdef-0123-456789abcdef`},
		{map[string]string{"CACHEABLE_CUSTOM_2_CANONICAL": "x"}, `CACHEABLE_CUSTOM_2_CANONICAL="x": want CACHEABLE_CUSTOM_2_HOST to be set as well`},
		{map[string]string{"LOG_FORMAT": "xml"}, `LOG_FORMAT="xml": want text or json`},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "0"}, `UPSTREAM_IDLE_TIMEOUT="0": want a duration above zero like 15s or 1m, or a number of seconds`},
		{map[string]string{"STORAGE_1_PATH": "/d", "STORAGE_2_PATH": "/d"}, `STORAGE_2_PATH="/d": want a directory not already used by drive 1 (/d)`},
		// Secrets never reach the message, even mistyped.
		{map[string]string{"CUSTOMER_KEY": "0badc0de-secret"}, `CUSTOMER_KEY="REDACTED": want a GUID like 01234567-89ab-cdef-0123-456789abcdef`},
		{map[string]string{"UPSTREAM_PROXY": "http://bob:hunter2@proxy"}, `UPSTREAM_PROXY="http://bob:REDACTED@proxy": want host:port or user:pass@host:port (an http:// prefix is allowed)`},
	}
	for _, tt := range tests {
		_, err := FromEnv(env(tt.env))
		if err == nil || err.Error() != tt.want {
			t.Errorf("FromEnv(%v) error = %v\nwant %s", tt.env, err, tt.want)
		}
	}
}

// TestErrorOrder checks that the first invalid variable in the documented
// order is reported, however many are wrong.
func TestErrorOrder(t *testing.T) {
	m := map[string]string{
		"LOG_FORMAT":              "xml",
		"REVALIDATE_WAIT":         "x",
		"MAX_STALE":               "x",
		"UPSTREAM_IDLE_TIMEOUT":   "x",
		"UPSTREAM_HEADER_TIMEOUT": "x",
		"UPSTREAM_MAX_RATE":       "x",
		"IS_SUMMARY_PUBLIC":       "x",
		"CACHEABLE_CUSTOM_9_HOST": "a/b",
		"CACHEABLE_CUSTOM_3_HOST": "a/b",
		"UPSTREAM_PROXY":          "x",
		"UPSTREAM_HOST":           "a/b",
		"STORAGE_2_SIZE_GB":       "x",
		"STORAGE_1_SIZE":          "x",
		"CUSTOMER_KEY":            "x",
		"CUSTOMER_ID":             "x",
		"SUMMARY_ADDR":            "x",
		"LISTEN_ADDR":             "x",
	}
	order := []string{"LISTEN_ADDR", "SUMMARY_ADDR", "CUSTOMER_ID", "CUSTOMER_KEY", "STORAGE_1_SIZE", "STORAGE_2_SIZE_GB",
		"UPSTREAM_HOST", "UPSTREAM_PROXY", "CACHEABLE_CUSTOM_3_HOST", "CACHEABLE_CUSTOM_9_HOST",
		"IS_SUMMARY_PUBLIC", "UPSTREAM_MAX_RATE", "UPSTREAM_HEADER_TIMEOUT", "UPSTREAM_IDLE_TIMEOUT",
		"MAX_STALE", "REVALIDATE_WAIT", "LOG_FORMAT"}
	for _, name := range order {
		_, err := FromEnv(env(m))
		var e *Error
		if !errors.As(err, &e) || e.Var != name {
			t.Fatalf("error = %v, want one about %s", err, name)
		}
		delete(m, name)
	}
	mustFromEnv(t, m)
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want []string // substrings, one per expected warning
	}{
		{map[string]string{"STORAGE_1_SIZE_GB": "10"}, nil},
		{map[string]string{"STORAGE_1_SIZE_GB": "5"}, []string{"drive 1", "STORAGE_1_SIZE_GB=5", "MCC's minimum of 10 GB"}},
		{map[string]string{"STORAGE_1_SIZE_GB": "50", "STORAGE_1_SIZE": "64MiB"}, []string{"STORAGE_1_SIZE=64MiB", "67108864 bytes", "10 GB"}},
		{map[string]string{"STORAGE_0_SIZE_GB": "10", "STORAGE_10_PATH": "/x"}, []string{"STORAGE_0_SIZE_GB is ignored", "STORAGE_10_PATH is ignored"}},
		{map[string]string{"UPSTREAM_FALLBACK_DIRECT": "true"}, []string{"UPSTREAM_FALLBACK_DIRECT has no effect"}},
		{map[string]string{"IS_SUMMARY_PUBLIC": "true"}, []string{"SUMMARY_API_KEY"}},
		{map[string]string{"UPSTREAM_HEADER_TIMEOUT": "20s"}, []string{"UPSTREAM_HEADER_TIMEOUT=20s is not under 20 s"}},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "1m"}, []string{"UPSTREAM_IDLE_TIMEOUT=1m is not under 20 s"}},
		{map[string]string{"UPSTREAM_IDLE_TIMEOUT": "19s", "UPSTREAM_HEADER_TIMEOUT": "19.5s"}, nil},
		{map[string]string{"REVALIDATE_WAIT": "5s", "UPSTREAM_HEADER_TIMEOUT": "5s"}, []string{"REVALIDATE_WAIT (5s) is not under UPSTREAM_HEADER_TIMEOUT (5s)"}},
	}
	for _, tt := range tests {
		c := mustFromEnv(t, tt.env)
		all := strings.Join(c.Warnings, "\n")
		if len(tt.want) == 0 && len(c.Warnings) != 0 {
			t.Errorf("FromEnv(%v) warnings = %q, want none", tt.env, c.Warnings)
		}
		for _, w := range tt.want {
			if !strings.Contains(all, w) {
				t.Errorf("FromEnv(%v) warnings = %q, want one mentioning %q", tt.env, c.Warnings, w)
			}
		}
	}
	// Ignored drive numbers do not become drives.
	c := mustFromEnv(t, map[string]string{"STORAGE_0_SIZE_GB": "10", "STORAGE_10_SIZE_GB": "10"})
	if len(c.Drives) != 1 || c.Drives[0].Index != 1 {
		t.Errorf("drives = %+v, want only the default drive 1", c.Drives)
	}
}

func TestLogAttrsRedacts(t *testing.T) {
	const (
		customerKey = "0badc0de-0000-4000-8000-5ec2e75ec2e7"
		apiKey      = "api-key-s3cr3t"
		password    = "pr0xy-pa55"
	)
	for _, m := range []map[string]string{
		{"CUSTOMER_KEY": customerKey, "SUMMARY_API_KEY": apiKey, "UPSTREAM_PROXY": "ot:" + password + "@proxy:3128"},
		{"CUSTOMER_KEY": customerKey, "UPSTREAM_PROXY": "http://ot:" + password + "@proxy:3128"}, // API key defaults to the customer key
	} {
		c := mustFromEnv(t, m)
		c.CustomHosts = []CustomHost{{Index: 1, Host: "a", Canonical: "a"}}
		attrs := c.LogAttrs()
		var out bytes.Buffer
		for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
			slog.New(h).LogAttrs(t.Context(), slog.LevelInfo, "config", attrs...)
		}
		fmt.Fprint(&out, attrs)
		s := out.String()
		for _, secret := range []string{customerKey, strings.ToUpper(customerKey), apiKey, password} {
			if strings.Contains(s, secret) {
				t.Errorf("log output contains secret %q:\n%s", secret, s)
			}
		}
		for _, want := range []string{`"customer_key":"REDACTED"`, `"summary_api_key":"REDACTED"`, `"password":"REDACTED"`, `"user":"ot"`, `"addr":"proxy:3128"`, `"size_bytes":10000000000`, `"canonical":"a"`} {
			if !strings.Contains(s, want) {
				t.Errorf("log output lacks %s:\n%s", want, s)
			}
		}
	}
	// Unset secrets show as empty, so an operator can tell "unset" from "set".
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).LogAttrs(t.Context(), slog.LevelInfo, "config", mustFromEnv(t, nil).LogAttrs()...)
	for _, want := range []string{`"customer_key":""`, `"proxy":"none"`, `"max_stale":"unlimited"`, `"custom_hosts":"none"`,
		`"upstream_header_timeout":15000000000`, `"upstream_idle_timeout":15000000000`, `"revalidate_wait":3000000000`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("default log output lacks %s:\n%s", want, out.String())
		}
	}
}

func TestFreshnessVariables(t *testing.T) {
	c, err := FromEnv(env(map[string]string{
		"INDEX_MAX_AGE": "1m", "NEGATIVE_MAX_AGE": "0", "INDEX_PATTERNS": "InRelease, Packages*", "PAYLOAD_PATTERNS": "*.deb",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.IndexMaxAge != time.Minute || c.NegativeMaxAge != 0 || len(c.IndexPatterns) != 2 || c.IndexPatterns[1] != "Packages*" || c.PayloadPatterns[0] != "*.deb" {
		t.Fatalf("got %v %v %q %q", c.IndexMaxAge, c.NegativeMaxAge, c.IndexPatterns, c.PayloadPatterns)
	}
	if d := mustFromEnv(t, nil); d.IndexMaxAge != 10*time.Second || d.NegativeMaxAge != 30*time.Second || d.IndexPatterns != nil {
		t.Fatalf("defaults %v %v %q", d.IndexMaxAge, d.NegativeMaxAge, d.IndexPatterns)
	}
	for name, v := range map[string]string{"INDEX_MAX_AGE": "soon", "NEGATIVE_MAX_AGE": "-5s", "INDEX_PATTERNS": "a/b", "PAYLOAD_PATTERNS": "[x"} {
		_, err := FromEnv(env(map[string]string{name: v}))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != name {
			t.Errorf("%s=%q: err %v, want an error naming %s", name, v, err, name)
		}
	}
}
