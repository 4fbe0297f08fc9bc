package store

import "io"

// Backend is what one drive physically does: it keeps the data of objects,
// each an item named by an id, and the drive's index records. Everything
// else is the store's, above it and written once for every backend: which
// blocks are present, their checksums, what a record says, placement,
// eviction and the accounting of space.
//
// Durability is the contract the store's crash safety rests on: data
// written is readable at once but survives a crash only after Sync; an item
// created or removed, and an index batch committed, survive at once. The
// files-and-bbolt backend (DriveSpec.Path) is the one used in service;
// MemoryDrive keeps everything in memory and can simulate a power cut.
type Backend interface {
	// Create makes the data item of a new object: size bytes, reading as
	// zeros until written, taking no room for what is unwritten. It fails
	// with an error matching fs.ErrExist when id is taken.
	Create(id uint64, size int64) error
	// Open opens an item for reading. An item removed since keeps reading
	// as it was, as an unlinked file does. It fails with an error matching
	// fs.ErrNotExist when the item is gone.
	Open(id uint64) (Reader, error)
	// OpenWriter opens an item for writing at offsets; fs.ErrNotExist as
	// for Open.
	OpenWriter(id uint64) (DataWriter, error)
	// Sync makes what was written to the item durable.
	Sync(id uint64) error
	// Remove deletes an item; fs.ErrNotExist when it is gone already.
	Remove(id uint64) error
	// List calls fn with the id of every item, for the sweep of items a
	// crash left unindexed and for the offline check.
	List(fn func(id uint64)) error
	// Load calls fn with every index record and the access time kept
	// beside it (0 when none), once each. key and rec are valid only
	// during the call. It is what a start costs, once per record: a
	// million records must load in well under a second. The records may
	// come in up to parts parts, each numbered (from 0) and given from a
	// goroutine of its own, so that fn runs for different parts at once;
	// a part's records come one at a time, in the index's order or its
	// reverse. When fn fails, Load stops and returns its error.
	Load(parts int, fn func(part int, key, rec []byte, atime int64) error) error
	// Get returns the index record stored under key (a copy the caller
	// keeps), or an error matching fs.ErrNotExist when there is none.
	Get(key string) ([]byte, error)
	// Commit applies one batch to the index, all of it or nothing. A
	// record the backend refuses (too large for it) is left out, never
	// failing the rest: any older record of its key is deleted so that
	// none stands for the object. It returns the keys it refused, with
	// why.
	Commit(b *IndexBatch) (refused map[string]error, err error)
	// Name says where an item lives, for log lines: a file backend's is
	// the item's path.
	Name(id uint64) string
	// Close releases the backend; a drive is opened by one store at a time.
	Close() error
}

// Reader reads an object's data at offsets.
type Reader interface {
	io.ReaderAt
	io.Closer
	// Size is the item's length now: the object's size, unless the item
	// was cut short or extended under the store.
	Size() (int64, error)
}

// DataWriter writes an object's data at offsets.
type DataWriter interface {
	io.WriterAt
	io.Closer
}

// IndexBatch is one group commit of a drive's index. Keys are index keys
// (see indexKey); a key is never both deleted and put in one batch.
type IndexBatch struct {
	Deletes []string          // keys whose record and access time go; applied first
	Puts    map[string][]byte // key -> record
	// Atimes are the last uses (unix nanoseconds) to keep: an access time
	// is kept only beside a record, so one for a key without a record
	// after the batch is skipped.
	Atimes map[string]int64
}
