package httprange

import "testing"

func TestBlocks(t *testing.T) {
	const bs = 1 << 20
	tests := []struct {
		start, length, bs int64
		first, last       int64
	}{
		{0, 1, bs, 0, 0},
		{0, bs, bs, 0, 0},
		{0, bs + 1, bs, 0, 1},
		{bs - 1, 1, bs, 0, 0},
		{bs - 1, 2, bs, 0, 1},
		{bs, 1, bs, 1, 1},
		{3*bs + 5, 2 * bs, bs, 3, 5},
		{10, 90, 10, 1, 9},
		{1<<63 - 2, 1, bs, (1<<63 - 2) / bs, (1<<63 - 2) / bs},
	}
	for _, tt := range tests {
		first, last := Blocks(tt.start, tt.length, tt.bs)
		if first != tt.first || last != tt.last {
			t.Errorf("Blocks(%d, %d, %d) = %d, %d; want %d, %d", tt.start, tt.length, tt.bs, first, last, tt.first, tt.last)
		}
	}
}

func TestBlocksPanics(t *testing.T) {
	for _, args := range [][3]int64{{0, 0, 10}, {0, -1, 10}, {-1, 5, 10}, {0, 5, 0}, {0, 5, -1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Blocks%v did not panic", args)
				}
			}()
			Blocks(args[0], args[1], args[2])
		}()
	}
}

func TestBlockCountAndBounds(t *testing.T) {
	const max = 1<<63 - 1
	tests := []struct {
		size, bs int64
		count    int64
	}{
		{0, 10, 0},
		{1, 10, 1},
		{9, 10, 1},
		{10, 10, 1},
		{11, 10, 2},
		{100, 10, 10},
		{101, 10, 11},
		{max, 1 << 20, max/(1<<20) + 1},
		{max, max, 1},
		{max, 1, max},
	}
	for _, tt := range tests {
		n := BlockCount(tt.size, tt.bs)
		if n != tt.count {
			t.Errorf("BlockCount(%d, %d) = %d, want %d", tt.size, tt.bs, n, tt.count)
			continue
		}
		if n == 0 || n > 1000 {
			// Check only the ends of huge objects.
			for _, i := range []int64{0, n - 1} {
				if n == 0 {
					break
				}
				s, e := BlockBounds(i, tt.bs, tt.size)
				if s != i*tt.bs || e <= s || e > tt.size || (i == n-1) != (e == tt.size) {
					t.Errorf("BlockBounds(%d, %d, %d) = %d, %d", i, tt.bs, tt.size, s, e)
				}
			}
			continue
		}
		// Blocks tile the object exactly: contiguous, none empty, none
		// longer than the block size, only the last one short.
		var next int64
		for i := int64(0); i < n; i++ {
			s, e := BlockBounds(i, tt.bs, tt.size)
			if s != next || e <= s || e-s > tt.bs || (i < n-1 && e-s != tt.bs) {
				t.Errorf("BlockBounds(%d, %d, %d) = %d, %d", i, tt.bs, tt.size, s, e)
			}
			if f, l := Blocks(s, e-s, tt.bs); f != i || l != i {
				t.Errorf("Blocks(BlockBounds(%d)) = %d, %d", i, f, l)
			}
			next = e
		}
		if next != tt.size {
			t.Errorf("blocks of %d/%d end at %d", tt.size, tt.bs, next)
		}
	}
	for _, c := range [][3]int64{{-1, 10, 100}, {10, 10, 100}, {11, 10, 100}, {0, 10, 0}} {
		s, e := BlockBounds(c[0], c[1], c[2])
		if s != e {
			t.Errorf("BlockBounds%v = %d, %d; want an empty range", c, s, e)
		}
	}
}
