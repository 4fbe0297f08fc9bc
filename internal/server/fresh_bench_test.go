package server

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"gatecache/internal/origin"
	"gatecache/internal/store"
)

// BenchmarkFresh measures the freshness decision of a hit: without request
// directives (the small-hit path), and with the directives apt and other
// clients send.
func BenchmarkFresh(b *testing.B) {
	st, err := store.Open(store.Options{Drives: []store.DriveSpec{{Path: filepath.Join(b.TempDir(), "c"), Budget: 1 << 30}}, BlockSize: testBlock})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := New(Options{Store: st})
	// Made anew for every run of a case (-count runs each case again
	// without the setup): the index window counts from StoredAt.
	mk := func(key, cc string, age time.Duration) *store.Object {
		now := time.Now()
		fields := []store.Field{{Name: "Cache-Control", Values: []string{cc}}, {Name: "Date", Values: []string{now.Add(-age).UTC().Format(http.TimeFormat)}}}
		obj, err := st.Create(key, store.Meta{Size: 100, Header: fields, StoredAt: now})
		if err != nil {
			b.Fatal(err)
		}
		return obj
	}
	index := origin.Target{Host: "deb.debian.org", Path: "/debian/dists/stable/main/binary-amd64/Packages.xz", Key: "i"}
	other := origin.Target{Host: "example.com", Path: "/files/a.bin", Key: "o"}
	indexObj := func() *store.Object { return mk(index.Key, "max-age=3600", 0) }
	otherObj := func() *store.Object { return mk(other.Key, "max-age=3600", 0) }
	staleObj := func() *store.Object { return mk("s", "max-age=60", 2*time.Minute) }
	for _, c := range []struct {
		name  string
		t     origin.Target
		obj   func() *store.Object
		kv    []string
		fresh bool
	}{
		{"none", other, otherObj, nil, true},
		{"apt-index-max-age=0", index, indexObj, []string{"Cache-Control", "max-age=0"}, true},
		{"other-no-cache", other, otherObj, []string{"Cache-Control", "no-cache"}, false},
		{"other-max-age=600", other, otherObj, []string{"Cache-Control", "max-age=600"}, true},
		{"stale-max-stale", other, staleObj, []string{"Cache-Control", "max-stale=3600"}, true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for i := 0; i+1 < len(c.kv); i += 2 {
			r.Header.Set(c.kv[i], c.kv[i+1])
		}
		b.Run(c.name, func(b *testing.B) {
			obj := c.obj()
			b.ReportAllocs()
			for b.Loop() {
				if _, fresh := h.fresh(r, c.t, obj); fresh != c.fresh {
					b.Fatalf("fresh %v, want %v", fresh, c.fresh)
				}
			}
		})
	}
}
