package fetch

// The hash policy: a pool of parents that shares its keys, each object
// fetched and stored by one parent only (what Traffic Server's
// consistent_hash parents, Squid's CARP and Varnish's shard director do).
//
// Each cache key ranks the parents by weighted rendezvous hashing
// (highest random weight, Thaler and Ravishankar; weighted as in
// Schindelhauer and Schomaker): a parent's score for a key comes from a hash
// of the key and of the parent's name alone, so a rank never depends on the
// order of UPSTREAM_HOST nor on which other parents are listed. A key's
// requests go to the first parent of its rank that is not in backoff, then
// to the next ones, as failover does. Hence:
//   - a parent that is down hands each of its keys to that key's next
//     parent, and gets them back when its backoff ends and it answers;
//   - every other parent keeps its keys;
//   - a parent that joins takes only the keys it now ranks first for,
//     about 1/N of them with N parents of equal weight.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"gatecache/internal/origin"
	"gatecache/internal/rendezvous"
)

// Policy is how a request picks among the parents.
type Policy int

const (
	// Failover tries the parents in the order configured.
	Failover Policy = iota
	// Hash tries them in the cache key's rendezvous order.
	Hash
)

// rankKey is the key a request is ranked by: its cache key without a
// variant's suffix. The content handler names a Vary variant by the URL's
// key, a NUL byte and a digest (no key from a request holds a NUL: Go's
// server refuses control characters in a request target), so every variant
// of a URL, and every block fetch of every one, goes to the parent that
// keeps the URL's Vary marker.
func rankKey(key string) string {
	base, _, _ := strings.Cut(key, "\x00")
	return base
}

// nameSeed is a parent's rendezvous seed, from its name as configured
// (normalised "host:port").
func nameSeed(name string) uint64 {
	return rendezvous.Mix(rendezvous.Hash(name))
}

// rank returns the parents in the order requests for key try them, highest
// score first; equal scores (practically never) by name.
func (c *Client) rank(key string) []*upstream {
	k := rendezvous.Hash(rankKey(key))
	type scored struct {
		u *upstream
		s float64
	}
	all := make([]scored, len(c.parents))
	for i, p := range c.parents {
		all[i] = scored{p, rendezvous.Score(k, p.seed, float64(p.weight))}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if a.s != b.s {
			if a.s > b.s {
				return -1
			}
			return 1
		}
		return strings.Compare(a.u.name, b.u.name)
	})
	out := make([]*upstream, len(all))
	for i, a := range all {
		out[i] = a.u
	}
	return out
}

// Rank returns the names of the parents in key's order under the hash
// policy: the first is the key's owner while every parent answers.
func (c *Client) Rank(key string) []string {
	out := make([]string, len(c.parents))
	for i, p := range c.rank(key) {
		out[i] = p.name
	}
	return out
}

// Owner returns the parent that key goes to while every parent answers
// ("" without parents).
func (c *Client) Owner(key string) string {
	if len(c.parents) == 0 {
		return ""
	}
	return c.rank(key)[0].name
}

// hashRoute is route under the hash policy: the parents of t's rank that
// are not in backoff, in rank order; when none is, the one to retry first;
// then the origin when fallback is allowed.
//
// This node's own entry (findSelf) ends the list where it stands: the keys
// it ranks first for, or inherits from parents that are down, are this
// node's to fetch, from the origin — which needs UPSTREAM_FALLBACK_DIRECT;
// without it the entry is skipped.
//
// A request a pool member sent here (t.FromPool) is never hashed back into
// the pool: it goes to the origin, or, without UPSTREAM_FALLBACK_DIRECT,
// nowhere (noRoute: the client gets 502).
func (c *Client) hashRoute(t origin.Target) []*upstream {
	if t.FromPool {
		if c.opts.FallbackDirect {
			return []*upstream{c.origin(t.Host)}
		}
		return nil
	}
	now := time.Now()
	var out []*upstream
	for _, p := range c.rank(t.Key) {
		if p.self.Load() {
			if c.opts.FallbackDirect {
				return append(out, c.origin(t.Host))
			}
			continue
		}
		if p.usable(now) {
			out = append(out, p)
		}
	}
	if len(out) == 0 && !c.opts.FallbackDirect {
		if p := c.soonest(); p != nil {
			out = append(out, p)
		}
	}
	if c.opts.FallbackDirect {
		out = append(out, c.origin(t.Host))
	}
	return out
}

// errNoRoute fails a request that may go nowhere.
var errNoRoute = errors.New("a node of this parent pool sent the request here: it is not sent back into the pool, " +
	"and without UPSTREAM_FALLBACK_DIRECT this node does not fetch from origins itself")

func noRoute(t origin.Target) error {
	return &Error{URL: t.URL(), Err: errNoRoute}
}

// FromPool reports whether r was sent here by a node of this node's own
// parent pool (under the hash policy): a gatecache node forwarded it — the
// Via field has an element with gatecache's comment (RFC 9110 §7.6.3) — and
// addressed it to a name this node lists among its own parents (r.Host). A
// node that sends to a parent names the parent in Host as configured, so
// the sender hashed the request over this very pool, and this node is the
// member it picked: hashing it again could only send it to itself or back
// to a sibling (ping-pong until Via's loop detection stops it).
//
// Why not Via alone: Via names nodes by their node id, which no node knows
// of its parents. Why not the connection's source address: a load balancer,
// a NAT or a container network hides it, and nodes on one host share it.
// A device that addresses a pool node directly sends no Via, and a child
// that reaches the pool through a load balancer addresses the balancer: both
// are hashed as usual. A child that names one pool node as its only parent
// is served by that node from the origin, like a pool member.
func (c *Client) FromPool(r *http.Request) bool {
	if c.opts.Policy != Hash || len(c.parents) == 0 {
		return false
	}
	// Via first: a device's request carries none, and is told apart
	// without normalising its Host.
	for _, v := range r.Header.Values("Via") {
		if strings.Contains(v, "(gatecache") {
			addr, ok := origin.ParentAddr(r.Host)
			return ok && c.parentSet[addr]
		}
	}
	return false
}

// selfLookupLimit bounds the name lookups findSelf does at start.
const selfLookupLimit = 2 * time.Second

// findSelf marks the parents that are this node itself: a pool whose nodes
// share one UPSTREAM_HOST lists every node in it, each node's own entry
// among them. Such an entry is one whose port this node listens on and
// whose host is (or resolves to) an address of this node (listensOn). A
// name that cannot be resolved in selfLookupLimit counts as another node:
// should it be this one after all, its requests come back here, and Via's
// loop detection answers them 508 (the entry is then skipped as a parent in
// backoff).
func (c *Client) findSelf() {
	ctx, cancel := context.WithTimeout(context.Background(), selfLookupLimit)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range c.parents {
		wg.Go(func() {
			host, port, err := net.SplitHostPort(p.name)
			if err != nil {
				return
			}
			self, err := c.listensOn(ctx, host, port)
			p.self.Store(self && err == nil)
			if self && err == nil {
				c.opts.Logger.Info("parent pool: this entry of UPSTREAM_HOST is this node; the keys it ranks first for are fetched here",
					"parent", p.name, "fallback_direct", c.opts.FallbackDirect)
				if !c.opts.FallbackDirect {
					c.opts.Logger.Warn("parent pool: this node is in its own pool but UPSTREAM_FALLBACK_DIRECT is off: its share of keys goes to the next parent of each key's rank, and requests other pool nodes send here are answered 502",
						"parent", p.name)
				}
			}
		})
	}
	wg.Wait()
}
