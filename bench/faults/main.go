// Command faults is gatecache's fault campaign: it runs the built binary
// against origins that stall, lie, truncate and redirect, kills it during
// concurrent fills, floods both ports with idle connections and soaks it with
// mixed traffic, checking every byte a client receives against the origin's
// deterministic content. It prints one table per part. Loopback only; every
// loop is bounded in count and time.
//
//	go run ./bench/faults [-trials 40] [-conns 10000] [-soak 60s] [-parts trials,upstream,term,conns,soak]
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gatecache/bench/internal/benchenv"
)

type urlT = url.URL

func parseURL(s string) (*url.URL, error) { return url.Parse(s) }

func main() {
	bin := flag.String("bin", "", "gatecache binary (default: go build ./cmd/gatecache)")
	trials := flag.Int("trials", 40, "kill -9 trials")
	conns := flag.Int("conns", 10000, "idle connections opened on each port")
	soak := flag.Duration("soak", 60*time.Second, "soak duration")
	parts := flag.String("parts", "trials,upstream,term,conns,soak", "parts to run")
	flag.Parse()

	work, binary, err := benchenv.Setup("gatecache-faults-", *bin)
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	*bin = binary
	o, err := startOrigin()
	if err != nil {
		fatal(err)
	}
	defer o.close()

	fmt.Printf("# gatecache fault campaign %s UTC\n", time.Now().UTC().Format("2006-01-02 15:04"))
	failed := false
	for _, p := range strings.Split(*parts, ",") {
		dir := filepath.Join(work, p)
		os.MkdirAll(dir, 0o755)
		var ok bool
		switch p {
		case "trials":
			ok = runTrials(*bin, dir, o, *trials)
		case "upstream":
			ok = runUpstream(*bin, dir, o)
		case "term":
			ok = runTerm(*bin, dir, o)
		case "conns":
			ok = runConns(*bin, dir, o, *conns)
		case "soak":
			ok = runSoak(*bin, dir, o, *soak)
		default:
			fatal(fmt.Errorf("unknown part %q", p))
		}
		failed = failed || !ok
		fmt.Println()
	}
	if failed {
		fmt.Println("RESULT: some promises did not hold (see FAIL above)")
		os.Exit(1)
	}
	fmt.Println("RESULT: every promise held")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "faults:", err)
	os.Exit(2)
}
