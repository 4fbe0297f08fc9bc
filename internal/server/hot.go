package server

import (
	"io"
	"sync"
	"time"

	"gatecache/internal/store"
)

// Bounds of the handler's in-memory state per stored object (hot).
const (
	// memoryBudget is the RAM kept for copies of small complete objects
	// (package indexes, metadata files), served without reading the
	// drive; memoryObjectMax is the largest such object. A small hit is
	// then one write of header and body.
	memoryBudget    = 32 << 20
	memoryObjectMax = 64 << 10
	// maxFreshEntries bounds the freshness table, about 100 bytes an
	// entry (1.6 MB in all). Past it an arbitrary entry makes room: it is
	// computed again at its object's next hit, a microsecond of work.
	maxFreshEntries = 16384
)

// hot is what the handler remembers of stored objects so that a hit does
// not redo work: the freshness computed from an object's header, and the
// bytes of small complete objects. Both are bounded, and an object's
// entries go when it leaves the store (store.OnRemove), so that they never
// hold memory for objects the cache no longer has.
type hot struct {
	mu      sync.Mutex
	fresh   map[*store.Object]freshEntry
	mem     map[*store.Object][]byte
	memUsed int64 // bytes in mem
}

// freshEntry is the freshness of one stored response (RFC 9111 §4.2): when
// it was generated (now minus its age) and when it stops being fresh,
// computed from the header of generation gen (store.Object.HeaderGen).
type freshEntry struct {
	gen          uint64
	born, expiry time.Time
}

func newHot(st *store.Store) *hot {
	h := &hot{fresh: make(map[*store.Object]freshEntry), mem: make(map[*store.Object][]byte)}
	if st != nil {
		st.OnRemove(h.forget)
	}
	return h
}

// forget drops what is kept of an object that left the store.
func (h *hot) forget(obj *store.Object) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.fresh, obj)
	if mem, ok := h.mem[obj]; ok {
		h.memUsed -= int64(len(mem))
		delete(h.mem, obj)
	}
}

// freshness returns what setFreshness recorded for obj's header of
// generation gen; ok is false when nothing is known for that header.
func (h *hot) freshness(obj *store.Object, gen uint64) (born, expiry time.Time, ok bool) {
	h.mu.Lock()
	e, found := h.fresh[obj]
	h.mu.Unlock()
	if !found || e.gen != gen {
		return time.Time{}, time.Time{}, false
	}
	return e.born, e.expiry, true
}

// setFreshness records the freshness computed from obj's header of
// generation gen (read before the header). An entry of an older header is
// replaced: an object has one entry at most.
func (h *hot) setFreshness(obj *store.Object, gen uint64, born, expiry time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.fresh[obj]; !ok && len(h.fresh) >= maxFreshEntries {
		for o := range h.fresh { // map order: an arbitrary entry
			delete(h.fresh, o)
			break
		}
	}
	// Checked under h.mu: an object removed after the check is forgotten
	// after this entry is made.
	if !obj.Removed() {
		h.fresh[obj] = freshEntry{gen: gen, born: born, expiry: expiry}
	}
}

// memoryCopy returns obj's bytes from memory when it is small and complete,
// reading them from the store the first time. It returns nil for objects
// that do not qualify (too large, incomplete, memory budget spent): serve
// those from the store.
func (h *hot) memoryCopy(obj *store.Object) []byte {
	size := obj.Size()
	if size > memoryObjectMax {
		return nil
	}
	h.mu.Lock()
	mem, ok := h.mem[obj]
	full := h.memUsed+size > memoryBudget
	h.mu.Unlock()
	if ok || full || !obj.Verified(0, obj.NumBlocks()-1) {
		return mem
	}

	buf := make([]byte, size)
	data, err := obj.Open()
	if err != nil {
		return nil
	}
	_, err = data.ReadAt(buf, 0)
	data.Close()
	if err != nil && !(err == io.EOF && size == 0) {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The blocks were verified before the read and an object's verified
	// bytes never change; only removal or a lost race needs a look.
	if mem, ok := h.mem[obj]; ok {
		return mem
	}
	if h.memUsed+size > memoryBudget || obj.Removed() {
		return nil
	}
	h.mem[obj] = buf
	h.memUsed += size
	return buf
}
