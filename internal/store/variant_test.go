package store

import (
	"fmt"
	"reflect"
	"testing"
)

// A URL's variants: at most max, the oldest removed first; the marker and
// its list survive a restart; replacing the URL removes them all.
func TestVariantsAreBoundedPersistedAndRemovedWithTheirURL(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	vary := []string{"Accept"}
	for i := range 5 {
		key := fmt.Sprintf("host/u\x00v%d", i)
		if _, err := s.CreateVariant("host/u", vary, key, Meta{Size: 10}, 3); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []bool{false, false, true, true, true} {
		if got := s.Lookup(fmt.Sprintf("host/u\x00v%d", i)) != nil; got != want {
			t.Fatalf("variant %d stored: %v, want %v", i, got, want)
		}
	}
	// The same variant again is the newest, not a second entry.
	if _, err := s.CreateVariant("host/u", vary, "host/u\x00v2", Meta{Size: 10}, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, specs)
	marker := s.Lookup("host/u")
	wantList := []string{"host/u\x00v3", "host/u\x00v4", "host/u\x00v2"}
	if m := marker.Meta(); !reflect.DeepEqual(marker.Vary(), vary) || !reflect.DeepEqual(m.Variants, wantList) {
		t.Fatalf("marker after restart: vary %v, variants %q; want %v, %q", marker.Vary(), m.Variants, vary, wantList)
	}
	// Other fields to vary on: a new marker, the old variants gone.
	if _, err := s.CreateVariant("host/u", []string{"Accept-Encoding"}, "host/u\x00w", Meta{Size: 10}, 3); err != nil {
		t.Fatal(err)
	}
	for _, k := range wantList {
		if s.Lookup(k) != nil {
			t.Fatalf("variant %q kept under a marker that no longer names it", k)
		}
	}
	// A response that does not vary replaces the marker and its variants.
	if _, err := s.Create("host/u", Meta{Size: 10}); err != nil {
		t.Fatal(err)
	}
	if s.Lookup("host/u\x00w") != nil || s.Lookup("host/u").Vary() != nil {
		t.Fatal("replacing the URL kept its variants")
	}
}
