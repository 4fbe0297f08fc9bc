package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// Load gives every record once, with the access time kept beside it, in
// one part or two, and each part in the index's order or its reverse;
// when fn fails, Load stops with its error.
func complianceLoad(t *testing.T, k backendKit) {
	for _, n := range []int{0, 1, 2, claimBatch - 1, claimBatch, claimBatch + 1, 3*claimBatch + 7, 5000} {
		spec := k.drive(t, 1<<30)
		want := map[string][]byte{}
		withBackend(t, spec, func(be Backend) {
			b := IndexBatch{Puts: map[string][]byte{}, Atimes: map[string]int64{}}
			for i := range n {
				key := fmt.Sprintf("host/%d", i)
				want[key] = []byte("record of " + key)
				b.Puts[key] = want[key]
				if i%3 != 0 { // some records have no access time
					b.Atimes[key] = int64(i) + 1
				}
			}
			if _, err := be.Commit(&b); err != nil {
				t.Fatal(err)
			}
			for _, parts := range []int{1, 2} {
				var mu sync.Mutex
				seen := map[string]int{}
				last := map[int][]byte{}
				dir := map[int]int{}
				err := be.Load(parts, func(part int, key, rec []byte, atime int64) error {
					mu.Lock()
					defer mu.Unlock()
					if part < 0 || part >= parts {
						t.Errorf("part %d of %d", part, parts)
					}
					if prev, ok := last[part]; ok {
						c := bytes.Compare(key, prev)
						if c == 0 || dir[part] != 0 && c != dir[part] {
							t.Errorf("part %d: %q after %q: not in one order", part, key, prev)
						}
						dir[part] = c
					}
					last[part] = slices.Clone(key)
					seen[string(key)]++
					var i int
					fmt.Sscanf(string(key), "host/%d", &i)
					wantAtime := int64(i) + 1
					if i%3 == 0 {
						wantAtime = 0
					}
					if !bytes.Equal(rec, want[string(key)]) || atime != wantAtime {
						t.Errorf("%q: record %q, atime %d; want %q, %d", key, rec, atime, want[string(key)], wantAtime)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if len(seen) != n {
					t.Errorf("%d records in %d parts: %d seen", n, parts, len(seen))
				}
				for key, c := range seen {
					if c != 1 {
						t.Errorf("%d records in %d parts: %q seen %d times", n, parts, key, c)
					}
				}
			}
			if n == 0 {
				return
			}
			stop := errors.New("stop")
			calls := 0
			var mu sync.Mutex
			err := be.Load(2, func(int, []byte, []byte, int64) error {
				mu.Lock()
				defer mu.Unlock()
				calls++
				return stop
			})
			if !errors.Is(err, stop) || calls > 2 {
				t.Errorf("fn failing: Load returned %v after %d calls, want its error after at most one call a part", err, calls)
			}
		})
	}
}

// A drive of thousands of objects (more than one batch of a two-part load
// and more than one run of keys) opens with every object in its figures,
// each found with its own metadata at its first lookup, and evicted oldest
// first.
func complianceManyCold(t *testing.T, k backendKit) {
	const n = 3000
	spec := k.drive(t, n*8*testBlock)
	withBackend(t, spec, func(be Backend) { indexObjects(t, be, n) })
	s := reopen(t, []DriveSpec{spec})
	if st := s.Stats()[0]; st.Objects != n || st.UsedBytes != n*8*testBlock {
		t.Fatalf("%d objects, %d bytes; want %d, %d", st.Objects, st.UsedBytes, n, n*8*testBlock)
	}
	// By last use, oldest first.
	byAge := make([]int, n)
	for i := range byAge {
		byAge[i] = i
	}
	slices.SortFunc(byAge, func(a, b int) int { return compareInt64(benchAtime(a, n), benchAtime(b, n)) })
	// Room for 40 blocks: the five oldest go, and only they.
	o, err := s.Create("new", Meta{Size: 40 * testBlock})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []int64
	for i := range int64(40) {
		blocks = append(blocks, i)
	}
	writeBlocks(t, o, content("new", 40*testBlock), blocks...)
	if st := s.Stats()[0]; st.Evictions != 5 {
		t.Fatalf("%d evictions, want 5", st.Evictions)
	}
	for rank, i := range byAge[:50] {
		got := s.Lookup(benchKey(i))
		if (got == nil) != (rank < 5) {
			t.Fatalf("the %d-th oldest object (%s): found %v", rank+1, benchKey(i), got != nil)
		}
	}
	for i := 0; i < n; i += 7 {
		got := s.Lookup(benchKey(i))
		if slices.Contains(byAge[:5], i) {
			continue
		}
		if got == nil || got.Size() != 8*testBlock || got.Meta().ETag != `"abc"` || got.NumBlocks() != 8 {
			t.Fatalf("%s came back as %+v", benchKey(i), got)
		}
	}
}
