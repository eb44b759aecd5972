// Package monitor tells responsive workers from unresponsive ones (paper
// 4.10; docs/monitoring.md). pRuntimes post heartbeats as side effects; the
// chain counts, per worker and era, the heartbeat intervals in which it
// accepted a fresh one. At the end of an era a worker n of a role is
// unresponsive when c_n < 1/4 · max c_n' over the role's connected workers
// (registered for the whole era). Unresponsive miners are slashed and run
// no contracts until they are responsive for a whole era (their contracts
// move through the recovery path); unresponsive gatekeepers are slashed
// more heavily and excluded from the next election.
package monitor

import (
	"fmt"

	"github.com/phala-go/phala/internal/liveness"
)

// Params are the monitor's chain parameters, fixed at genesis: pRuntimes
// read the interval from the genesis document.
type Params struct {
	// HeartbeatBlocks is the heartbeat interval.
	HeartbeatBlocks int64 `json:"heartbeat_blocks"`
}

// DefaultParams: a heartbeat every 10 blocks.
func DefaultParams() Params { return Params{HeartbeatBlocks: liveness.DefaultHeartbeatBlocks} }

// Validate checks the parameters against the era length.
func (p Params) Validate(eraBlocks int64) error {
	if p.HeartbeatBlocks < 1 || p.HeartbeatBlocks > 100_000 {
		return fmt.Errorf("monitor heartbeat_blocks must be between 1 and 100,000, got %d", p.HeartbeatBlocks)
	}
	if eraBlocks > 0 && eraBlocks < 4*p.HeartbeatBlocks {
		return fmt.Errorf("monitor heartbeat_blocks (%d) must fit at least 4 times in an era (era_blocks %d)", p.HeartbeatBlocks, eraBlocks)
	}
	return nil
}

// Report is an era's responsiveness accounting, kept in state.
type Report struct {
	Era uint64 `json:"era"`
	// Windows is how many heartbeat intervals the era had.
	Windows int64 `json:"windows"`
	// Counts are the heartbeat counts of the judged workers (hex key).
	Counts map[string]int64 `json:"counts"`
	// MaxMiner and MaxGatekeeper are max c_n' of each role.
	MaxMiner      int64 `json:"max_miner"`
	MaxGatekeeper int64 `json:"max_gatekeeper"`
	// Unresponsive workers (hex key) and what was slashed from each.
	Unresponsive map[string]uint64 `json:"unresponsive,omitempty"`
	// Gatekeepers and Miners are the judged workers of each role (hex).
	Gatekeepers []string `json:"gatekeepers"`
	Miners      []string `json:"miners"`
}
