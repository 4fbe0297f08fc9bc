package store

import "encoding/binary"

// coldKeys holds the keys of a drive's cold entries, in the index's order,
// front-coded: each key is kept as the length of the prefix it shares with
// the key before it and the rest. Keys in index order share most of their
// bytes (a host and a path), so a million keys take a third of their
// length, and no allocation of their own (memory a start first touches is
// much of what it costs). Every keysPerRun-th key is kept whole, so that a
// key is read back by decoding at most keysPerRun of them.
type coldKeys struct {
	chunks [][]byte
	runs   []keyRun // where each run of keysPerRun positions starts
	last   []byte   // the key added last, which the next is coded against
	n      int      // positions: one past the last key's
	count  int      // keys (positions between joined parts hold none)
}

// keyRun is where the keys of keysPerRun positions start, and how many
// there are.
type keyRun struct{ chunk, off, n uint32 }

const keysPerRun = 16

// keyChunk is the size of the buffers keys are kept in.
const keyChunk = 1 << 20

// add appends key, the next in order.
func (c *coldKeys) add(key []byte) {
	shared := 0
	if c.n%keysPerRun != 0 {
		shared = commonPrefix(c.last, key)
	}
	need := 2*binary.MaxVarintLen64 + len(key) - shared
	switch {
	case c.n%keysPerRun == 0:
		c.startRun(need)
	case cap(c.chunks[len(c.chunks)-1])-len(c.chunks[len(c.chunks)-1]) < need:
		c.moveRun(need)
	}
	b := c.chunks[len(c.chunks)-1]
	b = binary.AppendUvarint(b, uint64(shared))
	b = binary.AppendUvarint(b, uint64(len(key)-shared))
	c.chunks[len(c.chunks)-1] = append(b, key[shared:]...)
	c.last = append(c.last[:0], key...)
	c.runs[len(c.runs)-1].n++
	c.n++
	c.count++
}

// join appends o's keys at the positions from base on, a multiple of
// keysPerRun at or past c's end; the positions in between hold no key.
func (c *coldKeys) join(o *coldKeys, base int) {
	for len(c.runs) < base/keysPerRun {
		c.runs = append(c.runs, keyRun{})
	}
	for _, r := range o.runs {
		r.chunk += uint32(len(c.chunks))
		c.runs = append(c.runs, r)
	}
	c.chunks = append(c.chunks, o.chunks...)
	c.n, c.count, c.last = base+o.n, c.count+o.count, nil
}

// startRun begins a run where need more bytes fit.
func (c *coldKeys) startRun(need int) {
	if len(c.chunks) == 0 || cap(c.chunks[len(c.chunks)-1])-len(c.chunks[len(c.chunks)-1]) < need {
		c.chunks = append(c.chunks, make([]byte, 0, max(keyChunk, need)))
	}
	last := len(c.chunks) - 1
	c.runs = append(c.runs, keyRun{chunk: uint32(last), off: uint32(len(c.chunks[last]))})
}

// moveRun moves the run being written to a new chunk with room for need
// more bytes, so that no run spans two chunks.
func (c *coldKeys) moveRun(need int) {
	r := &c.runs[len(c.runs)-1]
	old := c.chunks[r.chunk]
	run := old[r.off:]
	b := make([]byte, 0, max(keyChunk, len(run)+need))
	c.chunks[r.chunk] = old[:r.off]
	c.chunks = append(c.chunks, append(b, run...))
	r.chunk, r.off = uint32(len(c.chunks)-1), 0
}

// appendKey appends the key at position i (one that holds a key) to buf.
func (c *coldKeys) appendKey(buf []byte, i int) []byte {
	r := c.runs[i/keysPerRun]
	b := c.chunks[r.chunk][r.off:]
	start := len(buf)
	for range i%keysPerRun + 1 {
		shared, n := binary.Uvarint(b)
		b = b[n:]
		rest, n := binary.Uvarint(b)
		b = b[n:]
		buf = append(buf[:start+int(shared)], b[:rest]...)
		b = b[rest:]
	}
	return buf
}

// each calls fn with every key in order; key is valid until fn returns.
func (c *coldKeys) each(fn func(i int, key []byte)) {
	var key []byte
	for run, r := range c.runs {
		b := c.chunks[r.chunk][r.off:]
		for i := run * keysPerRun; i < run*keysPerRun+int(r.n); i++ {
			shared, n := binary.Uvarint(b)
			b = b[n:]
			rest, n := binary.Uvarint(b)
			b = b[n:]
			key = append(key[:shared], b[:rest]...)
			b = b[rest:]
			fn(i, key)
		}
	}
}

// key is the key at position i.
func (c *coldKeys) key(i int) string { return string(c.appendKey(nil, i)) }

// equal reports whether the key at position i is key, without allocating
// for keys of usual length.
func (c *coldKeys) equal(i int, key string) bool {
	var scratch [256]byte
	return string(c.appendKey(scratch[:0], i)) == key
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
