package store

import (
	"bytes"
	"testing"
)

// Objects loaded at open and not asked for since (cold entries) count in
// the figures before any lookup, are evicted oldest first, are removed by
// Remove and Create as any object is (a marker with its variants), and
// come back whole at their first lookup.
func complianceCold(t *testing.T, k backendKit) {
	// Room for everything below but 1,000 bytes of "new".
	s, specs := openKit(t, k, 3*(testBlock+10)+10+2*testBlock-1000)
	for _, key := range []string{"a", "b", "c"} {
		o, err := s.Create(key, Meta{Size: testBlock + 10, ETag: `"` + key + `"`, Header: []Field{{"Content-Type", []string{"text/" + key}}}})
		if err != nil {
			t.Fatal(err)
		}
		writeBlocks(t, o, content(key, testBlock+10), 0, 1)
	}
	v, err := s.CreateVariant("m", []string{"Accept-Encoding"}, "m\x00gzip", Meta{Size: 10}, 4)
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, v, content("m", 10), 0)
	for _, key := range []string{"b", "a", "c", "m", "m\x00gzip"} { // b is the oldest
		s.Lookup(key)
	}
	before := s.Stats()[0]
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, specs)
	if st := s.Stats()[0]; st.Objects != before.Objects || st.UsedBytes != before.UsedBytes {
		t.Fatalf("after a restart, before any lookup: %d objects, %d bytes; want %d, %d",
			st.Objects, st.UsedBytes, before.Objects, before.UsedBytes)
	}
	// Room for two blocks is made by the oldest cold entry, b (2 blocks).
	n, err := s.Create("new", Meta{Size: 2 * testBlock})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, n, content("new", 2*testBlock), 0, 1)
	if st := s.Stats()[0]; st.Evictions != 1 {
		t.Fatalf("%d evictions, want 1", st.Evictions)
	}
	if s.Lookup("b") != nil {
		t.Fatal("the oldest cold entry was not the one evicted")
	}
	// a comes back whole: metadata, and its blocks checked before use.
	a := s.Lookup("a")
	if a == nil || a.Meta().ETag != `"a"` || a.Meta().Header[0].Values[0] != "text/a" {
		t.Fatalf("cold entry a came back as %+v", a)
	}
	if p, verified := a.BlockState(1); !p || verified {
		t.Fatal("a restored block must be present and not yet verified")
	}
	rd, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for i := range a.NumBlocks() {
		if ok, _ := a.VerifyBlock(rd, i); !ok {
			t.Fatalf("block %d of a failed its check", i)
		}
	}
	if !bytes.Equal(readAll(t, a), content("a", testBlock+10)) {
		t.Fatal("a's bytes changed across the restart")
	}
	// Removing a marker never looked up removes its variant too; c goes
	// by Create replacing it.
	s.Remove("m")
	if _, err := s.Create("c", Meta{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if s.Lookup("m") != nil || s.Lookup("m\x00gzip") != nil {
		t.Fatal("a cold marker's removal left it or its variant")
	}
	if c := s.Lookup("c"); c == nil || c.Size() != 1 {
		t.Fatal("Create did not replace the cold entry of c")
	}
	ids := len(items(t, s.drives[0].backend))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, specs)
	for _, key := range []string{"b", "m", "m\x00gzip"} {
		if s.Lookup(key) != nil {
			t.Fatalf("%q came back after its removal and a restart", key)
		}
	}
	if ids != 3 { // a, new, c: the data of b, m, its variant and the old c are gone
		t.Fatalf("%d data items after the removals, want 3", ids)
	}
}
