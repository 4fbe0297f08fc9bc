package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// How the file backend loads its index at start: two walks from its ends,
// the file read ahead beside them, and the mapped pages let go as they go.

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
// the memory there is room for (memRoom), where pages read ahead could be
// dropped again before the walks reach them and the index would be read
// twice.
func (d *fileDrive) worthReadingAhead() bool {
	fi, err := os.Stat(filepath.Join(d.root, "index.db"))
	if err != nil || d.cached() {
		return false
	}
	room, ok := memRoom()
	return !ok || fi.Size() <= room/2
}

// memRoom is the memory this process can have without reclaim: the
// system's MemAvailable (/proc/meminfo: the page cache's reclaimable part
// included), or less when its cgroup has a limit (a container's memory
// limit, which the page cache it reads counts against).
func memRoom() (int64, bool) {
	room, ok := int64(0), false
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, found := strings.CutPrefix(line, "MemAvailable:"); found {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				room, ok = kb<<10, err == nil
			}
		}
	}
	if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		if limit, used, found := cgroupMemory(string(b), "/sys/fs/cgroup"); found && (!ok || limit-used < room) {
			room, ok = max(limit-used, 0), true
		}
	}
	return room, ok
}

// cgroupMemory reads the memory limit and use of the cgroup that
// procCgroup (/proc/self/cgroup) names under root: cgroup v2's memory.max
// and memory.current, or v1's memory.limit_in_bytes and usage_in_bytes.
// found is false without a limit ("max", or v1's huge default).
func cgroupMemory(procCgroup, root string) (limit, used int64, found bool) {
	read := func(path string) (int64, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		return n, err == nil && n < 1<<60 // v1 says "no limit" with a huge number
	}
	for line := range strings.Lines(procCgroup) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var maxFile, curFile string
		switch {
		case parts[0] == "0" && parts[1] == "":
			maxFile, curFile = filepath.Join(root, parts[2], "memory.max"), filepath.Join(root, parts[2], "memory.current")
		case parts[1] == "memory":
			dir := filepath.Join(root, "memory", parts[2])
			maxFile, curFile = filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.usage_in_bytes")
		default:
			continue
		}
		if l, ok := read(maxFile); ok {
			u, _ := read(curFile)
			return l, u, true
		}
	}
	return 0, 0, false
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
