package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// The index of a drive is a bbolt file with two buckets: "objects" maps a
// cache key to its record (id, metadata, block bitmap and checksums) and
// "atime" maps it to its last use. Access times live apart so that a hit
// rewrites 8 bytes at the next group commit, not the whole record.
var (
	bucketObjects = []byte("objects")
	bucketAtime   = []byte("atime")
)

// recordVersion 2 stores each header field with all its values; version 1
// records (one name and value per field) are read too, their fields grouped
// by name, and are rewritten as version 2 when their object next changes.
const (
	recordVersion   = 2
	recordVersionV1 = 1
)

// keyedVersion marks a record kept under a digest of its key (see
// indexKey): the key itself, then a record of recordVersion. It is a byte
// no record version takes.
const keyedVersion = 0x80

// maxPlainKey is the longest cache key used as the index key as it is.
// bbolt refuses keys over 32 KiB (and a refused key fails the whole
// transaction); long keys also make every page they land on heavy. Longer
// keys, and the empty key bbolt refuses too, are indexed by their SHA-256
// behind a NUL byte, which no plain index key starts with; their record
// carries the whole key.
const maxPlainKey = 1024

// indexKey is the key of a cache key's records in the index buckets.
func indexKey(key string) []byte {
	if key != "" && len(key) <= maxPlainKey && key[0] != 0 {
		return []byte(key)
	}
	sum := sha256.Sum256([]byte(key))
	return append([]byte{0}, sum[:]...)
}

// encodeEntry is the stored value of o's record: the record itself, or for
// a key indexed by digest the key and the record.
func encodeEntry(o *Object) []byte {
	rec := encodeRecordLocked(o)
	if ik := indexKey(o.key); len(ik) == len(o.key) && string(ik) == o.key {
		return rec
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(o.key)+len(rec))
	b = append(b, keyedVersion)
	b = appendString(b, o.key)
	return append(b, rec...)
}

// decodeEntry reads a stored value found under index key k.
func decodeEntry(k, v []byte, blockSize int64) (*Object, error) {
	key := string(k)
	if len(v) > 0 && v[0] == keyedVersion {
		r := &recordReader{b: v[1:]}
		key = r.string()
		if r.err != nil {
			return nil, r.err
		}
		if !bytes.Equal(indexKey(key), k) {
			return nil, errors.New("record key does not match its index key")
		}
		v = r.b
	}
	return decodeRecord(key, v, blockSize)
}

// maxSyncDelay bounds how long committed blocks stay out of the persisted
// index while their object keeps being written (they are refetched after a
// crash). atimeEvery is how often access times are written: they only order
// eviction after a restart, so a hit costs nothing durable.
const (
	maxSyncDelay = 60 * time.Second
	atimeEvery   = 10 * time.Second
)

// load reads every record of the drive. Blocks come back present but not
// verified: each is checked against its checksum before it is first served.
func (d *drive) load(blockSize int64) ([]*Object, error) {
	var objs []*Object
	err := d.db.Update(func(tx *bolt.Tx) error {
		ob, err := tx.CreateBucketIfNotExists(bucketObjects)
		if err != nil {
			return err
		}
		ab, err := tx.CreateBucketIfNotExists(bucketAtime)
		if err != nil {
			return err
		}
		var bad [][]byte
		var moved []*Object
		err = ob.ForEach(func(k, v []byte) error {
			o, derr := decodeEntry(k, v, blockSize)
			if derr != nil {
				d.log.Warn("cache index: dropping unreadable record", "drive", d.spec.Path, "key", logKey(string(k)), "err", derr)
				bad = append(bad, k)
				return nil
			}
			if a := ab.Get(k); len(a) == 8 {
				o.atime = int64(binary.LittleEndian.Uint64(a))
			}
			if !bytes.Equal(indexKey(o.key), k) {
				// A long key indexed as it is by an earlier version:
				// move it under its digest.
				bad, moved = append(bad, k), append(moved, o)
			}
			objs = append(objs, o)
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range bad {
			ob.Delete(k)
			ab.Delete(k)
		}
		for _, o := range moved {
			if err := errors.Join(ob.Put(indexKey(o.key), encodeEntry(o)), putAtime(ab, indexKey(o.key), o.atime)); err != nil {
				return err
			}
		}
		return nil
	})
	return objs, err
}

func putAtime(ab *bolt.Bucket, k []byte, t int64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(t))
	return ab.Put(k, b[:])
}

// logKey shortens a key for a log line.
func logKey(k string) string {
	if len(k) > 256 {
		return fmt.Sprintf("%q... (%d bytes)", k[:256], len(k))
	}
	return fmt.Sprintf("%q", k)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeRecordLocked serialises o; the caller holds store.mu.
func encodeRecordLocked(o *Object) []byte {
	m := &o.meta
	b := make([]byte, 0, 128+len(o.blocks)/8+4*len(o.blocks))
	b = append(b, recordVersion)
	b = binary.LittleEndian.AppendUint64(b, o.id)
	b = binary.AppendVarint(b, m.Size)
	b = binary.AppendVarint(b, m.StoredAt.UnixNano())
	b = appendString(b, m.ETag)
	b = appendString(b, m.LastModified)
	b = appendHeader(b, m)
	bitmap := make([]byte, (len(o.blocks)+7)/8)
	for i, st := range o.blocks {
		if st != blockAbsent {
			bitmap[i/8] |= 1 << (i % 8)
		}
	}
	b = append(b, bitmap...)
	for i, st := range o.blocks {
		if st != blockAbsent {
			b = binary.LittleEndian.AppendUint32(b, o.crcs[i])
		}
	}
	return b
}

var errShortRecord = errors.New("short record")

type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errShortRecord, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errShortRecord, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.err, r.b = errShortRecord, nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *recordReader) string() string { return string(r.bytes(r.uvarint())) }

func decodeRecord(key string, v []byte, blockSize int64) (*Object, error) {
	if len(v) < 9 || (v[0] != recordVersion && v[0] != recordVersionV1) {
		return nil, fmt.Errorf("unknown record version")
	}
	r := &recordReader{b: v[9:]}
	o := &Object{key: key, id: binary.LittleEndian.Uint64(v[1:9])}
	m := &o.meta
	m.Size = r.varint()
	m.StoredAt = time.Unix(0, r.varint())
	m.ETag = r.string()
	m.LastModified = r.string()
	if err := r.header(v[0], m); err != nil {
		return nil, err
	}
	o.vary = m.Vary
	if r.err != nil || m.Size < 0 {
		return nil, errShortRecord
	}
	n := blockCount(m.Size, blockSize)
	bitmap := r.bytes(uint64((n + 7) / 8))
	if r.err != nil {
		return nil, r.err
	}
	o.blocks = make([]blockState, n)
	o.crcs = make([]uint32, n)
	for i := range n {
		if bitmap[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		c := r.bytes(4)
		if r.err != nil {
			return nil, r.err
		}
		o.blocks[i] = blockPresent
		o.crcs[i] = binary.LittleEndian.Uint32(c)
		start := i * blockSize
		o.presentBytes += min(start+blockSize, m.Size) - start
	}
	return o, nil
}

// flushLoop is the group commit: committed blocks and access times are
// indexed every interval, never one transaction per block or per hit.
func (s *Store) flushLoop(interval time.Duration) {
	defer close(s.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.flushNow:
		}
		if err := s.flush(false); err != nil {
			s.log.Error("cache index: flush failed", "err", err)
		}
	}
}

type driveBatch struct {
	d       *drive
	records map[string][]byte
	atimes  map[string]int64
	deleted []string
	sync    []string // data files to make durable before indexing
}

// flush makes committed blocks durable, then records them: a block is in the
// persisted index only after its bytes have reached the disk. Unless forced,
// objects still being written wait (see SyncDelay).
func (s *Store) flush(force bool) error {
	now := time.Now()
	s.mu.Lock()
	batches := make([]driveBatch, 0, len(s.drives))
	atimes := force || now.Sub(s.atimesAt) >= atimeEvery
	if atimes {
		s.atimesAt = now
	}
	for _, d := range s.drives {
		if len(d.dirty) == 0 && (len(d.touched) == 0 || !atimes) && len(d.deleted) == 0 {
			continue
		}
		b := driveBatch{d: d, records: make(map[string][]byte, len(d.dirty)), atimes: make(map[string]int64, len(d.touched))}
		for o := range d.dirty {
			if !force && o.dirtyData && now.Sub(o.dataSince) < maxSyncDelay &&
				(o.writers > 0 || now.Sub(o.lastData) < s.syncDelay) {
				// fdatasync stalls writes to the same file (ext4 holds
				// the inode lock) and competes with the hits that follow
				// a fill: sync a file once it has been quiet for as long
				// as the kernel keeps pages dirty before writing them
				// back itself (30 s), so that the sync finds them clean.
				continue
			}
			delete(d.dirty, o)
			b.records[o.key] = encodeEntry(o)
			if o.dirtyData {
				b.sync = append(b.sync, d.dataPath(o.id))
			}
			o.dirty, o.dirtyData = false, false
		}
		if atimes {
			for o := range d.touched {
				b.atimes[o.key] = o.atime
			}
			clear(d.touched)
		}
		for k := range d.deleted {
			b.deleted = append(b.deleted, k)
		}
		clear(d.deleted)
		batches = append(batches, b)
	}
	s.mu.Unlock()

	var firstErr error
	for _, b := range batches {
		if err := b.commit(s.log); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("drive %s: %w", b.d.spec.Path, err)
		}
	}
	return firstErr
}

// commit syncs the batch's data files and writes its records in one
// transaction. A record that bbolt refuses is left out (logged), never
// failing the others: its object stays cached until restart but is not
// indexed, and any older record of its key is deleted so that none stands
// for it.
func (b *driveBatch) commit(log *slog.Logger) error {
	if b.d.db == nil {
		return nil // taken out of use at open: nothing is placed on it
	}
	for _, p := range b.sync {
		if err := fdatasync(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return b.d.db.Update(func(tx *bolt.Tx) error {
		ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
		// Deletions first: a key removed and created again in one window
		// keeps its new record.
		for _, k := range b.deleted {
			if _, again := b.records[k]; again {
				continue
			}
			if err := errors.Join(ob.Delete(indexKey(k)), ab.Delete(indexKey(k))); err != nil {
				return err
			}
		}
		for k, v := range b.records {
			ik := indexKey(k)
			if err := ob.Put(ik, v); err != nil {
				log.Error("cache index: cannot record an object: it is not kept across a restart",
					"drive", b.d.spec.Path, "key", logKey(k), "err", err)
				delete(b.records, k)
				if err := errors.Join(ob.Delete(ik), ab.Delete(ik)); err != nil {
					return err
				}
			}
		}
		for k, t := range b.atimes {
			ik := indexKey(k)
			if _, gone := b.records[k]; !gone && ob.Get(ik) == nil {
				continue // removed meanwhile, or not recorded
			}
			if err := putAtime(ab, ik, t); err != nil {
				return err
			}
		}
		return nil
	})
}

func fdatasync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// fdatasync: the data and the size, not the timestamps.
	return unix.Fdatasync(int(f.Fd()))
}
