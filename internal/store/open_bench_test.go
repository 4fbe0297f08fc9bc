package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BenchmarkOpen100k measures a restart with 100,000 cached objects of 8
// blocks each: the index is read, no object data is.
//
//	go test -run '^$' -bench Open100k -benchtime 5x ./internal/store
func BenchmarkOpen100k(b *testing.B) {
	const objects = 100_000
	spec := DriveSpec{Path: filepath.Join(b.TempDir(), "cache1"), Budget: 1 << 40}
	s, err := Open(Options{Drives: []DriveSpec{spec}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	d := s.drives[0]
	s.Close()
	db, err := bolt.Open(filepath.Join(spec.Path, "index.db"), 0o644, nil)
	if err != nil {
		b.Fatal(err)
	}
	for batch := 0; batch < objects; batch += 10_000 {
		err := db.Update(func(tx *bolt.Tx) error {
			ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
			for i := batch; i < batch+10_000; i++ {
				key := fmt.Sprintf("deb.debian.org/debian/pool/main/p/pkg%d/pkg%d_1.0_arm64.deb", i, i)
				o := &Object{key: key, id: uint64(i + 1), drive: d,
					meta:   Meta{Size: 8 * testBlock, ETag: `"abc"`, Header: []Field{{"Content-Type", []string{"application/vnd.debian.binary-package"}}}},
					blocks: make([]blockState, 8), crcs: make([]uint32, 8)}
				for j := range o.blocks {
					o.blocks[j] = blockPresent
				}
				if err := ob.Put([]byte(key), encodeRecordLocked(o)); err != nil {
					return err
				}
				if err := ab.Put([]byte(key), []byte{byte(i), 0, 0, 0, 0, 0, 0, 0}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
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
