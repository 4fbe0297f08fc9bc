package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gatecache/internal/store"
)

// runVerify runs `gatecache verify args...` on the cache at root and
// returns its output and exit status.
func runVerify(t *testing.T, root string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"verify"}, args...)...)
	cmd.Env = []string{"CACHE_ROOT=" + root, "STORAGE_1_SIZE=64MiB"}
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// The data files of objects created just before a crash, never indexed, are
// the expected remains of it: verify reports them and exits 0; only a bad
// block (or an indexed file gone) makes it exit 1. --repair still deletes
// them.
func TestVerifyReportsStrayFilesButPassesAHealthyCache(t *testing.T) {
	root := t.TempDir()
	drive := store.DriveSpec{Path: filepath.Join(root, "cache1"), Budget: 64 << 20}
	st, err := store.Open(store.Options{Drives: []store.DriveSpec{drive}, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("gatecache"), 1000)
	o, err := st.Create("example.org/ok", store.Meta{Size: int64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	f, _ := o.OpenWriter()
	w, _ := o.NewBlockWriter(f, 0)
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st.Close()
	// A file created just before a crash, never indexed.
	stray := filepath.Join(drive.Path, "data", "ab", "00000000000000ab")
	os.MkdirAll(filepath.Dir(stray), 0o755)
	os.WriteFile(stray, []byte("partial fill"), 0o644)

	out, code := runVerify(t, root)
	if code != 0 || !strings.Contains(out, ": ok: ") || !strings.Contains(out, "1 stray files") {
		t.Fatalf("verify of a healthy cache with a stray file: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatal("verify without --repair deleted the stray file")
	}
	if out, code := runVerify(t, root, "--repair"); code != 0 {
		t.Fatalf("verify --repair: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("verify --repair kept the stray file: %v", err)
	}

	// A bad block still fails the check.
	bf, _ := os.OpenFile(o.Location(), os.O_WRONLY, 0)
	bf.WriteAt([]byte("XX"), 10)
	bf.Close()
	out, code = runVerify(t, root)
	if code != 1 || !strings.Contains(out, "1 bad blocks") || !strings.Contains(out, "damaged: example.org/ok") {
		t.Fatalf("verify with a bad block: exit %d\n%s", code, out)
	}
}
