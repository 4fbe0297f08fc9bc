// Package rendezvous is weighted rendezvous (highest random weight)
// hashing, as the store places objects on drives and a hashed parent pool
// ranks its parents: every candidate scores a key from a hash of the key
// and of the candidate alone, and the highest score wins, with probability
// weight / (sum of weights) (Thaler and Ravishankar; weighted as in
// Schindelhauer and Schomaker). A candidate that leaves hands each of its
// keys to that key's next candidate; the others keep theirs.
package rendezvous

import (
	"hash/fnv"
	"math"
)

// Hash is the 64-bit FNV-1a hash of s: of a key, or of a candidate's name.
func Hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Score is a candidate's score for a key: -w / ln(u), u uniform in (0,1)
// from the key's hash and the candidate's seed.
func Score(keyHash, seed uint64, weight float64) float64 {
	u := (float64(Mix(keyHash^seed)>>11) + 0.5) / (1 << 53)
	return -weight / math.Log(u)
}

// Mix is the splitmix64 finalizer: it spreads similar inputs across all 64
// bits, so that keys that differ in one byte score candidates
// independently.
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
