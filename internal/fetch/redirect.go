package fetch

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"

	"gatecache/internal/origin"
)

// checkRedirect decides whether a redirect is followed (RFC 9110 §15.4):
// only to http(s), at most MaxRedirects hops, only to an origin the allow
// list names (AllowRedirect) and never to one of this node's own listeners
// (SetSelf), so that an allowed origin cannot make the cache fetch, serve
// and store any other host's content, nor hand its loopback-only summary
// to a client of the content port. A redirect that is not followed is the
// response: the 3xx goes to the client as the origin sent it.
//
// A redirect answered by a parent is followed through that parent, in the
// same cacheHostOrigin form, so that a node without a route to origins
// (no UPSTREAM_FALLBACK_DIRECT) never contacts one itself.
//
// Go's client keeps Range and If-Range on the new request, so a redirect in
// the middle of a block fetch still asks for the same bytes.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > c.opts.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", c.opts.MaxRedirects)
	}
	u := req.URL
	parent := c.parentOf(via[0])
	if parent != nil && c.parentSet[u.Host] {
		// A redirect within the parent's own name space: its origin is
		// lost, so it is not ours to follow.
		return http.ErrUseLastResponse
	}
	if c.opts.AllowRedirect == nil || !c.opts.AllowRedirect(u) || c.toSelf(req.Context(), u) {
		return http.ErrUseLastResponse
	}
	if parent != nil {
		t := origin.Target{Scheme: u.Scheme, Host: u.Host, Path: u.EscapedPath(), Query: u.RawQuery}
		pu, err := url.Parse(c.upstreamURL(parent, t))
		if err != nil {
			return http.ErrUseLastResponse
		}
		req.URL, req.Host = pu, ""
	}
	return nil
}

// parentOf returns the parent the first request of a chain went to, or nil.
func (c *Client) parentOf(first *http.Request) *upstream {
	for _, p := range c.parents {
		if p.name == first.URL.Host {
			return p
		}
	}
	return nil
}

// SetSelf records the addresses this node listens on: redirects to them are
// never followed, and under the hash policy a parent at one of them is this
// node itself (findSelf). Call it once the listeners are open (their ports may have
// been chosen by the system).
func (c *Client) SetSelf(addrs ...net.Addr) {
	var self []netip.AddrPort
	for _, a := range addrs {
		if ta, ok := a.(*net.TCPAddr); ok {
			self = append(self, ta.AddrPort())
		}
	}
	c.self.Store(&self)
	if c.opts.Policy == Hash {
		c.findSelf()
	}
}

// toSelf reports whether u leads to one of this node's listeners: its port
// is one we listen on, and its host (an IP, or a name such as "localhost"
// resolved here) is the listener's address or, for an any-address bind,
// any address of this machine. A name that cannot be resolved counts as
// ours: what cannot be told apart is not followed.
func (c *Client) toSelf(ctx context.Context, u *url.URL) bool {
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	if p := u.Port(); p != "" {
		port = p
	}
	self, err := c.listensOn(ctx, u.Hostname(), port)
	return self || err != nil
}

// listensOn reports whether host:port leads to one of this node's
// listeners (see toSelf); err when the port is no port or the name cannot
// be resolved, which callers weigh each their own way.
func (c *Client) listensOn(ctx context.Context, host, portText string) (bool, error) {
	self := c.self.Load()
	if self == nil {
		return false, nil
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return false, fmt.Errorf("port %q: %w", portText, err)
	}
	var listeners []netip.Addr
	for _, ap := range *self {
		if uint64(ap.Port()) == port {
			listeners = append(listeners, ap.Addr().Unmap())
		}
	}
	if len(listeners) == 0 {
		return false, nil
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip.WithZone("")}
	} else {
		found, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return false, err
		}
		ips = found
	}
	for _, ip := range ips {
		ip = ip.Unmap()
		for _, l := range listeners {
			switch {
			case ip == l, ip.IsUnspecified():
				return true, nil
			case l.IsUnspecified() && (ip.IsLoopback() || localAddr(ip)):
				return true, nil
			}
		}
	}
	return false, nil
}

// localAddr reports whether ip is assigned to an interface of this machine.
func localAddr(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: treat as ours
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if la, ok := netip.AddrFromSlice(n.IP); ok && la.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
