package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type lockedWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
	n  int // writes
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return w.b.Write(p)
}

func TestBufferedLogBatchesLinesAndFlushesAtClose(t *testing.T) {
	out := &lockedWriter{}
	b := newBufferedLog(out)
	log := slog.New(slog.NewTextHandler(b, nil))
	for i := range 100 {
		log.Info("access", "n", i)
	}
	b.Close()
	out.mu.Lock()
	defer out.mu.Unlock()
	if got := strings.Count(out.b.String(), "msg=access"); got != 100 {
		t.Fatalf("%d lines written, want 100", got)
	}
	if out.n >= 100 {
		t.Fatalf("%d writes for 100 lines: not batched", out.n)
	}
}
