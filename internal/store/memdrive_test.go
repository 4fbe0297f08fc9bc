package store

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"testing"
)

// The memory backend's power cut: bytes written since the last Sync are
// lost, those synced are kept; items created and removed, and committed
// index batches, stay as they are.
func TestMemoryDriveCrashKeepsWhatWasDurable(t *testing.T) {
	m := NewMemoryDrive()
	if err := errors.Join(m.Create(1, 3*memPage), m.Create(2, 10), m.Create(3, 10)); err != nil {
		t.Fatal(err)
	}
	if err := m.Create(1, 5); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create of a taken id: %v, want fs.ErrExist", err)
	}
	w, _ := m.OpenWriter(1)
	synced := bytes.Repeat([]byte("s"), memPage+10) // over a page boundary
	w.WriteAt(synced, 100)
	m.Sync(1)
	w.WriteAt([]byte("lost"), 2*memPage+5)
	w.WriteAt([]byte("LOST"), 100) // over synced bytes
	m.Remove(3)
	m.Commit(&IndexBatch{Puts: map[string][]byte{"k": []byte("rec")}, Atimes: map[string]int64{"k": 7, "none": 8}})

	m.Crash()
	r, err := m.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 3*memPage)
	if _, err := r.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3*memPage)
	copy(want[100:], synced)
	if !bytes.Equal(got, want) {
		t.Fatal("after a power cut: not the bytes of the last sync")
	}
	if live := items(t, m); !live[1] || !live[2] || live[3] {
		t.Fatalf("items after a power cut: %v, want 1 and 2", live)
	}
	n := 0
	m.Load(1, func(_ int, key, rec []byte, atime int64) error {
		n++
		if string(key) != "k" || string(rec) != "rec" || atime != 7 {
			t.Errorf("record %q = %q, atime %d", key, rec, atime)
		}
		return nil
	})
	if n != 1 {
		t.Fatalf("%d records, want 1 (no access time without a record)", n)
	}
}

// An item reads as zeros where it was never written, ends at its size, and
// stays readable through an open reader once removed, as an unlinked file.
func TestMemoryDriveReadsLikeASparseFile(t *testing.T) {
	m := NewMemoryDrive()
	m.Create(9, 5*memPage)
	r, _ := m.Open(9)
	w, _ := m.OpenWriter(9)
	w.WriteAt([]byte("abc"), 4*memPage)
	m.Remove(9)
	if _, err := m.Open(9); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a removed item: %v, want fs.ErrNotExist", err)
	}
	got := make([]byte, memPage+10)
	n, err := r.ReadAt(got, 4*memPage-7)
	if n != memPage+7 || err != io.EOF {
		t.Fatalf("read over the end: %d, %v; want %d, io.EOF", n, err, memPage+7)
	}
	if !bytes.Equal(got[:10], append(make([]byte, 7), "abc"...)) {
		t.Fatalf("bytes %q, want 7 zeros then abc", got[:10])
	}
	if size, _ := r.Size(); size != 5*memPage {
		t.Fatalf("Size %d", size)
	}
}
