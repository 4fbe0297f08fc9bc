package flight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"gatecache/internal/store"
)

// Reader reads one object for one client: present blocks from the store,
// blocks being filled as their bytes arrive, and absent blocks by starting a
// fill. It is an io.ReadSeeker for http.ServeContent.
//
// When the store cannot hold the bytes (drive failed or full of pinned
// objects, object evicted or replaced meanwhile) the Reader passes the rest
// of its range straight through from upstream: a storage fault never fails a
// client.
type Reader struct {
	g     *Group
	obj   *store.Object
	src   Source
	ctx   context.Context
	limit int64 // fills claim blocks up to the one holding byte limit-1

	off  int64
	own  []*Fill // fills this reader started: their bytes are its misses
	data store.Reader
	cur  *Fill // the fill this reader is registered with

	direct    io.ReadCloser // pass-through after a storage fault
	directOff int64

	err       error
	fileFault error
	missBytes int64
}

// NewReader returns a reader of obj whose client needs bytes before limit.
// seeded is the fill returned by Seed for the caller, or nil.
func (g *Group) NewReader(ctx context.Context, obj *store.Object, src Source, limit int64, seeded *Fill) *Reader {
	r := &Reader{g: g, obj: obj, src: src, ctx: ctx, limit: min(limit, obj.Size()), cur: seeded}
	if seeded != nil {
		r.own = append(r.own, seeded)
	}
	return r
}

// Err is the first error other than io.EOF that a Read returned: the response
// must then be aborted, not completed.
func (r *Reader) Err() error { return r.err }

// MissBytes counts the bytes read that this reader had to fetch from
// upstream: those of fills it started, and any it passed through. Bytes of
// blocks already present, or brought in by another request's fill, cost the
// uplink nothing more and are hits: N clients on one cold object count the
// object once as a miss.
func (r *Reader) MissBytes() int64 { return r.missBytes }

// fetchedHere reports whether block i came in through a fill this reader
// started: one that committed it. A fill only ever claims absent blocks,
// so what it committed was fetched for this reader, however early the fill
// finished (a seeded fill may end before the reader is made).
func (r *Reader) fetchedHere(i int64) bool {
	if len(r.own) == 0 {
		return false
	}
	r.g.mu.Lock() // guards the fills' committed ranges
	defer r.g.mu.Unlock()
	for _, f := range r.own {
		if i >= f.first && i < f.committed {
			return true
		}
	}
	return false
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.obj.Size()
	default:
		return 0, errors.New("flight: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("flight: negative offset")
	}
	r.off = offset
	return offset, nil
}

// Close releases the reader's data and its registration with a fill.
func (r *Reader) Close() error {
	r.follow(nil)
	if r.data != nil {
		r.data.Close()
		r.data = nil
	}
	if r.direct != nil {
		r.direct.Close()
		r.direct = nil
	}
	return nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.off >= r.obj.Size() {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	r.off += int64(n)
	return n, err
}

func (r *Reader) read(p []byte) (int, error) {
	if r.direct != nil {
		return r.readDirect(p)
	}
	obj := r.obj
	i := r.off / obj.BlockSize()
	_, blockEnd := obj.BlockBounds(i)
	for {
		present, verified := obj.BlockState(i)
		if verified {
			n, err := r.readData(p[:min(int64(len(p)), blockEnd-r.off)])
			if r.direct == nil && r.fetchedHere(i) { // a pass-through counted its bytes
				r.missBytes += int64(n)
			}
			return n, err
		}
		if present {
			if err := r.openData(); err != nil {
				return r.fallback(p, err)
			}
			if _, err := obj.VerifyBlock(r.data, i); err != nil {
				return r.fallback(p, err)
			}
			continue // verified, or dropped and to be fetched
		}

		f, err := r.join(i)
		if err != nil {
			return r.fallback(p, err)
		}
		if f == nil {
			continue // became present meanwhile
		}
		written, finished, err := f.wait(r.ctx, r.off)
		if written > r.off {
			n, err := r.readData(p[:min(int64(len(p)), written-r.off, blockEnd-r.off)])
			if r.direct == nil && slices.Contains(r.own, f) {
				r.missBytes += int64(n)
			}
			return n, err
		}
		if err != nil {
			return r.fallback(p, err)
		}
		if !finished {
			return 0, fmt.Errorf("flight: fill woke without progress at %d", r.off)
		}
		// The fill stopped before our bytes without an error (its
		// readers had gone): look again, and fill it ourselves.
	}
}

// join finds or starts the fill for block i and registers with it. It
// returns nil when the block turned out to be present.
func (r *Reader) join(i int64) (*Fill, error) {
	g, obj := r.g, r.obj
	g.mu.Lock()
	if obj.Removed() {
		g.mu.Unlock()
		return nil, store.ErrRemoved
	}
	if present, _ := obj.BlockState(i); present {
		g.mu.Unlock()
		return nil, nil
	}
	f := g.fills[obj][i]
	if f == nil && g.base.Err() != nil {
		// Shutting down: no new fill starts, whatever a reader needs.
		g.mu.Unlock()
		return nil, fmt.Errorf("flight: no new fill during shutdown: %w", g.base.Err())
	}
	started := false
	switch {
	case f == nil:
		last := obj.NumBlocks() - 1
		if r.limit > 0 {
			last = min(last, (r.limit-1)/obj.BlockSize())
		}
		f = g.claimLocked(obj, i, max(i, last))
		started = true
	case f != r.cur:
		f.addReader()
		g.followers.Add(1)
	}
	g.mu.Unlock()
	if f != r.cur {
		r.follow(nil)
		r.cur = f
	}
	if started {
		r.own = append(r.own, f)
		go f.run(r.src, nil, 0, 0)
	}
	return f, nil
}

// follow unregisters from the current fill and registers with f.
func (r *Reader) follow(f *Fill) {
	if r.cur != nil && r.cur != f {
		r.cur.dropReader()
	}
	r.cur = f
}

func (r *Reader) openData() error {
	if r.data != nil {
		return nil
	}
	d, err := r.obj.Open()
	if err != nil {
		return err
	}
	r.data = d
	return nil
}

func (r *Reader) readData(p []byte) (int, error) {
	if err := r.openData(); err != nil {
		return r.fallback(p, err)
	}
	n, err := r.data.ReadAt(p, r.off)
	if n > 0 {
		// A short read (a file cut short under the store) still read
		// good bytes: return them; the next Read, at the offset where
		// they end, reads nothing and falls back from there.
		return n, nil
	}
	r.fileFault = fmt.Errorf("%w: read %s at %d: %v", store.ErrStorage, r.obj.Location(), r.off, err)
	return r.fallback(p, r.fileFault)
}

// FileFault is the error of a read of present blocks that came up short or
// failed (a data file cut short or unreadable): the reader passed the rest
// through from upstream, and the object's data no longer holds what its
// blocks say.
func (r *Reader) FileFault() error { return r.fileFault }

// fallback passes the rest of the range through from upstream when err is a
// storage fault, and returns err otherwise.
func (r *Reader) fallback(p []byte, err error) (int, error) {
	if !errors.Is(err, store.ErrStorage) && !errors.Is(err, store.ErrRemoved) {
		return 0, err
	}
	r.follow(nil)
	body, start, _, oerr := r.src.Open(r.ctx, r.off, max(r.limit, r.off+1))
	if oerr != nil {
		return 0, oerr
	}
	if start < r.off {
		if _, derr := io.CopyN(io.Discard, body, r.off-start); derr != nil {
			body.Close()
			return 0, shortBody(derr)
		}
	}
	r.direct, r.directOff = body, r.off
	return r.readDirect(p)
}

func (r *Reader) readDirect(p []byte) (int, error) {
	if r.directOff != r.off {
		// ServeContent seeks only before reading; a seek during a
		// pass-through would need a new upstream request.
		return 0, errors.New("flight: seek during pass-through")
	}
	p = p[:min(int64(len(p)), r.obj.Size()-r.off)]
	n, err := r.direct.Read(p)
	r.directOff += int64(n)
	r.missBytes += int64(n)
	if err == io.EOF && r.directOff < r.obj.Size() && n == 0 {
		return 0, errShortBody
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// Coverage counts the blocks in [first, last] of obj that are present, and
// those absent but being filled now: a reader of them would read another
// request's fill, not ask upstream itself.
func (g *Group) Coverage(obj *store.Object, first, last int64) (present, filling int64) {
	g.mu.Lock() // a fill commits a block before it drops its claim
	defer g.mu.Unlock()
	claims := g.fills[obj]
	for i := first; i <= last; i++ {
		if p, _ := obj.BlockState(i); p {
			present++
		} else if claims[i] != nil {
			filling++
		}
	}
	return present, filling
}
