// Package flight coalesces block fetches: while a block of an object is being
// fetched from upstream, every other request that needs it reads it from the
// object's file as its bytes arrive (read-while-write), so N clients on one
// cold object cost one upstream transfer, and followers do not wait for the
// fill to end.
//
// A Fill is one upstream response being written into consecutive blocks. It
// claims its blocks up front (so no two fills write the same block), commits
// each block to the store when complete, and stops after the current block
// once no reader follows it any more.
package flight

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"gatecache/internal/store"
)

// ErrChanged reports that upstream now serves a different version of the
// object (another validator or length): its blocks must not be mixed with
// the stored ones.
var ErrChanged = errors.New("object changed upstream")

// Source fetches bytes of one object version from upstream.
type Source interface {
	// Open returns an upstream body carrying the object's bytes [start, end)
	// for some start <= off and end >= min(want, size): an upstream that
	// ignores Range answers with the whole object (start 0). It fails with
	// an error wrapping ErrChanged when upstream has another version.
	Open(ctx context.Context, off, want int64) (body io.ReadCloser, start, end int64, err error)
}

// Group holds the fills in progress, and counts the background work that
// shutdown waits for.
type Group struct {
	base context.Context

	mu    sync.Mutex
	fills map[*store.Object]map[int64]*Fill // claimed, uncommitted blocks

	// running counts the fills and background work in progress, for Wait
	// (under mu: unlike a WaitGroup's, it may grow while Wait waits, as
	// requests still arrive during a shutdown).
	running     int
	idle        *sync.Cond // broadcast when running drops to 0
	activeFills atomic.Int64
	followers   atomic.Int64 // readers that joined a fill they did not start
}

// NewGroup returns an empty group. Fills run under base: cancelling it stops
// them all (shutdown).
func NewGroup(base context.Context) *Group {
	g := &Group{base: base, fills: make(map[*store.Object]map[int64]*Fill)}
	g.idle = sync.NewCond(&g.mu)
	return g
}

// Go runs fn in the background under the group's base context, and Wait
// waits for it: work that outlives the request that started it, such as a
// discovery or revalidation (coalesce.Runner) that goes on after the stored
// copy was served or the client left.
func (g *Group) Go(fn func(ctx context.Context)) {
	g.mu.Lock()
	g.running++
	g.mu.Unlock()
	go func() {
		defer g.ended()
		fn(g.base)
	}()
}

// ended counts one fill or background work out.
func (g *Group) ended() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running--; g.running == 0 {
		g.idle.Broadcast()
	}
}

// Stats are the group's gauges and counters.
type Stats struct {
	ActiveFills int64 // fills in progress now
	Coalesced   int64 // readers served by a fill another request started
}

// Stats returns current figures.
func (g *Group) Stats() Stats {
	return Stats{ActiveFills: g.activeFills.Load(), Coalesced: g.followers.Load()}
}

// Fill is one upstream body being written into consecutive blocks.
type Fill struct {
	g     *Group
	obj   *store.Object
	first int64 // first claimed block
	last  int64 // last block claimed so far (grows when the body goes on)
	// committed is the first block from first on this fill has not
	// committed (guarded by Group.mu): blocks in [first, committed) came
	// in through it.
	committed int64

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	written  int64 // the object's bytes [first block start, written) are in the file
	notify   chan struct{}
	waiting  int
	readers  int
	finished bool
	err      error
}

// claimLocked claims the blocks from first up to last that are neither
// present nor claimed, stopping at the first that is, and returns the fill
// (not started). The caller holds g.mu and is counted as its first reader.
func (g *Group) claimLocked(obj *store.Object, first, last int64) *Fill {
	claims := g.fills[obj]
	if claims == nil {
		claims = make(map[int64]*Fill)
		g.fills[obj] = claims
	}
	f := &Fill{g: g, obj: obj, first: first, last: first, committed: first, notify: make(chan struct{}), readers: 1}
	f.written, _ = obj.BlockBounds(first)
	claims[first] = f
	for i := first + 1; i <= last; i++ {
		if !g.tryClaimLocked(f, i) {
			break
		}
	}
	f.ctx, f.cancel = context.WithCancel(g.base)
	g.activeFills.Add(1)
	g.running++
	return f
}

// Wait blocks until no fill or background work is in progress: at
// shutdown, after the base context is cancelled, so that every fill has
// committed or released its blocks before the store closes. A cancelled
// fill ends at once, whatever its upstream does (its body is closed).
func (g *Group) Wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.running > 0 {
		g.idle.Wait()
	}
}

func (g *Group) tryClaimLocked(f *Fill, i int64) bool {
	claims := g.fills[f.obj]
	if i >= f.obj.NumBlocks() || claims[i] != nil {
		return false
	}
	if present, _ := f.obj.BlockState(i); present {
		return false
	}
	if claims == nil {
		claims = make(map[int64]*Fill)
		g.fills[f.obj] = claims
	}
	claims[i] = f
	f.last = i
	return true
}

// Seed starts a fill from a body already opened by the caller (the response
// that discovered a new object), covering its blocks up to at least block
// last. The caller is registered as the fill's first reader and must pass the
// fill to NewReader.
//
// The fill claims every block the body carries ([start, end)), up to the
// first present or claimed one, not only those up to last: a request for a
// later block that comes while the body streams then reads it as it
// arrives, instead of fetching it upstream a second time (a parent that a
// child asks for the last block while it still fills the first ones).
// Claims of a fill whose readers all left go when it stops.
func (g *Group) Seed(obj *store.Object, body io.ReadCloser, start, end, last int64) *Fill {
	first := start / obj.BlockSize()
	if end > start {
		last = max(last, (end-1)/obj.BlockSize())
	}
	g.mu.Lock()
	f := g.claimLocked(obj, first, last)
	g.mu.Unlock()
	go f.run(nil, body, start, end)
	return f
}

// releaseLocked drops f's claims on blocks from i on.
func (g *Group) releaseLocked(f *Fill, from int64) {
	claims := g.fills[f.obj]
	for i := from; i <= f.last; i++ {
		if claims[i] == f {
			delete(claims, i)
		}
	}
	if len(claims) == 0 {
		delete(g.fills, f.obj)
	}
}

// Release gives up the caller's registration as the first reader of a
// seeded fill it will not read (a response stored in the background): the
// fill completes the block it is in and stops.
func (f *Fill) Release() { f.dropReader() }

// addReader registers one more reader; dropReader unregisters one.
func (f *Fill) addReader() {
	f.mu.Lock()
	f.readers++
	f.mu.Unlock()
}

func (f *Fill) dropReader() {
	f.mu.Lock()
	f.readers--
	f.mu.Unlock()
}

// advance publishes that the object's bytes up to off are in the file.
func (f *Fill) advance(off int64) {
	f.mu.Lock()
	f.written = off
	if f.waiting > 0 {
		close(f.notify)
		f.notify = make(chan struct{})
		f.waiting = 0
	}
	f.mu.Unlock()
}

// wait blocks until bytes at off are in the file, or the fill has ended
// without them. It returns how far the bytes go, and the fill's error.
func (f *Fill) wait(ctx context.Context, off int64) (written int64, finished bool, err error) {
	f.mu.Lock()
	for f.written <= off && !f.finished {
		ch := f.notify
		f.waiting++
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, true, ctx.Err()
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	return f.written, f.finished, f.err
}
