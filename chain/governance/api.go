// Package governance decides, by referendum with PHA-weighted votes, what a
// privileged genesis account used to: module parameters, the pRuntime
// measurement allowlist, treasury spends, and the emergency freeze of a TEE
// platform's registrations after a vulnerability is disclosed.
//
// Anyone may submit a proposal with one action and a deposit of at least
// Params.MinDeposit uPHA, which waits in the Deposits module account. The
// action is checked at submission (Hooks.Check), so a malformed change is
// refused then rather than found when voting ends. A freeze_platform
// proposal is an emergency one: it votes for EmergencyVotingBlocks and passes
// if yes reaches EmergencyThresholdPermille of the total supply and beats no.
// Every other proposal votes for VotingBlocks and passes if the turnout
// (yes+no+abstain) reaches QuorumPermille of the supply and yes beats no.
//
// A vote is weighed when voting ends, not when it is cast: each voter counts
// with its PHA at that moment (Hooks.Weight: free balance plus its own
// bonds), so PHA moved after voting counts once, with its holder at the end,
// and only if that holder voted. A later vote by the same account replaces
// its earlier one.
//
// At the end of the block where voting ends (EndBlock), a passed proposal's
// action runs on a write cache (Hooks.Execute): if it fails, none of its
// writes are kept and the proposal is "failed" with the error. The deposit
// goes back to the proposer if the turnout reached the quorum, else to the
// Treasury module account.
//
// State, all under "governance/" (ids and heights are 8-byte big endian,
// addresses 20 bytes):
//
//	governance/params            Params, JSON
//	governance/last_id           the last proposal id assigned (absent: none)
//	governance/open              the proposals still voting, ascending id:
//	                             16 bytes each, voting_end then id
//	governance/p/<id>            chainpb.Proposal, deterministic protobuf
//	governance/v/<id><voter>     the voter's current option, 1 byte
//	governance/vn/<id>           how many distinct accounts voted
//	governance/vi/<id><i>        the i-th distinct voter (from 0), in
//	                             first-vote order
package governance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
)

// Codespace of the errors below.
const Codespace = "governance"

// Stable rejection codes. Never renumber.
var (
	ErrInvalidTitle    = errs.Register(Codespace, 2, "invalid proposal title")
	ErrInvalidDeposit  = errs.Register(Codespace, 3, "invalid proposal deposit")
	ErrInvalidAction   = errs.Register(Codespace, 4, "invalid proposal action")
	ErrTooManyOpen     = errs.Register(Codespace, 5, "too many proposals are voting")
	ErrUnknownProposal = errs.Register(Codespace, 6, "unknown proposal")
	ErrVotingClosed    = errs.Register(Codespace, 7, "proposal is not open for voting")
	ErrInvalidOption   = errs.Register(Codespace, 8, "invalid vote option")
	ErrTreasuryFunds   = errs.Register(Codespace, 9, "treasury lacks the funds")
)

// Proposal statuses.
const (
	StatusVoting   = "voting"
	StatusPassed   = "passed"
	StatusRejected = "rejected"
	// StatusFailed: the proposal passed but its action could not be
	// applied; Proposal.Error says why and no write of the action was kept.
	StatusFailed = "failed"
)

const (
	// MaxTitleBytes bounds a proposal's title.
	MaxTitleBytes = 140
	// MaxModuleBytes bounds ParamChange.module.
	MaxModuleBytes = 32
	// MaxParamsJSONBytes bounds ParamChange.params_json.
	MaxParamsJSONBytes = 64 << 10
	// MaxPlatformBytes bounds a TEE platform name (as the registry does).
	MaxPlatformBytes = 32
	// MaxMeasurementBytes bounds a measurement (as the registry does).
	MaxMeasurementBytes = 64
	// MaxListedProposals bounds what Proposals returns (the newest).
	MaxListedProposals = 1000
	// MaxErrorBytes bounds the error text kept on a failed proposal.
	MaxErrorBytes = 1024
)

// Module accounts.
var (
	// Deposits holds the deposits of the proposals still voting.
	Deposits = crypto.ModuleAddress("governance_deposits")
	// Treasury (bank.Treasury) receives the deposits of proposals too few
	// voted on, and pays treasury_spend proposals.
	Treasury = bank.Treasury
)

// Params are the governance module's chain parameters.
type Params struct {
	// VotingBlocks is how many blocks a standard proposal votes for.
	VotingBlocks int64 `json:"voting_blocks"`
	// EmergencyVotingBlocks is how many blocks an emergency proposal
	// (freeze_platform) votes for.
	EmergencyVotingBlocks int64 `json:"emergency_voting_blocks"`
	// MinDeposit, in uPHA, is the least deposit a proposal carries.
	MinDeposit uint64 `json:"min_deposit"`
	// QuorumPermille is the share of the total supply, in thousandths,
	// that must vote (yes, no or abstain) for a standard proposal to
	// count, and for any proposal's deposit to be returned.
	QuorumPermille uint64 `json:"quorum_permille"`
	// EmergencyThresholdPermille is the share of the total supply, in
	// thousandths, that must vote yes for an emergency proposal to pass
	// (yes must also beat no).
	EmergencyThresholdPermille uint64 `json:"emergency_threshold_permille"`
	// MaxOpen bounds the proposals voting at once.
	MaxOpen int `json:"max_open"`
}

// Bounds that Validate enforces.
const (
	MaxVotingBlocks = 10_000_000
	MaxOpenLimit    = 1000
)

// DefaultParams: 100 blocks to vote (20 for an emergency), a 1,000 PHA
// deposit, a 10% quorum, 33.4% of the supply voting yes to pass an
// emergency proposal, at most 32 proposals voting at once.
func DefaultParams() Params {
	return Params{
		VotingBlocks:               100,
		EmergencyVotingBlocks:      20,
		MinDeposit:                 1_000 * bank.UnitsPerPHA,
		QuorumPermille:             100,
		EmergencyThresholdPermille: 334,
		MaxOpen:                    32,
	}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	switch {
	case p.VotingBlocks < 1 || p.VotingBlocks > MaxVotingBlocks:
		return fmt.Errorf("governance voting_blocks must be 1 to %d, got %d", MaxVotingBlocks, p.VotingBlocks)
	case p.EmergencyVotingBlocks < 1 || p.EmergencyVotingBlocks > p.VotingBlocks:
		return fmt.Errorf("governance emergency_voting_blocks must be 1 to voting_blocks (%d), got %d", p.VotingBlocks, p.EmergencyVotingBlocks)
	case p.MinDeposit < 1 || p.MinDeposit > bank.TotalSupply:
		return fmt.Errorf("governance min_deposit must be 1 to %d uPHA, got %d", bank.TotalSupply, p.MinDeposit)
	case p.QuorumPermille < 1 || p.QuorumPermille > 1000:
		return fmt.Errorf("governance quorum_permille must be 1 to 1000, got %d", p.QuorumPermille)
	case p.EmergencyThresholdPermille < 1 || p.EmergencyThresholdPermille > 1000:
		return fmt.Errorf("governance emergency_threshold_permille must be 1 to 1000, got %d", p.EmergencyThresholdPermille)
	case p.MaxOpen < 1 || p.MaxOpen > MaxOpenLimit:
		return fmt.Errorf("governance max_open must be 1 to %d, got %d", MaxOpenLimit, p.MaxOpen)
	}
	return nil
}

// DecodeParams reads parameters as a param_change proposal carries them:
// one JSON object, every field known, valid.
func DecodeParams(b []byte) (Params, error) {
	var p Params
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Params{}, fmt.Errorf("governance params: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Params{}, fmt.Errorf("governance params: data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return Params{}, err
	}
	return p, nil
}
