package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"time"
)

// Writer is an object's data opened for block writers (a fill). While one
// is open the object's data is not synced: see SyncDelay.
type Writer struct {
	o      *Object
	w      DataWriter
	closed bool
}

// OpenWriter opens the object's data for block writers; the caller closes
// the Writer.
func (o *Object) OpenWriter() (*Writer, error) {
	w, err := o.drive.backend.OpenWriter(o.id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrRemoved
		}
		o.store.markFailed(o.drive, err)
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	o.store.mu.Lock()
	o.writers++
	o.store.mu.Unlock()
	return &Writer{o: o, w: w}, nil
}

// Close closes the Writer; a second Close does nothing.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.w.Close()
	w.o.store.mu.Lock()
	w.o.writers--
	w.o.store.mu.Unlock()
	return err
}

// BlockWriter writes one block of an object. Bytes written are readable
// through the object's Readers at once (read-while-write); the block
// counts as present only after Commit.
type BlockWriter struct {
	o          *Object
	f          *Writer
	i          int64
	start, end int64
	n          int64
	crc        uint32
	done       bool
}

// NewBlockWriter reserves space for block i on the object's drive (evicting
// least-recently-used objects if needed) and returns a writer for it that
// writes through f (from OpenWriter). The caller guarantees one writer per
// block at a time.
func (o *Object) NewBlockWriter(f *Writer, i int64) (*BlockWriter, error) {
	start, end := o.BlockBounds(i)
	s := o.store
	var note func() // logged once the lock is released
	defer func() {
		if note != nil {
			note()
		}
	}()
	s.mu.Lock()
	defer s.unlock() // evicting deletes data
	if o.removed {
		return nil, ErrRemoved
	}
	d := o.drive
	if d.failed != nil {
		return nil, fmt.Errorf("%w: %v", ErrStorage, d.failed)
	}
	o.pins++ // before evicting, so that o itself is not chosen
	if !s.evictLocked(d, end-start) {
		o.pins--
		if now := time.Now(); now.Sub(d.lastFullWarn) > time.Minute {
			d.lastFullWarn = now
			budget, reserved := d.spec.Budget, d.reserved
			note = func() {
				s.log.Warn("cache drive full of objects being written: passing content through uncached",
					"drive", d.spec.Path, "budget", budget, "reserved", reserved)
			}
		}
		return nil, fmt.Errorf("%w: %v", ErrStorage, ErrNoSpace)
	}
	d.reserved += end - start
	return &BlockWriter{o: o, f: f, i: i, start: start, end: end}, nil
}

// Offset is the object offset the next Write goes to.
func (w *BlockWriter) Offset() int64 { return w.start + w.n }

// Remaining is how many bytes the block still needs.
func (w *BlockWriter) Remaining() int64 { return w.end - w.start - w.n }

// Write appends p to the block. Writing past the block's end is an error.
func (w *BlockWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > w.Remaining() {
		return 0, fmt.Errorf("store: write of %d bytes past the end of block %d", len(p), w.i)
	}
	n, err := w.f.w.WriteAt(p, w.start+w.n)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.n += int64(n)
	if err != nil {
		w.o.store.markFailed(w.o.drive, err)
		return n, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return n, nil
}

// Commit marks the block present. It fails when the block is incomplete or
// the object was removed meanwhile.
func (w *BlockWriter) Commit() error {
	if w.done {
		return errors.New("store: block writer already finished")
	}
	if w.Remaining() != 0 {
		w.Abort()
		return fmt.Errorf("store: block %d incomplete: %d of %d bytes", w.i, w.n, w.end-w.start)
	}
	w.done = true
	o, s := w.o, w.o.store
	s.mu.Lock()
	defer s.mu.Unlock()
	o.pins--
	o.drive.reserved -= w.end - w.start
	if o.removed {
		return ErrRemoved
	}
	if o.blocks[w.i] == blockAbsent {
		o.blocks[w.i] = blockVerified
		o.crcs[w.i] = w.crc
		o.presentBytes += w.end - w.start
		o.drive.used += w.end - w.start
		now := time.Now()
		if !o.dirtyData {
			o.dirtyData, o.dataSince = true, now
		}
		o.lastData = now
		o.markDirtyLocked()
	}
	return nil
}

// Abort gives the reservation back without marking the block present.
func (w *BlockWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	s := w.o.store
	s.mu.Lock()
	defer s.mu.Unlock()
	w.o.pins--
	w.o.drive.reserved -= w.end - w.start
}
