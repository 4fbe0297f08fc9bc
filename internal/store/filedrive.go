package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// fileDrive is the backend of a drive directory: each object's data is a
// sparse file data/XX/ID (XX the id's low byte, spreading the files over
// 256 directories), and the index is a bbolt file, index.db, with two
// buckets: "objects" maps an index key to its record and "atime" maps it to
// its last use. Access times live apart so that a hit rewrites 8 bytes at
// the next group commit, not the whole record.
type fileDrive struct {
	root string
	db   *bolt.DB
}

var (
	bucketObjects = []byte("objects")
	bucketAtime   = []byte("atime")
)

// errDriveLocked is an index held by another process: two caches on one
// drive is a configuration mistake, not a drive fault.
var errDriveLocked = errors.New("index is locked: is another gatecache using this drive?")

// openFileDrive opens (creating if needed) the drive directory root.
func openFileDrive(root string) (_ *fileDrive, err error) {
	defer damaged(&err)
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(root, "index.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errDriveLocked
		}
		return nil, fmt.Errorf("open index: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketObjects)
		if err == nil {
			_, err = tx.CreateBucketIfNotExists(bucketAtime)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open index: %w", err)
	}
	return &fileDrive{root: root, db: db}, nil
}

func (d *fileDrive) Name(id uint64) string {
	return filepath.Join(d.root, "data", fmt.Sprintf("%02x", byte(id)), fmt.Sprintf("%016x", id))
}

func (d *fileDrive) Create(id uint64, size int64) error {
	path := d.Name(id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		}
	}
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// fileReader is an open data file. It offers the file itself (File), so
// that the server can send it with sendfile.
type fileReader struct{ f *os.File }

func (r fileReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r fileReader) Close() error                            { return r.f.Close() }
func (r fileReader) File() *os.File                          { return r.f }

// Size is one fstat.
func (r fileReader) Size() (int64, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d *fileDrive) Open(id uint64) (Reader, error) {
	f, err := os.Open(d.Name(id))
	if err != nil {
		return nil, err
	}
	return fileReader{f}, nil
}

func (d *fileDrive) OpenWriter(id uint64) (DataWriter, error) {
	return os.OpenFile(d.Name(id), os.O_WRONLY, 0)
}

// Sync is fdatasync: the data and the size, not the timestamps.
func (d *fileDrive) Sync(id uint64) error {
	f, err := os.Open(d.Name(id))
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fdatasync(int(f.Fd()))
}

// Remove unlinks the file: a metadata operation that does not wait for
// the data; open descriptors keep reading it.
func (d *fileDrive) Remove(id uint64) error { return os.Remove(d.Name(id)) }

// List walks the data directories. Files whose names are not ids are not
// the cache's and are left alone.
func (d *fileDrive) List(fn func(id uint64)) error {
	return filepath.WalkDir(filepath.Join(d.root, "data"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if id, perr := strconv.ParseUint(e.Name(), 16, 64); perr == nil {
			fn(id)
		}
		return nil
	})
}

// Load walks both buckets side by side: they hold the same keys in the
// same (byte) order, so each access time is found by one step of a cursor
// instead of a search from the root for every record. With two parts it
// walks from both ends of the index at once, one goroutine each, and the
// walks stop where they meet (meeting): half the time on two cores, with
// no need to know beforehand where the middle is.
//
// The index is read through bbolt's memory map, and every page read stays
// in the process's resident set until unmapped: a million records map
// about 600 MB. Every loadRelease records, Load tells the kernel it does
// not need the pages now (madvise MADV_DONTNEED on the shared, read-only
// file mapping: they stay in the page cache and are mapped again on the
// next access), so a start holds a bounded part of the index at a time.
func (d *fileDrive) Load(parts int, fn func(part int, key, rec []byte, atime int64) error) error {
	stop := make(chan struct{})
	defer close(stop)
	if d.worthReadingAhead() {
		go d.readAhead(stop)
	}
	m := &meeting{}
	if parts < 2 {
		m.alone = true
		return d.walk(0, m, fn)
	}
	back := make(chan error, 1)
	go func() { back <- d.walk(1, m, fn) }()
	err := d.walk(0, m, fn)
	return errors.Join(err, <-back)
}

// worthReadingAhead says whether readAhead helps: not when nine tenths of
// the index are cached already (cached), nor when it is larger than half
// the memory the system has available (MemAvailable), where pages read
// ahead could be dropped again before the walks reach them and the index
// would be read twice.
func (d *fileDrive) worthReadingAhead() bool {
	fi, err := os.Stat(filepath.Join(d.root, "index.db"))
	if err != nil || d.cached() {
		return false
	}
	avail, ok := memAvailable()
	return !ok || fi.Size() <= avail/2
}

// memAvailable is /proc/meminfo's MemAvailable, in bytes: what can be had
// without swapping, the page cache's reclaimable part included.
func memAvailable() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// readAhead reads the index file once, in file order, while the walks run
// (until stop). They touch its pages in key order: after a reboot, with
// none of it in the page cache, that is a read of every page in no order
// of the disk's. Read ahead in order, most pages are cached before the
// walks reach them. A million records (a 596 MB index; the file alone
// reads in 0.84 s) loaded from a cold page cache in 0.78-1.65 s this way
// (the disk of a VM varies), in 7.8-8.7 s without, and in 1.7 s when read
// ahead before walking. An index mostly cached already (cached) is not
// read again: that cost 30-60 ms.
func (d *fileDrive) readAhead(stop <-chan struct{}) {
	f, err := os.Open(filepath.Join(d.root, "index.db"))
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for off := int64(0); ; off += int64(len(buf)) {
		select {
		case <-stop:
			return
		default:
		}
		if n, err := f.ReadAt(buf, off); n == 0 || err != nil {
			return
		}
	}
}

// walk gives fn the records of part 0 from the first key up, or of part 1
// from the last key down, claimed from m a batch at a time.
func (d *fileDrive) walk(part int, m *meeting, fn func(part int, key, rec []byte, atime int64) error) (err error) {
	defer func() {
		if err != nil {
			m.stop()
		}
	}()
	defer damaged(&err)
	return d.db.View(func(tx *bolt.Tx) error {
		oc, ac := tx.Bucket(bucketObjects).Cursor(), tx.Bucket(bucketAtime).Cursor()
		first, next, afirst, anext, ahead := oc.First, oc.Next, ac.First, ac.Next, -1
		if part == 1 {
			first, next, afirst, anext, ahead = oc.Last, oc.Prev, ac.Last, ac.Prev, 1
		}
		var batch []record
		n, anchor := 0, []byte(nil)
		defer func() { d.release(tx, anchor) }()
		ak, av := afirst()
		for k, v := first(); k != nil; {
			batch = batch[:0]
			for ; k != nil && len(batch) < claimBatch; k, v = next() {
				batch = append(batch, record{k, v})
			}
			mine := m.claim(part, batch)
			for _, r := range mine {
				if anchor = r.k; n%loadRelease == loadRelease-1 {
					d.release(tx, anchor)
				}
				n++
				for ak != nil && bytes.Compare(ak, r.k) == ahead {
					ak, av = anext()
				}
				var atime int64
				if ak != nil && bytes.Equal(ak, r.k) && len(av) == 8 {
					atime = int64(binary.LittleEndian.Uint64(av))
				}
				if err := fn(part, r.k, r.v, atime); err != nil {
					return err
				}
			}
			if len(mine) < len(batch) {
				return nil // met the other walk
			}
		}
		return nil
	})
}

// record is a key and its record, in the index's mapping.
type record struct{ k, v []byte }

// claimBatch is how many records a walk claims at a time: the lock is
// taken once per batch.
const claimBatch = 256

// meeting is where the two walks of a two-part Load meet. Each walk reads
// its next batch of records, then claims from it, under the lock, the
// records not past the other walk's frontier (the last key it claimed):
// every record goes to exactly one walk, and a walk that claims less than
// its batch has met the other and is done.
type meeting struct {
	mu      sync.Mutex
	alone   bool   // one walk: it claims everything
	front   []byte // last key claimed by the walk from the first key up
	back    []byte // last key claimed by the walk from the last key down
	stopped bool   // a walk failed: the other stops too
}

// claim returns the records of batch (in the walk's order) that are the
// walk's.
func (m *meeting) claim(part int, batch []record) []record {
	if m.alone {
		return batch
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return nil
	}
	n := len(batch)
	if part == 0 && m.back != nil {
		n, _ = slices.BinarySearchFunc(batch, m.back, func(r record, k []byte) int { return bytes.Compare(r.k, k) })
	}
	if part == 1 && m.front != nil {
		n, _ = slices.BinarySearchFunc(batch, m.front, func(r record, k []byte) int { return bytes.Compare(k, r.k) })
	}
	if n > 0 && part == 0 {
		m.front = append(m.front[:0], batch[n-1].k...)
	} else if n > 0 {
		m.back = append(m.back[:0], batch[n-1].k...)
	}
	return batch[:n]
}

func (m *meeting) stop() {
	m.mu.Lock()
	m.stopped = true
	m.mu.Unlock()
}

// loadRelease is how many records Load reads between releases of the
// index's mapped pages: about 40 MB of a typical index.
const loadRelease = 65536

// release drops the index's mapped pages from the resident set (see Load).
// A failure only costs memory.
func (d *fileDrive) release(tx *bolt.Tx, anchor []byte) {
	if m := d.mapping(tx, anchor); m != nil {
		_ = unix.Madvise(m, unix.MADV_DONTNEED)
	}
}

// mapping is bbolt's memory map of the index as far as tx sees it, found
// from anchor, a key of tx and so a pointer into the mapping, which starts
// at Info().Data and covers at least the file (tx.Size()); nil when that
// fails.
func (d *fileDrive) mapping(tx *bolt.Tx, anchor []byte) []byte {
	base := d.db.Info().Data
	if len(anchor) == 0 || base == 0 || tx.Size() <= 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(anchor))
	off := uintptr(p) - base
	if off >= uintptr(tx.Size()) {
		return nil // not in the mapping after all
	}
	return unsafe.Slice((*byte)(unsafe.Add(p, -int(off))), tx.Size())
}

// cached reports whether nine tenths of the index or more are in the page
// cache (mincore on its mapping): reading it ahead would then only cost
// time.
func (d *fileDrive) cached() (in bool) {
	var err error
	defer damaged(&err) // then not cached: the walks report it
	d.db.View(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketObjects).Cursor().First()
		m := d.mapping(tx, k)
		if m == nil {
			return nil
		}
		page := os.Getpagesize()
		vec := make([]byte, (len(m)+page-1)/page)
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			return nil
		}
		n := 0
		for _, v := range vec {
			n += int(v & 1)
		}
		in = n >= len(vec)*9/10
		return nil
	})
	return in
}

func (d *fileDrive) Get(key string) (rec []byte, err error) {
	defer damaged(&err)
	err = d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get([]byte(key))
		if v == nil {
			return fs.ErrNotExist
		}
		rec = bytes.Clone(v)
		return nil
	})
	return rec, err
}

func (d *fileDrive) Commit(b *IndexBatch) (refused map[string]error, err error) {
	defer damaged(&err)
	err = d.db.Update(func(tx *bolt.Tx) error {
		ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
		for _, k := range b.Deletes {
			if err := errors.Join(ob.Delete([]byte(k)), ab.Delete([]byte(k))); err != nil {
				return err
			}
		}
		for k, v := range b.Puts {
			if perr := ob.Put([]byte(k), v); perr != nil {
				if refused == nil {
					refused = make(map[string]error)
				}
				refused[k] = perr
				if err := errors.Join(ob.Delete([]byte(k)), ab.Delete([]byte(k))); err != nil {
					return err
				}
			}
		}
		for k, t := range b.Atimes {
			if ob.Get([]byte(k)) == nil {
				continue // removed meanwhile, or not recorded
			}
			if err := ab.Put([]byte(k), binary.LittleEndian.AppendUint64(nil, uint64(t))); err != nil {
				return err
			}
		}
		return nil
	})
	return refused, err
}

func (d *fileDrive) Close() error { return d.db.Close() }

// damaged turns a panic of bbolt's into an error: bbolt panics on a page
// that does not read as one (a bad sector, a write torn where its own
// checksums do not look), and a damaged index must take its drive out of
// use, not stop the process and every drive with it. bbolt rolls back the
// transaction the panic left; deferred by a backend method, damaged sets
// the method's error.
func damaged(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %v", errIndexDamaged, p)
	}
}

// errIndexDamaged is an index with pages bbolt cannot read.
var errIndexDamaged = errors.New("index damaged")
