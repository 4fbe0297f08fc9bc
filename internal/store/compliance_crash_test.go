package store

import (
	"bytes"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
)

// crash stops s as a killed process stops: no flush, nothing made durable
// or indexed that was not already; the drives are released for the next
// store. The kit's powerCut then takes what a power cut would.
func crash(s *Store) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.stopped
	s.sweeps.Wait()
	s.closeDrives()
}

// Blocks committed but not synced and indexed before a crash are absent
// after it; blocks indexed come back present but unverified, and their
// bytes (synced before they were indexed) pass their check. An object
// created and never indexed leaves an item that the sweep at open deletes.
func complianceCrash(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	data := content("u", 3*testBlock)
	o, _ := s.Create("host/u", Meta{Size: 3 * testBlock})
	writeBlocks(t, o, data, 0)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, o, data, 1)
	n, _ := s.Create("host/new", Meta{Size: testBlock})
	writeBlocks(t, n, content("n", testBlock), 0)
	crash(s)
	k.powerCut(specs[0])

	s = reopen(t, specs)
	o = s.Lookup("host/u")
	if o == nil {
		t.Fatal("indexed object lost")
	}
	if p, v := o.BlockState(0); !p || v {
		t.Fatalf("indexed block 0: present=%v verified=%v, want present, unverified", p, v)
	}
	if p, _ := o.BlockState(1); p {
		t.Fatal("block 1, never indexed, is present")
	}
	rd, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if ok, _ := o.VerifyBlock(rd, 0); !ok {
		t.Fatal("indexed block 0 fails its check: indexed before its bytes were durable")
	}
	got := make([]byte, testBlock)
	if _, err := rd.ReadAt(got, 0); err != nil || !bytes.Equal(got, data[:testBlock]) {
		t.Fatalf("block 0 after the crash: %v", err)
	}
	if s.Lookup("host/new") != nil {
		t.Fatal("object never indexed came back")
	}
	s.sweeps.Wait()
	if items(t, s.drives[0].backend)[n.id] {
		t.Fatal("the data of an object never indexed was not swept")
	}
}

// The space of a removed object is given back under the store's lock and its
// data deleted after: a crash in between leaves the item. Once the index no
// longer names the object, the sweep deletes the item; while it still does,
// the object comes back whole.
func complianceCrashMidRemoval(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	objs := map[string]*Object{}
	for _, key := range []string{"a", "b"} {
		o, _ := s.Create(key, Meta{Size: testBlock})
		writeBlocks(t, o, content(key, testBlock), 0)
		objs[key] = o
	}
	s.Flush()
	removeNoDelete := func(o *Object) {
		s.mu.Lock()
		s.removeLocked(o)
		s.trash = nil // the crash comes before unlock deletes the data
		s.mu.Unlock()
	}
	removeNoDelete(objs["a"])
	s.Flush() // a's record is deleted from the index
	removeNoDelete(objs["b"])
	crash(s)
	k.powerCut(specs[0])

	s = reopen(t, specs)
	s.sweeps.Wait()
	if s.Lookup("a") != nil || items(t, s.drives[0].backend)[objs["a"].id] {
		t.Fatal("a removed object's data outlived the sweep")
	}
	b := s.Lookup("b")
	if b == nil {
		t.Fatal("an object still indexed at the crash is lost")
	}
	rd, _ := b.Open()
	defer rd.Close()
	if ok, _ := b.VerifyBlock(rd, 0); !ok || !bytes.Equal(readAll(t, b), content("b", testBlock)) {
		t.Fatal("an object still indexed at the crash came back damaged")
	}
}

// The sweep deletes items no index entry names, but never the data of an
// object created since the drive was opened, however the two interleave.
func complianceSweep(t *testing.T, k backendKit) {
	s, _ := openKit(t, k, 1<<20)
	s.sweeps.Wait()
	d := s.drives[0]
	// As at open, with nothing indexed: a sweep is due.
	s.mu.Lock()
	d.liveAtOpen, d.createdSince = []uint64{}, map[uint64]bool{}
	s.mu.Unlock()
	o, err := s.Create("created-since-open", Meta{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	const stray = 0xab
	if err := d.backend.Create(stray, 10); err != nil {
		t.Fatal(err)
	}
	s.sweeps.Add(1)
	s.sweep(d)
	live := items(t, d.backend)
	if !live[o.id] || live[stray] {
		t.Fatalf("after the sweep: new object's data kept %v, stray kept %v; want true, false", live[o.id], live[stray])
	}
}

// lockChecked fails the test when the store calls its backend while
// holding its lock: I/O there would stall every request behind it.
type lockChecked struct {
	Backend
	t *testing.T
	s atomic.Pointer[Store]
}

func (l *lockChecked) check(op string) {
	s := l.s.Load()
	if s == nil {
		return
	}
	if !s.mu.TryLock() {
		l.t.Errorf("backend %s called under the store's lock", op)
		return
	}
	s.mu.Unlock()
}

func (l *lockChecked) Create(id uint64, size int64) error {
	l.check("Create")
	return l.Backend.Create(id, size)
}
func (l *lockChecked) Open(id uint64) (Reader, error) { l.check("Open"); return l.Backend.Open(id) }
func (l *lockChecked) Sync(id uint64) error           { l.check("Sync"); return l.Backend.Sync(id) }
func (l *lockChecked) Remove(id uint64) error         { l.check("Remove"); return l.Backend.Remove(id) }
func (l *lockChecked) OpenWriter(id uint64) (DataWriter, error) {
	l.check("OpenWriter")
	return l.Backend.OpenWriter(id)
}

func (l *lockChecked) Commit(b *IndexBatch) (map[string]error, error) {
	l.check("Commit")
	return l.Backend.Commit(b)
}

// Removal, replacement, eviction (also of variants past their limit) and
// flushes all do their backend work outside the store's lock. The test
// runs on one goroutine once the sweep is done, so a lock that cannot be
// had is the caller's own.
func complianceNoIOUnderLock(t *testing.T, k backendKit) {
	spec := k.drive(t, 4*testBlock)
	if spec.Backend == nil {
		fd, err := openFileDrive(spec.Path)
		if err != nil {
			t.Fatal(err)
		}
		spec.Backend = fd
	}
	lc := &lockChecked{Backend: spec.Backend, t: t}
	spec.Backend = lc
	s := reopen(t, []DriveSpec{spec})
	s.sweeps.Wait()
	lc.s.Store(s)

	for i, key := range []string{"a", "b", "c", "d", "e", "f"} { // e and f evict
		o, err := s.Create(key, Meta{Size: testBlock})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, testBlock), 0)
		if i == 2 {
			s.Flush()
		}
	}
	s.Remove("f")
	s.RemoveObject(s.Lookup("e"))
	s.Create("d", Meta{Size: 10}) // replaces d
	for _, v := range []string{"v1", "v2", "v3"} {
		if _, err := s.CreateVariant("v", []string{"Accept"}, "v\x00"+v, Meta{Size: 10}, 2); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats()[0]; st.Evictions == 0 {
		t.Fatalf("nothing evicted: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// The offline check finds damaged blocks, missing data and stray items, and
// a repair leaves a consistent drive.
func complianceVerify(t *testing.T, k backendKit) {
	s, specs := openKit(t, k, 1<<20)
	data := content("v", 2*testBlock)
	ids := map[string]uint64{}
	for _, key := range []string{"good", "bad", "lost"} {
		o, _ := s.Create(key, Meta{Size: 2 * testBlock})
		writeBlocks(t, o, data, 0, 1)
		ids[key] = o.id
	}
	s.Close()
	withBackend(t, specs[0], func(be Backend) {
		damage(t, be, ids["bad"], testBlock, []byte{0xff, 0xfe})
		if err := errors.Join(be.Create(0xaa, 5), be.Remove(ids["lost"])); err != nil {
			t.Fatal(err)
		}
	})

	opts := Options{Drives: specs, BlockSize: testBlock}
	reps, err := Verify(opts, false)
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	slices.Sort(r.BadObjectKeys)
	if r.OK() || r.Objects != 3 || r.Blocks != 4 || r.BadBlocks != 1 || r.MissingFiles != 1 || r.OrphanFiles != 1 ||
		!slices.Equal(r.BadObjectKeys, []string{"bad", "lost"}) {
		t.Fatalf("report = %+v", r)
	}
	if _, err := Verify(opts, true); err != nil {
		t.Fatal(err)
	}
	reps, _ = Verify(opts, false)
	if r := reps[0]; !r.OK() || r.Objects != 2 || r.Blocks != 3 || r.OrphanFiles != 0 {
		t.Fatalf("after repair: %+v", r)
	}
	s = reopen(t, specs)
	if s.Lookup("lost") != nil || s.Lookup("bad").PresentCount(0, 1) != 1 {
		t.Fatal("the store does not see the repaired index")
	}
}
