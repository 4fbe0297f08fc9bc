package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gatecache/internal/config"
	"gatecache/internal/fetch"
	"gatecache/internal/flight"
	"gatecache/internal/freshness"
	"gatecache/internal/origin"
	"gatecache/internal/server"
	"gatecache/internal/store"
	"gatecache/internal/summary"
)

// serve runs the cache until ctx ends.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	log.Info("gatecache starting", cfgAttrs(cfg)...)
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	nodeID := nodeIdentity(cfg, log)

	st, err := store.Open(store.Options{Drives: driveSpecs(cfg), BlockSize: cfg.BlockSize, Logger: log})
	if err != nil {
		return startupError{err}
	}
	defer st.Close()

	resolver := origin.NewResolver(originHosts(cfg))
	up := fetch.New(fetchOptions(cfg, nodeID, resolver, log))
	fillCtx, stopFills := context.WithCancel(context.Background())
	flights := flight.NewGroup(fillCtx)
	defer flights.Wait() // runs before st.Close: fills finish or release their blocks
	defer up.Close()     // cancels every upstream request, also those no fill's context reaches
	defer stopFills()
	policy := freshness.DefaultPolicy()
	policy.IndexMaxAge = cfg.IndexMaxAge
	if cfg.IndexPatterns != nil {
		policy.IndexPatterns = cfg.IndexPatterns
	}
	if cfg.PayloadPatterns != nil {
		policy.PayloadPatterns = cfg.PayloadPatterns
	}
	negative := cfg.NegativeMaxAge
	if negative == 0 {
		negative = -1 // NEGATIVE_MAX_AGE=0 disables
	}
	revalidateWait := cfg.RevalidateWait
	if revalidateWait == 0 {
		revalidateWait = -1 // REVALIDATE_WAIT=0: serve the stored copy at once
	}
	var accessLog *slog.Logger
	if cfg.AccessLog {
		buffered := newBufferedLog(os.Stderr)
		defer buffered.Close()
		accessLog = newLogger(cfg.LogFormat, buffered)
	}
	recorder := summary.NewRecorder()
	handler := server.New(server.Options{
		Resolver: resolver, Store: st, Flights: flights,
		Upstream: up, Log: log, NodeID: nodeID,
		Freshness: &policy, MaxStale: cfg.MaxStale, NegativeTTL: negative,
		Recorder: recorder, AccessLog: accessLog, RevalidateWait: revalidateWait,
		FromPool: up.FromPool,
	})
	access := summary.Access{Unrestricted: cfg.SummaryUnrestricted, Public: cfg.SummaryPublic, APIKey: cfg.SummaryAPIKey}
	report := summary.New(summary.Options{
		Recorder: recorder,
		Sources:  nodeSources{store: st, upstream: up, flights: flights, handler: handler, drives: cfg.Drives},
		Identity: summary.Identity{CacheNodeID: nodeID, CustomerID: cfg.CustomerID},
		Access:   access,
	})
	go report.Run(ctx)

	inherited, err := activatedListeners()
	if err != nil {
		return startupError{err}
	}
	content, err := listen(inherited[0], cfg.ListenAddr, "LISTEN_ADDR", log)
	if err != nil {
		return err
	}
	summary, err := listen(inherited[1], cfg.SummaryAddr, "SUMMARY_ADDR", log)
	if err != nil {
		content.Close()
		return err
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	contentCap, summaryCap := connCaps(openFileLimit())
	lc, ls := limitConns(content, contentLimits(contentCap)), limitConns(summary, summaryLimits(summaryCap))
	servers := []*http.Server{lc.server(handler, errLog), ls.server(statusHandler(report), errLog)}
	content, summary = lc, ls
	// Before serving: a redirect to this node is never followed, and in a
	// hashed pool this node's own entry is known before any request could
	// be routed to it (and come back as a loop, 508, marking it down).
	up.SetSelf(content.Addr(), summary.Addr())
	errc := make(chan error, 2)
	for i, l := range []net.Listener{content, summary} {
		go func() { errc <- servers[i].Serve(l) }()
	}
	log.Info("gatecache serving", "content", content.Addr().String(), "summary", summary.Addr().String(), "node", nodeID)

	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("gatecache stopping")
	// Whatever upstream and clients do, the process ends within
	// shutdownLimit: responses in progress get shutdownGrace to complete,
	// then every fill and upstream request is cancelled and every
	// connection closed. Should the rest still hang (a drive that does not
	// answer), exit anyway: the store is crash-safe.
	time.AfterFunc(shutdownLimit, func() {
		log.Error("shutdown took too long: exiting without closing the store", "limit", shutdownLimit)
		os.Exit(exitFailure)
	})
	// From now on /readyz answers 503, while the summary port keeps
	// answering until the responses in progress are done: a load balancer
	// in front (deploy/haproxy) takes the node out of rotation within its
	// check interval rather than learning of the stop from refused
	// connections.
	report.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err == nil && report.ReadyCheckedSince(time.Now().Add(-readyWatched)) {
		// A balancer watches: the node keeps taking requests until it
		// has seen the 503. Refused meanwhile, they would be retried on
		// another node than the one the object's key moves to once this
		// one is out, and that object would be stored twice.
		select {
		case <-time.After(drainDelay):
		case <-graceCtx.Done():
		}
	}
	// In order: content first, so that the summary port answers /readyz
	// (503) for as long as responses are still in progress.
	for _, s := range servers {
		s.Shutdown(graceCtx) // stops accepting at once, then waits for idle connections
	}
	stopFills()
	up.Close()
	for _, s := range servers {
		s.Close()
	}
	flights.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// The shutdown bounds: SIGTERM ends the process within 10 s, as container
// runtimes expect (docker stop sends SIGKILL after 10 s).
const (
	shutdownGrace = 5 * time.Second // for responses in progress
	shutdownLimit = 9 * time.Second // then the process exits whatever hangs
)

// Draining behind a load balancer: a node whose /readyz was asked within
// readyWatched keeps accepting requests for drainDelay after SIGTERM (inside
// shutdownGrace), the time the balancer takes to see its 503. deploy/haproxy
// checks every second, every 250 ms after a failure, and takes a node out
// after two failures: at most about 1.3 s.
const (
	readyWatched = 10 * time.Second
	drainDelay   = 2 * time.Second
)

// listen returns a listener: the socket passed by socket activation when
// there is one (its address is then the socket unit's, not addr), else a new
// one on addr.
func listen(inherited net.Listener, addr, variable string, log *slog.Logger) (net.Listener, error) {
	if inherited != nil {
		log.Info("listening on a socket passed by socket activation", "addr", inherited.Addr().String(), "instead_of", variable)
		return inherited, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, startupError{fmt.Errorf("%s=%q: cannot listen: %w", variable, addr, err)}
	}
	return l, nil
}

func cfgAttrs(cfg config.Config) []any {
	attrs := cfg.LogAttrs()
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}

func driveSpecs(cfg config.Config) []store.DriveSpec {
	out := make([]store.DriveSpec, len(cfg.Drives))
	for i, d := range cfg.Drives {
		out[i] = store.DriveSpec{Path: d.Path, Budget: d.SizeBytes}
	}
	return out
}

func originHosts(cfg config.Config) []origin.Host {
	out := make([]origin.Host, len(cfg.CustomHosts))
	for i, h := range cfg.CustomHosts {
		out[i] = origin.Host{
			Name: h.Host, Port: h.Port, TLS: h.TLS, Canonical: h.Canonical, KeepQuery: h.KeepQuery,
			Var: fmt.Sprintf("CACHEABLE_CUSTOM_%d_HOST", h.Index),
		}
	}
	return out
}

func fetchOptions(cfg config.Config, nodeID string, resolver *origin.Resolver, log *slog.Logger) fetch.Options {
	opts := fetch.Options{
		Parents: cfg.Upstreams, FallbackDirect: cfg.FallbackDirect, MaxRate: cfg.UpstreamMaxRate,
		Weights: cfg.UpstreamWeights,
		NodeID:  nodeID, UserAgent: "gatecache", Logger: log,
		HeaderTimeout: cfg.UpstreamHeaderTimeout, IdleTimeout: cfg.UpstreamIdleTimeout,
		// Redirects are followed only to origins the allow list names.
		AllowRedirect: resolver.Allows,
	}
	if cfg.UpstreamHash {
		opts.Policy = fetch.Hash
	}
	if p := cfg.Proxy; p != nil {
		opts.Proxy = &url.URL{Scheme: "http", Host: p.Addr}
		if p.User != "" {
			opts.Proxy.User = url.UserPassword(p.User, p.Password)
		}
	}
	return opts
}

// nodeIdentity returns CACHE_NODE_ID, or the node id persisted under the
// cache root, generating it on first start. A cache root that cannot take
// the file (a read-only drive) costs only the id's persistence: the node
// serves, as with any failed drive, under an id that changes at each start.
func nodeIdentity(cfg config.Config, log *slog.Logger) string {
	if cfg.CustomerID == "" {
		log.Info("running without a customer identity (CUSTOMER_ID unset): no cloud service is contacted in any case")
	}
	if cfg.CacheNodeID != "" {
		return cfg.CacheNodeID
	}
	path := filepath.Join(cfg.CacheRoot, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40 // RFC 9562 version 4
	u[8] = u[8]&0x3f | 0x80
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:])
	err := os.MkdirAll(cfg.CacheRoot, 0o755)
	if err == nil {
		err = os.WriteFile(path, []byte(id+"\n"), 0o644)
	}
	if err != nil {
		log.Warn("cannot keep the generated cache node id: it changes at the next start (set CACHE_NODE_ID to fix it)",
			"node", id, "err", fmt.Errorf("CACHE_ROOT=%q: %w", cfg.CacheRoot, err))
		return id
	}
	log.Info("generated a cache node id (CACHE_NODE_ID unset)", "node", id, "file", path)
	return id
}
