package fetch

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// upstream is one place requests go: a parent cache, or an origin host
// fetched from directly. Parents that fail are skipped until their backoff
// ends, so that a dead parent costs a client one connect timeout at most.
type upstream struct {
	name   string // parent "host:port", or the origin host
	parent bool
	retry  time.Duration // first backoff after a failure; 0: minBackoff

	// Under the hash policy (pool.go): the parent's weight, the hash of
	// its name, and whether it is this node itself.
	weight int
	seed   uint64
	self   atomic.Bool

	requests atomic.Int64
	failures atomic.Int64
	bytes    atomic.Int64

	mu       sync.Mutex
	failed   int // consecutive failures
	retryAt  time.Time
	lastErr  string
	downLogd bool
}

// A failed upstream is skipped for minBackoff (Options.ParentRetry for
// parents), doubled at each consecutive failure up to maxBackoff.
const (
	minBackoff = time.Second
	maxBackoff = time.Minute
)

// usable reports whether the upstream may be tried now.
func (u *upstream) usable(now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.failed == 0 || !now.Before(u.retryAt)
}

func (u *upstream) nextTry() time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.retryAt
}

// fail records a failure and backs off exponentially.
func (u *upstream) fail(err string, log *slog.Logger) {
	u.failures.Add(1)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.failed++
	first := u.retry
	if first <= 0 {
		first = minBackoff
	}
	backoff := min(first<<min(u.failed-1, 10), max(maxBackoff, first))
	u.retryAt = time.Now().Add(backoff)
	u.lastErr = err
	if u.parent && !u.downLogd {
		u.downLogd = true
		log.Warn("parent cache unavailable: trying the next upstream", "parent", u.name, "err", err, "retry_in", backoff)
	}
}

// ok records a success.
func (u *upstream) ok(log *slog.Logger) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.downLogd {
		log.Info("parent cache answers again", "parent", u.name)
	}
	u.failed, u.downLogd, u.lastErr = 0, false, ""
}

// UpstreamStats describes one upstream for the summary and metrics.
type UpstreamStats struct {
	Name      string // parent "host:port", or the origin host
	Parent    bool
	Requests  int64
	Failures  int64
	Bytes     int64 // body bytes received
	Down      bool  // in backoff after failures
	LastError string
}

func (u *upstream) stats(now time.Time) UpstreamStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	return UpstreamStats{
		Name: u.name, Parent: u.parent, Requests: u.requests.Load(), Failures: u.failures.Load(),
		Bytes: u.bytes.Load(), Down: u.failed > 0 && now.Before(u.retryAt), LastError: u.lastErr,
	}
}

// meteredBody counts the bytes of an upstream body, bounds each wait for
// them and, when a cap is set, paces them: every node's pulls share one
// token bucket, so a rollout does not saturate the uplink. Hits never pass
// through here.
type meteredBody struct {
	io.ReadCloser
	lt    *lifetime
	u     *upstream
	limit *rate.Limiter
	url   string

	idle  time.Duration
	timer *time.Timer // runs while a Read waits: it cancels the request
	once  sync.Once
}

func newMeteredBody(rc io.ReadCloser, lt *lifetime, u *upstream, limit *rate.Limiter, idle time.Duration, url string) *meteredBody {
	b := &meteredBody{ReadCloser: rc, lt: lt, u: u, limit: limit, url: url, idle: idle}
	// Armed from the headers on: a body that never sends its first byte
	// is cut off too, even before the first Read.
	msg := "upstream sent no byte for " + idle.String()
	b.timer = time.AfterFunc(idle, func() { lt.cancel(&timeoutError{msg}) })
	return b
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if b.limit != nil && len(p) > b.limit.Burst() {
		p = p[:b.limit.Burst()]
	}
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	b.timer.Stop() // the time until the next Read is the reader's, not upstream's
	b.u.bytes.Add(int64(n))
	if err != nil && err != io.EOF && b.lt.ctx.Err() != nil {
		// Say why the request was cut off: idle timeout, Close or the
		// caller's cancellation.
		err = &Error{URL: b.url, Err: context.Cause(b.lt.ctx)}
	}
	if b.limit != nil && n > 0 {
		if werr := b.limit.WaitN(b.lt.ctx, n); werr != nil && err == nil {
			err = &Error{URL: b.url, Err: context.Cause(b.lt.ctx)}
		}
	}
	return n, err
}

// Close closes the body and ends the request's lifetime.
func (b *meteredBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.timer.Stop()
		b.lt.end()
	})
	return err
}
