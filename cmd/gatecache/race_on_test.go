//go:build race

package main

// raceFlags build the end-to-end binary with the race detector when the
// tests themselves run with it (it needs cgo, which not every machine has).
var raceFlags = []string{"-race"}
