package flight

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gatecache/internal/store"
)

const testBlock = 4096

// source is a hand-written upstream: it serves data, records every Open,
// and can hand out a body the test controls instead.
type source struct {
	data []byte

	mu    sync.Mutex
	opens [][2]int64
	body  func(off, want int64) io.ReadCloser
}

func (s *source) Open(ctx context.Context, off, want int64) (io.ReadCloser, int64, int64, error) {
	s.mu.Lock()
	s.opens = append(s.opens, [2]int64{off, want})
	body := s.body
	s.mu.Unlock()
	if body != nil {
		return body(off, want), off, want, nil
	}
	return io.NopCloser(bytes.NewReader(s.data[off:want])), off, want, nil
}

func (s *source) openCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.opens)
}

func setup(t *testing.T, size int64) (*store.Store, *store.Object, *Group, []byte) {
	t.Helper()
	st, err := store.Open(store.Options{
		Drives:    []store.DriveSpec{{Path: filepath.Join(t.TempDir(), "d"), Budget: 1 << 30}},
		BlockSize: testBlock, FlushInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	obj, err := st.Create("k", store.Meta{Size: size})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(7, uint64(size)))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return st, obj, NewGroup(ctx), data
}

func TestReadersOfOneRangeShareOneFill(t *testing.T) {
	_, obj, g, data := setup(t, 10*testBlock+1)
	pr, pw := io.Pipe()
	src := &source{data: data, body: func(off, want int64) io.ReadCloser { return pr }}

	a := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	b := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	for i, rd := range []*Reader{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = io.ReadAll(rd)
		}()
	}
	// Both wait on the one fill before any byte arrives: without that, a
	// reader scheduled late finds every block present and joins nothing.
	for deadline := time.Now().Add(20 * time.Second); g.Stats().Coalesced < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the second reader never joined the fill")
		}
		time.Sleep(time.Millisecond)
	}
	// The body arrives in odd-sized pieces; both readers see every byte.
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1000+off%777)
		if _, err := pw.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	pw.Close()
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], data) {
			t.Fatalf("reader %d: %d bytes, equal %v", i, len(got[i]), bytes.Equal(got[i], data))
		}
	}
	if n := src.openCount(); n != 1 {
		t.Fatalf("%d upstream opens for two readers of one object, want 1", n)
	}
	if g.Stats().Coalesced != 1 {
		t.Fatalf("coalesced = %d, want 1", g.Stats().Coalesced)
	}
}

func TestFillStopsAfterItsBlockWhenEveryReaderLeaves(t *testing.T) {
	_, obj, g, data := setup(t, 4*testBlock)
	pr, pw := io.Pipe()
	src := &source{data: data, body: func(off, want int64) io.ReadCloser { return pr }}

	rd := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	go pw.Write(data[:100])
	buf := make([]byte, 100)
	if _, err := io.ReadFull(rd, buf); err != nil {
		t.Fatal(err)
	}
	rd.Close() // the only client leaves

	// The fill still completes the block it is in...
	if _, err := pw.Write(data[100:testBlock]); err != nil {
		t.Fatal(err)
	}
	// ...then stops: nobody reads the rest of the body any more.
	if _, err := pw.Write(data[testBlock : testBlock+1]); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("writing past the block: %v, want the fill to have closed the body", err)
	}
	present := obj.Present()
	if !present[0] || present[1] {
		t.Fatalf("present blocks %v, want only block 0", present)
	}
}

func TestRangeReaderClaimsOnlyItsBlocks(t *testing.T) {
	_, obj, g, data := setup(t, 10*testBlock)
	src := &source{data: data}
	rd := g.NewReader(context.Background(), obj, src, 5*testBlock, nil)
	rd.Seek(3*testBlock+10, io.SeekStart)
	got := make([]byte, 2*testBlock-10)
	if _, err := io.ReadFull(rd, got); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	if !bytes.Equal(got, data[3*testBlock+10:5*testBlock]) {
		t.Fatal("wrong bytes")
	}
	if len(src.opens) != 1 || src.opens[0] != [2]int64{3 * testBlock, 5 * testBlock} {
		t.Fatalf("upstream opens %v, want one for blocks 3-4", src.opens)
	}
}

func TestReaderPassesThroughWhenTheObjectLeavesTheStore(t *testing.T) {
	st, obj, g, data := setup(t, 6*testBlock)
	src := &source{data: data}
	rd := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	defer rd.Close()
	head := make([]byte, 2*testBlock)
	if _, err := io.ReadFull(rd, head); err != nil {
		t.Fatal(err)
	}
	st.RemoveObject(obj) // evicted or replaced while a client reads it
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(head, rest...), data) {
		t.Fatal("wrong bytes after the object left the store")
	}
	if rd.Err() != nil {
		t.Fatalf("reader error %v", rd.Err())
	}
}

func TestUpstreamErrorReachesTheWaitingReader(t *testing.T) {
	_, obj, g, data := setup(t, 3*testBlock)
	src := &source{data: data, body: func(off, want int64) io.ReadCloser {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data[:500]), errReader{}))
	}}
	rd := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	defer rd.Close()
	got, err := io.ReadAll(rd)
	if err == nil || !bytes.Equal(got, data[:len(got)]) {
		t.Fatalf("ReadAll: %d bytes, err %v; want an error after correct bytes", len(got), err)
	}
	if rd.Err() == nil {
		t.Fatal("Err() is nil after a failed read")
	}
	if p := obj.Present(); p[0] {
		t.Fatal("a partial block was marked present")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// within fails the test if fn has not returned by a generous deadline: the
// waits under test end long before it, or never.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: still waiting after 30 s", what)
	}
}

// Shutdown cancels the group's base: a fill whose upstream body sends
// nothing more ends at once (its body is closed), releases its blocks and
// wakes its readers, so Wait returns, whatever context its body was
// opened under (here: none that is ever cancelled).
func TestShutdownEndsAFillWhoseUpstreamStalls(t *testing.T) {
	st, err := store.Open(store.Options{
		Drives:    []store.DriveSpec{{Path: filepath.Join(t.TempDir(), "d"), Budget: 1 << 30}},
		BlockSize: testBlock, FlushInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	obj, err := st.Create("k", store.Meta{Size: 4 * testBlock})
	if err != nil {
		t.Fatal(err)
	}
	base, stop := context.WithCancel(context.Background())
	g := NewGroup(base)
	pr, pw := io.Pipe()
	defer pw.Close()
	f := g.Seed(obj, pr, 0, obj.Size(), 3)
	rd := g.NewReader(context.Background(), obj, &source{}, obj.Size(), f)
	defer rd.Close()
	if _, err := pw.Write(make([]byte, 100)); err != nil { // then nothing
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rd)
		got <- err
	}()
	stop()
	within(t, "Wait after shutdown", g.Wait)
	var rerr error
	within(t, "the reader of the cancelled fill", func() { rerr = <-got })
	if rerr == nil {
		t.Fatal("the reader completed a body whose fill was cancelled")
	}
	if p := obj.Present(); p[0] {
		t.Fatal("a partial block was marked present")
	}
}

// Background work started with Go runs under the base and is waited for.
func TestWaitWaitsForBackgroundWork(t *testing.T) {
	base, stop := context.WithCancel(context.Background())
	g := NewGroup(base)
	started := make(chan struct{})
	ended := false
	g.Go(func(ctx context.Context) {
		close(started)
		<-ctx.Done()
		ended = true
	})
	<-started
	stop()
	within(t, "Wait for background work", g.Wait)
	if !ended {
		t.Fatal("Wait returned before the background work ended")
	}
}

// A seeded fill claims every block its body will carry, not only those its
// first client asked for: a client that asks for a later block meanwhile
// reads it as it arrives instead of fetching it a second time upstream.
func TestSeededFillCarriesEveryBlockItsBodyCovers(t *testing.T) {
	_, obj, g, data := setup(t, 4*testBlock+100)
	src := &source{data: data}
	pr, pw := io.Pipe()
	seeded := g.Seed(obj, pr, 0, obj.Size(), 0) // its client needs block 0
	lead := g.NewReader(context.Background(), obj, src, obj.Size(), seeded)
	defer lead.Close()
	late := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	defer late.Close()
	if _, err := late.Seek(4*testBlock, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var lateGot []byte
	var lateErr error
	lateDone := make(chan struct{})
	go func() {
		defer close(lateDone)
		lateGot, lateErr = io.ReadAll(late)
	}()
	// No byte of the body comes before the late reader has found its
	// block taken by the seeded fill (a follower), or fetched it itself.
	for deadline := time.Now().Add(10 * time.Second); g.Stats().Coalesced == 0 && src.openCount() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the late reader neither followed nor fetched")
		}
		time.Sleep(time.Millisecond)
	}
	go pw.Write(data)
	leadGot, err := io.ReadAll(lead)
	<-lateDone
	if err != nil || lateErr != nil || !bytes.Equal(lateGot, data[4*testBlock:]) || !bytes.Equal(leadGot, data) {
		t.Fatalf("wrong bytes (errors %v, %v)", err, lateErr)
	}
	if n := src.openCount(); n != 0 {
		t.Fatalf("%d upstream requests besides the seeded body, want 0", n)
	}
}
