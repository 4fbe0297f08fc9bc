package store

// Sizes of a real gateway drive, for 32-bit platforms (armv7) as much as
// for 64-bit ones: byte counts and offsets past 2^31 and 2^32, block counts
// that must fit an int, and an index that must fit bbolt's map. The
// arithmetic is tested on sparse files, not on 100 GB of data.

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

const (
	gb        = 1000 * 1000 * 1000
	mib       = 1 << 20
	wideBlock = mib // the block size gatecache uses
)

func openWide(t *testing.T, specs []DriveSpec) *Store {
	t.Helper()
	s, err := Open(Options{Drives: specs, BlockSize: wideBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func blockBytes(i, n int64) []byte {
	r := rand.New(rand.NewPCG(uint64(i), uint64(n)))
	b := make([]byte, n)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

// complianceWide: a 100 GB drive holding a 60 GB object, with blocks
// written at 2 GiB, at 4 GiB and at the short end, through a restart.
func complianceWide(t *testing.T, k backendKit) {
	specs := []DriveSpec{k.drive(t, 100*gb)}
	s := openWide(t, specs)
	if _, err := s.Create("too/big", Meta{Size: 100*gb + 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("object of 100 GB + 1 byte on a 100 GB drive: %v, want ErrTooLarge", err)
	}
	const size = 60*gb + 12345
	o, err := s.Create("big/object", Meta{Size: size, ETag: `"v1"`})
	if err != nil {
		t.Fatal(err)
	}
	// 60,000,012,345 bytes in 1 MiB blocks: 57,220 whole ones and
	// 493,625 bytes in the last.
	if n := o.NumBlocks(); n != 57221 {
		t.Fatalf("NumBlocks = %d, want 57221", n)
	}
	last := o.NumBlocks() - 1
	if start, end := o.BlockBounds(last); start != 59999518720 || end != size {
		t.Fatalf("last block [%d, %d), want [59999518720, %d)", start, end, int64(size))
	}
	blocks := []int64{2048, 4096, last} // offsets 2^31, 2^32, near 60 GB
	writeWide(t, o, blocks...)
	const used = 2*mib + 493625
	if st := s.Stats()[0]; st.UsedBytes != used || st.SizeBytes != 100*gb || st.Failed {
		t.Fatalf("stats %+v, want %d bytes used of %d", st, used, int64(100*gb))
	}
	checkWide(t, o, blocks)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openWide(t, specs)
	o = s.Lookup("big/object")
	if o == nil || o.Size() != size || o.NumBlocks() != 57221 {
		t.Fatalf("after a restart: %v", o)
	}
	if got := o.PresentCount(0, last); got != 3 {
		t.Fatalf("%d blocks present after a restart, want 3", got)
	}
	f, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, i := range blocks {
		if ok, err := o.VerifyBlock(f, i); !ok || err != nil {
			t.Fatalf("block %d fails its checksum after a restart: %v", i, err)
		}
	}
	if st := s.Stats()[0]; st.UsedBytes != used {
		t.Fatalf("after a restart %d bytes used, want %d", st.UsedBytes, used)
	}
	checkWide(t, o, blocks)
}

func writeWide(t *testing.T, o *Object, blocks ...int64) {
	t.Helper()
	writeBlocksOf(t, o, func(i, start, end int64) []byte { return blockBytes(i, end-start) }, blocks...)
}

// checkWide reads the blocks back from the object's data at their offsets.
func checkWide(t *testing.T, o *Object, blocks []int64) {
	t.Helper()
	f, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if size, err := f.Size(); err != nil || size != o.Size() {
		t.Fatalf("data: %d bytes, %v; want %d bytes", size, err, o.Size())
	}
	for _, i := range blocks {
		start, end := o.BlockBounds(i)
		got := make([]byte, end-start)
		if _, err := f.ReadAt(got, start); err != nil {
			t.Fatalf("block %d at offset %d: %v", i, start, err)
		}
		if !bytes.Equal(got, blockBytes(i, end-start)) {
			t.Fatalf("block %d at offset %d: wrong bytes", i, start)
		}
	}
}

// TestBlockCountPastTheCapIsTooLarge: an object of more than
// maxObjectBlocks blocks is refused as too large (and passed through by the
// server) rather than creating a file the filesystem refuses, which would
// take the drive out of use, or arrays a 32-bit int cannot index.
func TestBlockCountPastTheCapIsTooLarge(t *testing.T) {
	s := openWide(t, []DriveSpec{{Path: filepath.Join(t.TempDir(), "cache1"), Budget: 1 << 62}})
	for _, blocks := range []int64{maxObjectBlocks + 1, 1<<31 + 1} {
		if _, err := s.Create(fmt.Sprint("huge/", blocks), Meta{Size: blocks * wideBlock}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("object of %d blocks: %v, want ErrTooLarge", blocks, err)
		}
	}
	if st := s.Stats()[0]; st.Failed {
		t.Fatalf("drive failed: %+v", st)
	}
	// The drive still takes objects.
	o, err := s.Create("huge/max", Meta{Size: 64 * mib})
	if err != nil || o.NumBlocks() != 64 {
		t.Fatalf("a 64 MiB object: %v", err)
	}
}

// indexMapLimit is the largest index a drive may have on a 32-bit
// platform: bbolt maps the file whole, doubling the map up to 1 GiB; past
// that it would need a second GiB of contiguous address space (its limit
// there is 2 GiB) in a 3 GiB address space.
const indexMapLimit = 1 << 30

// TestIndexOfAHundredGBDriveFits32BitMap measures what an object costs in
// the index (a package-sized key and the header fields a repository sends)
// and checks the bound the README states: a 100 GB drive whose objects
// average 100 kB or more keeps its index under indexMapLimit, with room for
// bbolt's free pages (twice the live data). Package files and update
// images are far larger than that on average; a drive of smaller objects
// still works on 64-bit platforms.
func TestIndexOfAHundredGBDriveFits32BitMap(t *testing.T) {
	specs := []DriveSpec{{Path: filepath.Join(t.TempDir(), "cache1"), Budget: 100 * gb}}
	s := openWide(t, specs)
	const objects = 400
	const size = 48 << 10 // one block each: per byte cached, the worst case
	header := []Field{
		{"Content-Type", []string{"application/vnd.debian.binary-package"}},
		{"Cache-Control", []string{"public, max-age=31536000"}},
		{"Accept-Ranges", []string{"bytes"}},
		{"Via", []string{"1.1 varnish, 1.1 varnish"}},
		{"X-Served-By", []string{"cache-fra-etou8220000-FRA, cache-fra-etou8220031-FRA"}},
	}
	for i := range objects {
		key := fmt.Sprintf("deb.debian.org/debian/pool/main/l/libexample%04d/libexample%04d-1_2.38.1-5+deb12u3_armhf.deb", i, i)
		o, err := s.Create(key, Meta{Size: size, ETag: fmt.Sprintf(`"5f2a%04d-c3d1e"`, i),
			LastModified: "Sat, 02 Mar 2024 09:41:07 GMT", Header: header, StoredAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		writeWide(t, o, 0)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	var live int
	err := s.drives[0].backend.(*fileDrive).db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			st := b.Stats()
			live += st.BranchInuse + st.LeafInuse
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	perObject := live / objects
	if perObject < 100 {
		t.Fatalf("%d index bytes per object: the measurement is broken", perObject)
	}
	const minAverage = 100 * 1000
	need := int64(100*gb/minAverage) * int64(perObject) * 2
	t.Logf("%d index bytes per object; a 100 GB drive of %d-byte objects needs about %d MiB (limit %d MiB on 32-bit)",
		perObject, minAverage, need>>20, indexMapLimit>>20)
	if need > indexMapLimit {
		t.Errorf("a 100 GB drive of %d-byte objects needs a %d MiB index, over the %d MiB a 32-bit gateway can map",
			minAverage, need>>20, indexMapLimit>>20)
	}
}
