package store

import (
	"container/list"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
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
	writers      int       // open Writers (fills in progress)

	headerGen atomic.Uint64 // see HeaderGen
}

func newObject(s *Store, d *drive, key string, id uint64, meta Meta) *Object {
	n := blockCount(meta.Size, s.blockSize)
	return &Object{
		store: s, drive: d, key: key, id: id, meta: meta, vary: meta.Vary,
		blocks: make([]blockState, n), crcs: make([]uint32, n),
		atime: time.Now().UnixNano(),
	}
}

// blockCount and blockBounds are the store's block arithmetic: an object of
// size bytes is cut into blocks of blockSize bytes, the last one shorter.
func blockCount(size, blockSize int64) int64 { return (size + blockSize - 1) / blockSize }

// blockBounds is block i's byte range [start, end).
func blockBounds(i, size, blockSize int64) (start, end int64) {
	start = i * blockSize
	return start, min(start+blockSize, size)
}

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
	return blockBounds(i, o.meta.Size, o.store.blockSize)
}

// Location says where the object's data is, for log lines: on a file
// drive, the data file's path.
func (o *Object) Location() string { return o.drive.backend.Name(o.id) }

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
	o.headerGen.Add(1)
	o.markDirtyLocked()
}

// HeaderGen counts the SetHeader calls of the object, without a lock: what
// a user computed from the header (read after HeaderGen) is current while
// HeaderGen is unchanged.
func (o *Object) HeaderGen() uint64 { return o.headerGen.Load() }

// Removed reports whether the object has left the cache.
func (o *Object) Removed() bool {
	o.store.mu.Lock()
	defer o.store.mu.Unlock()
	return o.removed
}

// Verified reports whether every block in [first, last] is present and known
// good, so that the bytes can be served straight from the stored data.
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

// Open opens the object's data for reading. The Reader may also offer the
// data as a file, File() *os.File, for a zero-copy send; a file drive's do.
func (o *Object) Open() (Reader, error) {
	f, err := o.drive.backend.Open(o.id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
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
	good, drop := false, false
	switch {
	case o.removed || o.blocks[i] == blockAbsent:
	case o.blocks[i] == blockVerified:
		good = true
	case rerr == nil && sum == o.crcs[i]:
		o.blocks[i] = blockVerified
		good = true
	default:
		s.dropBlockLocked(o, i)
		drop = true
	}
	s.mu.Unlock()
	if drop {
		s.log.Warn("cache block failed its checksum: dropped, will be refetched",
			"key", o.key, "block", i, "read_err", rerr)
	}
	return good, nil
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
