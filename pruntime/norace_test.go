//go:build !race

package pruntime

const raceEnabled = false
