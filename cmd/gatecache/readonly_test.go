package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gatecache/internal/origintest"
	"gatecache/internal/store"
)

// readOnlyDir mounts a tmpfs at a new directory, lets prepare write to it
// and remounts it read-only. Needs root; skips otherwise.
func readOnlyDir(t *testing.T, prepare func(dir string)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ro")
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	prepare(dir)
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	return dir
}

// usedDrive leaves a drive at path as a previous run leaves it.
func usedDrive(t *testing.T, path string) {
	t.Helper()
	st, err := store.Open(store.Options{Drives: []store.DriveSpec{{Path: path, Budget: 1 << 20}}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

func driveStates(t *testing.T, n *node) []bool {
	t.Helper()
	resp, err := http.Get("http://" + n.summary + "/summary")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rep struct {
		Drives []struct {
			Failed bool   `json:"failed"`
			Error  string `json:"error"`
		} `json:"drives"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	var out []bool
	for _, d := range rep.Drives {
		out = append(out, d.Failed)
		if d.Failed && !strings.Contains(d.Error, "read-only") {
			t.Errorf("failed drive's error %q does not say why", d.Error)
		}
	}
	return out
}

// getTwice fetches path twice and returns the second answer's Cache-Status.
func getTwice(t *testing.T, n *node, o *origintest.Origin, path string) string {
	t.Helper()
	status := ""
	for range 2 {
		resp, err := n.get(o, path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, o.Want(path)) {
			t.Fatalf("%s: status %d, %d bytes, err %v", path, resp.StatusCode, len(body), err)
		}
		status = resp.Header.Get("Cache-Status")
	}
	return status
}

// A drive that is read-only at startup is taken out of use (logged, failed
// in the summary) and the node serves: from its other drive, or passing
// content through when it has none left.
func TestReadOnlyDriveAtStartIsTakenOutOfUseByTheNode(t *testing.T) {
	ro := readOnlyDir(t, func(dir string) { usedDrive(t, filepath.Join(dir, "cache1")) })
	o := origintest.New(t)
	o.Set("/pkg.deb", origintest.Object{Size: 3<<20 + 5})

	n := startNode(t, "CACHE_ROOT="+t.TempDir(), "CACHEABLE_CUSTOM_1_HOST="+o.Addr,
		"STORAGE_1_PATH="+filepath.Join(ro, "cache1"), "STORAGE_1_SIZE=64MiB",
		"STORAGE_2_PATH="+filepath.Join(t.TempDir(), "cache2"), "STORAGE_2_SIZE=64MiB")
	if got := driveStates(t, n); len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("drives failed: %v, want [true false]", got)
	}
	if !strings.Contains(n.stderr.String(), "taken out of use") {
		t.Fatalf("no log line for the read-only drive:\n%s", n.stderr)
	}
	if st := getTwice(t, n, o, "/pkg.deb"); !strings.Contains(st, "hit") {
		t.Fatalf("second request: Cache-Status %q, want a hit from the healthy drive", st)
	}

	// The cache root itself read-only (its default drive inside, no node
	// id yet): every drive failed, content passes through.
	n2 := startNode(t, "CACHE_ROOT="+ro, "CACHEABLE_CUSTOM_1_HOST="+o.Addr)
	if got := driveStates(t, n2); len(got) != 1 || !got[0] {
		t.Fatalf("drives failed: %v, want [true]", got)
	}
	before := o.Stats().Requests
	if st := getTwice(t, n2, o, "/pkg.deb"); strings.Contains(st, "hit") || o.Stats().Requests != before+2 {
		t.Fatalf("with no usable drive: Cache-Status %q, origin requests %d, want two pass-throughs", st, o.Stats().Requests-before)
	}
}
