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
