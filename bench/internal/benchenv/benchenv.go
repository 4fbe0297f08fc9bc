// Package benchenv is what every campaign under bench/ does before it
// starts (Setup): make its work directory, build the binary under test and
// raise its own descriptor limit.
package benchenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Setup is what a campaign does first: a fresh work directory (its name
// starting with prefix; the caller removes it), the binary under test
// (gatecache) and the descriptor limit raised (raiseFileLimit).
func Setup(prefix, bin string) (work, binary string, err error) {
	if work, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", err
	}
	if binary, err = gatecache(work, bin); err != nil {
		os.RemoveAll(work)
		return "", "", err
	}
	raiseFileLimit()
	return work, binary, nil
}

// gatecache returns bin, or when it is "" builds ./cmd/gatecache (run from
// the repository's root) into work and returns that path.
func gatecache(work, bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(work, "gatecache")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gatecache")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("building gatecache: %w", err)
	}
	return bin, nil
}

// raiseFileLimit lifts the process's descriptor limit as far as it may:
// as root the hard limit too, to 1,048,576 (a campaign holds the client
// ends of tens of thousands of connections, which must not run it out of
// descriptors), else to the hard limit. The nodes it starts inherit it.
func raiseFileLimit() {
	big := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &big) == nil {
		return
	}
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

// Verdict is a table's word for a promise that held (ok) or did not.
func Verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "FAIL"
}
