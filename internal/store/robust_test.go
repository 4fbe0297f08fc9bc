package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// One key longer than bbolt's 32 KiB key limit (a 40 KB URL) must not make
// the index flush fail: every other object written in the same window, and
// the long one too, survives a restart.
func TestOverlongKeyNeverFailsAFlush(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	long := "example.org/" + strings.Repeat("x", 40<<10)
	keys := []string{long}
	for i := range 15 {
		keys = append(keys, fmt.Sprintf("example.org/file-%d", i))
	}
	for _, k := range keys {
		o, err := s.Create(k, Meta{Size: testBlock + 10, ETag: `"e"`})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(k, testBlock+10), 0, 1)
		s.Lookup(k) // an access time to write too
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush with one 40 KB key: %v", err)
	}
	s.Close()

	s = reopen(t, specs)
	for _, k := range keys {
		o := s.Lookup(k)
		if o == nil {
			t.Fatalf("%.40s... lost across the restart", k)
		}
		if got := readAll(t, o); !bytes.Equal(got, content(k, testBlock+10)) || o.Key() != k || o.Meta().ETag != `"e"` {
			t.Fatalf("%.40s...: wrong object after the restart", k)
		}
	}

	// Removing the long key reaches the index too.
	s.Remove(long)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = reopen(t, specs)
	if s.Lookup(long) != nil || s.Lookup(keys[1]) == nil {
		t.Fatal("removal of the long key not persisted, or took another key with it")
	}
	if st := s.Stats()[0]; st.Objects != 15 {
		t.Fatalf("%d objects after removing one of 16", st.Objects)
	}
}

// An index written before digest keys holds a long key (up to bbolt's
// limit) as it is: it loads, and moves under its digest so that later
// writes and removals find it.
func TestLongPlainKeyFromAnEarlierIndexMoves(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	long := "example.org/" + strings.Repeat("y", 2000)
	o, _ := s.Create(long, Meta{Size: testBlock})
	writeBlocks(t, o, content(long, testBlock), 0)
	s.Lookup(long)
	s.Close()

	// Rewrite the record the way the earlier version kept it: the plain
	// key and the bare record.
	db, err := bolt.Open(filepath.Join(specs[0].Path, "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
		v, a := ob.Get(indexKey(long)), ab.Get(indexKey(long))
		if v == nil || v[0] != keyedVersion || a == nil {
			return fmt.Errorf("long key not indexed by digest: %q", v)
		}
		rec := bytes.Clone(v[1+len(binary.AppendUvarint(nil, uint64(len(long))))+len(long):])
		a = bytes.Clone(a)
		return errors.Join(ob.Delete(indexKey(long)), ab.Delete(indexKey(long)),
			ob.Put([]byte(long), rec), ab.Put([]byte(long), a))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = reopen(t, specs)
	if o := s.Lookup(long); o == nil || !bytes.Equal(readAll(t, o), content(long, testBlock)) {
		t.Fatal("long plain key from an earlier index not loaded")
	}
	s.Remove(long)
	s.Close()
	s = reopen(t, specs)
	if s.Lookup(long) != nil {
		t.Fatal("removal of a migrated key not persisted")
	}
}
