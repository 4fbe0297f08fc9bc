package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const testBlock = 4096

func openTest(t *testing.T, budgets ...int64) (*Store, []DriveSpec) {
	t.Helper()
	root := t.TempDir()
	var specs []DriveSpec
	for i, b := range budgets {
		specs = append(specs, DriveSpec{Path: filepath.Join(root, fmt.Sprintf("cache%d", i+1)), Budget: b})
	}
	s := reopen(t, specs)
	return s, specs
}

func reopen(t *testing.T, specs []DriveSpec) *Store {
	t.Helper()
	s, err := Open(Options{Drives: specs, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func content(key string, size int64) []byte {
	r := rand.New(rand.NewPCG(uint64(len(key)), uint64(size)))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// writeBlocks writes the given blocks of data into o and commits them.
func writeBlocks(t *testing.T, o *Object, data []byte, blocks ...int64) {
	t.Helper()
	writeBlocksOf(t, o, func(_, start, end int64) []byte { return data[start:end] }, blocks...)
}

// writeBlocksOf writes block i's bytes, bytesOf(i, start, end), for each of
// the given blocks of o and commits them.
func writeBlocksOf(t *testing.T, o *Object, bytesOf func(i, start, end int64) []byte, blocks ...int64) {
	t.Helper()
	f, err := o.OpenWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, i := range blocks {
		w, err := o.NewBlockWriter(f, i)
		if err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		start, end := o.BlockBounds(i)
		b := bytesOf(i, start, end)
		// Two writes, to exercise the running checksum.
		mid := len(b) / 2
		if _, err := w.Write(b[:mid]); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if _, err := w.Write(b[mid:]); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("block %d: %v", i, err)
		}
	}
}

func readAll(t *testing.T, o *Object) []byte {
	t.Helper()
	f, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, o.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlacementIsStableAndWeighted(t *testing.T) {
	s, _ := openTest(t, 3<<30, 1<<30)
	counts := map[string]int{}
	for i := range 4000 {
		key := fmt.Sprintf("host/obj-%d", i)
		s.mu.Lock()
		d := s.placeLocked(key, 1)
		again := s.placeLocked(key, 1)
		s.mu.Unlock()
		if d != again {
			t.Fatal("placement is not deterministic")
		}
		counts[d.spec.Path]++
	}
	big := counts[s.drives[0].spec.Path]
	// Weighted 3:1, so about 3000 of 4000; allow a wide margin.
	if big < 2700 || big > 3300 {
		t.Fatalf("drive weighted 3:1 got %d of 4000 objects", big)
	}
}

func TestStorageFailureIsReportedAsSuch(t *testing.T) {
	s, _ := openTest(t, 1<<20)
	// Make the data directory unusable (root ignores permissions, so
	// replace it with a file).
	data := filepath.Join(s.drives[0].spec.Path, "data")
	os.RemoveAll(data)
	os.WriteFile(data, []byte("not a directory"), 0o644)
	if _, err := s.Create("x", Meta{Size: 10}); !errors.Is(err, ErrStorage) {
		t.Fatalf("Create = %v, want ErrStorage", err)
	}
	if st := s.Stats()[0]; !st.Failed {
		t.Fatal("drive not marked failed")
	}
	// With its only drive failed, new objects are refused (passed through).
	if _, err := s.Create("y", Meta{Size: 10}); err == nil {
		t.Fatal("Create on a failed drive succeeded")
	}
}

func TestVerifyRefusesARunningCache(t *testing.T) {
	_, specs := openTest(t, 1<<20)
	if _, err := Verify(Options{Drives: specs, BlockSize: testBlock}, false); err == nil {
		t.Fatal("Verify ran while the cache holds the index")
	}
}

// A drive whose filesystem is smaller than its budget: the first write that
// finds the disk full lowers the budget, and eviction makes room from then
// on; the drive is not taken out of use. Needs root (mounts a small tmpfs).
func TestFullFilesystemLowersTheBudget(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	s, err := Open(Options{Drives: []DriveSpec{{Path: filepath.Join(dir, "cache1"), Budget: 1 << 30}}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	var full error
	for i := 0; i < 200 && full == nil; i++ {
		o, err := s.Create(fmt.Sprintf("k%d", i), Meta{Size: 4 * testBlock})
		if err != nil {
			full = err
			break
		}
		f, _ := o.OpenWriter()
		for b := range int64(4) {
			w, err := o.NewBlockWriter(f, b)
			if err != nil {
				full = err
				break
			}
			if _, err := w.Write(content("x", testBlock)); err != nil {
				w.Abort()
				full = err
				break
			}
			w.Commit()
		}
		f.Close()
	}
	if !errors.Is(full, ErrStorage) {
		t.Fatalf("filling a 256 KiB filesystem: %v, want a storage error", full)
	}
	st := s.Stats()[0]
	if st.Failed || st.SizeBytes >= 1<<30 || st.UsedBytes > st.SizeBytes {
		t.Fatalf("after the disk filled: %+v, want the drive in use with a lowered budget", st)
	}
	// New content still gets stored, old content making room.
	o, err := s.Create("after", Meta{Size: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, o, content("after", testBlock), 0)
	if s.Lookup("after") == nil {
		t.Fatal("no longer caching after the disk filled")
	}
}
