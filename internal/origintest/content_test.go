package origintest

import (
	"bytes"
	"testing"
)

func TestBytesFillAgree(t *testing.T) {
	const path = "/pool/a.deb"
	whole := Bytes(path, 1, 0, 1000)
	// Every (offset, length) combination, including unaligned heads and
	// tails, must be a window onto the same stream.
	for off := int64(0); off < 24; off++ {
		for n := int64(0); n < 24; n++ {
			got := Bytes(path, 1, off, n)
			if !bytes.Equal(got, whole[off:off+n]) {
				t.Fatalf("Bytes(off=%d,n=%d) differs from the whole-stream window", off, n)
			}
			p := make([]byte, n)
			Fill(p, path, 1, off)
			if !bytes.Equal(p, got) {
				t.Fatalf("Fill(off=%d,n=%d) differs from Bytes", off, n)
			}
		}
	}
	if got := Bytes(path, 1, 977, 23); !bytes.Equal(got, whole[977:]) {
		t.Fatal("tail window differs")
	}
}

func TestBytesDiffer(t *testing.T) {
	const n = 64
	base := Bytes("/a", 1, 0, n)
	others := map[string][]byte{
		"other version": Bytes("/a", 2, 0, n),
		"other path":    Bytes("/b", 1, 0, n),
		"offset +1":     Bytes("/a", 1, 1, n),
		"offset +8":     Bytes("/a", 1, 8, n),
		"version 0":     Bytes("/a", 0, 0, n),
	}
	for name, b := range others {
		if bytes.Equal(base, b) {
			t.Errorf("%s: identical content", name)
		}
		// Not just different somewhere: a wrong source should disagree
		// almost everywhere, so a short misplaced read is caught too.
		same := 0
		for i := range b {
			if b[i] == base[i] {
				same++
			}
		}
		if same > n/4 {
			t.Errorf("%s: %d of %d bytes equal", name, same, n)
		}
	}
	if !bytes.Equal(base, Bytes("/a", 1, 0, n)) {
		t.Error("Bytes is not deterministic")
	}
}

func TestFillNoAlloc(t *testing.T) {
	p := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() { Fill(p, "/x", 3, 5) })
	if allocs != 0 {
		t.Fatalf("Fill allocates %v times per call", allocs)
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		h        string
		size     int64
		start, n int64
		kind     rangeKind
	}{
		{"bytes=0-9", 100, 0, 10, rangePartial},
		{"bytes=90-", 100, 90, 10, rangePartial},
		{"bytes=90-500", 100, 90, 10, rangePartial},
		{"bytes=-10", 100, 90, 10, rangePartial},
		{"bytes=-500", 100, 0, 100, rangePartial},
		{"Bytes= 5-5", 100, 5, 1, rangePartial},
		{"bytes=100-", 100, 0, 0, rangeUnsatisfiable},
		{"bytes=100-200", 100, 0, 0, rangeUnsatisfiable},
		{"bytes=-0", 100, 0, 0, rangeUnsatisfiable},
		{"bytes=0-", 0, 0, 0, rangeUnsatisfiable},
		{"bytes=-1", 0, 0, 0, rangeUnsatisfiable},
		{"bytes=0-1,5-6", 100, 0, 0, rangeWhole},
		{"bytes=5-1", 100, 0, 0, rangeWhole},
		{"bytes=+1-2", 100, 0, 0, rangeWhole},
		{"bytes=a-b", 100, 0, 0, rangeWhole},
		{"bytes=-", 100, 0, 0, rangeWhole},
		{"items=0-1", 100, 0, 0, rangeWhole},
		{"bytes=1", 100, 0, 0, rangeWhole},
	}
	for _, tc := range tests {
		start, n, kind := parseRange(tc.h, tc.size)
		if kind != tc.kind || (kind == rangePartial && (start != tc.start || n != tc.n)) {
			t.Errorf("parseRange(%q, %d) = %d, %d, %v; want %d, %d, %v", tc.h, tc.size, start, n, kind, tc.start, tc.n, tc.kind)
		}
	}
}

func BenchmarkFill(b *testing.B) {
	p := make([]byte, 1<<20)
	b.SetBytes(int64(len(p)))
	for i := 0; b.Loop(); i++ {
		Fill(p, "/bench", 1, int64(i)*int64(len(p)))
	}
}
