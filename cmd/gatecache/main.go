// Command gatecache is a transparent HTTP cache for software updates on edge
// gateways. With no arguments it serves; `gatecache verify [--repair]` checks
// a stopped cache's data against its checksums; `gatecache warm URL...`
// fills a running cache before a rollout.
//
// Configuration is environment variables only (see the README); an invalid
// value stops startup with exit status 2 and a line naming the variable.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gatecache/internal/config"
	"gatecache/internal/warm"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2 // bad configuration or arguments
)

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := config.FromEnv(os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, "gatecache: "+err.Error())
		return exitUsage
	}
	log := newLogger(cfg.LogFormat, stderr)
	cmd := ""
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "", "serve":
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, cfg, log); err != nil {
			log.Error("gatecache stopped", "err", err)
			var se startupError
			if errors.As(err, &se) {
				return exitUsage
			}
			return exitFailure
		}
		return exitOK
	case "verify":
		return verify(cfg, args, stdout, stderr)
	case "warm":
		return warm.Main(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "gatecache: unknown command %q\n%s", cmd, usage)
		return exitUsage
	}
}

const usage = `usage:
  gatecache                 serve (configuration from the environment, see README)
  gatecache verify [--repair]
                            check every cached block of a stopped cache against its
                            checksum (exit 1 if one is bad or missing; stray
                            files a crash leaves are reported only); --repair
                            drops bad blocks and deletes stray files
  gatecache warm [--cache HOST:PORT] [--from FILE] [--parallel N] URL...
                            ask a running gatecache for each URL so that it is
                            cached before a rollout
`

func newLogger(format string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if os.Getenv("GATECACHE_DEBUG") != "" {
		opts.Level = slog.LevelDebug
	}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startupError is a configuration problem found only when acting on it
// (a port in use, a drive another gatecache uses): exit status 2.
type startupError struct{ error }

func (e startupError) Unwrap() error { return e.error }
