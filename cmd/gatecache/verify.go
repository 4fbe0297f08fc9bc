package main

import (
	"flag"
	"fmt"
	"io"

	"gatecache/internal/config"
	"gatecache/internal/store"
)

// verify checks a stopped cache offline and says what it found. Exit status
// 0: consistent (or repaired); 1: bad blocks or missing files found and not
// repaired, or the check could not run. Stray data files (objects being
// filled when the cache stopped uncleanly, never indexed) are reported but
// are no problem: the next start deletes them, as does --repair.
func verify(cfg config.Config, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	repair := fs.Bool("repair", false, "drop bad blocks and missing objects from the index and delete stray data files")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	reports, err := store.Verify(store.Options{Drives: driveSpecs(cfg), BlockSize: cfg.BlockSize}, *repair)
	problems := false
	for _, r := range reports {
		state := "ok"
		if !r.OK() {
			problems = true
			state = "PROBLEMS"
			if r.Repaired {
				state = "repaired"
			}
		}
		note := ""
		if r.OrphanFiles > 0 && !*repair {
			note = " (unindexed data left by an unclean stop, never served: deleted at the next start or by --repair)"
		}
		fmt.Fprintf(stdout, "%s: %s: %d objects, %d blocks checked, %d bad blocks, %d missing files, %d stray files%s\n",
			r.Path, state, r.Objects, r.Blocks, r.BadBlocks, r.MissingFiles, r.OrphanFiles, note)
		for _, k := range r.BadObjectKeys {
			fmt.Fprintf(stdout, "  damaged: %s\n", k)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "gatecache verify: "+err.Error())
		return exitFailure
	}
	if problems && !*repair {
		fmt.Fprintln(stdout, "run `gatecache verify --repair` to drop what is damaged; it is fetched again on demand")
		return exitFailure
	}
	return exitOK
}
