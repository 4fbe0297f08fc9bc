package store

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// Every key comes back as it went in: keys sharing long prefixes, keys
// sharing nothing, the empty key, keys longer than the scratch buffer and
// runs that no longer fit their chunk (moved whole to a new one).
func TestColdKeysGiveBackEveryKey(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var keys []string
	for i := range 5000 {
		keys = append(keys, fmt.Sprintf("deb.debian.org/debian/pool/main/p/pkg%d/pkg%d_1.0_arm64.deb", i, i))
	}
	for range 300 {
		keys = append(keys, strings.Repeat(string(rune('a'+rng.IntN(26))), 1+rng.IntN(3000)))
	}
	keys = append(keys, "", "\x00"+strings.Repeat("\xff", 32), strings.Repeat("y", keyChunk/2))
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var c coldKeys
	total := 0
	for _, k := range keys {
		c.add([]byte(k))
		total += len(k)
	}
	if c.n != len(keys) {
		t.Fatalf("%d keys counted, want %d", c.n, len(keys))
	}
	for i, k := range keys {
		if got := c.key(i); got != k {
			t.Fatalf("key %d: got %.40q (%d bytes), want %.40q (%d bytes)", i, got, len(got), k, len(k))
		}
		if !c.equal(i, k) || c.equal(i, k+"x") {
			t.Fatalf("key %d: equal is wrong", i)
		}
	}
	kept := 0
	for _, ch := range c.chunks {
		kept += len(ch)
	}
	if kept >= total {
		t.Fatalf("%d bytes kept for %d bytes of keys: not front-coded", kept, total)
	}
}

// sortCold orders cold entries oldest first, to within the step its words
// keep of a last use (2 µs over a year for 100,000 entries here), over two
// chunks with unused positions between them as a two-part load leaves.
func TestSortColdOrdersByLastUse(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const year = int64(365 * 24 * 3600 * 1e9)
	chunks := [][]coldEntry{make([]coldEntry, 60_000), make([]coldEntry, 40_000)}
	chunks[1] = append(make([]coldEntry, 0, coldChunk), chunks[1]...)
	for _, c := range chunks {
		for j := range c {
			c[j].atime = 1700000000_000000000 + rng.Int64N(year)
		}
	}
	order := sortCold(chunks)
	if len(order) != 100_000 {
		t.Fatalf("%d positions, want 100000", len(order))
	}
	at := func(p uint32) int64 { return chunks[p/coldChunk][p%coldChunk].atime }
	seen := map[uint32]bool{}
	for i, p := range order {
		if seen[p] || p/coldChunk > 1 || int(p%coldChunk) >= len(chunks[p/coldChunk]) {
			t.Fatalf("position %d: %d is not an entry's, or twice", i, p)
		}
		seen[p] = true
		if i > 0 && at(p) < at(order[i-1])-4096 {
			t.Fatalf("position %d: last use %d before its predecessor's %d", i, at(p), at(order[i-1]))
		}
	}
}
