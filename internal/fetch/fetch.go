// Package fetch is gatecache's upstream client: it turns "bytes of this
// origin URL" into an HTTP request to the right place — the parent cache when
// one is configured, else the origin, through the outbound proxy when one is
// set — and follows redirects to allowed origins itself (redirect.go).
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gatecache/internal/origin"

	"golang.org/x/time/rate"
)

// Options configures a Client. Zero values take the stated defaults.
type Options struct {
	// Parents are parent caches ("host:port"), tried in order (or, under
	// the Hash policy, in the cache key's order) with
	// GET http://parent/path?cacheHostOrigin=origin; one that fails to
	// connect or answers 5xx is skipped and retried later with backoff.
	// Empty: fetch from origins.
	Parents []string
	// FallbackDirect lets the node fetch from the origin itself when no
	// parent answers.
	FallbackDirect bool
	// Policy is how a request picks among Parents: Failover (the order
	// given, the default) or Hash (each cache key's own order, pool.go).
	Policy Policy
	// Weights are the parents' weights under Hash, index by index; a
	// missing weight, or one below 1, is 1.
	Weights []int
	// ParentRetry is how long a parent that failed is skipped before it
	// is tried again, doubled at each consecutive failure up to a minute;
	// default 1 s.
	ParentRetry time.Duration
	// Proxy is the outbound forward proxy; its user info, if any, is sent
	// as Proxy-Authorization. Plain-HTTP requests go to it in absolute
	// form, HTTPS ones through CONNECT (Go's http.Transport does both).
	Proxy *url.URL
	// RootCAs verifies HTTPS origins; nil means the system roots
	// (SSL_CERT_FILE is honoured by crypto/x509).
	RootCAs *x509.CertPool
	// ConnectTimeout bounds a TCP (and TLS) connect to an origin; default
	// 10 s. ParentConnectTimeout bounds one to a parent — through Proxy,
	// the connect to the proxy for a parent's request; default 2 s, so
	// that a client (which gives a cache 3 s) gets an answer even when
	// its gateway's parent is gone.
	ConnectTimeout       time.Duration
	ParentConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers, counted from the
	// start of a fetch: connects, redirects and the failover from one
	// parent to the next use it up together; default 15 s. A Delivery
	// Optimization client gives a cache 20 s without progress, headers
	// included, and a timeout bans the cache for all hosts for 15
	// minutes, while the 504 it gets first only sends it to the origin for
	// that download. (A request with a body, Forward's, counts it from
	// when the body is sent.)
	HeaderTimeout time.Duration
	// IdleTimeout bounds every wait for body bytes: an upstream that sends
	// nothing for this long fails the transfer; default 15 s. Time the
	// reader spends elsewhere between reads does not count.
	IdleTimeout time.Duration
	// MaxRedirects bounds the redirects followed for one fetch; default 10.
	MaxRedirects int
	// AllowRedirect reports whether a redirect to u may be followed: u's
	// host is an origin the allow list names (origin.Resolver.Allows).
	// nil follows no redirect. A redirect that is not followed is relayed
	// as the response.
	AllowRedirect func(u *url.URL) bool
	// MaxRate caps the bytes per second read from all upstreams together;
	// 0 means unlimited.
	MaxRate int64
	// NodeID names this node in the Via field it adds (RFC 9110 §7.6.3),
	// which parents use to detect loops.
	NodeID string
	// UserAgent is this node's product token, appended to the client's
	// User-Agent on every upstream request (sent alone when the client
	// sent none); default "gatecache".
	UserAgent string
	// Logger receives parent state changes; default slog.Default().
	Logger *slog.Logger
}

// Client sends upstream requests.
type Client struct {
	opts      Options
	hc        *http.Client
	parents   []*upstream
	parentSet map[string]bool

	mu      sync.Mutex
	origins map[string]*upstream // origin hosts fetched from directly
	limit   *rate.Limiter
	via     string
	// base is the context every upstream request runs under, whatever its
	// caller's: Close cancels it.
	base      context.Context
	closeBase context.CancelCauseFunc
	self      atomic.Pointer[[]netip.AddrPort] // this node's listeners, see SetSelf
}

// New returns a client.
func New(opts Options) *Client {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.ParentConnectTimeout <= 0 {
		opts.ParentConnectTimeout = 2 * time.Second
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 15 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 15 * time.Second
	}
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = 10
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "gatecache"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{opts: opts, parentSet: map[string]bool{}, origins: map[string]*upstream{}}
	c.base, c.closeBase = context.WithCancelCause(context.Background())
	for i, p := range opts.Parents {
		u := &upstream{name: p, parent: true, retry: opts.ParentRetry, weight: 1, seed: nameSeed(p)}
		if i < len(opts.Weights) && opts.Weights[i] > 1 {
			u.weight = opts.Weights[i]
		}
		c.parents = append(c.parents, u)
		c.parentSet[p] = true
	}
	if opts.MaxRate > 0 {
		burst := int(min(max(opts.MaxRate/10, 16<<10), 1<<20))
		c.limit = rate.NewLimiter(rate.Limit(opts.MaxRate), burst)
	}
	if opts.NodeID != "" {
		c.via = "1.1 " + opts.NodeID + " (gatecache)"
	}
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			// Through a proxy, addr is the proxy's: the request says
			// whether it is for a parent.
			if c.parentSet[addr] || ctx.Value(parentKey{}) != nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, opts.ParentConnectTimeout)
				defer cancel()
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		// Bytes are stored and served exactly as the origin has them:
		// never ask for, or transparently decode, a compressed transfer.
		DisableCompression:  true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     16 << 10,
	}
	if opts.Proxy != nil {
		tr.Proxy = http.ProxyURL(opts.Proxy)
	}
	c.hc = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// route lists where a request for t may go now, in order: the parents not
// in backoff (or, when all are, the one to retry first), then the origin
// when there is no parent or fallback is allowed. Under the hash policy
// the parents come in t's own order (hashRoute).
func (c *Client) route(t origin.Target) []*upstream {
	if c.opts.Policy == Hash && len(c.parents) > 0 {
		return c.hashRoute(t)
	}
	now := time.Now()
	var out []*upstream
	for _, p := range c.parents {
		if p.usable(now) {
			out = append(out, p)
		}
	}
	if len(out) == 0 && len(c.parents) > 0 && !c.opts.FallbackDirect {
		if p := c.soonest(); p != nil {
			out = append(out, p)
		}
	}
	if len(c.parents) == 0 || c.opts.FallbackDirect {
		out = append(out, c.origin(t.Host))
	}
	return out
}

// maxTrackedOrigins bounds the per-origin figures; origins beyond it share
// one entry.
const maxTrackedOrigins = 256

// origin returns the figures of an origin host fetched from directly.
func (c *Client) origin(host string) *upstream {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.origins[host]; u != nil {
		return u
	}
	if len(c.origins) >= maxTrackedOrigins {
		host = "(other origins)"
		if u := c.origins[host]; u != nil {
			return u
		}
	}
	u := &upstream{name: host}
	c.origins[host] = u
	return u
}

// soonest returns the parent whose backoff ends first (this node itself
// excluded), nil when there is none.
func (c *Client) soonest() *upstream {
	var best *upstream
	var bestAt time.Time
	for _, p := range c.parents {
		if p.self.Load() {
			continue
		}
		if at := p.nextTry(); best == nil || at.Before(bestAt) {
			best, bestAt = p, at
		}
	}
	return best
}

// upstreamURL is where a request for t goes through u: a parent is asked in the
// form Delivery Optimization clients use, so that it may be gatecache or
// any MCC-compatible cache; an origin gets its own URL.
func (c *Client) upstreamURL(u *upstream, t origin.Target) string {
	if !u.parent {
		return t.URL()
	}
	q := t.Query
	if q != "" {
		q += "&"
	}
	q += "cacheHostOrigin=" + url.QueryEscape(t.Host)
	return "http://" + u.name + t.Path + "?" + q
}

// Do sends method (GET or HEAD) for t with the given header fields to the
// first upstream that answers. A parent that cannot be reached or answers
// 5xx is marked down and the next one tried. The caller closes the body.
func (c *Client) Do(ctx context.Context, method string, t origin.Target, h http.Header) (*http.Response, error) {
	var lastErr error
	route := c.route(t)
	if len(route) == 0 {
		return nil, noRoute(t)
	}
	deadline := time.Now().Add(c.opts.HeaderTimeout) // one budget for every upstream tried
	for i, u := range route {
		if i > 0 && !time.Now().Before(deadline) {
			break
		}
		req, err := http.NewRequestWithContext(ctx, method, c.upstreamURL(u, t), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range h {
			req.Header[k] = v
		}
		req.Header.Set("User-Agent", c.userAgent(h.Get("User-Agent")))
		resp, err := c.send(u, req, deadline)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				break
			}
			continue
		}
		if u.parent && resp.StatusCode >= 500 {
			u.fail(resp.Status, c.opts.Logger)
		}
		if u.parent && resp.StatusCode >= 500 && i < len(route)-1 {
			Drain(resp.Body)
			lastErr = &Error{URL: req.URL.Redacted(), Err: fmt.Errorf("parent answered %s", resp.Status)}
			continue
		}
		return resp, nil
	}
	return nil, lastErr
}

// Forward sends a client's request (any method, its body included) for t
// to the first usable upstream, without hop-by-hop fields (RFC 9110
// §7.6.1). A body can be sent once, so there is no failover.
func (c *Client) Forward(r *http.Request, t origin.Target) (*http.Response, error) {
	route := c.route(t)
	if len(route) == 0 {
		return nil, noRoute(t)
	}
	u := route[0]
	req, err := http.NewRequestWithContext(r.Context(), r.Method, c.upstreamURL(u, t), r.Body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = r.ContentLength
	req.Header = r.Header.Clone()
	RemoveHopByHop(req.Header)
	deadline := time.Time{} // with a body: the transport's ResponseHeaderTimeout
	req.Header.Set("User-Agent", c.userAgent(r.Header.Get("User-Agent")))
	if r.ContentLength == 0 {
		req.Body = nil
		deadline = time.Now().Add(c.opts.HeaderTimeout)
	}
	return c.send(u, req, deadline)
}

// send does one request through u, adds this node to Via, meters the body
// and keeps u's state. Its response headers must arrive by deadline (none
// when zero); its body is bounded by IdleTimeout.
func (c *Client) send(u *upstream, req *http.Request, deadline time.Time) (*http.Response, error) {
	if c.via != "" {
		if prev := req.Header.Values("Via"); len(prev) > 0 {
			req.Header.Set("Via", strings.Join(prev, ", ")+", "+c.via)
		} else {
			req.Header.Set("Via", c.via)
		}
	}
	caller := req.Context()
	req, lt := c.begin(req, u.parent)
	if !deadline.IsZero() {
		lt.timeout(time.Until(deadline), "no response headers within "+c.opts.HeaderTimeout.String())
	}
	u.requests.Add(1)
	resp, err := c.hc.Do(req)
	if lt.stopTimeout() && err == nil {
		// The deadline passed just as the headers came: the request is
		// cancelled already.
		resp.Body.Close()
		err = context.Cause(lt.ctx)
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if lt.ctx.Err() != nil && caller.Err() == nil {
			err = context.Cause(lt.ctx) // a timeout, or Close
		}
		lt.end()
		if caller.Err() == nil && !errors.Is(err, ErrClosed) {
			u.fail(err.Error(), c.opts.Logger)
		}
		return nil, &Error{URL: req.URL.Redacted(), Err: err}
	}
	if resp.StatusCode == http.StatusProxyAuthRequired && c.opts.Proxy != nil {
		// Our outbound proxy refused us: a configuration fault of this
		// node, never content for the client.
		resp.Body.Close()
		lt.end()
		err := errors.New("outbound proxy answered 407: check the credentials in UPSTREAM_PROXY")
		u.fail(err.Error(), c.opts.Logger)
		return nil, &Error{URL: req.URL.Redacted(), Err: err}
	}
	if u.parent && resp.StatusCode < 500 {
		u.ok(c.opts.Logger)
	}
	resp.Body = newMeteredBody(resp.Body, lt, u, c.limit, c.opts.IdleTimeout, req.URL.Redacted())
	return resp, nil
}

// Close cancels every upstream request in progress — waits for headers
// and body reads alike, also those whose callers never cancel (a fill
// others follow) — and fails every later one with ErrClosed: at shutdown,
// so that no fill outlives the stop, whatever upstream does.
func (c *Client) Close() {
	c.closeBase(ErrClosed)
	c.hc.CloseIdleConnections()
}

// Stats returns the state of every upstream: the parents in order, then
// the origins fetched from directly, by name.
func (c *Client) Stats() []UpstreamStats {
	now := time.Now()
	out := make([]UpstreamStats, 0, len(c.parents))
	for _, p := range c.parents {
		out = append(out, p.stats(now))
	}
	c.mu.Lock()
	origins := make([]*upstream, 0, len(c.origins))
	for _, u := range c.origins {
		origins = append(origins, u)
	}
	c.mu.Unlock()
	slices.SortFunc(origins, func(a, b *upstream) int { return strings.Compare(a.name, b.name) })
	for _, u := range origins {
		out = append(out, u.stats(now))
	}
	return out
}

// Error is an upstream transport failure (connect, TLS, timeout, reset).
type Error struct {
	URL string
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("upstream %s: %v", e.URL, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a timeout (answered 504, not 502).
func (e *Error) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout() || errors.Is(e.Err, context.DeadlineExceeded)
}

// hopByHop are the connection-specific fields of RFC 9110 §7.6.1 plus the
// de-facto ones proxies drop (httputil.ReverseProxy's list).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// RemoveHopByHop deletes hop-by-hop fields, including those the Connection
// field names.
func RemoveHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// Drain discards up to 256 KiB of a body so that its connection can be
// reused, then closes it.
func Drain(body io.ReadCloser) {
	io.CopyN(io.Discard, body, 256<<10)
	body.Close()
}
