package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"gatecache/bench/internal/benchenv"
	"gatecache/internal/origintest"
)

// aptFile is one file of the fake repository, named as apt asks for it.
type aptFile struct {
	path, what string
	size       int64
}

// aptRepo is what `apt-get update` fetches on a Debian 12 device with the
// usual three sources (bookworm, bookworm-updates, bookworm-security; main,
// amd64, English), sizes near the real ones: each suite's InRelease, then
// its Packages.xz and Translation-en.xz by hash (Acquire-By-Hash, which
// Debian's archives enable).
func aptRepo() []aptFile {
	suites := []struct {
		base, suite          string
		inRelease, pkg, i18n int64
	}{
		{"/debian", "bookworm", 151 << 10, 8800 << 10, 4600 << 10},
		{"/debian", "bookworm-updates", 56 << 10, 14 << 10, 9 << 10},
		{"/debian-security", "bookworm-security", 48 << 10, 270 << 10, 120 << 10},
	}
	var files []aptFile
	byHash := func(dir, name string) string {
		sum := sha256.Sum256([]byte(dir + name))
		return dir + "/by-hash/SHA256/" + hex.EncodeToString(sum[:])
	}
	for _, s := range suites {
		dists := s.base + "/dists/" + s.suite
		files = append(files, aptFile{dists + "/InRelease", s.suite + " InRelease", s.inRelease})
	}
	for _, s := range suites {
		dists := s.base + "/dists/" + s.suite
		files = append(files,
			aptFile{byHash(dists+"/main/binary-amd64", "Packages.xz"), s.suite + " main/binary-amd64/Packages.xz", s.pkg},
			aptFile{byHash(dists+"/main/i18n", "Translation-en.xz"), s.suite + " main/i18n/Translation-en.xz", s.i18n})
	}
	return files
}

// aptUpdate fetches the files one after another on one connection, through
// the node as apt's Acquire::http::Proxy, with apt's own header: every
// index is asked for with Cache-Control: max-age=0.
func aptUpdate(ctx context.Context, c *http.Client, proxy, originAddr string, files []aptFile, want map[string][]byte) error {
	pu, _ := url.Parse("http://" + proxy)
	c.Transport.(*http.Transport).Proxy = http.ProxyURL(pu)
	for _, f := range files {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+originAddr+f.path, nil)
		req.Header.Set("User-Agent", "Debian APT-HTTP/1.3 (2.6.1)")
		req.Header.Set("Cache-Control", "max-age=0")
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("%s: status %d", f.what, resp.StatusCode)
		}
		err = checkBody(resp.Body, want[f.path], 0, f.size)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
	}
	return nil
}

// runAptBurst: clients run the index fetches of `apt-get update` at once,
// against a single node and behind a leaf and its parent: each index file
// must reach the origin once, and the parent once.
func runAptBurst(e env) bool {
	clients := e.clients
	if clients == 0 {
		clients = 200
	}
	o, err := startOrigin(e.latency, e.rate)
	if err != nil {
		fatal(err)
	}
	defer o.close()
	files := aptRepo()
	want := map[string][]byte{}
	var perClient int64
	for _, f := range files {
		o.set(f.path, object{size: f.size}) // no Cache-Control, as Debian's mirrors send
		want[f.path] = origintest.Bytes(f.path, 0, 0, f.size)
		perClient += f.size
	}

	type result struct {
		name         string
		run          crowd
		origin, up   map[string]int64 // requests per file; up: at the parent (nil: none)
		failures     int
		firstFailure error
	}
	var results []result
	for _, kind := range []string{single, leafParent} {
		o.reset()
		// The parent logs every request it answers: the leaf's requests.
		s, err := newSetup(e, kind, o, nil, []string{"ACCESS_LOG=true"})
		if err != nil {
			fatal(err)
		}
		r := result{name: kind, origin: map[string]int64{}}
		r.run = runCrowd(clients, 0, func(ctx context.Context, _ int, c *http.Client) error {
			return aptUpdate(ctx, c, s.addr, o.addr, files, want)
		})
		for _, f := range files {
			pc := o.count(f.path)
			r.origin[f.path] = pc.requests
		}
		s.stop()
		if s.parent != nil {
			counts, err := s.parent.accessCounts()
			if err != nil {
				fatal(err)
			}
			r.up = map[string]int64{}
			for _, f := range files {
				r.up[f.path] = int64(counts[f.path])
			}
		}
		r.failures, r.firstFailure = r.run.failed()
		results = append(results, r)
	}

	fmt.Printf("## apt burst: %d clients run apt-get update's index fetches at once (%d files, %s per client, Cache-Control: max-age=0 as apt sends)\n\n",
		clients, len(files), mib(perClient))
	head := "| file | size |"
	for _, r := range results {
		head += " " + r.name + ": origin requests |"
		if r.up != nil {
			head += " " + r.name + ": parent requests |"
		}
	}
	fmt.Println(head)
	fmt.Println("|---|---|" + strings.Repeat("---|", strings.Count(head, "|")-3))
	ok := true
	for _, f := range files {
		line := fmt.Sprintf("| %s | %s |", f.what, kib(f.size))
		for _, r := range results {
			line += fmt.Sprintf(" %d |", r.origin[f.path])
			if r.up != nil {
				line += fmt.Sprintf(" %d |", r.up[f.path])
			}
		}
		fmt.Println(line)
	}
	fmt.Println()
	fmt.Println("| setup | total | client p50 | client p99 | failed clients | verdict |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range results {
		good := r.failures == 0
		for _, f := range files {
			good = good && r.origin[f.path] == 1 && (r.up == nil || r.up[f.path] == 1)
		}
		ok = ok && good
		ds := r.run.times()
		fmt.Printf("| %s | %s | %s | %s | %d | %s |\n", r.name, secs(r.run.total), secs(percentile(ds, 50)), secs(percentile(ds, 99)), r.failures, benchenv.Verdict(good))
		if r.firstFailure != nil {
			fmt.Printf("\n%s: first client failure: %v\n", r.name, r.firstFailure)
		}
	}
	fmt.Println("\nevery index file must reach each upstream once (1), whatever the number of clients.")
	return ok
}
