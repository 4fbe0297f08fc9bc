package store

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// coldIndex finds a drive's cold entries by key. A map of a million string
// keys costs a start as much as reading the index and some 40 MB; this is
// one sorted word per entry (8 MB), each an entry's key hash (its top bits)
// above its position, searched by halving: a lookup that misses the
// objects in use costs some twenty steps.
type coldIndex struct {
	words   []uint64
	posBits uint // low bits of a word that hold the position
	seed    maphash.Seed
}

// buildColdIndex indexes the keys of d's cold entries.
func buildColdIndex(keys *coldKeys, seed maphash.Seed) coldIndex {
	x := coldIndex{posBits: uint(max(bits.Len(uint(keys.n)), 1)), seed: seed, words: make([]uint64, 0, keys.count)}
	keys.each(func(i int, key []byte) {
		x.words = append(x.words, maphash.Bytes(seed, key)>>x.posBits<<x.posBits|uint64(i))
	})
	slices.Sort(x.words)
	return x
}

// hashBits is key's hash with the position bits cleared.
func (x *coldIndex) hashBits(key string) uint64 {
	return maphash.String(x.seed, key) >> x.posBits << x.posBits
}

// find returns the position of key's live entry on d. Entries of equal
// hash bits (rare: one pair in a million with 44 of them) are compared by
// key.
func (d *drive) findCold(key string) (uint32, bool) {
	x := &d.coldIndex
	if len(x.words) == 0 {
		return 0, false
	}
	h := x.hashBits(key)
	i, _ := slices.BinarySearch(x.words, h)
	for ; i < len(x.words) && x.words[i]>>x.posBits<<x.posBits == h; i++ {
		pos := uint32(x.words[i] & (1<<x.posBits - 1))
		if !d.coldAt(pos).gone() && d.coldKeys.equal(int(pos), key) {
			return pos, true
		}
	}
	return 0, false
}

// findColdLocked finds key's cold entry on any drive.
func (s *Store) findColdLocked(key string) (coldRef, bool) {
	for _, d := range s.drives {
		if d.coldLive == 0 && len(d.coldIndex.words) == 0 {
			continue
		}
		if pos, ok := d.findCold(key); ok {
			return coldRef{d, pos}, true
		}
	}
	return coldRef{}, false
}

// dedupCold keeps, of a key indexed on two drives (drives were
// reconfigured), the most recently used copy; the other is removed. Only
// a node with more than one drive pays for the check.
func (s *Store) dedupCold() {
	for k, d := range s.drives {
		if k == 0 {
			continue // no earlier drive to hold a copy
		}
		d.coldKeys.each(func(i int, kb []byte) {
			e := d.coldAt(uint32(i))
			if e.gone() {
				return
			}
			key := string(kb)
			for _, od := range s.drives[:k] {
				pos, dup := od.findCold(key)
				if !dup {
					continue
				}
				loser, ld := e, d
				if oe := od.coldAt(pos); e.atime > oe.atime {
					loser, ld = oe, od
				}
				loser.state |= coldGone
				ld.deleted[key] = loser.id
				s.trash = append(s.trash, &Object{store: s, drive: ld, key: key, id: loser.id, removed: true})
				break
			}
		})
	}
}
