package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// mountReadOnly mounts a tmpfs at dir, lets prepare write to it, and
// remounts it read-only. Needs root; skips otherwise.
func mountReadOnly(t *testing.T, dir string, prepare func()) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	prepare()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
}

// A drive that is read-only at startup is taken out of use, like one that
// fails while running: the store opens, the summary sees the drive failed,
// and new objects go to the healthy drive.
func TestReadOnlyDriveAtStartIsTakenOutOfUse(t *testing.T) {
	root := t.TempDir()
	ro := filepath.Join(root, "ro")
	roSpec := DriveSpec{Path: filepath.Join(ro, "cache1"), Budget: 1 << 20}
	mountReadOnly(t, ro, func() {
		// A drive that was in use before: its index exists.
		s, err := Open(Options{Drives: []DriveSpec{roSpec}, BlockSize: testBlock, FlushInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	good := DriveSpec{Path: filepath.Join(root, "cache2"), Budget: 1 << 20}
	s, err := Open(Options{Drives: []DriveSpec{roSpec, good}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatalf("open with one read-only drive: %v", err)
	}
	defer s.Close()
	st := s.Stats()
	if !st[0].Failed || !strings.Contains(st[0].Err, "read-only") || st[1].Failed {
		t.Fatalf("drive states %+v, want drive 1 failed (read-only) and drive 2 in use", st)
	}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		o, err := s.Create(k, Meta{Size: testBlock})
		if err != nil {
			t.Fatalf("create %s: %v", k, err)
		}
		writeBlocks(t, o, content(k, testBlock), 0)
		if !strings.HasPrefix(o.Location(), good.Path) {
			t.Fatalf("%s placed on %s, want the healthy drive", k, o.Location())
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}

	// With every drive read-only the store still opens; objects are not
	// stored (the caller passes content through).
	only, err := Open(Options{Drives: []DriveSpec{roSpec}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatalf("open with the only drive read-only: %v", err)
	}
	defer only.Close()
	if _, err := only.Create("x", Meta{Size: 10}); err == nil {
		t.Fatal("stored an object with no usable drive")
	}
	if err := only.Flush(); err != nil {
		t.Fatalf("flush with no usable drive: %v", err)
	}

	// A drive directory that cannot even be created is taken out of use too.
	missing := DriveSpec{Path: filepath.Join(ro, "cache9"), Budget: 1 << 20}
	s3, err := Open(Options{Drives: []DriveSpec{missing, {Path: filepath.Join(root, "cache3"), Budget: 1 << 20}}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatalf("open with an uncreatable drive: %v", err)
	}
	defer s3.Close()
	if st := s3.Stats(); !st[0].Failed || st[1].Failed {
		t.Fatalf("drive states %+v", st)
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
		v, a := ob.Get([]byte(indexKey(long))), ab.Get([]byte(indexKey(long)))
		if v == nil || v[0] != keyedVersion || a == nil {
			return fmt.Errorf("long key not indexed by digest: %q", v)
		}
		rec := bytes.Clone(v[1+len(binary.AppendUvarint(nil, uint64(len(long))))+len(long):])
		a = bytes.Clone(a)
		return errors.Join(ob.Delete([]byte(indexKey(long))), ab.Delete([]byte(indexKey(long))),
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

// One key longer than bbolt's 32 KiB key limit (a 40 KB URL) must not make
// the index flush fail: every other object written in the same window, and
// the long one too, survives a restart.
func complianceOverlongKey(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	long := "example.org/" + strings.Repeat("x", 40<<10)
	keys := []string{long}
	for i := range 15 {
		keys = append(keys, fmt.Sprintf("example.org/file-%d", i))
	}
	for _, key := range keys {
		o, err := s.Create(key, Meta{Size: testBlock + 10, ETag: `"e"`})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, testBlock+10), 0, 1)
		s.Lookup(key) // an access time to write too
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("flush with one 40 KB key: %v", err)
	}
	s.Close()

	s = reopen(t, specs)
	for _, key := range keys {
		o := s.Lookup(key)
		if o == nil {
			t.Fatalf("%.40s... lost across the restart", key)
		}
		if got := readAll(t, o); !bytes.Equal(got, content(key, testBlock+10)) || o.Key() != key || o.Meta().ETag != `"e"` {
			t.Fatalf("%.40s...: wrong object after the restart", key)
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

// The read-ahead's measure of memory is the kernel's: MemAvailable, or the
// room left under the process's cgroup limit (v2 or v1), in bytes.
func TestMemRoomIsReadFromTheKernel(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if n, ok := memRoom(); !ok || n < 0 {
		t.Fatalf("memory room: %d bytes, ok %v", n, ok)
	}
	root := t.TempDir()
	write := func(path, v string) {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "edge/mcc/memory.max"), "536870912\n")
	write(filepath.Join(root, "edge/mcc/memory.current"), "104857600\n")
	write(filepath.Join(root, "memory/docker/abc/memory.limit_in_bytes"), "268435456\n")
	write(filepath.Join(root, "memory/docker/abc/memory.usage_in_bytes"), "1048576\n")
	write(filepath.Join(root, "memory/free/memory.limit_in_bytes"), "9223372036854771712\n")
	write(filepath.Join(root, "unlimited/memory.max"), "max\n")
	for _, c := range []struct {
		cgroup      string
		limit, used int64
		found       bool
	}{
		{"0::/edge/mcc\n", 512 << 20, 100 << 20, true},
		{"12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n", 256 << 20, 1 << 20, true},
		{"4:memory:/free\n", 0, 0, false},
		{"0::/unlimited\n", 0, 0, false},
		{"0::/nowhere\n", 0, 0, false},
	} {
		limit, used, found := cgroupMemory(c.cgroup, root)
		if limit != c.limit || used != c.used || found != c.found {
			t.Errorf("%q: limit %d, used %d, found %v; want %d, %d, %v", c.cgroup, limit, used, found, c.limit, c.used, c.found)
		}
	}
}

// A drive whose index has damaged pages (bad sectors in index.db; bbolt
// panics on such a page as the index is walked) does not stop the process:
// the offline check reports it, and at start the index is set aside and
// the drive starts empty and caches again, its old data removed; the other
// drives keep what they hold.
func TestDamagedIndexIsSetAsideAndTheDriveStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "cache1"), filepath.Join(dir, "cache2")
	specs := []DriveSpec{{Path: bad, Budget: 1 << 30}, {Path: good, Budget: 1 << 30}}
	s := reopen(t, specs)
	for i := range 40 {
		o, err := s.Create(fmt.Sprintf("old/%d", i), Meta{Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content("old", 10), 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := s.Stats()
	oldFiles := fileItems(t, bad)
	writeIndex(t, bad, 3000) // many pages, on top of the data above
	damageLeaves(t, filepath.Join(bad, "index.db"))

	if _, err := Verify(Options{Drives: specs, BlockSize: testBlock}, false); !errors.Is(err, errIndexDamaged) {
		t.Fatalf("offline check of a damaged index: %v, want it reported as damaged", err)
	}
	s = reopen(t, specs)
	st := s.Stats()
	if st[0].Failed || st[0].Objects != 0 {
		t.Fatalf("drive with a damaged index: failed %v (%q), %d objects; want in use and empty", st[0].Failed, st[0].Err, st[0].Objects)
	}
	if _, err := os.Stat(filepath.Join(bad, "index.db.damaged")); err != nil {
		t.Fatalf("the damaged index was not set aside: %v", err)
	}
	if st[1].Objects != before[1].Objects {
		t.Fatalf("the other drive holds %d objects, held %d", st[1].Objects, before[1].Objects)
	}
	for i := range 40 {
		o, err := s.Create(fmt.Sprintf("new/%d", i), Meta{Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content("new", 10), 0)
	}
	if st := s.Stats(); st[0].Objects == 0 {
		t.Fatal("the drive whose index was set aside caches nothing")
	}
	s.sweeps.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, want := fileItems(t, bad), s.Stats()[0].Objects; left != want || oldFiles == 0 {
		t.Fatalf("%d data files on the drive after the sweep, want its %d new objects' (%d before)", left, want, oldFiles)
	}
	s = reopen(t, specs)
	defer s.Close()
	found := 0
	for i := range 40 {
		if s.Lookup(fmt.Sprintf("new/%d", i)) != nil {
			found++
		}
	}
	if found != 40 {
		t.Fatalf("after a restart on the new index: %d of 40 new objects found", found)
	}
}

// fileItems counts the data items of the closed file drive at path.
func fileItems(t *testing.T, path string) int {
	t.Helper()
	fd, err := openFileDrive(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	return len(items(t, fd))
}

// damageLeaves overwrites the middle third of a bbolt file's leaf pages
// with junk, as bad sectors would.
func damageLeaves(t *testing.T, path string) {
	t.Helper()
	ids, pageSize := leafPages(t, path)
	overwritePages(t, path, ids, pageSize)
}

// leafPages returns the middle third of the leaf pages of the bbolt file
// at path, which nobody may hold open, and its page size.
func leafPages(t *testing.T, path string) (ids []int, pageSize int) {
	t.Helper()
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var leaves []int
	db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			p, err := tx.Page(id)
			if err != nil || p == nil {
				return nil
			}
			if p.Type == "leaf" {
				leaves = append(leaves, id)
			}
		}
	})
	return leaves[len(leaves)/3 : 2*len(leaves)/3], db.Info().PageSize
}

func overwritePages(t *testing.T, path string, ids []int, pageSize int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, id := range ids {
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, pageSize), int64(id*pageSize)); err != nil {
			t.Fatal(err)
		}
	}
}

// Pages of the index damaged while the cache runs (the mapping reads the
// file's page cache, where the damage lands at once) take the drive out of
// use when a lookup or a flush meets them, and the process goes on.
func TestIndexDamagedWhileRunningTakesTheDriveOutOfUse(t *testing.T) {
	for _, meet := range []string{"lookup", "flush"} {
		t.Run(meet, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cache1")
			writeIndex(t, path, 3000)
			ids, pageSize := leafPages(t, filepath.Join(path, "index.db"))
			s := reopen(t, []DriveSpec{{Path: path, Budget: 1 << 40}})
			defer s.Close()
			overwritePages(t, filepath.Join(path, "index.db"), ids, pageSize)
			for i := range 3000 {
				if meet == "lookup" {
					s.Lookup(benchKey(i)) // reads the record
				} else {
					s.Remove(benchKey(i)) // no read: the flush deletes it
				}
			}
			if meet == "flush" {
				s.Flush()
			}
			if st := s.Stats()[0]; !st.Failed || !strings.Contains(st.Err, "index damaged") {
				t.Fatalf("drive after a %s on a damaged index: failed %v (%q), want out of use as damaged", meet, st.Failed, st.Err)
			}
		})
	}
}

// A key indexed on two drives (drives were reconfigured) is one object:
// the copy on the later drive goes.
func TestAKeyIndexedOnTwoDrivesIsOneObject(t *testing.T) {
	dir := t.TempDir()
	specs := []DriveSpec{{Path: filepath.Join(dir, "cache1"), Budget: 1 << 40}, {Path: filepath.Join(dir, "cache2"), Budget: 1 << 40}}
	for _, spec := range specs {
		writeIndex(t, spec.Path, 100)
	}
	s := reopen(t, specs)
	defer s.Close()
	st := s.Stats()
	if n := st[0].Objects + st[1].Objects; n != 100 {
		t.Fatalf("%d objects on the two drives, want 100 (one of each key)", n)
	}
	for i := range 100 {
		if s.Lookup(benchKey(i)) == nil {
			t.Fatalf("%s is gone from both drives", benchKey(i))
		}
	}
}

// countingGets is a backend that counts the index records read one by
// one (Get): what warming a cold entry costs.
type countingGets struct {
	Backend
	gets atomic.Int64
}

func (c *countingGets) Get(key string) ([]byte, error) {
	c.gets.Add(1)
	return c.Backend.Get(key)
}

// Removing or replacing a cold entry that is not a Vary marker reads
// nothing of the index: it is dropped under the lock, by its key alone.
func TestRemovingAColdEntryReadsNoRecord(t *testing.T) {
	be := &countingGets{Backend: NewMemoryDrive()}
	specs := []DriveSpec{{Path: "memory1", Budget: 1 << 30, Backend: be}}
	s := reopen(t, specs)
	for _, key := range []string{"a", "b"} {
		o, err := s.Create(key, Meta{Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, 10), 0)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, specs)
	defer s.Close()
	s.Remove("a")
	if _, err := s.Create("b", Meta{Size: 20}); err != nil {
		t.Fatal(err)
	}
	if n := be.gets.Load(); n != 0 {
		t.Fatalf("%d index records read to remove and replace cold entries, want 0", n)
	}
	if s.Lookup("a") != nil || s.Lookup("b").Size() != 20 {
		t.Fatal("the cold entries were not removed and replaced")
	}
}
