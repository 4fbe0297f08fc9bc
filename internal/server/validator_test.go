package server

import (
	"bytes"
	"testing"

	"gatecache/internal/origintest"
)

// noValidator is an origin object without a validator If-Range could use:
// no ETag (or only a weak one) and no Last-Modified.
func noValidator(size int64, version int, etag string) origintest.Object {
	return origintest.Object{Size: size, Version: version, ETag: etag, NoLastModified: true}
}

// Blocks from two upstream responses are combined only when a validator
// proves them one version. Without one, an origin that changes content at
// the same length between a Range request and a later full GET must not
// make the cache splice the two versions, then or on later hits.
func TestNoValidatorNeverMixesVersions(t *testing.T) {
	size := int64(8*testBlock + 5)
	for _, etag := range []string{"-", `W/"same"`} {
		t.Run("etag="+etag, func(t *testing.T) {
			r := newRig(t)
			r.origin.Set("/nv", noValidator(size, 0, etag))
			want0 := r.origin.Want("/nv")
			r.expect(r.get("/nv", "Range", "bytes=100-199"), 206, "", want0[100:200])
			r.flights.Wait()

			r.origin.Set("/nv", noValidator(size, 1, etag))
			want1 := r.origin.Want("/nv")
			r.expect(r.get("/nv"), 200, "", want1)
			r.flights.Wait()
			r.expect(r.get("/nv"), 200, "gatecache; hit", want1)
			r.expect(r.get("/nv", "Range", "bytes=100-199"), 206, "gatecache; hit", want1[100:200])
		})
	}
}

// A full response that broke off leaves the blocks it brought; without a
// validator, the rest may not come from another response: the next request
// gets one version whole, and that is what is stored.
func TestNoValidatorPartialObjectIsNotCompletedFromAnotherResponse(t *testing.T) {
	size := int64(8*testBlock + 5)
	r := newRig(t)
	obj := noValidator(size, 0, "-")
	obj.Fault, obj.FaultAt = origintest.FaultTruncate, 2*testBlock+1000
	r.origin.Set("/nv", obj)
	if _, err := body(r.get("/nv")); err == nil {
		t.Fatal("a body that broke off upstream arrived complete")
	}
	r.flights.Wait()
	// Blocks 0 and 1 came in before the break; the object is kept with
	// them, or already dropped when the client's reader found that the
	// rest could not be fetched.
	if n := r.checkStoredBlocks("/nv"); n > 2 {
		t.Fatalf("%d blocks stored from a body that broke in block 2", n)
	}

	r.origin.Set("/nv", noValidator(size, 1, "-"))
	want1 := r.origin.Want("/nv")
	got := r.mustBody(r.get("/nv"))
	if !bytes.Equal(got, want1) {
		t.Fatalf("got %d bytes, not version 1 whole%s", len(got), firstDiff(got, want1))
	}
	r.flights.Wait()
	r.expect(r.get("/nv"), 200, "gatecache; hit", want1)
}

// With a validator, partial objects are still completed block by block:
// the rule costs origins that send one nothing.
func TestValidatedPartialObjectIsCompletedFromStoredBlocks(t *testing.T) {
	size := int64(8*testBlock + 5)
	r := newRig(t)
	r.origin.Set("/v", origintest.Object{Size: size, ETag: "-"}) // Last-Modified only
	want := r.origin.Want("/v")
	r.expect(r.get("/v", "Range", "bytes=100-199"), 206, "", want[100:200])
	r.flights.Wait()
	r.origin.ResetStats()
	r.expect(r.get("/v"), 200, "gatecache; fwd=partial; stored", want)
	if _, total := r.upstreamBytes(size); total != size-testBlock {
		t.Fatalf("%d bytes fetched to complete the object, want %d", total, size-testBlock)
	}
}
