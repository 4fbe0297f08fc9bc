// Package server is the content port's handler: it names the origin and the
// cache key of a request, serves what the store holds, has the missing blocks
// fetched (coalesced with every other request that needs them), and says what
// it did in a Cache-Status header (RFC 9211).
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"gatecache/internal/coalesce"
	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// Upstream sends requests towards origins (fetch.Client).
type Upstream interface {
	Do(ctx context.Context, method string, t origin.Target, h http.Header) (*http.Response, error)
	Forward(r *http.Request, t origin.Target) (*http.Response, error)
}

// Options are the parts a Handler ties together.
type Options struct {
	Resolver *origin.Resolver
	Store    *store.Store
	Flights  *flight.Group
	Upstream Upstream
	Log      *slog.Logger // default slog.Default()
	// NodeID is this node's identity in Via fields: a request whose Via
	// names it has looped back here (RFC 9110 §7.6.3) and gets 508.
	NodeID string
	// Freshness decides how long stored responses are served without
	// asking upstream; zero value: freshness.DefaultPolicy().
	Freshness *freshness.Policy
	// MaxStale is how long past its freshness a stored response may be
	// served when upstream fails; negative means without limit.
	MaxStale time.Duration
	// NegativeTTL is how long a 404 or 410 from upstream is remembered;
	// default 30 s, negative disables.
	NegativeTTL time.Duration
	// RevalidateWait is how long a request for a stale entry waits for its
	// revalidation before the stored copy is served, the revalidation
	// going on in the background; default 3 s, negative: not at all.
	RevalidateWait time.Duration
	// Recorder receives the content bytes of every response, by origin
	// alias; nil: not recorded.
	Recorder Recorder
	// AccessLog receives one line per request; nil: no access log.
	AccessLog *slog.Logger
	// FromPool reports whether a request was sent here by a node of this
	// node's own parent pool (fetch.Client.FromPool), which the upstream
	// client must not hash back into the pool; nil: never.
	FromPool func(r *http.Request) bool
}

// Recorder counts served bytes per canonical origin (summary.Recorder).
type Recorder interface {
	Record(alias string, hit, miss int64)
}

// Handler serves the content port.
type Handler struct {
	resolver  *origin.Resolver
	store     *store.Store
	flights   *flight.Group
	upstream  Upstream
	log       *slog.Logger
	nodeID    string
	policy    freshness.Policy
	maxStale  time.Duration
	negative  *negativeCache
	recorder  Recorder
	accessLog *slog.Logger
	fromPool  func(r *http.Request) bool
	hot       *hot // hot.go

	revalidateWait time.Duration // Options.RevalidateWait (swr.go)

	// discoveries and revalidations coalesce the upstream work for one
	// key (fetched.go).
	discoveries, revalidations *coalesce.Group[work, fetched]
	coalesced                  atomic.Int64 // Coalesced
}

// New returns a content handler.
func New(o Options) *Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	policy := freshness.DefaultPolicy()
	if o.Freshness != nil {
		policy = *o.Freshness
	}
	if o.NegativeTTL == 0 {
		o.NegativeTTL = 30 * time.Second
	}
	if o.RevalidateWait == 0 {
		o.RevalidateWait = defaultRevalidateWait
	}
	h := &Handler{
		resolver: o.Resolver, store: o.Store, flights: o.Flights, upstream: o.Upstream, log: o.Log,
		nodeID: o.NodeID, policy: policy, maxStale: o.MaxStale, negative: newNegativeCache(o.NegativeTTL),
		recorder: o.Recorder, accessLog: o.AccessLog, revalidateWait: o.RevalidateWait,
		fromPool: o.FromPool, hot: newHot(o.Store),
	}
	h.discoveries, h.revalidations = newCoalescing(h, o.Flights), newCoalescing(h, o.Flights)
	return h
}

// Coalesced counts the requests answered from a fill, discovery or
// revalidation another request started, without asking upstream
// themselves (Cache-Status "collapsed"), each once: one that joined a
// discovery and then read its fill is one request.
func (h *Handler) Coalesced() int64 { return h.coalesced.Load() }

// cacheStatus values (RFC 9211 §2).
const (
	statusHit       = "gatecache; hit"
	statusMiss      = "gatecache; fwd=miss; stored"
	statusCollapsed = "gatecache; fwd=miss; collapsed; stored"
	statusPartial   = "gatecache; fwd=partial; stored"
	statusNotStored = "gatecache; fwd=miss"
	statusMethod    = "gatecache; fwd=method"
	statusNegative  = "gatecache; hit; detail=negative"
	statusStale     = "gatecache; fwd=stale; detail=upstream-unavailable"
	statusRefreshed = "gatecache; fwd=stale; fwd-status=304"
	statusReplaced  = "gatecache; fwd=stale; fwd-status=200; stored"
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &meter{ResponseWriter: rw, ctx: r.Context()}
	panicked := true // until serve returns: the response was aborted
	defer func(start time.Time) { h.done(w, r, start, panicked) }(time.Now())
	h.serve(w, r)
	panicked = false
}

// serve answers one request: bounds and request shape first, then the
// origin, then the store or upstream.
func (h *Handler) serve(w *meter, r *http.Request) {
	if targetTooLong(w, r) {
		return
	}
	lastRange(r.Header)
	if r.Method == http.MethodConnect {
		// Never a tunnel: the cache only ever serves HTTP content it
		// may keep.
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "CONNECT is not supported: gatecache is a cache, not a tunnel", http.StatusMethodNotAllowed)
		return
	}
	if h.looped(r) {
		http.Error(w, "loop detected: this request already passed through gatecache node "+h.nodeID+
			" (check UPSTREAM_HOST on the gateways in its Via header)", http.StatusLoopDetected)
		return
	}
	t, err := h.resolver.Resolve(r)
	if err != nil {
		code := http.StatusBadRequest
		if nae := (*origin.NotAllowedError)(nil); errors.As(err, &nae) {
			code = http.StatusForbidden
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.alias = t.Alias
	// Decided once from the client's request: every upstream request made
	// for it (discovery, block fills, revalidation) routes the same way.
	t.FromPool = h.fromPool != nil && h.fromPool(r)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.serveCached(w, r, t)
	default:
		h.forward(w, r, t)
	}
}

// serveCached answers a GET or HEAD from the store, discovering the object
// upstream when the key is unknown.
func (h *Handler) serveCached(w http.ResponseWriter, r *http.Request, t origin.Target) {
	t, obj := h.selectVariant(r, t)
	if obj != nil && !h.completable(r, obj) {
		h.log.Info("object without a validator is incomplete: fetching it anew, whole", "key", t.Key)
		h.store.RemoveObject(obj)
		obj = nil
	}
	if obj != nil {
		if age, fresh := h.fresh(r, t, obj); fresh {
			h.serveObject(w, r, t, obj, nil, "", age)
		} else if requestHasDirectives(r) && freshness.OnlyIfCached(r) {
			http.Error(w, "not fresh in the cache (only-if-cached)", http.StatusGatewayTimeout) // §5.2.1.7
		} else {
			h.revalidate(w, r, t, obj, age)
		}
		return
	}
	if freshness.OnlyIfCached(r) {
		http.Error(w, "not cached (only-if-cached)", http.StatusGatewayTimeout)
		return
	}
	if h.servedNegative(w, t) {
		return
	}
	if r.Method == http.MethodHead {
		// A HEAD miss passes through: its answer has no body to store,
		// and a stored GET answers HEAD once there is one (RFC 9110
		// §9.3.2).
		h.passThrough(w, r, t)
		return
	}
	h.discover(w, r, t)
}

// looped reports whether the request's Via names this node.
func (h *Handler) looped(r *http.Request) bool {
	if h.nodeID == "" {
		return false
	}
	for _, v := range r.Header.Values("Via") {
		if strings.Contains(v, h.nodeID) {
			return true
		}
	}
	return false
}

// forward sends a request with another method upstream uncached and, when it
// succeeds, invalidates the stored object (RFC 9111 §4.4).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, t origin.Target) {
	resp, err := h.upstream.Forward(r, t)
	if err != nil {
		h.upstreamFailed(w, t, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode < 400 && r.Method != http.MethodOptions && r.Method != http.MethodTrace {
		h.store.Remove(t.Key)
		h.invalidateLocations(t, resp.Header)
	}
	copyResponse(w, resp, statusMethod)
}

// invalidateLocations removes what is stored for the URIs in the Location
// and Content-Location fields of a non-error answer to an unsafe method,
// when they name the request's own origin (RFC 9111 §4.4): another origin's
// content is never touched by this one's answers. The key is taken both
// with and without the query, since whether this origin keys its query is
// not known here; removing one too many only costs a refetch.
func (h *Handler) invalidateLocations(t origin.Target, hdr http.Header) {
	base, err := url.Parse(t.URL())
	if err != nil {
		return
	}
	for _, name := range []string{"Location", "Content-Location"} {
		v := hdr.Get(name)
		if v == "" {
			continue
		}
		u, err := base.Parse(v)
		if err != nil || !strings.EqualFold(u.Host, base.Host) || u.Scheme != base.Scheme {
			continue
		}
		path := u.EscapedPath()
		h.store.Remove(t.Alias + path)
		if u.RawQuery != "" {
			h.store.Remove(t.Alias + path + "?" + u.RawQuery)
		}
	}
}

// upstreamFailed answers a request that needed upstream when upstream could
// not be reached: 504 for a timeout, 502 otherwise (RFC 9110 §15.6.3, §15.6.5).
func (h *Handler) upstreamFailed(w http.ResponseWriter, t origin.Target, err error) {
	if clientGone(w) {
		// Nobody to answer (the access log says 499); a request
		// cancelled because its client left is no upstream fault.
		if !errors.Is(err, context.Canceled) {
			h.log.Warn("upstream fetch failed", "key", t.Key, "err", err)
		}
		return
	}
	h.log.Warn("upstream fetch failed", "key", t.Key, "err", err)
	code := http.StatusBadGateway
	var fe *fetch.Error
	if errors.As(err, &fe) && fe.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	w.Header().Set("Cache-Status", "gatecache; fwd=miss; detail=upstream-error")
	http.Error(w, "upstream unavailable: "+err.Error(), code)
}
