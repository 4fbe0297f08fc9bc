package store

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"sync"
)

// MemoryDrive is a Backend that keeps a drive in memory, for tests of the
// store and of the packages above it (DriveSpec.Backend). It keeps across a
// simulated power cut (Crash) exactly what the Backend contract promises:
// items created or removed and index batches committed, and of each item
// the bytes its last Sync made durable; bytes written since are lost, as a
// file's pages that were never written back. Its readers offer no *os.File,
// so what serves them reads through io.ReaderAt.
//
// A MemoryDrive outlives the stores opened on it, one at a time: a test
// closes (or stops) one, and opens the next on the same drive.
type MemoryDrive struct {
	mu    sync.Mutex
	items map[uint64]*memItem
	index map[string]*memRecord
}

// memPage is the unit in which item bytes are kept: an item holds the pages
// written, so that a large sparse object costs only what was written.
const memPage = 64 << 10

type memItem struct {
	size    int64
	pages   map[int64][]byte // page number -> its bytes, now
	durable map[int64][]byte // as of the last Sync
	dirty   map[int64]bool   // pages written since the last Sync
}

type memRecord struct {
	rec   []byte
	atime int64 // 0: none
}

// NewMemoryDrive returns an empty drive.
func NewMemoryDrive() *MemoryDrive {
	return &MemoryDrive{items: make(map[uint64]*memItem), index: make(map[string]*memRecord)}
}

// Crash does to the drive what a power cut does to a disk: every item
// reverts to the bytes of its last Sync. Call it once the store on the
// drive has stopped.
func (m *MemoryDrive) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, it := range m.items {
		it.pages = clonePages(it.durable)
		clear(it.dirty)
	}
}

func clonePages(p map[int64][]byte) map[int64][]byte {
	out := make(map[int64][]byte, len(p))
	for i, b := range p {
		out[i] = slices.Clone(b)
	}
	return out
}

func (m *MemoryDrive) Name(id uint64) string { return fmt.Sprintf("memory:%016x", id) }

func (m *MemoryDrive) Create(id uint64, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[id] != nil {
		return fmt.Errorf("memory drive: item %016x: %w", id, fs.ErrExist)
	}
	m.items[id] = &memItem{size: size, pages: map[int64][]byte{}, durable: map[int64][]byte{}, dirty: map[int64]bool{}}
	return nil
}

func (m *MemoryDrive) item(id uint64) (*memItem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it := m.items[id]
	if it == nil {
		return nil, fmt.Errorf("memory drive: item %016x: %w", id, fs.ErrNotExist)
	}
	return it, nil
}

// memFile is an open item: removing the item leaves it readable and
// writable, as an unlinked file.
type memFile struct {
	m  *MemoryDrive
	it *memItem
}

func (m *MemoryDrive) Open(id uint64) (Reader, error) {
	it, err := m.item(id)
	if err != nil {
		return nil, err
	}
	return &memFile{m, it}, nil
}

func (m *MemoryDrive) OpenWriter(id uint64) (DataWriter, error) {
	it, err := m.item(id)
	if err != nil {
		return nil, err
	}
	return &memFile{m, it}, nil
}

func (f *memFile) Close() error { return nil }

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	return f.it.size, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	n := 0
	for n < len(p) && off < f.it.size {
		page, in := off/memPage, off%memPage
		chunk := p[n:min(len(p), n+int(min(memPage-in, f.it.size-off)))]
		if b := f.it.pages[page]; b != nil {
			copy(chunk, b[in:])
		} else {
			clear(chunk)
		}
		n += len(chunk)
		off += int64(len(chunk))
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fs.ErrInvalid
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	it := f.it
	for n := 0; n < len(p); {
		page, in := off/memPage, off%memPage
		b := it.pages[page]
		if b == nil {
			b = make([]byte, memPage)
			it.pages[page] = b
		}
		c := copy(b[in:], p[n:])
		it.dirty[page] = true
		n += c
		off += int64(c)
	}
	it.size = max(it.size, off)
	return len(p), nil
}

func (m *MemoryDrive) Sync(id uint64) error {
	it, err := m.item(id)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for page := range it.dirty {
		it.durable[page] = slices.Clone(it.pages[page])
	}
	clear(it.dirty)
	return nil
}

func (m *MemoryDrive) Remove(id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[id] == nil {
		return fmt.Errorf("memory drive: item %016x: %w", id, fs.ErrNotExist)
	}
	delete(m.items, id)
	return nil
}

func (m *MemoryDrive) List(fn func(id uint64)) error {
	m.mu.Lock()
	ids := slices.Collect(maps.Keys(m.items))
	m.mu.Unlock()
	for _, id := range ids {
		fn(id)
	}
	return nil
}

// Load gives every record in one part, in key order.
func (m *MemoryDrive) Load(_ int, fn func(part int, key, rec []byte, atime int64) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(m.index)) {
		r := m.index[k]
		if err := fn(0, []byte(k), r.rec, r.atime); err != nil {
			return err
		}
	}
	return nil
}

func (m *MemoryDrive) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.index[key]
	if r == nil {
		return nil, fs.ErrNotExist
	}
	return slices.Clone(r.rec), nil
}

func (m *MemoryDrive) Commit(b *IndexBatch) (map[string]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range b.Deletes {
		delete(m.index, k)
	}
	for k, v := range b.Puts {
		if r := m.index[k]; r != nil {
			r.rec = slices.Clone(v)
		} else {
			m.index[k] = &memRecord{rec: slices.Clone(v)}
		}
	}
	for k, t := range b.Atimes {
		if r := m.index[k]; r != nil {
			r.atime = t
		}
	}
	return nil, nil
}

func (m *MemoryDrive) Close() error { return nil }
