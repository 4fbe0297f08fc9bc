package store

import "slices"

// Variants: responses at one URL that differ by fields of the request are
// each an object of their own, under a key the store's user derives from
// the URL's key and those fields. The URL's own key then holds a marker, an
// object without content whose metadata names the fields (Vary) and lists
// the variants (Variants), so that the user knows which fields to derive
// the key from, a URL never has more than a bounded number of variants, and
// removing or replacing the URL removes them all.

// CreateVariant creates the object for key (as Create does), one variant of
// the URL whose own key is base. The object under base becomes the URL's
// marker, naming vary: an existing marker naming the same fields is kept,
// anything else there is replaced (with its variants). The marker lists key
// as its newest variant; past max variants the oldest are removed.
func (s *Store) CreateVariant(base string, vary []string, key string, meta Meta, max int) (*Object, error) {
	s.variantMu.Lock()
	defer s.variantMu.Unlock()
	marker := s.Lookup(base)
	if marker == nil || !slices.Equal(marker.vary, vary) {
		m, err := s.Create(base, Meta{StoredAt: meta.StoredAt, Vary: slices.Clip(slices.Clone(vary))})
		if err != nil {
			return nil, err
		}
		marker = m
	}
	o, err := s.Create(key, meta)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.unlock()
	if marker.removed {
		return o, nil
	}
	list := slices.DeleteFunc(slices.Clone(marker.meta.Variants), func(k string) bool { return k == key })
	list = append(list, key)
	for len(list) > max {
		if v := s.objects[list[0]]; v != nil && v != o {
			s.removeLocked(v)
		} else if v == nil {
			s.removeColdLocked(list[0])
		}
		list = list[1:]
	}
	marker.meta.Variants = slices.Clip(list)
	marker.markDirtyLocked()
	return o, nil
}

// removeWithVariantsLocked removes o and, when it is a marker, the variants
// it lists. Eviction removes a marker alone: its variants, unreachable
// then, are the least recently used soon.
func (s *Store) removeWithVariantsLocked(o *Object) {
	for _, k := range o.meta.Variants {
		if v := s.objects[k]; v != nil && v.vary == nil {
			s.removeLocked(v)
		} else if v == nil {
			s.removeColdLocked(k)
		}
	}
	s.removeLocked(o)
}
