package flight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// chunkSize is the most a fill reads from upstream before writing: a read
// returns what the socket has, so bytes reach the file (and followers) as
// they arrive, never held back to fill a buffer.
const chunkSize = 128 << 10

var chunks = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// errShortBody reports an upstream body that ended before the bytes it
// promised.
var errShortBody = errors.New("upstream body ended early")

// run writes the upstream body into the claimed blocks. body is nil when the
// fill must open it from src. Whatever happens, every block it has not
// committed is released (absent, unclaimed) and the followers are woken.
func (f *Fill) run(src Source, body io.ReadCloser, start, end int64) {
	g, obj := f.g, f.obj
	defer g.ended() // last: Wait returns once the blocks are released
	defer g.activeFills.Add(-1)
	defer f.cancel()
	next := f.first // first block not yet committed
	var err error
	defer func() {
		g.mu.Lock()
		g.releaseLocked(f, next)
		g.mu.Unlock()
		f.mu.Lock()
		f.finished, f.err = true, err
		if f.waiting > 0 {
			close(f.notify)
			f.waiting = 0
		}
		f.mu.Unlock()
	}()

	from, _ := obj.BlockBounds(f.first)
	if body == nil {
		_, want := obj.BlockBounds(f.last)
		body, start, end, err = src.Open(f.ctx, from, want)
		if err != nil {
			return
		}
	}
	defer body.Close()
	// Cancelling the fill (shutdown) closes its body, which ends a Read
	// waiting for bytes that do not come, whatever context the body was
	// opened under (a seeded body: its discovery's). (A stall without
	// shutdown ends by the upstream client's idle timeout.)
	defer context.AfterFunc(f.ctx, func() { body.Close() })()
	if start > from || end > obj.Size() {
		err = fmt.Errorf("upstream sent bytes %d-%d for a fill from %d: %w", start, end, from, ErrChanged)
		return
	}
	if start < from {
		// Upstream ignored Range and sent the object from its start.
		if _, err = io.CopyN(io.Discard, body, from-start); err != nil {
			err = shortBody(err)
			return
		}
	}
	wf, err := obj.OpenWriter()
	if err != nil {
		return
	}
	defer wf.Close()
	bp := chunks.Get().(*[]byte)
	defer chunks.Put(bp)
	buf := *bp

	for i := f.first; ; i++ {
		if i > f.last && !f.extend(i, end) {
			return
		}
		if bs, _ := obj.BlockBounds(i); bs >= end {
			return // upstream sent fewer bytes than asked: others fetch the rest
		}
		w, werr := obj.NewBlockWriter(wf, i)
		if werr != nil {
			err = werr
			return
		}
		for w.Remaining() > 0 {
			n, rerr := body.Read(buf[:min(int64(len(buf)), w.Remaining())])
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					w.Abort()
					err = werr
					return
				}
				if w.Remaining() > 0 {
					f.advance(w.Offset())
				}
			}
			if rerr != nil && w.Remaining() > 0 {
				w.Abort()
				err = shortBody(rerr)
				return
			}
		}
		if err = w.Commit(); err != nil {
			return
		}
		g.mu.Lock()
		delete(g.fills[obj], i)
		next = i + 1
		f.committed = next
		g.mu.Unlock()
		// A block's last bytes are published only once it is committed:
		// a client that has read the whole object finds every block
		// present, so its next request is a hit, not a read along a fill.
		f.advance(w.Offset())
		if err = f.ctx.Err(); err != nil {
			return
		}
		f.mu.Lock()
		readers := f.readers
		f.mu.Unlock()
		if readers == 0 {
			return // every client left: finish the current block and stop
		}
	}
}

// extend claims block i when the upstream body goes on past the claimed
// blocks (an upstream that ignored Range): bytes that arrive anyway are kept.
func (f *Fill) extend(i, bodyEnd int64) bool {
	start, _ := f.obj.BlockBounds(i)
	if i >= f.obj.NumBlocks() || bodyEnd <= start {
		return false
	}
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	return f.g.tryClaimLocked(f, i)
}

func shortBody(err error) error {
	if err == io.EOF {
		return errShortBody
	}
	return fmt.Errorf("%w: %v", errShortBody, err)
}
