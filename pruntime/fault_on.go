//go:build phalafault

package pruntime

import (
	"os"
	"path/filepath"
)

// faults are test-only fault hooks (build tag phalafault), switched on by
// files in the pRuntime's data directory so a test can flip them on one
// worker of a running network.
type faults struct{ dir string }

func newFaults(dir string) faults { return faults{dir: dir} }

// FaultDivergeFile, when present, makes every successful call write a key
// the contract never wrote: the miner's state root departs from its
// peers'.
const FaultDivergeFile = "FAULT_DIVERGE"

func (f faults) diverge() bool {
	_, err := os.Stat(filepath.Join(f.dir, FaultDivergeFile))
	return err == nil
}
