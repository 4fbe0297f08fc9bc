package coalesce

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runner is a Runner with a base context, which Wait waits for.
type runner struct {
	base context.Context
	wg   sync.WaitGroup
}

func newRunner(t *testing.T) (*runner, context.CancelFunc) {
	base, cancel := context.WithCancel(context.Background())
	r := &runner{base: base}
	t.Cleanup(func() { cancel(); r.wg.Wait() })
	return r, cancel
}

func (r *runner) Go(fn func(context.Context)) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.base)
	}()
}

// waitFor polls cond, for states no event announces (a caller blocked in
// Do), until a deadline far beyond any real wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// receive takes a value from ch, and fails the test if none comes.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// outcome is what one Do returned.
type outcome struct {
	v      int
	joined bool
	err    error
}

// heldWork is work that reports its start (with its context) and returns
// its value once released.
type heldWork struct {
	runs    atomic.Int64
	started chan context.Context
	release chan struct{}
}

func newHeldWork() *heldWork {
	return &heldWork{started: make(chan context.Context, 8), release: make(chan struct{})}
}

func (w *heldWork) fn(ctx context.Context) (int, error) {
	n := w.runs.Add(1)
	w.started <- ctx
	select {
	case <-w.release:
		return 40 + int(n), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// goDo runs Do in a goroutine of its own; its outcome arrives on the channel.
func goDo(ctx context.Context, g *Group[string, int], fn func(context.Context) (int, error)) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		v, joined, err := g.Do(ctx, "k", fn)
		ch <- outcome{v, joined, err}
	}()
	return ch
}

// Callers that come while the work runs wait for it instead of running
// their own: one run, one value for all, one caller not joined.
func TestConcurrentCallersShareOneRun(t *testing.T) {
	run, _ := newRunner(t)
	g := New[string, int](run, Options[int]{})
	w := newHeldWork()
	const callers = 5
	first := goDo(context.Background(), g, w.fn)
	<-w.started
	var rest []<-chan outcome
	for range callers - 1 {
		rest = append(rest, goDo(context.Background(), g, w.fn))
	}
	waitFor(t, "every other caller has joined", func() bool { return g.Joined() == callers-1 })
	close(w.release)
	if o := <-first; o.v != 41 || o.joined || o.err != nil {
		t.Fatalf("first caller got %+v, want 41, not joined", o)
	}
	for _, ch := range rest {
		if o := <-ch; o.v != 41 || !o.joined || o.err != nil {
			t.Fatalf("joined caller got %+v, want 41, joined", o)
		}
	}
	if n := w.runs.Load(); n != 1 {
		t.Fatalf("the work ran %d times for %d concurrent callers, want once", n, callers)
	}
	// Once it has ended, the next caller runs it anew.
	w.release = make(chan struct{})
	close(w.release)
	if v, joined, _ := g.Do(context.Background(), "k", w.fn); joined || v != 42 {
		t.Fatalf("a call after the first ended: %d, joined %v; want a new run", v, joined)
	}
}

// Work is not cancelled when its callers leave: a caller that stops waiting
// gets its context's cause at once, the work completes, a caller that
// comes meanwhile joins it, and the value the first caller
// left behind goes to Unclaimed. Only the runner's context (shutdown) ends
// it.
func TestWorkOutlivesItsCallers(t *testing.T) {
	run, shutdown := newRunner(t)
	unclaimed := make(chan int, 1)
	g := New[string, int](run, Options[int]{Unclaimed: func(v int) { unclaimed <- v }})
	w := newHeldWork()
	ctx, leave := context.WithCancel(context.Background())
	first := goDo(ctx, g, w.fn)
	work := <-w.started
	leave()
	if o := <-first; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("first caller that left: %+v", o)
	}
	if work.Err() != nil {
		t.Fatal("the work was cancelled when its only caller left")
	}
	late := goDo(context.Background(), g, w.fn)
	waitFor(t, "a later caller has joined the detached work", func() bool { return g.Joined() == 1 })
	close(w.release)
	if o := <-late; o.v != 41 || !o.joined {
		t.Fatalf("later caller got %+v, want the detached work's 41, joined", o)
	}
	if v := receive(t, unclaimed, "Unclaimed"); v != 41 {
		t.Fatalf("Unclaimed got %d, want 41", v)
	}
	if w.runs.Load() != 1 {
		t.Fatalf("%d runs, want 1", w.runs.Load())
	}

	// Shutdown ends detached work that nobody waits for.
	w.release = make(chan struct{})
	ctx, leave = context.WithCancel(context.Background())
	again := goDo(ctx, g, w.fn)
	work = <-w.started
	leave()
	<-again
	shutdown()
	<-work.Done()
	if v := receive(t, unclaimed, "Unclaimed after shutdown"); v != 0 {
		t.Fatalf("Unclaimed got %d from cancelled work, want its zero value", v)
	}
}

// Unclaimed is for a first caller that left: when it took the value,
// nothing is handed over.
func TestUnclaimedOnlyWhenTheFirstCallerLeft(t *testing.T) {
	run, _ := newRunner(t)
	unclaimed := make(chan int, 2)
	g := New[string, int](run, Options[int]{Unclaimed: func(v int) { unclaimed <- v }})
	w := newHeldWork()
	first := goDo(context.Background(), g, w.fn)
	<-w.started
	ctx, leave := context.WithCancel(context.Background())
	joiner := goDo(ctx, g, w.fn)
	waitFor(t, "the second caller has joined", func() bool { return g.Joined() == 1 })
	leave() // a joined caller leaving hands nothing over
	<-joiner
	close(w.release)
	if o := <-first; o.v != 41 || o.joined {
		t.Fatalf("first caller: %+v", o)
	}
	run.wg.Wait() // Unclaimed would run before the work's goroutine ends
	if len(unclaimed) != 0 {
		t.Fatalf("Unclaimed got %d, though the first caller took the value", <-unclaimed)
	}
}

// A panic in the work reaches every caller that waits, as a *PanicError
// with the work's value and stack, and does not crash the process; with
// nobody waiting, it is logged.
func TestPanicIsRaisedInEveryCaller(t *testing.T) {
	run, _ := newRunner(t)
	logged := make(chan string, 1)
	g := New[string, int](run, Options[int]{Log: slog.New(recordHandler(logged))})
	started, boom := make(chan struct{}), make(chan struct{})
	explode := func(context.Context) (int, error) {
		close(started)
		<-boom
		panic("boom")
	}
	const callers = 3
	caught := make(chan any, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { caught <- recover() }()
			g.Do(context.Background(), "k", explode)
			t.Errorf("caller %d: Do returned after the work panicked", i)
		}()
		if i == 0 {
			<-started
		}
	}
	waitFor(t, "every caller waits", func() bool { return g.Joined() == callers-1 })
	close(boom)
	wg.Wait()
	close(caught)
	for p := range caught {
		pe, ok := p.(*PanicError)
		if !ok || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "TestPanicIsRaisedInEveryCaller") {
			t.Fatalf("caller recovered %#v, want a *PanicError with the value and the work's stack", p)
		}
	}

	// Nobody waits: the panic is logged, not raised anywhere.
	ctx, leave := context.WithCancel(context.Background())
	started, boom = make(chan struct{}), make(chan struct{})
	if _, _, err := g.Do(ctx, "k", func(context.Context) (int, error) {
		close(started)
		leave()
		<-boom
		panic("unwatched")
	}); !errors.Is(err, context.Canceled) {
		t.Fatalf("caller that left: %v", err)
	}
	close(boom)
	if msg := receive(t, logged, "the log of a panic nobody waits for"); !strings.Contains(msg, "unwatched") {
		t.Fatalf("logged %q, want the panic", msg)
	}
}

// recordHandler is an slog.Handler that sends each record's message and
// attributes to a channel.
type recordHandler chan string

func (h recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h recordHandler) WithGroup(string) slog.Handler            { return h }
func (h recordHandler) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	h <- b.String()
	return nil
}

// Callers that leave and work that ends leave no goroutine and no call
// behind.
func TestNoGoroutineLeftBehind(t *testing.T) {
	run, _ := newRunner(t)
	before := runtime.NumGoroutine()
	g := New[string, int](run, Options[int]{})
	for range 20 {
		w := newHeldWork()
		ctx, leave := context.WithCancel(context.Background())
		joined := g.Joined() + 2
		first := goDo(ctx, g, w.fn)
		<-w.started
		stay := goDo(context.Background(), g, w.fn)
		leaving := goDo(ctx, g, w.fn)
		waitFor(t, "two callers have joined", func() bool { return g.Joined() == joined })
		leave()
		<-first
		<-leaving
		close(w.release)
		if o := <-stay; o.v != 41 {
			t.Fatalf("the caller that stayed got %+v", o)
		}
	}
	run.wg.Wait()
	g.mu.Lock()
	calls := len(g.calls)
	g.mu.Unlock()
	if calls != 0 {
		t.Fatalf("%d calls left in the group", calls)
	}
	waitFor(t, "the goroutines of ended work are gone", func() bool { return runtime.NumGoroutine() <= before })
}

// BenchmarkDo is the cost of one call that nobody joins: what coalescing
// adds to a discovery or revalidation of its own.
func BenchmarkDo(b *testing.B) {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := &runner{base: base}
	defer run.wg.Wait()
	g := New[string, int](run, Options[int]{})
	b.ReportAllocs()
	for b.Loop() {
		if v, _, _ := g.Do(context.Background(), "k", func(context.Context) (int, error) { return 1, nil }); v != 1 {
			b.Fatal("wrong value")
		}
	}
}
