package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// VerifyReport is what an offline check found on one drive.
type VerifyReport struct {
	Path          string
	Objects       int   // indexed objects
	Blocks        int64 // present blocks checked
	BadBlocks     int64 // blocks whose bytes do not match their checksum
	MissingFiles  int   // indexed objects whose data file is gone
	OrphanFiles   int   // data files no index entry names
	Repaired      bool
	BadObjectKeys []string
}

// OK reports whether the drive is consistent: every indexed block is there
// and matches its checksum. Stray (unindexed) data files do not count: they
// are what a crash leaves of objects being filled, never served, and
// deleted at the next start (or by a repair).
func (r VerifyReport) OK() bool {
	return r.BadBlocks == 0 && r.MissingFiles == 0
}

// Verify checks every present block of every drive of a stopped cache
// against its checksum. With repair, bad blocks are dropped from the index
// (they will be fetched again), entries of missing files are removed and
// stray data files deleted. It needs the drives' index locks, so it fails
// while a gatecache serves them.
func Verify(opts Options, repair bool) ([]VerifyReport, error) {
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{blockSize: opts.BlockSize, log: opts.Logger, objects: map[string]*Object{}}
	var reports []VerifyReport
	for i, spec := range opts.Drives {
		d, objs, err := openDrive(i, spec, s.blockSize, s.log)
		if err != nil {
			return reports, err
		}
		rep, err := s.verifyDrive(d, objs, repair)
		d.close()
		reports = append(reports, rep)
		if err != nil {
			return reports, err
		}
	}
	return reports, nil
}

func (s *Store) verifyDrive(d *drive, objs []*Object, repair bool) (VerifyReport, error) {
	rep := VerifyReport{Path: d.spec.Path, Objects: len(objs), Repaired: repair}
	var rewrite, drop []*Object
	for _, o := range objs {
		o.store, o.drive = s, d
		f, err := os.Open(d.dataPath(o.id))
		if err != nil {
			rep.MissingFiles++
			rep.BadObjectKeys = append(rep.BadObjectKeys, o.key)
			drop = append(drop, o)
			continue
		}
		bad := false
		for i := range o.NumBlocks() {
			if o.blocks[i] == blockAbsent {
				continue
			}
			rep.Blocks++
			if ok, _ := o.VerifyBlock(f, i); !ok {
				rep.BadBlocks++
				bad = true
			}
		}
		f.Close()
		if bad {
			rep.BadObjectKeys = append(rep.BadObjectKeys, o.key)
			rewrite = append(rewrite, o)
		}
	}
	orphans := d.strayFiles(objs)
	rep.OrphanFiles = len(orphans)
	if !repair {
		return rep, nil
	}
	for _, p := range orphans {
		os.Remove(p)
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		ob, ab := tx.Bucket(bucketObjects), tx.Bucket(bucketAtime)
		for _, o := range drop {
			if err := errors.Join(ob.Delete(indexKey(o.key)), ab.Delete(indexKey(o.key))); err != nil {
				return err
			}
		}
		for _, o := range rewrite {
			if err := ob.Put(indexKey(o.key), encodeEntry(o)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("drive %s: repair index: %w", d.spec.Path, err)
	}
	return rep, nil
}

// strayFiles lists data files that no indexed object names.
func (d *drive) strayFiles(objs []*Object) []string {
	live := make(map[uint64]bool, len(objs))
	for _, o := range objs {
		live[o.id] = true
	}
	var out []string
	filepath.WalkDir(filepath.Join(d.spec.Path, "data"), func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if id, perr := strconv.ParseUint(e.Name(), 16, 64); perr != nil || !live[id] {
			out = append(out, path)
		}
		return nil
	})
	return out
}
