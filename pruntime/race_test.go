//go:build race

package pruntime

// raceEnabled: the race detector slows wasm execution tenfold; tests that
// run contracts skip under it (package vm is not run with -race either).
const raceEnabled = true
