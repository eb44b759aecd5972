//go:build !phalafault

package pruntime

// faults are test-only fault hooks, compiled in with the build tag
// phalafault (e2e scenarios); in every other build they do nothing.
type faults struct{}

func newFaults(string) faults { return faults{} }

// diverge: make this miner's state depart from what its inputs produce.
func (faults) diverge() bool { return false }
