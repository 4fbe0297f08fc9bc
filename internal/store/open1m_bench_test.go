package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeIndex fills the drive at path with n indexed objects of 8 blocks
// each, written straight through the file backend in batches (no data
// files: opening reads the index only).
func writeIndex(tb testing.TB, path string, n int) {
	tb.Helper()
	fd, err := openFileDrive(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fd.Close()
	indexObjects(tb, fd, n)
}

// indexObjects commits n records of objects of 8 blocks to be, keyed by
// benchKey, their last uses spread over 30 days in no order of key (object
// i was last used at benchAtime(i, n)).
func indexObjects(tb testing.TB, be Backend, n int) {
	tb.Helper()
	d := newDrive(0, DriveSpec{Path: "index", Budget: 1 << 50}, nil)
	for batch := 0; batch < n; batch += 20_000 {
		b := IndexBatch{Puts: map[string][]byte{}, Atimes: map[string]int64{}}
		for i := batch; i < min(batch+20_000, n); i++ {
			key := benchKey(i)
			o := &Object{key: key, id: uint64(i + 1), drive: d,
				meta: Meta{Size: 8 * testBlock, ETag: `"abc"`, StoredAt: time.Unix(1700000000, 0),
					Header: []Field{{"Content-Type", []string{"application/vnd.debian.binary-package"}}}},
				blocks: make([]blockState, 8), crcs: make([]uint32, 8)}
			for j := range o.blocks {
				o.blocks[j] = blockPresent
			}
			b.Puts[key] = encodeEntry(o)
			b.Atimes[key] = benchAtime(i, n)
		}
		if _, err := be.Commit(&b); err != nil {
			tb.Fatal(err)
		}
	}
}

func benchKey(i int) string {
	return fmt.Sprintf("deb.debian.org/debian/pool/main/p/pkg%d/pkg%d_1.0_arm64.deb", i, i)
}

func benchAtime(i, n int) int64 {
	return 1700000000_000000000 + int64((i*7919)%n)*(30*24*3600_000000000/int64(n))
}

// BenchmarkOpen1M measures a restart with 1,000,000 cached objects in a
// process of its own (the test binary run again), so that the figures are
// what a gatecache that opens such a drive uses, not what writing the
// index cost: the time Open takes, the peak resident set (VmHWM) and the
// resident set once open.
//
//	go test -run '^$' -bench Open1M -benchtime 3x ./internal/store
func BenchmarkOpen1M(b *testing.B) {
	const objects = 1_000_000
	path := filepath.Join(b.TempDir(), "cache1")
	writeIndex(b, path, objects)
	var openMS, peak, rss float64
	for b.Loop() {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOpenChild$", "-test.v")
		cmd.Env = append(os.Environ(), "STORE_OPEN_CHILD="+path, fmt.Sprintf("STORE_OPEN_WANT=%d", objects))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		line := ""
		for l := range strings.Lines(string(out)) {
			if strings.HasPrefix(l, "open:") {
				line = l
			}
		}
		if _, err := fmt.Sscanf(line, "open: %f ms, peak %f MiB, rss %f MiB", &openMS, &peak, &rss); err != nil {
			b.Fatalf("child said %q: %v\n%s", line, err, out)
		}
	}
	b.ReportMetric(openMS, "ms/open")
	b.ReportMetric(peak, "MiB-peak-rss")
	b.ReportMetric(rss, "MiB-rss")
}

// TestOpenChild is BenchmarkOpen1M's child: it runs only when the
// benchmark starts it.
func TestOpenChild(t *testing.T) {
	path := os.Getenv("STORE_OPEN_CHILD")
	if path == "" {
		t.Skip("run by BenchmarkOpen1M")
	}
	want, _ := strconv.Atoi(os.Getenv("STORE_OPEN_WANT"))
	start := time.Now()
	s, err := Open(Options{Drives: []DriveSpec{{Path: path, Budget: 1 << 50}}, BlockSize: testBlock, FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if st := s.Stats()[0]; st.Objects != want {
		t.Fatalf("%d objects loaded, want %d", st.Objects, want)
	}
	runtime.GC()
	peak, rss := procStatus(t, "VmHWM:"), procStatus(t, "VmRSS:")
	fmt.Printf("anon %.1f MiB, file %.1f MiB\n", procStatus(t, "RssAnon:"), procStatus(t, "RssFile:"))
	fmt.Printf("open: %.1f ms, peak %.1f MiB, rss %.1f MiB\n", float64(took.Microseconds())/1000, peak, rss)
	if os.Getenv("STORE_OPEN_EVICT") != "" {
		hitsDuringEvictions(t, s)
	}
	s.Close()
}

// hitsDuringEvictions serves hits of one object while new objects take the
// room of the oldest cold entries, and prints the hits' latencies.
func hitsDuringEvictions(t *testing.T, s *Store) {
	s.mu.Lock()
	s.drives[0].spec.Budget = s.drives[0].used // full: every new block evicts
	s.mu.Unlock()
	hot, err := s.Create("hot", Meta{Size: testBlock})
	if err != nil {
		t.Fatal(err)
	}
	writeBlocks(t, hot, content("hot", testBlock), 0)
	done := make(chan struct{})
	var lat []time.Duration
	go func() {
		defer close(done)
		for i := range 2000 {
			o, err := s.Create(fmt.Sprintf("new/%d", i), Meta{Size: 16 * testBlock})
			if err != nil {
				t.Error(err)
				return
			}
			writeBlocks(t, o, content("new", 16*testBlock), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
		}
	}()
	buf := make([]byte, testBlock)
	for hits := 0; ; hits++ {
		select {
		case <-done:
			slices.Sort(lat)
			ev := s.Stats()[0].Evictions
			fmt.Printf("hits during %d evictions: %d, p50 %v, p99 %v, max %v\n",
				ev, len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
			return
		default:
		}
		start := time.Now()
		o := s.Lookup("hot")
		rd, err := o.Open()
		if err != nil {
			t.Fatal(err)
		}
		rd.ReadAt(buf, 0)
		rd.Close()
		lat = append(lat, time.Since(start))
	}
}

// procStatus reads a kB figure of /proc/self/status, in MiB.
func procStatus(t *testing.T, field string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
