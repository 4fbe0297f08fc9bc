package main

import (
	"flag"
	"fmt"
	"io"

	"gatecache/internal/config"
	"gatecache/internal/store"
)

// verify checks a stopped cache offline and says what it found. Exit status
// 0: consistent (or repaired); 1: problems found and not repaired, or the
// check could not run.
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
		fmt.Fprintf(stdout, "%s: %s: %d objects, %d blocks checked, %d bad blocks, %d missing files, %d stray files\n",
			r.Path, state, r.Objects, r.Blocks, r.BadBlocks, r.MissingFiles, r.OrphanFiles)
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
