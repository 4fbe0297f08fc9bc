// Package fetch is gatecache's upstream client: it turns "bytes of this
// origin URL" into an HTTP request to the right place — the parent cache when
// one is configured, else the origin, through the outbound proxy when one is
// set — and follows redirects itself so that clients never see them.
package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"gatecache/internal/origin"
)

// Options configures a Client. Zero values take the stated defaults.
type Options struct {
	// Parents are parent caches ("host:port"), asked in order with
	// GET http://parent/path?cacheHostOrigin=origin. Empty: fetch from origins.
	Parents []string
	// Proxy is the outbound forward proxy ("host:port"); its user info, if
	// any, is sent as Proxy-Authorization. Plain-HTTP requests go to it in
	// absolute form, HTTPS ones through CONNECT.
	Proxy *url.URL
	// RootCAs verifies HTTPS origins; nil means the system roots
	// (SSL_CERT_FILE is honoured by crypto/x509).
	RootCAs *x509.CertPool
	// ConnectTimeout bounds a TCP (and TLS) connect; default 10 s.
	ConnectTimeout time.Duration
	// HeaderTimeout bounds the wait for response headers; default 60 s.
	HeaderTimeout time.Duration
	// MaxRedirects bounds the redirects followed for one fetch; default 10.
	MaxRedirects int
	// UserAgent is sent on every upstream request.
	UserAgent string
}

// Client sends upstream requests.
type Client struct {
	opts Options
	hc   *http.Client
}

// New returns a client.
func New(opts Options) *Client {
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = 60 * time.Second
	}
	if opts.MaxRedirects <= 0 {
		opts.MaxRedirects = 10
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "gatecache"
	}
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
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
	c := &Client{opts: opts}
	c.hc = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// checkRedirect follows at most MaxRedirects hops, and only to http(s). Go's
// client keeps Range and If-Range on the new request, so a redirect in the
// middle of a block fetch still asks for the same bytes.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > c.opts.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", c.opts.MaxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to unsupported scheme %q", req.URL.Scheme)
	}
	return nil
}

// URL is where a request for t goes: the first parent, or the origin.
func (c *Client) URL(t origin.Target) string {
	if len(c.opts.Parents) == 0 {
		return t.URL()
	}
	q := t.Query
	if q != "" {
		q += "&"
	}
	q += "cacheHostOrigin=" + url.QueryEscape(t.Host)
	return "http://" + c.opts.Parents[0] + t.Path + "?" + q
}

// Do sends method (GET or HEAD) for t with the given header fields. The
// caller closes the response body.
func (c *Client) Do(ctx context.Context, method string, t origin.Target, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.URL(t), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	return c.send(req)
}

// Forward sends a client's request (any method, its body included) for t
// upstream, without hop-by-hop fields (RFC 9110 §7.6.1).
func (c *Client) Forward(r *http.Request, t origin.Target) (*http.Response, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, c.URL(t), r.Body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = r.ContentLength
	req.Header = r.Header.Clone()
	RemoveHopByHop(req.Header)
	if r.ContentLength == 0 {
		req.Body = nil
	}
	return c.send(req)
}

func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &Error{URL: req.URL.Redacted(), Err: err}
	}
	return resp, nil
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
