package store

import (
	"container/list"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// drive is one cache directory with a byte budget: an index (index.db) and
// object data files under data/XX/ID.
type drive struct {
	index  int
	spec   DriveSpec
	db     *bolt.DB
	log    *slog.Logger
	opened time.Time

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
	liveAtOpen     map[uint64]bool   // ids indexed at open, for the orphan sweep
}

// errDriveLocked is an index held by another process: two caches on one
// drive is a configuration mistake, not a drive fault.
var errDriveLocked = errors.New("index is locked: is another gatecache using this drive?")

func newDrive(i int, spec DriveSpec, log *slog.Logger) *drive {
	return &drive{
		index: i, spec: spec, log: log, opened: time.Now(),
		lru:     list.New(),
		dirty:   make(map[*Object]struct{}),
		touched: make(map[*Object]struct{}),
		deleted: make(map[string]uint64),
	}
}

func openDrive(i int, spec DriveSpec, blockSize int64, log *slog.Logger) (*drive, []*Object, error) {
	if spec.Budget <= 0 {
		return nil, nil, fmt.Errorf("drive %s: budget must be positive", spec.Path)
	}
	if err := os.MkdirAll(filepath.Join(spec.Path, "data"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("drive %s: %w", spec.Path, err)
	}
	db, err := bolt.Open(filepath.Join(spec.Path, "index.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, fmt.Errorf("drive %s: %w", spec.Path, errDriveLocked)
		}
		return nil, nil, fmt.Errorf("drive %s: open index: %w", spec.Path, err)
	}
	d := newDrive(i, spec, log)
	d.db = db
	objs, err := d.load(blockSize)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("drive %s: load index: %w", spec.Path, err)
	}
	d.liveAtOpen = make(map[uint64]bool, len(objs))
	for _, o := range objs {
		o.drive = d
		d.liveAtOpen[o.id] = true
	}
	return d, objs, nil
}

func (d *drive) close() {
	if d.db != nil {
		d.db.Close()
	}
}

// buildLRU orders the loaded objects by last use and accounts their space.
func (d *drive) buildLRU(objs []*Object) {
	slices.SortFunc(objs, func(a, b *Object) int { return compareInt64(b.atime, a.atime) })
	for _, o := range objs {
		if o.removed {
			continue
		}
		o.lruElem = d.lru.PushBack(o)
		d.used += o.presentBytes
		d.objects++
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

func (d *drive) dataPath(id uint64) string {
	return filepath.Join(d.spec.Path, "data", fmt.Sprintf("%02x", byte(id)), fmt.Sprintf("%016x", id))
}

// createFile makes a new sparse data file of the given size with a fresh id.
func (d *drive) createFile(size int64) (uint64, string, error) {
	for range 8 {
		id := rand.Uint64()
		path := d.dataPath(id)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, os.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
				f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			}
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return 0, "", err
		}
		err = f.Truncate(size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return 0, "", err
		}
		return id, path, nil
	}
	return 0, "", errors.New("no free object id")
}

// removeOrphans deletes data files that no index entry names: files created
// just before a crash, before the flusher indexed them. Files modified since
// shortly before the drive was opened may belong to objects created since,
// and are left alone (file times come from a clock that can lag ours by a
// few milliseconds, hence the margin).
func (d *drive) removeOrphans() {
	if d.db == nil {
		return
	}
	root := filepath.Join(d.spec.Path, "data")
	removed := 0
	filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		id, perr := strconv.ParseUint(e.Name(), 16, 64)
		if perr != nil || d.liveAtOpen[id] {
			return nil
		}
		info, ierr := e.Info()
		if ierr != nil || !info.ModTime().Before(d.opened.Add(-2*time.Second)) {
			return nil
		}
		if os.Remove(path) == nil {
			removed++
		}
		return nil
	})
	if removed > 0 {
		d.log.Info("cache drive: removed unindexed data files left by an unclean stop", "drive", d.spec.Path, "files", removed)
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
	h := fnv.New64a()
	h.Write([]byte(key))
	keyHash := h.Sum64()
	for _, d := range s.drives {
		if d.failed != nil || d.spec.Budget < size {
			continue
		}
		// Weighted rendezvous (Schindelhauer & Schomaker): score is
		// -w / ln(u) for u uniform in (0,1) from the hash of (key, drive).
		u := (float64(mix64(keyHash^uint64(d.index+1)*0x9E3779B97F4A7C15)>>11) + 0.5) / (1 << 53)
		score := -float64(d.spec.Budget) / math.Log(u)
		if score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}

// mix64 is the splitmix64 finalizer: spreads similar inputs across 64 bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// evictLocked removes least-recently-used objects of d until need more bytes
// fit in its budget. Objects with a block being written are skipped. It
// reports whether the space could be found.
func (s *Store) evictLocked(d *drive, need int64) bool {
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
