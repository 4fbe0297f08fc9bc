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
