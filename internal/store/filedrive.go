package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// fileDrive is the backend of a drive directory: each object's data is a
// sparse file data/XX/ID (XX the id's low byte, spreading the files over
// 256 directories), and the index is a bbolt file, index.db, with two
// buckets: "objects" maps an index key to its record and "atime" maps it to
// its last use. Access times live apart so that a hit rewrites 8 bytes at
// the next group commit, not the whole record.
type fileDrive struct {
	root string
	db   *bolt.DB
}

var (
	bucketObjects = []byte("objects")
	bucketAtime   = []byte("atime")
)

// errDriveLocked is an index held by another process: two caches on one
// drive is a configuration mistake, not a drive fault.
var errDriveLocked = errors.New("index is locked: is another gatecache using this drive?")

// openFileDrive opens (creating if needed) the drive directory root.
func openFileDrive(root string) (_ *fileDrive, err error) {
	defer damaged(&err)
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(root, "index.db"), 0o644, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, errDriveLocked
		}
		return nil, fmt.Errorf("open index: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketObjects)
		if err == nil {
			_, err = tx.CreateBucketIfNotExists(bucketAtime)
		}
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open index: %w", err)
	}
	return &fileDrive{root: root, db: db}, nil
}

func (d *fileDrive) Name(id uint64) string {
	return filepath.Join(d.root, "data", fmt.Sprintf("%02x", byte(id)), fmt.Sprintf("%016x", id))
}

func (d *fileDrive) Create(id uint64, size int64) error {
	path := d.Name(id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		}
	}
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// fileReader is an open data file. It offers the file itself (File), so
// that the server can send it with sendfile.
type fileReader struct{ f *os.File }

func (r fileReader) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r fileReader) Close() error                            { return r.f.Close() }
func (r fileReader) File() *os.File                          { return r.f }

// Size is one fstat.
func (r fileReader) Size() (int64, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d *fileDrive) Open(id uint64) (Reader, error) {
	f, err := os.Open(d.Name(id))
	if err != nil {
		return nil, err
	}
	return fileReader{f}, nil
}

func (d *fileDrive) OpenWriter(id uint64) (DataWriter, error) {
	return os.OpenFile(d.Name(id), os.O_WRONLY, 0)
}

// Sync is fdatasync: the data and the size, not the timestamps.
func (d *fileDrive) Sync(id uint64) error {
	f, err := os.Open(d.Name(id))
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fdatasync(int(f.Fd()))
}

// Remove unlinks the file: a metadata operation that does not wait for
// the data; open descriptors keep reading it.
func (d *fileDrive) Remove(id uint64) error { return os.Remove(d.Name(id)) }

// List walks the data directories. Files whose names are not ids are not
// the cache's and are left alone.
func (d *fileDrive) List(fn func(id uint64)) error {
	return filepath.WalkDir(filepath.Join(d.root, "data"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if id, perr := strconv.ParseUint(e.Name(), 16, 64); perr == nil {
			fn(id)
		}
		return nil
	})
}

func (d *fileDrive) Get(key string) (rec []byte, err error) {
	defer damaged(&err)
	err = d.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get([]byte(key))
		if v == nil {
			return fs.ErrNotExist
		}
		rec = bytes.Clone(v)
		return nil
	})
	return rec, err
}

func (d *fileDrive) Commit(b *IndexBatch) (refused map[string]error, err error) {
	defer damaged(&err)
	err = d.db.Update(func(tx *bolt.Tx) error {
		ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
		for _, k := range b.Deletes {
			if err := errors.Join(ob.Delete([]byte(k)), ab.Delete([]byte(k))); err != nil {
				return err
			}
		}
		for k, v := range b.Puts {
			if perr := ob.Put([]byte(k), v); perr != nil {
				if refused == nil {
					refused = make(map[string]error)
				}
				refused[k] = perr
				if err := errors.Join(ob.Delete([]byte(k)), ab.Delete([]byte(k))); err != nil {
					return err
				}
			}
		}
		for k, t := range b.Atimes {
			if ob.Get([]byte(k)) == nil {
				continue // removed meanwhile, or not recorded
			}
			if err := ab.Put([]byte(k), binary.LittleEndian.AppendUint64(nil, uint64(t))); err != nil {
				return err
			}
		}
		return nil
	})
	return refused, err
}

func (d *fileDrive) Close() error { return d.db.Close() }

// damaged turns a panic of bbolt's into an error: bbolt panics on a page
// that does not read as one (a bad sector, a write torn where its own
// checksums do not look), and a damaged index must take its drive out of
// use, not stop the process and every drive with it. bbolt rolls back the
// transaction the panic left; deferred by a backend method, damaged sets
// the method's error.
func damaged(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: %v", errIndexDamaged, p)
	}
}

// errIndexDamaged is an index with pages bbolt cannot read.
var errIndexDamaged = errors.New("index damaged")
