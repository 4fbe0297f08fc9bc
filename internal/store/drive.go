package store

import (
	"container/list"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gatecache/internal/rendezvous"
)

// drive is one cache drive with a byte budget, and the store's state of it:
// its objects in LRU order and their space. Its backend keeps the bytes.
type drive struct {
	index   int
	spec    DriveSpec
	backend Backend // nil when the drive could not be opened
	log     *slog.Logger

	// Guarded by Store.mu.
	lru            *list.List // of *Object, most recently used first
	used           int64      // bytes of present blocks
	reserved       int64      // bytes of blocks being written
	objects        int
	evictions      int64
	verifyFailures int64
	failed         error
	lastFullWarn   time.Time
	dirty          map[*Object]struct{}
	touched        map[*Object]struct{}
	deleted        map[string]uint64 // key -> id of removed objects not yet deleted from the index
	// Indexed objects not looked up since open (cold.go), in chunks in
	// the index's order, and their positions oldest first (coldOrder):
	// those before coldNext are gone; coldLive entries are not.
	cold               [][]coldEntry
	coldKeys           coldKeys // the entries' keys, by position
	coldOrder          []uint32
	coldIndex          coldIndex
	coldNext, coldLive int
	// Until the sweep of unindexed items has run: the ids indexed at
	// open (sorted by the sweep), and those created since (never swept).
	liveAtOpen   []uint64
	createdSince map[uint64]bool
}

func newDrive(i int, spec DriveSpec, log *slog.Logger) *drive {
	return &drive{
		index: i, spec: spec, log: log,
		lru:     list.New(),
		dirty:   make(map[*Object]struct{}),
		touched: make(map[*Object]struct{}),
		deleted: make(map[string]uint64),
	}
}

// openDrive opens the drive's backend (DriveSpec.Backend, or the files
// under DriveSpec.Path) and loads its cold entries, for service.
//
// A file index with damaged pages is set aside (index.db.damaged, replacing
// an earlier one) and the drive starts empty, as a cache may: every object
// can be fetched again, and a drive kept out of use until somebody deletes
// a file caches nothing meanwhile. Its data files, indexed nowhere now, go
// with the sweep. The offline check (Verify) only reports the damage.
func openDrive(i int, spec DriveSpec, blockSize int64, log *slog.Logger, seed maphash.Seed) (*drive, error) {
	load := func(d *drive) error { return d.loadCold(blockSize, seed) }
	d, err := loadDrive(i, spec, log, load)
	if !errors.Is(err, errIndexDamaged) || spec.Backend != nil {
		return d, err
	}
	index := filepath.Join(spec.Path, "index.db")
	if rerr := os.Rename(index, index+".damaged"); rerr != nil {
		return nil, errors.Join(err, rerr)
	}
	log.Error("cache drive: its index is damaged; set aside as index.db.damaged, the drive starts empty and its data is removed",
		"drive", spec.Path, "err", err)
	return loadDrive(i, spec, log, load)
}

// loadDrive opens the drive's backend and reads its index with load.
func loadDrive(i int, spec DriveSpec, log *slog.Logger, load func(*drive) error) (*drive, error) {
	if spec.Budget <= 0 {
		return nil, fmt.Errorf("drive %s: budget must be positive", spec.Path)
	}
	be := spec.Backend
	if be == nil {
		fd, err := openFileDrive(spec.Path)
		if err != nil {
			return nil, fmt.Errorf("drive %s: %w", spec.Path, err)
		}
		be = fd
	}
	d := newDrive(i, spec, log)
	d.backend = be
	if err := load(d); err != nil {
		be.Close()
		return nil, fmt.Errorf("drive %s: load index: %w", spec.Path, err)
	}
	d.createdSince = make(map[uint64]bool)
	return d, nil
}

func (d *drive) close() {
	if d.backend != nil {
		d.backend.Close()
	}
}

// accountCold counts the cold entries loaded at open in the drive's
// figures.
func (d *drive) accountCold() {
	for _, c := range d.cold {
		for _, e := range c {
			if !e.gone() {
				d.used += e.bytes()
				d.objects++
				d.coldLive++
			}
		}
	}
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// createData makes the data item of a new object on d under a fresh id.
// The id is recorded first, so that the sweep never takes the new item
// for one a crash left.
func (s *Store) createData(d *drive, size int64) (uint64, error) {
	for range 8 {
		id := rand.Uint64()
		s.mu.Lock()
		if d.createdSince != nil {
			d.createdSince[id] = true
		}
		s.mu.Unlock()
		err := d.backend.Create(id, size)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return id, err
	}
	return 0, errors.New("no free object id")
}

// sweep deletes the data items that no index entry names: items created
// just before a crash, before the flusher indexed them. Items created since
// the drive was opened are left alone. It stops early when the store
// closes.
func (s *Store) sweep(d *drive) {
	defer s.sweeps.Done()
	// Only the sweep reads liveAtOpen once the drive is open: it is sorted
	// here, not in the start's path.
	slices.Sort(d.liveAtOpen)
	var ids []uint64
	err := d.backend.List(func(id uint64) { ids = append(ids, id) })
	s.mu.Lock()
	orphans := slices.DeleteFunc(ids, func(id uint64) bool {
		_, live := slices.BinarySearch(d.liveAtOpen, id)
		return live || d.createdSince[id]
	})
	d.liveAtOpen, d.createdSince = nil, nil
	s.mu.Unlock()
	if err != nil {
		d.log.Warn("cache drive: cannot list its data", "drive", d.spec.Path, "err", err)
	}
	removed := 0
	for _, id := range orphans {
		select {
		case <-s.stop:
			return
		default:
		}
		if d.backend.Remove(id) == nil {
			removed++
		}
	}
	if removed > 0 {
		d.log.Info("cache drive: removed unindexed data left by an unclean stop", "drive", d.spec.Path, "items", removed)
	}
}

// maxObjectBlocks caps an object's block count: its block states and
// checksums (5 bytes a block) stay under 80 MiB of memory and its index
// record under bbolt's 256 MiB allocation limit on 32-bit platforms, and
// the count is an int everywhere. With 1 MiB blocks that is 16 TiB, ext4's
// largest file; a larger object is passed through as too large.
const maxObjectBlocks = 1 << 24

// placeLocked chooses the drive for a new object by rendezvous hashing of
// its key weighted by drive budget: an object always maps to the same drive
// while the drive set is unchanged, drives fill in proportion to their size,
// and adding a drive moves only the keys that now belong to it.
func (s *Store) placeLocked(key string, size int64) *drive {
	if blockCount(size, s.blockSize) > maxObjectBlocks {
		return nil
	}
	var best *drive
	bestScore := math.Inf(-1)
	keyHash := rendezvous.Hash(key)
	for _, d := range s.drives {
		if d.failed != nil || d.spec.Budget < size {
			continue
		}
		if score := rendezvous.Score(keyHash, uint64(d.index+1)*0x9E3779B97F4A7C15, float64(d.spec.Budget)); score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}

// evictLocked removes least-recently-used objects of d until need more bytes
// fit in its budget. Objects with a block being written are skipped. It
// reports whether the space could be found.
func (s *Store) evictLocked(d *drive, need int64) bool {
	for d.used+d.reserved+need > d.spec.Budget && s.evictColdLocked(d) {
		d.evictions++
	}
	e := d.lru.Back()
	for d.used+d.reserved+need > d.spec.Budget {
		for e != nil && e.Value.(*Object).pins > 0 {
			e = e.Prev()
		}
		if e == nil {
			return false
		}
		victim := e.Value.(*Object)
		e = e.Prev()
		s.removeLocked(victim)
		d.evictions++
	}
	return true
}
