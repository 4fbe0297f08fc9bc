package store

import (
	"bytes"
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
		// Two writes, to exercise the running checksum.
		mid := start + (end-start)/2
		if _, err := w.Write(data[start:mid]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[mid:end]); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
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

func TestBlocksBecomeVerifiedOnlyWhenCommitted(t *testing.T) {
	s, _ := openTest(t, 1<<20)
	size := int64(3*testBlock + 100)
	data := content("a", size)
	o, err := s.Create("host/a", Meta{Size: size, ETag: `"v1"`})
	if err != nil {
		t.Fatal(err)
	}
	if o.NumBlocks() != 4 {
		t.Fatalf("NumBlocks = %d, want 4", o.NumBlocks())
	}
	writeBlocks(t, o, data, 0, 3)
	if !o.Verified(0, 0) || !o.Verified(3, 3) || o.Verified(0, 3) {
		t.Fatal("Verified does not reflect the committed blocks 0 and 3")
	}
	if got := o.PresentCount(0, 3); got != 2 {
		t.Fatalf("PresentCount = %d, want 2", got)
	}

	// An aborted or incomplete block stays absent.
	f, _ := o.OpenWriter()
	w, _ := o.NewBlockWriter(f, 1)
	w.Write(data[testBlock : testBlock+10])
	if err := w.Commit(); err == nil {
		t.Fatal("Commit of an incomplete block succeeded")
	}
	f.Close()
	if p, _ := o.BlockState(1); p {
		t.Fatal("incomplete block marked present")
	}
	if st := s.Stats()[0]; st.UsedBytes != testBlock+100 {
		t.Fatalf("UsedBytes = %d, want %d", st.UsedBytes, testBlock+100)
	}

	writeBlocks(t, o, data, 1, 2)
	if !bytes.Equal(readAll(t, o), data) {
		t.Fatal("bytes read back differ from bytes written")
	}
	if s.Lookup("host/a") != o || s.Lookup("host/b") != nil {
		t.Fatal("Lookup")
	}
}

func TestRestartKeepsFlushedBlocksAndChecksThem(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	size := int64(4 * testBlock)
	data := content("k", size)
	o, _ := s.Create("host/k", Meta{Size: size, ETag: `"e"`, LastModified: "Mon, 01 Jan 2024 00:00:00 GMT",
		Header: []Field{{"Content-Type", []string{"application/x-debian-package"}}}})
	writeBlocks(t, o, data, 0, 1, 2)
	path := o.Location()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Corrupt block 1 on disk, as a torn write or a bad sector would.
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte("garbage"), testBlock+5)
	f.Close()

	s = reopen(t, specs)
	o = s.Lookup("host/k")
	if o == nil {
		t.Fatal("object lost across restart")
	}
	m := o.Meta()
	if m.ETag != `"e"` || m.Size != size || len(m.Header) != 1 || m.Header[0].Values[0] != "application/x-debian-package" {
		t.Fatalf("meta not restored: %+v", m)
	}
	for i := range int64(3) {
		if p, v := o.BlockState(i); !p || v {
			t.Fatalf("block %d after restart: present=%v verified=%v, want present, unverified", i, p, v)
		}
	}
	if p, _ := o.BlockState(3); p {
		t.Fatal("never-written block present after restart")
	}
	rf, _ := o.Open()
	defer rf.Close()
	if ok, _ := o.VerifyBlock(rf, 0); !ok {
		t.Fatal("good block 0 failed verification")
	}
	if ok, _ := o.VerifyBlock(rf, 1); ok {
		t.Fatal("corrupted block 1 passed verification")
	}
	if p, _ := o.BlockState(1); p {
		t.Fatal("corrupted block still present")
	}
	if _, v := o.BlockState(0); !v {
		t.Fatal("block 0 not verified after check")
	}
}

func TestUnflushedBlocksAreNotIndexed(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	data := content("u", 2*testBlock)
	o, _ := s.Create("host/u", Meta{Size: 2 * testBlock})
	writeBlocks(t, o, data, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, o, data, 1)
	// Simulate a crash: no flush, no close. The index must not claim
	// block 1 (its bytes might not be durable).
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.closeDrives()

	s2 := reopen(t, specs)
	o2 := s2.Lookup("host/u")
	if o2 == nil {
		t.Fatal("flushed object lost")
	}
	if p, _ := o2.BlockState(0); !p {
		t.Fatal("flushed block 0 lost")
	}
	if p, _ := o2.BlockState(1); p {
		t.Fatal("unflushed block 1 indexed")
	}
}

func TestEvictionKeepsDriveWithinBudgetLRUFirst(t *testing.T) {
	s, _ := openTest(t, 4*testBlock)
	objs := map[string]*Object{}
	for _, k := range []string{"a", "b", "c", "d"} {
		o, err := s.Create(k, Meta{Size: testBlock})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(k, testBlock), 0)
		objs[k] = o
	}
	s.Lookup("a") // a is now the most recently used; b the least
	o, _ := s.Create("e", Meta{Size: 2 * testBlock})
	writeBlocks(t, o, content("e", 2*testBlock), 0, 1)
	if st := s.Stats()[0]; st.UsedBytes > 4*testBlock || st.Evictions != 2 {
		t.Fatalf("after eviction: %+v, want used <= %d and 2 evictions", st, 4*testBlock)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": true} {
		if got := s.Lookup(k) != nil; got != want {
			t.Errorf("%s cached = %v, want %v", k, got, want)
		}
	}
	if _, err := os.Stat(objs["b"].Location()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("evicted object's file still there: %v", err)
	}
}

func TestObjectLargerThanEveryDriveIsRefused(t *testing.T) {
	s, _ := openTest(t, 2*testBlock)
	if _, err := s.Create("big", Meta{Size: 3 * testBlock}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Create = %v, want ErrTooLarge", err)
	}
}

func TestBlockBeingWrittenIsNotEvicted(t *testing.T) {
	s, _ := openTest(t, 2*testBlock)
	a, _ := s.Create("a", Meta{Size: 2 * testBlock})
	f, _ := a.OpenWriter()
	defer f.Close()
	w, err := a.NewBlockWriter(f, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Create("b", Meta{Size: 2 * testBlock})
	bf, _ := b.OpenWriter()
	defer bf.Close()
	w1, err := b.NewBlockWriter(bf, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The drive now holds two reserved blocks: a third cannot be had
	// while both writers are pinned.
	if _, err := b.NewBlockWriter(bf, 1); !errors.Is(err, ErrStorage) {
		t.Fatalf("third block = %v, want a storage error (no space)", err)
	}
	w.Abort()
	w1.Abort()
}

func TestReplaceNeverMixesVersions(t *testing.T) {
	s, _ := openTest(t, 1<<20)
	o1, _ := s.Create("k", Meta{Size: 2 * testBlock, ETag: `"1"`})
	writeBlocks(t, o1, content("v1", 2*testBlock), 0)
	o2, _ := s.Create("k", Meta{Size: 2 * testBlock, ETag: `"2"`})
	if !o1.Removed() || s.Lookup("k") != o2 {
		t.Fatal("old version not replaced")
	}
	if p, _ := o2.BlockState(0); p {
		t.Fatal("new version inherited a block of the old one")
	}
	// A writer of the old version cannot commit into the cache any more.
	if _, err := o1.NewBlockWriter(nil, 1); !errors.Is(err, ErrRemoved) {
		t.Fatalf("writer on removed object: %v, want ErrRemoved", err)
	}
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

func TestVerifyFindsAndRepairsDamage(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	data := content("v", 2*testBlock)
	o, _ := s.Create("good", Meta{Size: 2 * testBlock})
	writeBlocks(t, o, data, 0, 1)
	bad, _ := s.Create("bad", Meta{Size: 2 * testBlock})
	writeBlocks(t, bad, data, 0, 1)
	badPath := bad.Location()
	s.Close()

	f, _ := os.OpenFile(badPath, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff, 0xfe}, testBlock)
	f.Close()
	stray := filepath.Join(specs[0].Path, "data", "00", "00000000000000aa")
	os.MkdirAll(filepath.Dir(stray), 0o755)
	os.WriteFile(stray, []byte("stray"), 0o644)

	reps, err := Verify(Options{Drives: specs, BlockSize: testBlock}, false)
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	if r.OK() || r.BadBlocks != 1 || r.OrphanFiles != 1 || r.Blocks != 4 || len(r.BadObjectKeys) != 1 || r.BadObjectKeys[0] != "bad" {
		t.Fatalf("report = %+v", r)
	}
	if _, err := Verify(Options{Drives: specs, BlockSize: testBlock}, true); err != nil {
		t.Fatal(err)
	}
	reps, _ = Verify(Options{Drives: specs, BlockSize: testBlock}, false)
	if !reps[0].OK() || reps[0].Blocks != 3 {
		t.Fatalf("after repair: %+v", reps[0])
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
