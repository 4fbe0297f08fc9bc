package config

import (
	"log/slog"
	"strconv"
	"strings"
)

// LogAttrs returns the effective configuration as slog attributes, to be
// logged once at start. CustomerKey, SummaryAPIKey and
// Proxy.Password are shown as "REDACTED" when set, so that logs shipped off
// the gateway never carry them. Warnings are not included: log each on its
// own line so that it stands out.
func (c Config) LogAttrs() []slog.Attr {
	attrs := []slog.Attr{
		slog.String("listen_addr", c.ListenAddr),
		slog.String("summary_addr", c.SummaryAddr),
		slog.String("cache_root", c.CacheRoot),
		slog.String("customer_id", c.CustomerID),
		slog.String("cache_node_id", c.CacheNodeID),
		slog.String("customer_key", redact(c.CustomerKey)),
	}

	drives := make([]any, 0, len(c.Drives))
	for _, d := range c.Drives {
		drives = append(drives, slog.Group(strconv.Itoa(d.Index),
			slog.String("path", d.Path),
			slog.Int64("size_bytes", d.SizeBytes)))
	}
	attrs = append(attrs, slog.Group("drives", drives...))

	attrs = append(attrs, slog.String("upstreams", orNone(strings.Join(c.Upstreams, ","))))
	if c.UpstreamHash {
		attrs = append(attrs, slog.String("upstream_policy", "hash"), slog.Any("upstream_weights", c.UpstreamWeights))
	}
	if c.Proxy == nil {
		attrs = append(attrs, slog.String("proxy", "none"))
	} else {
		attrs = append(attrs, slog.Group("proxy",
			slog.String("addr", c.Proxy.Addr),
			slog.String("user", c.Proxy.User),
			slog.String("password", redact(c.Proxy.Password))))
	}
	attrs = append(attrs, slog.Bool("fallback_direct", c.FallbackDirect))

	if len(c.CustomHosts) == 0 {
		// An empty group would vanish from the log; "none" says it was checked.
		attrs = append(attrs, slog.String("custom_hosts", "none"))
	} else {
		hosts := make([]any, 0, len(c.CustomHosts))
		for _, h := range c.CustomHosts {
			hosts = append(hosts, slog.Group(strconv.Itoa(h.Index),
				slog.String("host", h.Host),
				slog.String("port", h.Port),
				slog.Bool("tls", h.TLS),
				slog.String("canonical", h.Canonical),
				slog.Bool("keep_query", h.KeepQuery)))
		}
		attrs = append(attrs, slog.Group("custom_hosts", hosts...))
	}

	maxStale := "unlimited"
	if c.MaxStale >= 0 {
		maxStale = c.MaxStale.String()
	}
	rate := "unlimited"
	if c.UpstreamMaxRate > 0 {
		rate = strconv.FormatInt(c.UpstreamMaxRate, 10)
	}
	return append(attrs,
		slog.Bool("summary_public", c.SummaryPublic),
		slog.Bool("summary_unrestricted", c.SummaryUnrestricted),
		slog.String("summary_api_key", redact(c.SummaryAPIKey)),
		slog.String("upstream_max_rate_bytes_per_s", rate),
		slog.Duration("upstream_header_timeout", c.UpstreamHeaderTimeout),
		slog.Duration("upstream_idle_timeout", c.UpstreamIdleTimeout),
		slog.String("max_stale", maxStale),
		slog.Duration("revalidate_wait", c.RevalidateWait),
		slog.Duration("index_max_age", c.IndexMaxAge),
		slog.Duration("negative_max_age", c.NegativeMaxAge),
		slog.String("index_patterns", orBuiltIn(c.IndexPatterns)),
		slog.String("payload_patterns", orBuiltIn(c.PayloadPatterns)),
		slog.String("log_format", c.LogFormat),
		slog.Bool("access_log", c.AccessLog),
		slog.Int64("block_size", c.BlockSize),
	)
}

// redact hides a secret but still shows whether it is set, which is what
// an operator debugging access needs to know.
func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return redacted
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func orBuiltIn(patterns []string) string {
	if patterns == nil {
		return "built-in"
	}
	return strings.Join(patterns, ",")
}
