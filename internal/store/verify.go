package store

import (
	"fmt"
	"log/slog"
)

// VerifyReport is what an offline check found on one drive.
type VerifyReport struct {
	Path          string
	Objects       int   // indexed objects
	Blocks        int64 // present blocks checked
	BadBlocks     int64 // blocks whose bytes do not match their checksum
	MissingFiles  int   // indexed objects whose data is gone
	OrphanFiles   int   // data items (files) no index entry names
	Repaired      bool
	BadObjectKeys []string
}

// OK reports whether the drive is consistent: every indexed block is there
// and matches its checksum. Stray (unindexed) data items do not count: they
// are what a crash leaves of objects being filled, never served, and
// deleted at the next start (or by a repair).
func (r VerifyReport) OK() bool {
	return r.BadBlocks == 0 && r.MissingFiles == 0
}

// Verify checks every present block of every drive of a stopped cache
// against its checksum. With repair, bad blocks are dropped from the index
// (they will be fetched again), entries of missing data are removed and
// stray data items deleted. It needs the drives' index locks, so it fails
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
		var objs []*Object
		d, err := loadDrive(i, spec, s.log, func(d *drive) (err error) {
			objs, err = d.load(s.blockSize)
			return err
		})
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
	var fix IndexBatch
	for _, o := range objs {
		o.store, o.drive = s, d
		f, err := d.backend.Open(o.id)
		if err != nil {
			rep.MissingFiles++
			rep.BadObjectKeys = append(rep.BadObjectKeys, o.key)
			fix.Deletes = append(fix.Deletes, indexKey(o.key))
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
			if fix.Puts == nil {
				fix.Puts = make(map[string][]byte)
			}
			fix.Puts[indexKey(o.key)] = encodeEntry(o)
		}
	}
	orphans, err := strays(d.backend, objs)
	rep.OrphanFiles = len(orphans)
	if err != nil {
		return rep, fmt.Errorf("drive %s: list data: %w", d.spec.Path, err)
	}
	if !repair {
		return rep, nil
	}
	for _, id := range orphans {
		d.backend.Remove(id)
	}
	if _, err := d.backend.Commit(&fix); err != nil {
		return rep, fmt.Errorf("drive %s: repair index: %w", d.spec.Path, err)
	}
	return rep, nil
}

// strays lists the data items that no indexed object names.
func strays(be Backend, objs []*Object) ([]uint64, error) {
	live := make(map[uint64]bool, len(objs))
	for _, o := range objs {
		live[o.id] = true
	}
	var out []uint64
	err := be.List(func(id uint64) {
		if !live[id] {
			out = append(out, id)
		}
	})
	return out, err
}
