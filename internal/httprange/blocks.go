package httprange

import "fmt"

// Objects are stored as fixed-size blocks aligned on multiples of the
// block size, so that any client range maps to a whole
// number of blocks and two clients asking for overlapping ranges share
// the blocks they have in common.

// Blocks returns the first and last block indices (inclusive) covering the
// bytes [start, start+length). It panics when length or blockSize is not
// positive or start is negative: callers derive those from a Range, and
// anything else is a bug that must not silently fetch the wrong blocks.
func Blocks(start, length, blockSize int64) (first, last int64) {
	if start < 0 || length <= 0 || blockSize <= 0 {
		panic(fmt.Sprintf("httprange.Blocks(%d, %d, %d): invalid arguments", start, length, blockSize))
	}
	// (start+length-1) cannot overflow: start+length is an object size.
	return start / blockSize, (start + length - 1) / blockSize
}

// BlockCount is the number of blocks of an object of size bytes: 0 for an
// empty object. It panics when blockSize is not positive.
func BlockCount(size, blockSize int64) int64 {
	if blockSize <= 0 {
		panic(fmt.Sprintf("httprange.BlockCount(%d, %d): invalid block size", size, blockSize))
	}
	if size <= 0 {
		return 0
	}
	// Written this way round so that size near MaxInt64 does not overflow.
	n := size / blockSize
	if size%blockSize != 0 {
		n++
	}
	return n
}

// BlockBounds is block i's byte range [start, end) in an object of the
// given size; the last block may be short. For i outside
// [0, BlockCount(size, blockSize)) the result is the empty range at the
// nearer end of the object. It panics when blockSize is not positive.
func BlockBounds(i, blockSize, size int64) (start, end int64) {
	if blockSize <= 0 {
		panic(fmt.Sprintf("httprange.BlockBounds(%d, %d, %d): invalid block size", i, blockSize, size))
	}
	if i < 0 || size <= 0 {
		return 0, 0
	}
	if i >= BlockCount(size, blockSize) {
		return size, size
	}
	start = i * blockSize // < size, so no overflow
	return start, start + min(blockSize, size-start)
}
