package flight

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
)

// fillAll reads a whole object through rd, so that its blocks are present
// and verified, and waits for the fill to end.
func fillAll(t *testing.T, g *Group, rd *Reader, data []byte) {
	t.Helper()
	got, err := io.ReadAll(rd)
	rd.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("filling: %d bytes, %v", len(got), err)
	}
	g.Wait()
}

// A data file cut short under a running store makes ReadAt return fewer
// bytes than asked: the bytes it did read are good, and the rest must come
// from upstream from where they stopped, never from the block's start.
func TestShortReadOfABlockFileFallsBackAtTheRightOffset(t *testing.T) {
	_, obj, g, data := setup(t, 4*testBlock)
	src := &source{data: data}
	fillAll(t, g, g.NewReader(context.Background(), obj, src, obj.Size(), nil), data)
	if !obj.Verified(0, 3) {
		t.Fatal("blocks not verified after the fill")
	}
	cut := int64(testBlock + testBlock/4)
	if err := os.Truncate(obj.Location(), cut); err != nil {
		t.Fatal(err)
	}

	rd := g.NewReader(context.Background(), obj, src, obj.Size(), nil)
	defer rd.Close()
	if _, err := rd.Seek(testBlock, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	// One read of block 1, which the file holds only half of.
	p := make([]byte, testBlock)
	n, err := rd.Read(p)
	if err != nil || n == 0 || !bytes.Equal(p[:n], data[testBlock:testBlock+n]) {
		t.Fatalf("read %d bytes of block 1 (err %v): wrong bytes", n, err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(p[:n:n], rest...); !bytes.Equal(got, data[testBlock:]) {
		t.Fatalf("%d bytes from offset %d, want %d; equal %v", len(got), testBlock, len(data)-testBlock, bytes.Equal(got, data[testBlock:]))
	}
	if rd.Err() != nil {
		t.Fatalf("reader error %v", rd.Err())
	}
	if rd.FileFault() == nil {
		t.Fatal("the short read is not reported as a file fault")
	}
	// The pass-through started where the file's bytes ended.
	if opens := src.opens[len(src.opens)-1]; opens[0] != cut {
		t.Fatalf("upstream opened at %d after a short read ending at %d", opens[0], cut)
	}
}
