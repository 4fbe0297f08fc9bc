package store

import (
	"encoding/binary"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Header fields with several values, the restricted mark and fields set by
// a revalidation are in the index record and survive a restart.
func TestHeaderFieldsAndMarksSurviveRestart(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	o, err := s.Create("host/k", Meta{Size: 10, ETag: `"e"`, Restricted: true,
		Header: []Field{{"Link", []string{"</a>", "</b>"}}, {"X-Checksum-Sha256", []string{"abc"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{"Cache-Control", []string{"max-age=60"}}, {"Link", []string{"</c>"}}, {"X-Empty", []string{""}}}
	at := time.Unix(1700000000, 0)
	o.SetHeader(want, at)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	m := reopen(t, specs).Lookup("host/k").Meta()
	if !reflect.DeepEqual(m.Header, want) || !m.Restricted || !m.StoredAt.Equal(at) || m.ETag != `"e"` {
		t.Fatalf("after restart: %+v, want header %v, restricted, stored at %v", m, want, at)
	}
}

// appendV1Record encodes an object as index records of version 1 were:
// one name and value per header entry, nothing after the fields but the
// bitmap (no block present here).
func appendV1Record(id uint64, m Meta, fields [][2]string) []byte {
	b := []byte{recordVersionV1}
	b = binary.LittleEndian.AppendUint64(b, id)
	b = binary.AppendVarint(b, m.Size)
	b = binary.AppendVarint(b, m.StoredAt.UnixNano())
	b = appendString(b, m.ETag)
	b = appendString(b, m.LastModified)
	b = binary.AppendUvarint(b, uint64(len(fields)))
	for _, f := range fields {
		b = appendString(b, f[0])
		b = appendString(b, f[1])
	}
	return append(b, make([]byte, (blockCount(m.Size, testBlock)+7)/8)...)
}

// An index written by the previous version is read as it is: its fields
// grouped by name, its objects kept; a record is rewritten in the new
// version when its object next changes.
func TestVersion1RecordsAreMigrated(t *testing.T) {
	s, specs := openTest(t, 1<<20)
	o, err := s.Create("host/k", Meta{Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	id := o.id
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(specs[0].Path, "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	v1 := appendV1Record(id, Meta{Size: 10, ETag: `"e"`, StoredAt: time.Unix(1700000000, 0)},
		[][2]string{{"Content-Type", "text/plain"}, {"Cache-Control", "public"}, {"Cache-Control", "max-age=60"}})
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketObjects).Put([]byte("host/k"), v1) })
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = reopen(t, specs)
	o = s.Lookup("host/k")
	if o == nil {
		t.Fatal("version 1 record dropped")
	}
	m := o.Meta()
	want := []Field{{"Content-Type", []string{"text/plain"}}, {"Cache-Control", []string{"public", "max-age=60"}}}
	if !reflect.DeepEqual(m.Header, want) || m.ETag != `"e"` || m.Restricted {
		t.Fatalf("version 1 record read as %+v, want header %v", m, want)
	}
	o.SetHeader(m.Header, m.StoredAt)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(filepath.Join(specs[0].Path, "index.db"), 0o644, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketObjects).Get([]byte("host/k")); len(v) == 0 || v[0] != recordVersion {
			t.Errorf("record after a change: version %v, want %d", v[:1], recordVersion)
		}
		return nil
	})
}
