package store

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
)

// A drive with a million objects must open in well under a second and in
// little memory, and most of its objects will not be asked for soon. So
// Open keeps of each indexed object only what placement, eviction and the
// figures need (a cold entry: key, id, last use, bytes present); the
// object's record is read from the index and decoded the first time a
// Lookup asks for it, and the object is a full Object from then on.
//
// Every cold entry is older than every object used or created since Open
// (its last use is from before Open), so the LRU order of a drive is its
// list of objects followed by its cold entries, oldest last: eviction
// takes cold entries first, oldest first.

// coldEntry is an indexed object not looked up since Open. Its key is in
// the drive's coldKeys, at the entry's position. It holds no pointer, so
// that the collector never looks into a million of them.
type coldEntry struct {
	id    uint64
	atime int64  // unix nanoseconds of the last use before Open
	state uint64 // bytes of present blocks (coldBytes), and the flags above
}

const (
	coldBytes = 1<<56 - 1 // far above the largest object (maxObjectBlocks)
	// coldGone: looked up, removed or evicted since.
	coldGone = 1 << 63
	// coldMarker: a Vary marker (Meta.Vary), whose record lists the
	// variants to remove with it.
	coldMarker = 1 << 62
)

func (e *coldEntry) bytes() int64 { return int64(e.state & coldBytes) }
func (e *coldEntry) gone() bool   { return e.state&coldGone != 0 }
func (e *coldEntry) marker() bool { return e.state&coldMarker != 0 }

// coldRef names a cold entry: its drive and its position there.
type coldRef struct {
	d   *drive
	pos uint32
}

// peekEntry reads of a stored value under index key k what a cold entry
// keeps, and the entry's key, without decoding its header fields or
// checksums. key is k, or points into v for a key indexed by its digest.
func peekEntry(k, v []byte, blockSize int64) (e coldEntry, key []byte, err error) {
	key = k
	if len(v) > 0 && v[0] == keyedVersion {
		r := &recordReader{b: v[1:]}
		key = r.bytes(r.uvarint())
		if r.err != nil {
			return e, nil, r.err
		}
		if indexKey(string(key)) != string(k) {
			return e, nil, errors.New("record key does not match its index key")
		}
		v = r.b
	}
	if len(v) < 9 || v[0] != recordVersion {
		// Older records are rare: decode them whole.
		o, err := decodeRecord(string(key), v, blockSize)
		if err != nil {
			return e, nil, err
		}
		e.id, e.state = o.id, uint64(o.presentBytes)
		if o.vary != nil {
			e.state |= coldMarker
		}
		return e, key, nil
	}
	e.id = binary.LittleEndian.Uint64(v[1:9])
	r := &recordReader{b: v[9:]}
	size := r.varint()
	r.varint() // stored at
	r.skipString()
	r.skipString()
	marker := r.skipHeader()
	if r.err != nil || size < 0 {
		return e, nil, errShortRecord
	}
	n := blockCount(size, blockSize)
	if n > maxObjectBlocks {
		return e, nil, errors.New("implausible size")
	}
	bitmap := r.bytes(uint64((n + 7) / 8))
	if r.err != nil {
		return e, nil, r.err
	}
	present := 0
	for _, b := range bitmap {
		present += bits.OnesCount8(b)
	}
	if len(r.b) < 4*present {
		return e, nil, errShortRecord
	}
	bytes := int64(present) * blockSize
	if n > 0 && bitmap[(n-1)/8]&(1<<((n-1)%8)) != 0 {
		// The last block is short unless size is a multiple of blocks.
		bytes -= n*blockSize - size
	}
	e.state = uint64(bytes)
	if marker {
		e.state |= coldMarker
	}
	return e, key, nil
}

func (r *recordReader) skipString() { r.bytes(r.uvarint()) }

// skipHeader passes over what appendHeader wrote; it reports whether the
// record is a Vary marker's.
func (r *recordReader) skipHeader() (marker bool) {
	for range r.uvarint() {
		if r.err != nil {
			return false
		}
		r.skipString()
		for range r.uvarint() {
			if r.err != nil {
				return false
			}
			r.skipString()
		}
	}
	flags := r.bytes(1)
	if r.err != nil || flags[0]&flagVary == 0 {
		return false
	}
	for range 2 {
		for range r.uvarint() {
			if r.err != nil {
				return false
			}
			r.skipString()
		}
	}
	return true
}

// coldChunk is how many cold entries are allocated at once as the index is
// read: the list is a list of chunks, never grown by doubling and copying
// (a million entries are 24 MB).
const coldChunk = 1 << 16

// loadCold reads the drive's index into cold entries, their eviction
// order, oldest last use first, and their index by key (coldindex.go).
// Unreadable records are deleted; long keys an earlier version indexed as
// they are move under their digest (decoded whole: that happens once).
//
// The index is read in two parts at once (Backend.Load): the second part's
// entries take the positions from the chunk after the first part's last;
// the positions in between hold no entry.
func (d *drive) loadCold(blockSize int64, seed maphash.Seed) error {
	var parts [2]coldPart
	err := d.backend.Load(len(parts), func(part int, k, v []byte, atime int64) error {
		parts[part].add(d, k, v, atime, blockSize)
		return nil
	})
	if err != nil {
		return err
	}
	d.cold, d.coldKeys = parts[0].chunks, parts[0].keys
	d.coldKeys.join(&parts[1].keys, len(d.cold)*coldChunk)
	d.cold = append(d.cold, parts[1].chunks...)
	// Two sorts of a million words: one on each core.
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.coldIndex = buildColdIndex(&d.coldKeys, seed)
	}()
	d.coldOrder = sortCold(d.cold)
	d.liveAtOpen = make([]uint64, 0, d.coldKeys.count)
	for _, c := range d.cold {
		for _, e := range c {
			d.liveAtOpen = append(d.liveAtOpen, e.id)
		}
	}
	<-done
	fix := IndexBatch{Puts: map[string][]byte{}, Atimes: map[string]int64{}}
	for _, p := range parts {
		fix.Deletes = append(fix.Deletes, p.deletes...)
		for _, o := range p.moved {
			ik := indexKey(o.o.key)
			fix.Puts[ik], fix.Atimes[ik] = encodeEntry(o.o), o.atime
		}
	}
	if len(fix.Deletes) > 0 {
		if _, err := d.backend.Commit(&fix); err != nil {
			return err
		}
	}
	return nil
}

// coldPart is what one part of the index loads into.
type coldPart struct {
	chunks  [][]coldEntry
	keys    coldKeys
	deletes []string // index keys of unreadable records and of moved ones
	moved   []struct {
		o     *Object
		atime int64
	}
}

func (p *coldPart) add(d *drive, k, v []byte, atime int64, blockSize int64) {
	e, key, err := peekEntry(k, v, blockSize)
	if err == nil && !isIndexKey(k, key) {
		var o *Object
		if o, err = decodeEntry(string(k), v, blockSize); err == nil {
			p.deletes = append(p.deletes, string(k))
			p.moved = append(p.moved, struct {
				o     *Object
				atime int64
			}{o, atime})
		}
	}
	if err != nil {
		d.log.Warn("cache index: dropping unreadable record", "drive", d.spec.Path, "key", logKey(string(k)), "err", err)
		p.deletes = append(p.deletes, string(k))
		return
	}
	e.atime = atime
	if p.keys.n%coldChunk == 0 {
		p.chunks = append(p.chunks, make([]coldEntry, 0, coldChunk))
	}
	p.chunks[len(p.chunks)-1] = append(p.chunks[len(p.chunks)-1], e)
	p.keys.add(key)
}

// coldAt is the cold entry at position i of the index's order.
func (d *drive) coldAt(i uint32) *coldEntry { return &d.cold[i/coldChunk][i%coldChunk] }

// takeLocked marks the live cold entry at ref gone and returns it.
func (ref coldRef) takeLocked() coldEntry {
	d := ref.d
	e := d.coldAt(ref.pos)
	e.state |= coldGone
	d.coldLive--
	taken := *e
	if d.coldLive == 0 {
		// Every entry is gone: let the lists go.
		d.cold, d.coldKeys, d.coldOrder, d.coldIndex, d.coldNext = nil, coldKeys{}, nil, coldIndex{}, 0
	}
	return taken
}

// removeColdLocked drops key's cold entry, if it has one, as removeLocked
// drops an object: space given back now, record and data deleted later.
func (s *Store) removeColdLocked(key string) bool {
	ref, ok := s.findColdLocked(key)
	if ok {
		s.removeRefLocked(ref, key)
	}
	return ok
}

// removeRefLocked drops the live cold entry at ref, whose key is key.
func (s *Store) removeRefLocked(ref coldRef, key string) {
	d, e := ref.d, ref.takeLocked()
	d.used -= e.bytes()
	d.objects--
	d.deleted[key] = e.id
	s.trash = append(s.trash, &Object{store: s, drive: d, key: key, id: e.id, removed: true})
}

// evictColdLocked removes d's oldest cold entry; it reports false when d
// has none left.
func (s *Store) evictColdLocked(d *drive) bool {
	for d.coldNext < len(d.coldOrder) && d.coldAt(d.coldOrder[d.coldNext]).gone() {
		d.coldNext++
	}
	if d.coldNext >= len(d.coldOrder) {
		return false
	}
	pos := d.coldOrder[d.coldNext]
	s.removeRefLocked(coldRef{d, pos}, d.coldKeys.key(int(pos)))
	return true
}

// warmMarker turns key's cold entry into an object when it is a Vary
// marker, whose variants its record lists: removing or replacing the key
// removes them too. Any other cold entry is removed under the lock, with no
// read of its record.
func (s *Store) warmMarker(key string) {
	s.mu.Lock()
	ref, ok := s.findColdLocked(key)
	marker := ok && ref.d.coldAt(ref.pos).marker()
	s.mu.Unlock()
	if marker {
		s.warm(key)
	}
}

// warm turns key's cold entry into an object: its record is read from the
// index (outside the lock) and decoded. It returns nil when key has no cold
// entry, or when its record cannot be read (then the entry is removed, so
// that the next request refetches).
func (s *Store) warm(key string) *Object {
	s.mu.Lock()
	ref, ok := s.findColdLocked(key)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	d := ref.d
	ik := indexKey(key)
	rec, err := d.backend.Get(ik)
	var o *Object
	if err == nil {
		o, err = decodeEntry(ik, rec, s.blockSize)
	}
	if err == nil && o.key != key {
		err = errors.New("record names another key")
	}
	s.mu.Lock()
	o, dropped := s.installLocked(key, ref, o, err)
	s.unlock()
	if dropped {
		s.log.Warn("cache index: an indexed object cannot be read: dropped, will be refetched",
			"drive", d.spec.Path, "key", logKey(key), "err", err)
	}
	if errors.Is(err, errIndexDamaged) {
		s.markFailed(d, err) // set aside at the next start (openDrive)
	}
	return o
}

// installLocked makes o, decoded from ref's record, the object of key,
// unless the entry went meanwhile (looked up, removed, evicted). A record
// that could not be read (err) drops the entry.
func (s *Store) installLocked(key string, ref coldRef, o *Object, err error) (_ *Object, dropped bool) {
	if cur, still := s.findColdLocked(key); !still || cur != ref {
		if o := s.objects[key]; o != nil {
			o.touchLocked()
			return o, false
		}
		return nil, false
	}
	if err != nil {
		s.removeRefLocked(ref, key)
		return nil, true
	}
	d, e := ref.d, ref.takeLocked()
	o.store, o.drive, o.atime = s, d, e.atime
	d.used += o.presentBytes - e.bytes() // the same, unless the record changed under us
	s.objects[key] = o
	o.lruElem = d.lru.PushFront(o)
	o.touchLocked()
	return o, false
}

// sortCold returns the positions of the chunks' entries, oldest last use
// first. Sorting 8-byte words is a small part of a start where gathering
// and sorting a million entries is a quarter of it: each word holds an
// entry's position in its low bits and above them its last use, as an
// offset from the oldest scaled to fit the bits left (for a million
// entries 44 bits: exact within 4.8 hours, 2 µs steps over a year). Entries
// within one step are in order of position: for eviction they are equally
// old.
func sortCold(chunks [][]coldEntry) []uint32 {
	n, end := 0, 0
	for i, c := range chunks {
		n, end = n+len(c), i*coldChunk+len(c)
	}
	posBits := uint(max(bits.Len(uint(end)), 1))
	oldest, newest := int64(math.MaxInt64), int64(math.MinInt64)
	for _, c := range chunks {
		for _, e := range c {
			oldest, newest = min(oldest, e.atime), max(newest, e.atime)
		}
	}
	shift := uint(0)
	for n > 0 && uint64(newest-oldest)>>shift>>(64-posBits) != 0 {
		shift++
	}
	words := make([]uint64, 0, n)
	for i, c := range chunks {
		for j, e := range c {
			words = append(words, uint64(e.atime-oldest)>>shift<<posBits|uint64(i*coldChunk+j))
		}
	}
	slices.Sort(words)
	order := make([]uint32, n)
	for i, w := range words {
		order[i] = uint32(w & (1<<posBits - 1))
	}
	return order
}
