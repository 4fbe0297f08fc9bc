package store

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The compliance suite: what the store promises, run on every kind of
// backend. A new kind of drive passes it before it is used.

// backendKit is what the suite needs of one kind of backend.
type backendKit struct {
	// drive returns the spec of a new, empty drive.
	drive func(t *testing.T, budget int64) DriveSpec
	// powerCut does to a drive what a power cut does after the store on
	// it crashed: what was not durable is lost.
	powerCut func(spec DriveSpec)
}

var fileKit = backendKit{
	drive: func(t *testing.T, budget int64) DriveSpec {
		return DriveSpec{Path: filepath.Join(t.TempDir(), "cache1"), Budget: budget}
	},
	// A killed process leaves the page cache to the kernel, which writes
	// it back: files lose nothing a test could cut.
	powerCut: func(DriveSpec) {},
}

var memoryKit = backendKit{
	drive: func(t *testing.T, budget int64) DriveSpec {
		return DriveSpec{Path: "memory1", Budget: budget, Backend: NewMemoryDrive()}
	},
	powerCut: func(spec DriveSpec) { spec.Backend.(*MemoryDrive).Crash() },
}

func TestComplianceFiles(t *testing.T)  { runCompliance(t, fileKit) }
func TestComplianceMemory(t *testing.T) { runCompliance(t, memoryKit) }

func runCompliance(t *testing.T, k backendKit) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, backendKit)
	}{
		{"ReadBackAtOffsets", complianceReadBack},
		{"WideOffsets", complianceWide},
		{"ChecksummedBlocks", complianceChecksums},
		{"Remove", complianceRemove},
		{"ReplaceNeverMixesVersions", complianceReplace},
		{"EvictionByBudget", complianceEviction},
		{"BlockBeingWrittenIsNotEvicted", compliancePinned},
		{"IndexAcrossReopen", complianceIndex},
		{"OverlongKey", complianceOverlongKey},
		{"CrashLosesWhatWasNotIndexed", complianceCrash},
		{"CrashBetweenRemovalAndDeletion", complianceCrashMidRemoval},
		{"SweepSparesObjectsCreatedSinceOpen", complianceSweep},
		{"NoBackendIOUnderTheStoreLock", complianceNoIOUnderLock},
		{"Verify", complianceVerify},
		{"ColdEntries", complianceCold},
		{"LoadGivesEveryRecordOnce", complianceLoad},
		{"ManyColdEntries", complianceManyCold},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, k) })
	}
}

func openKit(t *testing.T, k backendKit, budgets ...int64) (*Store, []DriveSpec) {
	t.Helper()
	var specs []DriveSpec
	for _, b := range budgets {
		specs = append(specs, k.drive(t, b))
	}
	return reopen(t, specs), specs
}

// withBackend runs fn on the backend of a drive no store has open.
func withBackend(t *testing.T, spec DriveSpec, fn func(Backend)) {
	t.Helper()
	if spec.Backend != nil {
		fn(spec.Backend)
		return
	}
	fd, err := openFileDrive(spec.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	fn(fd)
}

// damage overwrites bytes of an item, as a torn write or a bad sector would.
func damage(t *testing.T, be Backend, id uint64, off int64, b []byte) {
	t.Helper()
	w, err := be.OpenWriter(id)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// items is the set of item ids a backend holds.
func items(t *testing.T, be Backend) map[uint64]bool {
	t.Helper()
	out := map[uint64]bool{}
	if err := be.List(func(id uint64) { out[id] = true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func complianceReadBack(t *testing.T, k backendKit) {
	s, _ := openKit(t, k, 1<<20)
	size := int64(3*testBlock + 100)
	data := content("a", size)
	o, err := s.Create("host/a", Meta{Size: size, ETag: `"v1"`})
	if err != nil {
		t.Fatal(err)
	}
	if o.NumBlocks() != 4 {
		t.Fatalf("NumBlocks = %d, want 4", o.NumBlocks())
	}
	writeBlocks(t, o, data, 3, 0)
	if !o.Verified(0, 0) || !o.Verified(3, 3) || o.Verified(0, 3) {
		t.Fatal("Verified does not reflect the committed blocks 0 and 3")
	}
	if got := o.PresentCount(0, 3); got != 2 {
		t.Fatalf("PresentCount = %d, want 2", got)
	}

	// Bytes of a block being written are readable at once
	// (read-while-write); the block stays absent unless complete.
	f, err := o.OpenWriter()
	if err != nil {
		t.Fatal(err)
	}
	w, err := o.NewBlockWriter(f, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[testBlock : testBlock+10])
	rd, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	early := make([]byte, 10)
	if _, err := rd.ReadAt(early, testBlock); err != nil || !bytes.Equal(early, data[testBlock:testBlock+10]) {
		t.Fatalf("bytes of a block being written: %v", err)
	}
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
	// Across block boundaries, and the short last block.
	for _, c := range [][2]int64{{testBlock - 7, 20}, {2*testBlock + 1, testBlock}, {3*testBlock + 50, 50}} {
		got := make([]byte, c[1])
		if _, err := rd.ReadAt(got, c[0]); err != nil || !bytes.Equal(got, data[c[0]:c[0]+c[1]]) {
			t.Fatalf("%d bytes at %d: %v", c[1], c[0], err)
		}
	}
	// Past the end: the bytes there are, and io.EOF.
	if n, err := rd.ReadAt(make([]byte, 200), size-100); n != 100 || err != io.EOF {
		t.Fatalf("read over the end: %d bytes, %v; want 100, io.EOF", n, err)
	}
	if n, err := rd.Size(); n != size || err != nil {
		t.Fatalf("Size = %d, %v; want %d", n, err, size)
	}
	if s.Lookup("host/a") != o || s.Lookup("host/b") != nil {
		t.Fatal("Lookup")
	}
}

func complianceChecksums(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	size := int64(4 * testBlock)
	data := content("k", size)
	meta := Meta{Size: size, ETag: `"e"`, LastModified: "Mon, 01 Jan 2024 00:00:00 GMT",
		Header: []Field{{"Content-Type", []string{"application/x-debian-package"}}}}
	o, _ := s.Create("host/k", meta)
	writeBlocks(t, o, data, 0, 1, 2)
	id := o.id
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	withBackend(t, specs[0], func(be Backend) { damage(t, be, id, testBlock+5, []byte("garbage")) })

	s = reopen(t, specs)
	o = s.Lookup("host/k")
	if o == nil {
		t.Fatal("object lost across restart")
	}
	for i := range int64(3) {
		if p, v := o.BlockState(i); !p || v {
			t.Fatalf("block %d after restart: present=%v verified=%v, want present, unverified", i, p, v)
		}
	}
	if p, _ := o.BlockState(3); p {
		t.Fatal("never-written block present after restart")
	}
	if o.Verified(0, 0) {
		t.Fatal("a block is servable as is before its check")
	}
	rf, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	if ok, _ := o.VerifyBlock(rf, 0); !ok {
		t.Fatal("good block 0 failed verification")
	}
	if ok, _ := o.VerifyBlock(rf, 1); ok {
		t.Fatal("damaged block 1 passed verification")
	}
	if p, _ := o.BlockState(1); p || o.Present()[1] {
		t.Fatal("damaged block still present")
	}
	if _, v := o.BlockState(0); !v {
		t.Fatal("block 0 not verified after its check")
	}
	if st := s.Stats()[0]; st.VerifyFailures != 1 || st.UsedBytes != 2*testBlock {
		t.Fatalf("stats %+v, want 1 verify failure and 2 blocks used", st)
	}
	// Fetched again, the block is served with the right bytes.
	writeBlocks(t, o, data, 1)
	if ok, _ := o.VerifyBlock(rf, 2); !ok || !o.Verified(0, 2) {
		t.Fatal("blocks 0-2 not servable after the refetch")
	}
	got := make([]byte, 3*testBlock)
	if _, err := rf.ReadAt(got, 0); err != nil || !bytes.Equal(got, data[:3*testBlock]) {
		t.Fatalf("bytes after the refetch: %v", err)
	}
}

func complianceRemove(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	var gone []string
	s.OnRemove(func(o *Object) { gone = append(gone, o.Key()) })
	objs := map[string]*Object{}
	for _, key := range []string{"a", "b", "c"} {
		o, err := s.Create(key, Meta{Size: 2 * testBlock})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, 2*testBlock), 0, 1)
		objs[key] = o
	}
	be := s.drives[0].backend
	a := objs["a"]
	rd, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	s.Remove("a")
	if s.Lookup("a") != nil || !a.Removed() || items(t, be)[a.id] {
		t.Fatal("removed object still stored")
	}
	// A reader open before the removal keeps reading, as of an unlinked file.
	got := make([]byte, 2*testBlock)
	if _, err := rd.ReadAt(got, 0); err != nil || !bytes.Equal(got, content("a", 2*testBlock)) {
		t.Fatalf("open reader of a removed object: %v", err)
	}
	s.RemoveObject(objs["b"])
	c2, err := s.Create("c", Meta{Size: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, c2, content("c2", testBlock), 0)
	live := items(t, be)
	if live[objs["b"].id] || live[objs["c"].id] || !live[c2.id] {
		t.Fatal("data of removed or replaced objects kept, or of the new version lost")
	}
	if st := s.Stats()[0]; st.UsedBytes != testBlock || st.Objects != 1 {
		t.Fatalf("stats %+v, want one object of one block", st)
	}
	if !slices.Equal(gone, []string{"a", "b", "c"}) {
		t.Fatalf("OnRemove saw %q, want a, b, c", gone)
	}
	s.Close()

	s = reopen(t, specs)
	if s.Lookup("a") != nil || s.Lookup("b") != nil {
		t.Fatal("removal not persisted")
	}
	if o := s.Lookup("c"); o == nil || o.id != c2.id || !bytes.Equal(readAll(t, o), content("c2", testBlock)) {
		t.Fatal("replacement not persisted")
	}
}

func complianceReplace(t *testing.T, k backendKit) {
	s, _ := openKit(t, k, 1<<20)
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

func complianceEviction(t *testing.T, k backendKit) {
	s, _ := openKit(t, k, 4*testBlock)
	objs := map[string]*Object{}
	for _, key := range []string{"a", "b", "c", "d"} {
		o, err := s.Create(key, Meta{Size: testBlock})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, testBlock), 0)
		objs[key] = o
	}
	s.Lookup("a") // a is now the most recently used; b the least
	o, _ := s.Create("e", Meta{Size: 2 * testBlock})
	writeBlocks(t, o, content("e", 2*testBlock), 0, 1)
	if st := s.Stats()[0]; st.UsedBytes > 4*testBlock || st.Evictions != 2 {
		t.Fatalf("after eviction: %+v, want used <= %d and 2 evictions", st, 4*testBlock)
	}
	for key, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": true} {
		if got := s.Lookup(key) != nil; got != want {
			t.Errorf("%s cached = %v, want %v", key, got, want)
		}
	}
	if live := items(t, s.drives[0].backend); live[objs["b"].id] || live[objs["c"].id] || !live[objs["a"].id] {
		t.Error("evicted objects' data kept, or a kept object's lost")
	}
	if _, err := s.Create("big", Meta{Size: 5 * testBlock}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("object larger than the drive: %v, want ErrTooLarge", err)
	}
}

func compliancePinned(t *testing.T, k backendKit) {
	s, _ := openKit(t, k, 2*testBlock)
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

func complianceIndex(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 5*testBlock)
	long := "example.org/" + strings.Repeat("x", 2000) // indexed by digest
	keys := []string{"k1", "k2", "k3", long}
	meta := func(key string) Meta {
		return Meta{Size: testBlock + 10, ETag: `"` + key[:2] + `"`, LastModified: "Sat, 02 Mar 2024 09:41:07 GMT",
			Header:   []Field{{"Cache-Control", []string{"public", "max-age=60"}}, {"Content-Type", []string{"text/plain"}}},
			StoredAt: time.Unix(1700000000, 123456789), Restricted: key == "k2"}
	}
	for _, key := range keys {
		o, err := s.Create(key, meta(key))
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, testBlock+10), 0, 1)
	}
	v, err := s.CreateVariant("v", []string{"Accept-Encoding"}, "v\x00gzip", Meta{Size: 10}, 4)
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, v, content("v", 10), 0)
	// k1 becomes the least recently used. (An object never looked up
	// has no access time recorded: it counts as the oldest.)
	for _, key := range append([]string{"k1", "v", "v\x00gzip"}, keys[1:]...) {
		s.Lookup(key)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, specs)
	// Access times came back: room for a new object is made by evicting
	// the least recently used, k1.
	n, err := s.Create("new", Meta{Size: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, n, content("new", testBlock), 0)
	if s.Lookup("k1") != nil || s.Lookup("k2") == nil {
		t.Fatal("after a restart, eviction did not take the least recently used object")
	}
	for _, key := range keys[1:] {
		o := s.Lookup(key)
		if o == nil {
			t.Fatalf("%.20s lost across the restart", key)
		}
		got, want := o.Meta(), meta(key)
		if !got.StoredAt.Equal(want.StoredAt) || !reflect.DeepEqual(got.Header, want.Header) ||
			got.ETag != want.ETag || got.LastModified != want.LastModified || got.Restricted != want.Restricted || got.Size != want.Size {
			t.Fatalf("%.20s: meta %+v after the restart, want %+v", key, got, want)
		}
		if !bytes.Equal(readAll(t, o), content(key, testBlock+10)) {
			t.Fatalf("%.20s: wrong bytes after the restart", key)
		}
	}
	marker := s.Lookup("v")
	if m := marker.Meta(); !slices.Equal(m.Vary, []string{"Accept-Encoding"}) || !slices.Equal(m.Variants, []string{"v\x00gzip"}) {
		t.Fatalf("marker after the restart: %+v", m)
	}
	if v := s.Lookup("v\x00gzip"); v == nil || !bytes.Equal(readAll(t, v), content("v", 10)) {
		t.Fatal("variant lost across the restart")
	}
}
