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
)

// Pool is the module account that holds bonded PHA.
var Pool = crypto.ModuleAddress("staking")

// Params are the staking module's chain parameters.
type Params struct {
	// MinCandidateStake is the least self bond, in uPHA, that makes a
	// registered worker a gatekeeper candidate.
	MinCandidateStake uint64 `json:"min_candidate_stake"`
}

// DefaultParams: 1,000 PHA to stand as a gatekeeper.
func DefaultParams() Params { return Params{MinCandidateStake: 1_000_000_000} }

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.MinCandidateStake == 0 {
		return fmt.Errorf("staking min_candidate_stake must be positive")
	}
	return nil
}
