package store

import (
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkOpen100k measures a restart with 100,000 cached objects of 8
// blocks each (writeIndex): the index is read, no object data is.
//
//	go test -run '^$' -bench Open100k -benchtime 5x ./internal/store
func BenchmarkOpen100k(b *testing.B) {
	const objects = 100_000
	spec := DriveSpec{Path: filepath.Join(b.TempDir(), "cache1"), Budget: 1 << 40}
	writeIndex(b, spec.Path, objects)
	b.ResetTimer()
	for b.Loop() {
		s, err := Open(Options{Drives: []DriveSpec{spec}, BlockSize: testBlock, FlushInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		if st := s.Stats()[0]; st.Objects != objects {
			b.Fatalf("%d objects loaded, want %d", st.Objects, objects)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
