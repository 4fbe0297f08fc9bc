package store

import (
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"
)

// castagnoli is CRC-32C, computed in hardware on amd64 and arm64: checking a
// block costs far less than reading it.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Field is one stored response header field: its name and its values, in
// the order they came. The store keeps them as they are given; its user hands
// them to every response without copying, so they are never changed in place.
type Field struct {
	Name   string
	Values []string
}

// Meta describes one version of an object. Blocks of different versions are
// never mixed: a new version is a new Object.
type Meta struct {
	Size         int64
	ETag         string    // strong or weak validator as sent upstream, "" if none
	LastModified string    // as sent upstream, "" if none
	Header       []Field   // response header fields replayed to clients
	StoredAt     time.Time // when the response was received (RFC 9111 §4.2.3 response_time)
	// Restricted marks a version its user may reuse only within the
	// limits its origin set (a response to a request with credentials);
	// the store only keeps the mark.
	Restricted bool
	// Vary, when set, makes the object a marker (see CreateVariant): it
	// holds no content, names what its key's variants differ in, and
	// lists their keys in Variants, oldest first. It never changes.
	Vary     []string
	Variants []string
}

type blockState uint8

const (
	blockAbsent   blockState = iota
	blockPresent             // committed before the last start; checked before its first use
	blockVerified            // written or checked since start: safe to serve as is
)

// Object is one cached version of one cache key.
type Object struct {
	store *Store
	drive *drive
	key   string
	id    uint64
	vary  []string // meta.Vary, which never changes: read without the lock

	// Guarded by store.mu.
	meta         Meta
	blocks       []blockState
	crcs         []uint32
	presentBytes int64
	atime        int64 // unix nanoseconds of the last use
	lruElem      *list.Element
	removed      bool
	dirty        bool      // record must be rewritten
	dirtyData    bool      // blocks committed since the last flush: fdatasync before indexing
	dataSince    time.Time // first commit not yet synced
	lastData     time.Time // last block commit
	pins         int       // block writers in progress: not evictable
	writers      int       // open writer files (fills in progress)
	mem          []byte    // copy of a small complete object, see MemoryCopy
	born, expiry time.Time // freshness, as the cache's user computed it (see Freshness)
	headerGen    uint64    // counts SetHeader calls, so a stale computation is not kept
}

func newObject(s *Store, d *drive, key string, id uint64, meta Meta) *Object {
	n := blockCount(meta.Size, s.blockSize)
	return &Object{
		store: s, drive: d, key: key, id: id, meta: meta, vary: meta.Vary,
		blocks: make([]blockState, n), crcs: make([]uint32, n),
		atime: time.Now().UnixNano(),
	}
}

func blockCount(size, blockSize int64) int64 { return (size + blockSize - 1) / blockSize }

// Key is the cache key the object is stored under.
func (o *Object) Key() string { return o.key }

// Vary is the marker's list of what its variants differ in (Meta.Vary); nil
// for an object with content, and for nil.
func (o *Object) Vary() []string {
	if o == nil {
		return nil
	}
	return o.vary
}

// Size is the object's length in bytes.
func (o *Object) Size() int64 { return o.meta.Size }

// NumBlocks is the number of blocks of the object.
func (o *Object) NumBlocks() int64 { return int64(len(o.blocks)) }

// BlockSize is the size of every block but the last.
func (o *Object) BlockSize() int64 { return o.store.blockSize }

// BlockBounds is block i's byte range [start, end).
func (o *Object) BlockBounds(i int64) (start, end int64) {
	start = i * o.store.blockSize
	return start, min(start+o.store.blockSize, o.meta.Size)
}

// Path is the object's data file.
func (o *Object) Path() string { return o.drive.dataPath(o.id) }

// Meta returns the object's metadata.
func (o *Object) Meta() Meta {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return o.meta
}

// SetHeader replaces the stored response header fields and response time,
// as after a revalidation (RFC 9111 §4.3.4). Size and validators stay.
func (o *Object) SetHeader(h []Field, storedAt time.Time) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	o.meta.Header = h
	o.meta.StoredAt = storedAt
	o.born, o.expiry = time.Time{}, time.Time{}
	o.headerGen++
	o.markDirtyLocked()
}

// Freshness returns what SetFreshness recorded for the current headers: when
// the response was generated (now minus its age) and when it stops being
// fresh. Both are zero until set, and again after SetHeader. The store only
// keeps them, so that the cache's user computes them once per response, not
// on every hit. gen identifies the headers they belong to.
func (o *Object) Freshness() (born, expiry time.Time, gen uint64) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return o.born, o.expiry, o.headerGen
}

// SetFreshness records the freshness computed for the headers of generation
// gen (from Freshness). It is dropped when the headers changed meanwhile: a
// computation from headers a revalidation has just replaced must not stick.
func (o *Object) SetFreshness(gen uint64, born, expiry time.Time) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	if gen == o.headerGen {
		o.born, o.expiry = born, expiry
	}
}

// Removed reports whether the object has left the cache.
func (o *Object) Removed() bool {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return o.removed
}

// Verified reports whether every block in [first, last] is present and known
// good, so that the bytes can be served straight from the file.
func (o *Object) Verified(first, last int64) bool {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	if o.removed {
		return false
	}
	for i := first; i <= last; i++ {
		if o.blocks[i] != blockVerified {
			return false
		}
	}
	return true
}

// PresentCount is how many of the blocks in [first, last] are present.
func (o *Object) PresentCount(first, last int64) int64 {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	var n int64
	for i := first; i <= last; i++ {
		if o.blocks[i] != blockAbsent {
			n++
		}
	}
	return n
}

// Present returns which blocks are present now, one flag per block.
func (o *Object) Present() []bool {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	out := make([]bool, len(o.blocks))
	for i, st := range o.blocks {
		out[i] = st != blockAbsent && !o.removed
	}
	return out
}

// BlockState says whether block i is present and whether it has been
// checked since start.
func (o *Object) BlockState(i int64) (present, verified bool) {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	if o.removed {
		return false, false
	}
	return o.blocks[i] != blockAbsent, o.blocks[i] == blockVerified
}

// Open opens the object's data file for reading.
func (o *Object) Open() (*os.File, error) {
	f, err := os.Open(o.Path())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Deleted behind our back (or lost in a crash after the index
			// was written): forget it so the next request refetches.
			o.store.RemoveObject(o)
			return nil, ErrRemoved
		}
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	return f, nil
}

var blockBufs = sync.Pool{New: func() any { return new([]byte) }}

// VerifyBlock checks a present block read through f against its recorded
// checksum. A good block is marked verified; a bad one is dropped (absent),
// so the caller fetches it again. It reports whether the block is good.
func (o *Object) VerifyBlock(f io.ReaderAt, i int64) (bool, error) {
	start, end := o.BlockBounds(i)
	bp := blockBufs.Get().(*[]byte)
	defer blockBufs.Put(bp)
	if int64(cap(*bp)) < end-start {
		*bp = make([]byte, o.store.blockSize)
	}
	buf := (*bp)[:end-start]
	_, rerr := f.ReadAt(buf, start)
	sum := crc32.Checksum(buf, castagnoli)

	s := o.store
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case o.removed || o.blocks[i] == blockAbsent:
		return false, nil
	case o.blocks[i] == blockVerified:
		return true, nil
	case rerr == nil && sum == o.crcs[i]:
		o.blocks[i] = blockVerified
		return true, nil
	}
	s.log.Warn("cache block failed its checksum: dropped, will be refetched",
		"key", o.key, "block", i, "read_err", rerr)
	s.dropBlockLocked(o, i)
	return false, nil
}

func (s *Store) dropBlockLocked(o *Object, i int64) {
	start, end := o.BlockBounds(i)
	o.blocks[i] = blockAbsent
	o.presentBytes -= end - start
	o.drive.used -= end - start
	o.drive.verifyFailures++
	o.markDirtyLocked()
}

func (o *Object) markDirtyLocked() {
	if !o.removed && !o.dirty {
		o.dirty = true
		o.drive.dirty[o] = struct{}{}
	}
}

func (o *Object) touchLocked() {
	o.atime = time.Now().UnixNano()
	if !o.removed {
		o.drive.lru.MoveToFront(o.lruElem)
		o.drive.touched[o] = struct{}{}
	}
}

// MemoryCopy returns the object's bytes from memory when it is small and
// complete, reading them from its file the first time. It returns nil for
// objects that do not qualify (too large, incomplete, memory budget spent):
// serve those from the file.
func (o *Object) MemoryCopy() []byte {
	s := o.store
	size := o.meta.Size
	s.mu.Lock()
	if o.mem != nil || size > s.memMax || o.removed || s.memUsed+size > s.memBudget || !o.allVerifiedLocked() {
		mem := o.mem
		s.mu.Unlock()
		return mem
	}
	s.mu.Unlock()

	buf := make([]byte, size)
	f, err := os.Open(o.Path())
	if err != nil {
		return nil
	}
	_, err = f.ReadAt(buf, 0)
	f.Close()
	if err != nil && !(err == io.EOF && size == 0) {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The blocks were verified before the read and an object's verified
	// bytes never change; only removal or a lost race needs a look.
	if o.removed || o.mem != nil || s.memUsed+size > s.memBudget {
		return o.mem
	}
	o.mem = buf
	s.memUsed += size
	return buf
}

func (o *Object) allVerifiedLocked() bool {
	for _, st := range o.blocks {
		if st != blockVerified {
			return false
		}
	}
	return true
}

// OpenWriter opens the object's data file for block writers; the caller
// closes it with CloseWriter.
func (o *Object) OpenWriter() (*os.File, error) {
	f, err := os.OpenFile(o.Path(), os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrRemoved
		}
		o.store.markFailed(o.drive, err)
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	o.store.mu.Lock()
	o.writers++
	o.store.mu.Unlock()
	return f, nil
}

// CloseWriter closes a file from OpenWriter.
func (o *Object) CloseWriter(f *os.File) {
	f.Close()
	o.store.mu.Lock()
	o.writers--
	o.store.mu.Unlock()
}

// BlockWriter writes one block of an object. Bytes written are readable
// through the data file at once (read-while-write); the block counts as
// present only after Commit.
type BlockWriter struct {
	o          *Object
	f          *os.File
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
func (o *Object) NewBlockWriter(f *os.File, i int64) (*BlockWriter, error) {
	start, end := o.BlockBounds(i)
	s := o.store
	s.mu.Lock()
	defer s.mu.Unlock()
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
			s.log.Warn("cache drive full of objects being written: passing content through uncached",
				"drive", d.spec.Path, "budget", d.spec.Budget, "reserved", d.reserved)
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
	n, err := w.f.WriteAt(p, w.start+w.n)
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
