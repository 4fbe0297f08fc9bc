// Command fleet measures what a fleet of devices does to gatecache: many
// clients at once on the same content, against one node and against a leaf
// whose parent fetches from the origin, in one run, each printing a table.
// The origin is the benchmark's own, behind a paced link (latency and rate
// of a distant uplink). Loopback only; every client and every run has a
// deadline.
//
//	go run ./bench/fleet -scenario rollout   [-clients 300] [-size 64MiB] [-spread 2s]
//	go run ./bench/fleet -scenario aptburst  [-clients 200]
//	go run ./bench/fleet -scenario pool      [-clients 100]   # needs haproxy
//	go run ./bench/fleet -scenario all
//
// A scenario is a function of the env below, registered in scenarios; it
// builds the setups it compares (setup.go: a single node, a leaf and its
// parent, three nodes behind haproxy, two leaves over a hashed pool of
// three), runs its clients against each and
// prints one table.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"gatecache/bench/internal/benchenv"
	"gatecache/internal/config"
)

// env is what every scenario gets.
type env struct {
	bin     string // the gatecache binary
	haproxy string // the haproxy binary; "" when not installed
	work    string // a fresh directory for the nodes' drives and logs
	clients int    // 0: the scenario's own default
	size    int64  // the rollout's object
	spread  time.Duration
	latency time.Duration // the origin's, before each answer
	rate    float64       // the origin link's bytes per second
}

// scenarios maps a name to its run, which prints its table and reports
// whether every promise it checks held.
var scenarios = map[string]func(env) bool{
	"rollout":  runRollout,
	"aptburst": runAptBurst,
	"pool":     runPool,
}

func main() {
	if name := os.Getenv(floorEnv); name != "" {
		floorServer(name)
		return
	}
	scenario := flag.String("scenario", "all", "rollout, aptburst, pool or all")
	bin := flag.String("bin", "", "gatecache binary (default: go build ./cmd/gatecache)")
	clients := flag.Int("clients", 0, "clients (default: rollout 300, aptburst 200, pool 100)")
	size := flag.String("size", "64MiB", "rollout: the object's size")
	spread := flag.Duration("spread", 2*time.Second, "rollout: clients start within this")
	latency := flag.Duration("latency", 50*time.Millisecond, "origin latency before each answer")
	rate := flag.Float64("rate", 100e6, "origin link rate, bytes per second")
	flag.Parse()

	objSize, err := config.ParseSize(*size)
	if err == nil && objSize <= 0 {
		err = fmt.Errorf("want a positive size such as 64MiB")
	}
	if err != nil {
		fatal(fmt.Errorf("-size %q: %v", *size, err))
	}
	var names []string
	if *scenario == "all" {
		for n := range scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
	} else {
		for _, n := range strings.Split(*scenario, ",") {
			if scenarios[n] == nil {
				fatal(fmt.Errorf("-scenario %q: want one of rollout, aptburst, pool, all", n))
			}
			names = append(names, n)
		}
	}
	work, binary, err := benchenv.Setup("gatecache-fleet-", *bin)
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	*bin = binary
	haproxy, _ := exec.LookPath("haproxy")
	fmt.Printf("# gatecache fleet benchmark %s UTC, %d CPUs, loopback; origin %v latency, %.0f MB/s\n",
		time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), *latency, *rate/1e6)
	ok := true
	for _, name := range names {
		dir := filepath.Join(work, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fatal(err)
		}
		e := env{bin: *bin, haproxy: haproxy, work: dir, clients: *clients, size: objSize, spread: *spread, latency: *latency, rate: *rate}
		fmt.Println()
		ok = scenarios[name](e) && ok
		os.RemoveAll(dir)
	}
	fmt.Println()
	if !ok {
		fmt.Println("RESULT: some promises did not hold (see FAIL above)")
		os.Exit(1)
	}
	fmt.Println("RESULT: every promise held")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "fleet:", err)
	os.Exit(2)
}
