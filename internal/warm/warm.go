// Package warm is the `gatecache warm` client: it asks a running gatecache
// for a list of URLs, as a forward-proxy client would, so that the content
// is cached before a rollout, and reports progress and failures.
package warm

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const usage = `usage: gatecache warm [--cache HOST:PORT] [--from FILE] [--parallel N] URL...

Asks a running gatecache for each http:// or https:// URL, as a forward-proxy
client would, so that the content is cached before a rollout. Bodies are read
and discarded. https:// URLs are asked for as http:// with the same host: the
gateway fetches over TLS itself for origins configured as https://host.

  --cache HOST:PORT  the gateway's content port (default 127.0.0.1:8081, or
                     the port of LISTEN_ADDR when set)
  --from FILE        read URLs from FILE (- for standard input), one per
                     line; blank lines and lines starting with # are skipped
  --parallel N       files fetched at once (default 4)

Exit status: 0 all files fetched, 1 some failed, 2 usage error.
`

// progressEvery is the interval between progress lines.
// Exit statuses, as for every gatecache command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const progressEvery = 500 * time.Millisecond

// Main runs `gatecache warm` with the arguments after "warm" and returns its
// exit status: see usage.
func Main(args []string, stdout, stderr io.Writer) int {
	return run(args, stdout, stderr, progressEvery)
}

// run is Main with the progress interval as a parameter, for tests.
func run(args []string, stdout, stderr io.Writer, every time.Duration) int {
	opts, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		if err.Error() != "" { // else the flag package has said it
			usage, _, _ := strings.Cut(usage, "\n")
			fmt.Fprintf(stderr, "gatecache warm: %v\n%s\n", err, usage)
		}
		return exitUsage
	}
	w := newWarmer(opts)
	defer w.client.CloseIdleConnections()
	start := time.Now()
	results := w.run(stderr, every)
	took := time.Since(start)

	failed := 0
	var bytes int64
	for _, r := range results {
		bytes += r.bytes
		if !r.ok {
			failed++
			fmt.Fprintf(stdout, "warm: FAILED %s: %s\n", r.url, r.problem)
		}
	}
	fmt.Fprintf(stdout, "warm: %d files, %d ok, %d failed, %s in %.1fs\n",
		len(results), len(results)-failed, failed, formatBytes(bytes), took.Seconds())
	if failed > 0 {
		return exitFailure
	}
	return exitOK
}

// options is a parsed command line.
type options struct {
	cache    string   // host:port of the gateway's content port
	parallel int      // files fetched at once
	urls     []string // absolute http(s) URLs, in order, without duplicates
}

// parseArgs parses the command line. Flags may come before, between or
// after the URLs. An error with an empty message has been reported by the
// flag package already.
func parseArgs(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	cache := fs.String("cache", "", "")
	from := fs.String("from", "", "")
	parallel := fs.Int("parallel", 4, "")

	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return options{}, err
			}
			return options{}, errors.New("")
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		positional, rest = append(positional, rest[0]), rest[1:]
	}

	opts := options{parallel: *parallel}
	if opts.parallel < 1 || opts.parallel > 256 {
		return opts, fmt.Errorf("--parallel %d: want a number from 1 to 256", opts.parallel)
	}
	var err error
	if *cache == "" {
		opts.cache = defaultCache(os.Getenv("LISTEN_ADDR"))
	} else if opts.cache, err = cacheAddr(*cache); err != nil {
		return opts, err
	}

	var raw []source
	if *from != "" {
		if raw, err = readList(*from); err != nil {
			return opts, err
		}
	}
	for _, p := range positional {
		raw = append(raw, source{url: p, where: "argument"})
	}
	seen := map[string]bool{}
	for _, s := range raw {
		if err := checkURL(s.url); err != nil {
			return opts, fmt.Errorf("%s: %v", s.where, err)
		}
		if !seen[s.url] {
			seen[s.url] = true
			opts.urls = append(opts.urls, s.url)
		}
	}
	if len(opts.urls) == 0 {
		return opts, errors.New("no URLs to warm")
	}
	return opts, nil
}

// defaultCache turns the gateway's LISTEN_ADDR into an address to
// connect to: a wildcard or empty host means this machine.
func defaultCache(listen string) string {
	if listen == "" {
		return "127.0.0.1:8081"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen // reported by cacheAddr's rules when dialled
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// cacheAddr validates --cache: HOST:PORT, an http:// prefix allowed.
func cacheAddr(s string) (string, error) {
	addr := strings.TrimSuffix(strings.TrimPrefix(s, "http://"), "/")
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		n, perr := strconv.Atoi(port)
		if host != "" && perr == nil && n >= 1 && n <= 65535 {
			return addr, nil
		}
	}
	return "", fmt.Errorf("--cache %q: want HOST:PORT of the gateway's content port, like 127.0.0.1:8081 or gateway:80", s)
}

// source is a URL and where it was given, for error messages.
type source struct {
	url, where string
}

// readList reads a --from file: one URL per line, optionally followed by
// a # comment; blank lines and lines starting with # are skipped.
func readList(name string) ([]source, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("--from: %v", err)
		}
		defer f.Close()
		r = f
	}
	var out []source
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, line)
		if len(fields) > 1 && !strings.HasPrefix(fields[1], "#") {
			return nil, fmt.Errorf("%s: want one URL per line, got %q", where, sc.Text())
		}
		out = append(out, source{url: fields[0], where: where})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from %s: %v", name, err)
	}
	return out, nil
}

// checkURL accepts absolute http and https URLs with a host.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q: want an absolute http:// or https:// URL without user:password@", raw)
	}
	return nil
}

// requestURL is the URL asked of the gateway: https becomes http with
// the same host and port, since the gateway refuses CONNECT and fetches
// https:// origins over TLS itself. The fragment is dropped.
func requestURL(raw string) string {
	u, _ := url.Parse(raw) // checked by checkURL
	u.Scheme = "http"
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

// result is the outcome of one file.
type result struct {
	url     string
	ok      bool
	bytes   int64  // body bytes read
	problem string // why it failed
}

// warmer fetches the URLs through the gateway and keeps the figures the
// progress line shows.
type warmer struct {
	opts   options
	client *http.Client

	done       atomic.Int64 // files finished
	bytes      atomic.Int64 // body bytes read so far
	knownBytes atomic.Int64 // expected bytes of files whose size is known
	knownFiles atomic.Int64 // files counted in knownBytes
}

func newWarmer(opts options) *warmer {
	tr := &http.Transport{
		Proxy:                 http.ProxyURL(&url.URL{Scheme: "http", Host: opts.cache}),
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   opts.parallel,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		// Warm the representation devices ask for, not a gzipped one.
		DisableCompression: true,
	}
	return &warmer{opts: opts, client: &http.Client{
		Transport: tr,
		// The gateway follows origin redirects itself; a redirect that
		// reaches us means it gave up, and the target would not be cached
		// under the URL devices ask for anyway.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// run fetches every URL with opts.parallel workers, writing a progress line
// to progress at most every `every`, and returns the results in URL order.
func (w *warmer) run(progress io.Writer, every time.Duration) []result {
	results := make([]result, len(w.opts.urls))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(w.opts.parallel, len(w.opts.urls)) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for i := range next {
				results[i] = w.fetch(w.opts.urls[i], buf)
				w.done.Add(1)
			}
		})
	}

	start := time.Now()
	stop := make(chan struct{})
	var reporter sync.WaitGroup
	reporter.Go(func() { w.report(progress, start, every, stop) })

	for i := range w.opts.urls {
		next <- i
	}
	close(next)
	wg.Wait()
	close(stop)
	reporter.Wait()
	return results
}

// report writes progress lines until stop is closed. On a terminal the line
// is rewritten in place.
func (w *warmer) report(out io.Writer, start time.Time, every time.Duration, stop <-chan struct{}) {
	tty := false
	if f, ok := out.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	printed := false
	for {
		select {
		case <-stop:
			if tty && printed {
				fmt.Fprintln(out)
			}
			return
		case <-tick.C:
		}
		line := w.progressLine(time.Since(start))
		if tty {
			fmt.Fprintf(out, "\r%s\x1b[K", line)
		} else {
			fmt.Fprintln(out, line)
		}
		printed = true
	}
}

// progressLine is e.g. "warm: 3/10 files, 120.5 MB, 85.2 MB/s, ETA 12s".
// The ETA assumes that files whose size is not known yet have the average
// size of those whose size is.
func (w *warmer) progressLine(elapsed time.Duration) string {
	total := len(w.opts.urls)
	got := w.bytes.Load()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(got) / s
	}
	eta := "--"
	if kf, kb := w.knownFiles.Load(), w.knownBytes.Load(); kf > 0 && rate > 0 {
		expected := float64(kb) + float64(int64(total)-kf)*float64(kb)/float64(kf)
		left := max(expected-float64(got), 0) / rate
		eta = time.Duration(min(left, 359999) * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("warm: %d/%d files, %s, %s/s, ETA %s",
		w.done.Load(), total, formatBytes(got), formatBytes(int64(rate)), eta)
}

// fetch asks the gateway for one URL and reads the body to the end.
func (w *warmer) fetch(raw string, buf []byte) result {
	res := result{url: raw}
	sized := false // counted in knownBytes
	defer func() {
		if !sized {
			w.knownBytes.Add(res.bytes)
			w.knownFiles.Add(1)
		}
	}()
	req, err := http.NewRequest(http.MethodGet, requestURL(raw), nil)
	if err != nil {
		res.problem = err.Error()
		return res
	}
	req.Header.Set("User-Agent", "gatecache-warm")
	resp, err := w.client.Do(req)
	if err != nil {
		res.problem = netError(err, w.opts.cache)
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		res.problem = resp.Status
		// The gateway explains a refusal in one line (403: which variable
		// would allow the origin); show it.
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if line, _, _ := strings.Cut(strings.TrimSpace(string(msg)), "\n"); line != "" {
			res.problem += ": " + line
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			res.problem += " (redirect to " + loc + ")"
		}
		return res
	}
	if resp.ContentLength >= 0 {
		sized = true
		w.knownBytes.Add(resp.ContentLength)
		w.knownFiles.Add(1)
	}
	n, err := io.CopyBuffer(counter{&w.bytes}, onlyReader{resp.Body}, buf)
	res.bytes = n
	if err != nil {
		res.problem = fmt.Sprintf("%s, body cut short after %d bytes: %v", resp.Status, n, err)
		return res
	}
	res.ok = true
	return res
}

// netError describes a failed request, naming the gateway when it
// could not be reached at all.
func netError(err error, cache string) string {
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "proxyconnect" || op.Op == "dial") {
		return fmt.Sprintf("cannot reach the gateway at %s (is gatecache running? --cache sets the address): %v", cache, op.Err)
	}
	return err.Error()
}

// counter discards what is written, counting the bytes.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// onlyReader hides any WriterTo of the body so that CopyBuffer reads
// through buf and the count advances as bytes arrive.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// formatBytes formats a byte count in SI units (1 MB = 10^6 bytes), as the
// README counts GB.
func formatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n), -1
	for v >= 999.95 && unit < len("kMGTPE")-1 {
		v /= 1000
		unit++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTPE"[unit])
}
