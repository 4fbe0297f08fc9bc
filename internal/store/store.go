// Package store keeps cached objects on up to nine drives: each object is a
// sparse data item of fixed-size aligned blocks, with a bitmap of the blocks
// that are present and a checksum per block, recorded in a per-drive index.
//
// The store knows nothing of HTTP. It answers three questions for the layers
// above: which object does this key name, which of its blocks are present
// (and checked since start), and where are their bytes. Writers add blocks
// through a BlockWriter that reserves space (evicting least-recently-used
// objects), checksums the bytes and commits the block.
//
// What a drive physically does (keep items of bytes, make them durable,
// keep index records) is a Backend: files and a bbolt index in service
// (filedrive.go), memory in tests (MemoryDrive). Blocks, checksums, records,
// placement, eviction and accounting are above it, written once.
//
// Durability: a committed block is readable at once (its bytes are in the page
// cache), but it is recorded in the persisted index only by the flusher, after
// the object's data has been synced (fdatasync). After a restart every block is
// checked against its checksum once before it is first served, so a torn or
// lost write is refetched, never served.
package store

import (
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"
)

// Errors returned by the store. ErrStorage wraps every failure of a drive
// (disk full, unwritable, I/O error) so that callers can fall back to passing
// content through instead of failing the client.
var (
	ErrStorage  = errors.New("cache storage failure")
	ErrTooLarge = errors.New("object larger than any drive's budget")
	ErrRemoved  = errors.New("object was removed from the cache")
	ErrNoSpace  = errors.New("no evictable space on the drive")
)

// DriveSpec configures one cache drive.
type DriveSpec struct {
	Path   string // directory holding the drive's index and data; with Backend, only its name
	Budget int64  // maximum bytes of object data kept on the drive
	// Backend keeps the drive's data and index; nil: files and a bbolt
	// index under Path.
	Backend Backend
}

// Options configures a Store. Zero values take the stated defaults.
type Options struct {
	Drives        []DriveSpec
	BlockSize     int64         // default 1 MiB
	FlushInterval time.Duration // how often committed blocks are made durable and indexed; default 250 ms
	SyncDelay     time.Duration // how long an object's data must be quiet before it is synced and indexed; default 30 s
	Logger        *slog.Logger  // default slog.Default()
}

// Store is the set of drives and the objects on them. All in-memory state
// (objects, block bitmaps, LRU order, usage) is guarded by one mutex: every
// operation under it is a few pointer updates, and no I/O is done while it
// is held, not even a log line. An object removed under it gives its space
// back at once; its data is deleted once the mutex is released (unlock).
type Store struct {
	blockSize int64
	syncDelay time.Duration
	log       *slog.Logger

	mu       sync.Mutex
	objects  map[string]*Object // looked up or created since Open
	coldSeed maphash.Seed       // of the drives' cold indexes (coldindex.go)
	atimesAt time.Time          // last time access times were written
	drives   []*drive
	closed   bool
	trash    []*Object       // removed under mu, data not yet deleted
	removing int             // unlock calls deleting data now
	idle     sync.Cond       // on mu: removing dropped to 0
	onRemove []func(*Object) // see OnRemove
	sweeps   sync.WaitGroup  // sweeps of unindexed items in progress

	// variantMu makes "find or make the marker, then add the variant"
	// one step for concurrent CreateVariant calls.
	variantMu sync.Mutex

	flushNow chan struct{}
	stop     chan struct{}
	stopped  chan struct{}
}

// Open opens (creating if needed) every drive and loads its index. It does
// not read object data, so it is fast however much is cached. A drive that
// cannot be opened is taken out of use (Stats reports it failed), so Open
// fails only for a configuration mistake: no drive, a budget that is not
// positive, or a drive whose index another process holds.
func Open(opts Options) (*Store, error) {
	if len(opts.Drives) == 0 {
		return nil, errors.New("store: no drives configured")
	}
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 250 * time.Millisecond
	}
	if opts.SyncDelay <= 0 {
		opts.SyncDelay = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		blockSize: opts.BlockSize,
		syncDelay: opts.SyncDelay,
		log:       opts.Logger,
		objects:   make(map[string]*Object),
		coldSeed:  maphash.MakeSeed(),
		flushNow:  make(chan struct{}, 1),
		stop:      make(chan struct{}),
		stopped:   make(chan struct{}),
	}
	for i, spec := range opts.Drives {
		d, err := openDrive(i, spec, s.blockSize, s.log, s.coldSeed)
		if err != nil && (spec.Budget <= 0 || errors.Is(err, errDriveLocked)) {
			s.closeDrives()
			return nil, err
		}
		if err != nil {
			// A drive that cannot be opened (read-only, I/O errors, an
			// index that cannot be read) is taken out of use as when it
			// fails while running: content passes through, the others
			// keep caching.
			s.log.Error("cache drive cannot be opened: taken out of use, content is passed through uncached until restart",
				"drive", spec.Path, "err", err)
			d = newDrive(i, spec, s.log)
			d.failed = err
		}
		s.drives = append(s.drives, d)
	}
	s.dedupCold()
	s.idle.L = &s.mu
	s.mu.Lock()
	for _, d := range s.drives {
		d.accountCold()
		// A drive loaded over its (possibly lowered) budget gives the
		// excess back now.
		s.evictLocked(d, 0)
	}
	s.unlock()
	for _, d := range s.drives {
		if d.backend != nil {
			s.sweeps.Add(1)
			go s.sweep(d)
		}
	}
	go s.flushLoop(opts.FlushInterval)
	return s, nil
}

// Close makes every committed block durable, writes the index and closes the
// drives, once the deletions of removed objects' data under way are done.
// An object removed after Close still has its data deleted.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.sweeps.Wait()
	s.mu.Lock()
	for s.removing > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
	err := s.flush(true)
	s.closeDrives()
	return err
}

func (s *Store) closeDrives() {
	for _, d := range s.drives {
		d.close()
	}
}

// BlockSize is the size of every block but an object's last.
func (s *Store) BlockSize() int64 { return s.blockSize }

// Lookup returns the object stored under key, or nil. A found object becomes
// the most recently used on its drive.
func (s *Store) Lookup(key string) *Object {
	s.mu.Lock()
	o := s.objects[key]
	if o != nil {
		o.touchLocked()
	}
	s.mu.Unlock()
	if o == nil {
		o = s.warm(key)
	}
	return o
}

// Create adds an empty object (no block present) for key, replacing any
// object stored under it: a new version never shares blocks with an old one.
// It fails with ErrTooLarge when no drive could hold the object and with an
// error wrapping ErrStorage when the chosen drive cannot take it.
func (s *Store) Create(key string, meta Meta) (*Object, error) {
	if meta.Size < 0 {
		return nil, fmt.Errorf("store: negative size %d", meta.Size)
	}
	s.warmMarker(key)
	s.mu.Lock()
	d := s.placeLocked(key, meta.Size)
	s.mu.Unlock()
	if d == nil {
		return nil, ErrTooLarge
	}
	id, err := s.createData(d, meta.Size)
	if err != nil {
		s.markFailed(d, err)
		return nil, fmt.Errorf("%w: %v", ErrStorage, err)
	}
	o := newObject(s, d, key, id, meta)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		d.backend.Remove(id)
		return nil, ErrRemoved
	}
	if old := s.objects[key]; old != nil {
		s.removeWithVariantsLocked(old)
	} else {
		s.removeColdLocked(key)
	}
	s.objects[key] = o
	o.lruElem = d.lru.PushFront(o)
	d.objects++
	o.dirty = true
	d.dirty[o] = struct{}{}
	s.unlock()
	return o, nil
}

// Remove drops the object stored under key, if any (RFC 9111 §4.4
// invalidation, or a version that changed upstream).
func (s *Store) Remove(key string) {
	s.warmMarker(key)
	s.mu.Lock()
	defer s.unlock()
	if o := s.objects[key]; o != nil {
		s.removeWithVariantsLocked(o)
	} else {
		s.removeColdLocked(key)
	}
}

// RemoveObject drops o if it is still the object stored under its key.
func (s *Store) RemoveObject(o *Object) {
	s.mu.Lock()
	defer s.unlock()
	if s.objects[o.key] == o {
		s.removeLocked(o)
	}
}

// removeLocked forgets o and gives its space back at once, so that the
// budget stays exact; its data is deleted by unlock, after the mutex is
// released. Open readers keep reading (a removed item stays readable, as
// an unlinked file does); writers find the object removed at their next
// commit.
func (s *Store) removeLocked(o *Object) {
	if o.removed {
		return
	}
	o.removed = true
	if s.objects[o.key] == o {
		delete(s.objects, o.key)
	}
	d := o.drive
	d.lru.Remove(o.lruElem)
	d.used -= o.presentBytes
	d.objects--
	delete(d.dirty, o)
	d.deleted[o.key] = o.id
	s.trash = append(s.trash, o)
}

// unlock releases s.mu, then deletes the data of the objects removed while
// it was held and tells the OnRemove hooks. Every path that may remove an
// object unlocks with it. A crash between the two leaves an item that, once
// its index record is gone, is swept at the next start.
func (s *Store) unlock() {
	trash, hooks := s.trash, s.onRemove
	if len(trash) == 0 {
		s.mu.Unlock()
		return
	}
	s.trash = nil
	s.removing++
	s.mu.Unlock()
	for _, o := range trash {
		if err := o.drive.backend.Remove(o.id); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("cache drive: cannot delete an object's data", "drive", o.drive.spec.Path, "err", err)
		}
		for _, fn := range hooks {
			fn(o)
		}
	}
	s.mu.Lock()
	if s.removing--; s.removing == 0 {
		s.idle.Broadcast()
	}
	s.mu.Unlock()
}

// OnRemove has fn called with every object that leaves the cache from now
// on (removed, replaced or evicted), once, outside the store's lock. Users
// that keep state per object drop it there.
func (s *Store) OnRemove(fn func(*Object)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRemove = append(s.onRemove, fn)
}

// DriveStats describes one drive for the summary and metrics.
type DriveStats struct {
	Path           string
	SizeBytes      int64 // budget
	UsedBytes      int64 // bytes of present blocks plus blocks being written
	Objects        int
	Evictions      int64
	VerifyFailures int64 // blocks dropped because their bytes failed the checksum
	Failed         bool
	Err            string
}

// Stats returns the current state of every drive.
func (s *Store) Stats() []DriveStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]DriveStats, len(s.drives))
	for i, d := range s.drives {
		out[i] = DriveStats{
			Path: d.spec.Path, SizeBytes: d.spec.Budget, UsedBytes: d.used + d.reserved,
			Objects: d.objects, Evictions: d.evictions, VerifyFailures: d.verifyFailures, Failed: d.failed != nil,
		}
		if d.failed != nil {
			out[i].Err = d.failed.Error()
		}
	}
	return out
}

// markFailed takes a drive out of placement after a storage error, so that
// new objects go to the other drives (or pass through when none is left).
// A full filesystem is not a failure of the drive: its budget was larger than
// the room it has, so the budget shrinks to what it holds and the least
// recently used objects make room from then on.
func (s *Store) markFailed(d *drive, err error) {
	var note func() // logged once the lock is released
	defer func() {
		if note != nil {
			note()
		}
	}()
	s.mu.Lock()
	defer s.unlock()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		budget := max(d.used-d.used/20, 0) // 5 % below what is stored now
		if configured := d.spec.Budget; budget < configured {
			note = func() {
				s.log.Warn("cache drive's filesystem is full: budget lowered below the configured size",
					"drive", d.spec.Path, "configured", configured, "budget", budget, "err", err)
			}
			d.spec.Budget = budget
			s.evictLocked(d, 0)
		}
		return
	}
	if d.failed == nil {
		d.failed = err
		note = func() {
			s.log.Error("cache drive failed: content is passed through uncached until restart",
				"drive", d.spec.Path, "err", err)
		}
	}
}

// Flush makes committed blocks durable and writes the index now. Tests and
// shutdown use it; in service the flusher runs it periodically.
func (s *Store) Flush() error { return s.flush(true) }
