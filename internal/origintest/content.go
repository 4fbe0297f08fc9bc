// Package origintest is a fake upstream origin for gatecache tests: it serves
// deterministic content of any size with ranges, validators, injected faults
// and request counters, so tests can assert exactly what reached the client
// and what the cache sent upstream.
package origintest

import (
	"encoding/binary"
	"fmt"
)

// golden is the splitmix64 increment (2^64 / phi).
const golden = 0x9e3779b97f4a7c15

// mix64 is the splitmix64 finaliser: a cheap bijection with full avalanche,
// so neighbouring inputs give unrelated outputs.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func fnv1a(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// seedOf folds path and version into one stream seed. The version is mixed
// on its own first so that versions 1 and 2 of a path are as unrelated as two
// different paths.
func seedOf(path string, version int) uint64 {
	return mix64(fnv1a(path) ^ mix64(uint64(version)+golden))
}

// word returns the w-th 8-byte word of the stream: the w-th output of a
// splitmix64 generator started at seed. Being random-access is what lets any
// range be produced without generating what precedes it.
func word(seed, w uint64) uint64 {
	return mix64(seed + (w+1)*golden)
}

// Bytes returns bytes [off, off+n) of the deterministic content of
// (path, version). Byte o is byte o%8 (little-endian) of word o/8, so data
// from a wrong offset, path or version never matches.
func Bytes(path string, version int, off, n int64) []byte {
	if n <= 0 {
		return []byte{}
	}
	p := make([]byte, n)
	Fill(p, path, version, off)
	return p
}

// Fill writes the content of (path, version) starting at off into p, without
// allocating, for hot paths such as serving and verifying large bodies.
func Fill(p []byte, path string, version int, off int64) {
	fillSeed(p, seedOf(path, version), off)
}

func fillSeed(p []byte, seed uint64, off int64) {
	if off < 0 {
		panic(fmt.Sprintf("origintest: negative offset %d", off))
	}
	if len(p) == 0 {
		return
	}
	w := uint64(off) / 8
	var tmp [8]byte
	if r := uint64(off) % 8; r != 0 {
		// Unaligned head: take the tail of the word containing off.
		binary.LittleEndian.PutUint64(tmp[:], word(seed, w))
		p = p[copy(p, tmp[r:]):]
		w++
	}
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, word(seed, w))
		p = p[8:]
		w++
	}
	if len(p) > 0 {
		binary.LittleEndian.PutUint64(tmp[:], word(seed, w))
		copy(p, tmp[:])
	}
}

// defaultETag derives a strong ETag from everything that changes the bytes,
// so a new version or size gets a new validator unless the test overrides it.
func defaultETag(path string, version int, size int64) string {
	return fmt.Sprintf(`"%016x"`, mix64(seedOf(path, version)^mix64(uint64(size))))
}
