package store

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"
)

// The index of a drive maps an index key (the cache key, see indexKey) to
// the object's record (id, metadata, block bitmap and checksums) and keeps
// the object's last use beside it; the drive's Backend stores them.

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

// indexKey is the key of a cache key's records in the index.
func indexKey(key string) string {
	if key != "" && len(key) <= maxPlainKey && key[0] != 0 {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "\x00" + string(sum[:])
}

// isIndexKey reports whether k is key's index key, as indexKey(key) == k
// but without a string of either.
func isIndexKey(k, key []byte) bool {
	if len(key) > 0 && len(key) <= maxPlainKey && key[0] != 0 {
		return string(k) == string(key)
	}
	return string(k) == indexKey(string(key))
}

// encodeEntry is the stored value of o's record: the record itself, or for
// a key indexed by digest the key and the record.
func encodeEntry(o *Object) []byte {
	rec := encodeRecordLocked(o)
	if indexKey(o.key) == o.key {
		return rec
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(o.key)+len(rec))
	b = append(b, keyedVersion)
	b = appendString(b, o.key)
	return append(b, rec...)
}

// decodeEntry reads a stored value found under index key k.
func decodeEntry(k string, v []byte, blockSize int64) (*Object, error) {
	key := k
	if len(v) > 0 && v[0] == keyedVersion {
		r := &recordReader{b: v[1:]}
		key = r.string()
		if r.err != nil {
			return nil, r.err
		}
		if indexKey(key) != k {
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
// Unreadable records are deleted, and long keys an earlier version indexed
// as they are move under their digest.
func (d *drive) load(blockSize int64) ([]*Object, error) {
	var objs []*Object
	fix := IndexBatch{Puts: map[string][]byte{}, Atimes: map[string]int64{}}
	err := d.backend.Load(1, func(_ int, kb, v []byte, atime int64) error {
		k := string(kb)
		o, derr := decodeEntry(k, v, blockSize)
		if derr != nil {
			d.log.Warn("cache index: dropping unreadable record", "drive", d.spec.Path, "key", logKey(k), "err", derr)
			fix.Deletes = append(fix.Deletes, k)
			return nil
		}
		o.atime = atime
		if ik := indexKey(o.key); ik != k {
			fix.Deletes = append(fix.Deletes, k)
			fix.Puts[ik], fix.Atimes[ik] = encodeEntry(o), o.atime
		}
		objs = append(objs, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(fix.Deletes) > 0 {
		if _, err := d.backend.Commit(&fix); err != nil {
			return nil, err
		}
	}
	return objs, nil
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
		start, end := blockBounds(i, m.Size, blockSize)
		o.presentBytes += end - start
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
	d *drive
	IndexBatch
	sync  []uint64          // items to make durable before indexing
	names map[string]string // index key -> cache key, for keys indexed by digest
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
		b := driveBatch{d: d, IndexBatch: IndexBatch{Puts: make(map[string][]byte, len(d.dirty)), Atimes: make(map[string]int64, len(d.touched))}}
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
			ik := indexKey(o.key)
			b.Puts[ik] = encodeEntry(o)
			if ik != o.key {
				if b.names == nil {
					b.names = make(map[string]string)
				}
				b.names[ik] = o.key
			}
			if o.dirtyData {
				b.sync = append(b.sync, o.id)
			}
			o.dirty, o.dirtyData = false, false
		}
		if atimes {
			for o := range d.touched {
				b.Atimes[indexKey(o.key)] = o.atime
			}
			clear(d.touched)
		}
		for k := range d.deleted {
			// A key removed and created again in one window keeps
			// its new record.
			if ik := indexKey(k); b.Puts[ik] == nil {
				b.Deletes = append(b.Deletes, ik)
			}
		}
		clear(d.deleted)
		batches = append(batches, b)
	}
	s.mu.Unlock()

	var firstErr error
	for _, b := range batches {
		err := b.commit(s.log)
		if errors.Is(err, errIndexDamaged) {
			// Nothing more can be indexed there: out of use until
			// restart, which sets the index aside (openDrive).
			s.markFailed(b.d, err)
		}
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("drive %s: %w", b.d.spec.Path, err)
		}
	}
	return firstErr
}

// commit syncs the batch's data items and writes its records in one
// transaction. A record that the backend refuses is left out (logged),
// never failing the others: its object stays cached until restart but is
// not indexed.
func (b *driveBatch) commit(log *slog.Logger) error {
	if b.d.backend == nil {
		return nil // taken out of use at open: nothing is placed on it
	}
	for _, id := range b.sync {
		if err := b.d.backend.Sync(id); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	refused, err := b.d.backend.Commit(&b.IndexBatch)
	for ik, rerr := range refused {
		key, ok := b.names[ik]
		if !ok {
			key = ik
		}
		log.Error("cache index: cannot record an object: it is not kept across a restart",
			"drive", b.d.spec.Path, "key", logKey(key), "err", rerr)
	}
	return err
}
