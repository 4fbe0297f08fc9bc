// Package coalesce runs one piece of work for every caller that asks for the
// same key while it runs: N requests for one unknown object cost one
// upstream request, and so do N revalidations of one stale entry.
//
// The closure is the unit of work (as in groupcache's singleflight): the
// first caller's closure runs, the others wait for its outcome. It runs in a
// goroutine of its own, started by a Runner, so that every caller, the first
// included, waits on its own context and may stop waiting without stopping
// the work for the others (as tailscale's singleflight DoChan). The work
// runs under the runner's context alone, and goes on when every caller has
// stopped waiting: its effects outlive its callers (a response being
// stored, whose body a fill reads after the work returned; a revalidation
// that updates the store). Shutdown, the runner's context, ends it.
package coalesce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Runner starts background work under the context that bounds it (its
// cancellation is shutdown) and keeps count of it, so that shutdown can
// wait for it (flight.Group).
type Runner interface {
	Go(fn func(ctx context.Context))
}

// Options say how a group runs its work.
type Options[V any] struct {
	// Unclaimed, when set, receives the value of work whose first caller
	// (the one whose closure ran) had stopped waiting before the work
	// returned: what the value holds for that caller alone (an upstream
	// body for its client) is released there. It runs in the work's
	// goroutine, after the waiting callers have the value.
	Unclaimed func(V)
	// Log receives a panic of work that no caller waits for any more
	// (there is nobody to raise it in); default slog.Default().
	Log *slog.Logger
}

// Group coalesces the work for keys of type K, whose outcome is a V.
type Group[K comparable, V any] struct {
	run  Runner
	opts Options[V]

	mu     sync.Mutex
	calls  map[K]*call[V]
	joined atomic.Int64
}

// call is one run of work and the callers waiting for it.
type call[V any] struct {
	done chan struct{} // closed, under Group.mu, once the outcome is set

	// Under Group.mu:
	waiting   int  // callers still waiting
	firstLeft bool // the caller whose closure runs stopped waiting

	// Set before done is closed:
	val      V
	err      error
	panicked *PanicError
}

// New returns a group whose work run starts.
func New[K comparable, V any](run Runner, opts Options[V]) *Group[K, V] {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Group[K, V]{run: run, opts: opts, calls: make(map[K]*call[V])}
}

// Joined counts the callers that joined work another caller had started.
func (g *Group[K, V]) Joined() int64 { return g.joined.Load() }

// Do runs fn once for all the callers that ask for key while it runs and
// returns its outcome; joined reports that the caller joined work another
// caller started (its own fn is not called). A caller stops waiting when
// ctx is done, with context.Cause(ctx) as its error: the work goes on for
// the others, and for nobody. A panic in fn is raised again in
// every caller still waiting, as a *PanicError.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (v V, joined bool, err error) {
	g.mu.Lock()
	c, joined := g.calls[key]
	if joined {
		g.joined.Add(1)
	} else {
		c = &call[V]{done: make(chan struct{})}
		g.calls[key] = c
	}
	c.waiting++
	g.mu.Unlock()
	if !joined {
		g.run.Go(func(base context.Context) { g.work(base, key, c, fn) })
	}

	select {
	case <-c.done:
	case <-ctx.Done():
		if g.leave(c, !joined) {
			return v, joined, context.Cause(ctx)
		}
	}
	if c.panicked != nil {
		panic(c.panicked)
	}
	return c.val, joined, c.err
}

// leave stops one caller's waiting, unless the outcome came meanwhile (it
// then reports false: the caller has it). A caller that comes while the
// work goes on for nobody joins it.
func (g *Group[K, V]) leave(c *call[V], first bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-c.done:
		return false
	default:
	}
	c.waiting--
	c.firstLeft = c.firstLeft || first
	return true
}

// work runs fn under the runner's context base and hands its outcome to
// the callers still waiting.
func (g *Group[K, V]) work(base context.Context, key K, c *call[V], fn func(context.Context) (V, error)) {
	returned := false
	defer func() {
		if !returned {
			c.panicked = &PanicError{Value: recover(), Stack: debug.Stack()}
			if c.panicked.Value == nil {
				c.panicked.Value = errGoexit
			}
		}
		g.end(key, c)
	}()
	c.val, c.err = fn(base)
	returned = true
}

// errGoexit is the panic value of work that called runtime.Goexit.
var errGoexit = errors.New("coalesce: work called runtime.Goexit")

// end publishes the outcome of c's work.
func (g *Group[K, V]) end(key K, c *call[V]) {
	g.mu.Lock()
	if g.calls[key] == c {
		delete(g.calls, key)
	}
	close(c.done)
	firstLeft, waiting := c.firstLeft, c.waiting
	g.mu.Unlock()
	if c.panicked != nil {
		if waiting == 0 {
			g.opts.Log.Error("coalesced work panicked with no caller waiting", "panic", c.panicked.Value,
				"stack", string(c.panicked.Stack))
		}
		return
	}
	if firstLeft && g.opts.Unclaimed != nil {
		g.opts.Unclaimed(c.val)
	}
}

// PanicError is what the callers of work that panicked panic with: the
// work's panic value and the stack where it was raised.
type PanicError struct {
	Value any
	Stack []byte
}

func (p *PanicError) Error() string {
	return fmt.Sprintf("coalesced work panicked: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value when it is an error.
func (p *PanicError) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}
