package fetch

import (
	"net/http"
	"strings"
)

// EndToEnd returns a copy of a client's header fields as they go upstream:
// every end-to-end field, without the hop-by-hop ones (RFC 9110 §7.6.1).
// The caller may change the copy.
func EndToEnd(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	RemoveHopByHop(out)
	return out
}

// userAgent is the User-Agent sent upstream for a client that sent client:
// the client's own product tokens, followed by this node's (RFC 9110
// §10.1.5: an intermediary may append its own product), or this node's
// alone. A chain of gatecache nodes names the product once.
func (c *Client) userAgent(client string) string {
	client = strings.TrimSpace(client)
	own := c.opts.UserAgent
	switch {
	case client == "":
		return own
	case client == own || strings.HasSuffix(client, " "+own):
		return client
	}
	return client + " " + own
}
