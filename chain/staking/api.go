// Package staking bonds PHA to workers standing as gatekeeper candidates and
// to nominations, and elects gatekeepers by stake with sequential Phragmen
// (phragmen.go). Bonded PHA sits in the staking module account.
package staking

import (
	"fmt"

	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
)

// Codespace of the errors below.
const Codespace = "staking"

// Stable rejection codes. Never renumber.
var (
	ErrInvalidAmount   = errs.Register(Codespace, 2, "invalid stake amount")
	ErrNotOperator     = errs.Register(Codespace, 3, "signer is not the worker's operator")
	ErrNotCandidate    = errs.Register(Codespace, 4, "not an eligible candidate")
	ErrTooManyTargets  = errs.Register(Codespace, 5, "too many nomination targets")
	ErrMalformedTarget = errs.Register(Codespace, 6, "malformed nomination target")
	ErrNotBonded       = errs.Register(Codespace, 7, "not enough bonded to unbond")
	ErrSeatedUnbond    = errs.Register(Codespace, 8, "a gatekeeper cannot unbond below the candidate minimum")
	ErrUnbondingQueue  = errs.Register(Codespace, 9, "too many unbondings at once")
)

// Pool is the module account that holds bonded PHA.
var Pool = crypto.ModuleAddress("staking")

// Params are the staking module's chain parameters.
type Params struct {
	// MinCandidateStake is the least self bond, in uPHA, that makes a
	// registered worker a gatekeeper candidate.
	MinCandidateStake uint64 `json:"min_candidate_stake"`
	// MinMinerStake is the least self bond, in uPHA, that lets a worker
	// run contracts (0: none needed).
	MinMinerStake uint64 `json:"min_miner_stake"`
	// UnbondingBlocks is how long unbonded PHA stays in the pool, and
	// slashable, before it is paid back.
	UnbondingBlocks int64 `json:"unbonding_blocks"`
	// SlashMinerPermille and SlashGatekeeperPermille are the parts of a
	// worker's bond (self stake and its unbonding) taken when it is found
	// unresponsive as a miner or as a gatekeeper.
	SlashMinerPermille      uint64 `json:"slash_miner_permille"`
	SlashGatekeeperPermille uint64 `json:"slash_gatekeeper_permille"`
}

// DefaultParams: 1,000 PHA to stand as a gatekeeper, 10 PHA to mine, 200
// blocks to unbond, 1% slashed from an unresponsive miner and 10% from an
// unresponsive gatekeeper.
func DefaultParams() Params {
	return Params{MinCandidateStake: 1_000_000_000, MinMinerStake: 10_000_000, UnbondingBlocks: 200,
		SlashMinerPermille: 10, SlashGatekeeperPermille: 100}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.MinCandidateStake == 0 {
		return fmt.Errorf("staking min_candidate_stake must be positive")
	}
	if p.MinMinerStake > p.MinCandidateStake {
		return fmt.Errorf("staking min_miner_stake (%d) must not exceed min_candidate_stake (%d)", p.MinMinerStake, p.MinCandidateStake)
	}
	if p.UnbondingBlocks < 0 || p.UnbondingBlocks > 10_000_000 {
		return fmt.Errorf("staking unbonding_blocks must be between 0 and 10,000,000, got %d", p.UnbondingBlocks)
	}
	if p.SlashMinerPermille > 1000 || p.SlashGatekeeperPermille > 1000 {
		return fmt.Errorf("staking slash permilles must be at most 1000, got miner %d and gatekeeper %d", p.SlashMinerPermille, p.SlashGatekeeperPermille)
	}
	return nil
}
