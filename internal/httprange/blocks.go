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
