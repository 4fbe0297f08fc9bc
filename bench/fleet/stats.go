package main

import (
	"fmt"
	"slices"
	"time"
)

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// secs formats a duration in seconds with two decimals.
func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// times formats n as a multiple of unit.
func times(n, unit int64) string {
	if unit == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(n)/float64(unit))
}

// mib formats bytes in MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// kib formats bytes in KiB.
func kib(n int64) string { return fmt.Sprintf("%d KiB", n>>10) }
