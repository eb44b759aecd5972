// Package contracts records confidential contracts on chain (paper sections
// 4.6, 4.8 and 4.9): the public code, the instance and its miners, the
// contract key k_c as the first gatekeeper sent it (encrypted under the
// root key), the contract's public input key, every input (init, commands,
// accepted contract messages) ordered and still sealed in its inbox, and
// the latest encrypted state checkpoint. Any registered miner can take an
// instance over from the checkpoint and the inbox after it. The chain
// reads no input and no state: it only orders, stores and compares roots.
package contracts

import (
	"fmt"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/internal/inbox"
)

// Codespace of the errors below.
const Codespace = "contracts"

// Stable rejection codes. Never renumber.
var (
	ErrUnknownContract = errs.Register(Codespace, 2, "unknown contract")
	ErrMalformed       = errs.Register(Codespace, 3, "malformed contract message")
	ErrCodeTooLarge    = errs.Register(Codespace, 4, "contract code too large")
	ErrNotLaunched     = errs.Register(Codespace, 5, "confidential contracts are disabled before the launch")
	ErrBadMiner        = errs.Register(Codespace, 6, "not a worker that can run contracts")
	ErrNotKeyed        = errs.Register(Codespace, 7, "contract has no key yet")
	ErrGasLimit        = errs.Register(Codespace, 8, "gas limit out of range")
	ErrNotDeployer     = errs.Register(Codespace, 9, "only the deployer may do this")
	ErrRekeying        = errs.Register(Codespace, 10, "contract key is rotating")
	ErrStaleKey        = errs.Register(Codespace, 11, "sealed to a retired contract key")
)

const (
	// MaxInitArgsBytes bounds a deploy's init arguments.
	MaxInitArgsBytes = 64 << 10
	// MaxEnvelopeBytes bounds a sealed command or message.
	MaxEnvelopeBytes = inbox.MaxEnvelopeBytes
	// MaxMiners bounds an instance's miners.
	MaxMiners = inbox.MaxMiners
	// MaxDiscrepancies bounds the discrepancy records a query returns
	// (the newest).
	MaxDiscrepancies = 1000
)

// Params are the contract module's chain parameters.
type Params struct {
	// MaxCodeBytes bounds a contract's uncompressed wasm code.
	MaxCodeBytes int64 `json:"max_code_bytes"`
	// DeployFee, in uPHA, is burnt per deployment on top of the
	// transaction fee (which already pays per byte of code).
	DeployFee uint64 `json:"deploy_fee"`
	// GasPrice is the uPHA a command pays per million gas of its limit,
	// whether it uses it or not: execution is off chain, so the chain
	// charges what it can know.
	GasPrice uint64 `json:"gas_price_per_million"`
	// MaxGas bounds a command's gas limit. (A contract-to-contract message
	// runs with pRuntime's fixed MessageGas, paid by the sending command.)
	MaxGas uint64 `json:"max_gas"`
	// CheckpointInterval: an instance deployed under these parameters is
	// checkpointed at block heights that are multiples of it, when inputs
	// ran since its last checkpoint. 0 in a genesis means the default.
	CheckpointInterval uint64 `json:"checkpoint_interval,omitempty"`
	// KeyRotationBlocks: a contract's key is rotated by its miner once it
	// is this many blocks old, and after a miner leaves the contract
	// (docs/contracts.md, "Contract key rotation"). 0: never.
	KeyRotationBlocks uint64 `json:"key_rotation_blocks,omitempty"`
}

// RekeyHoldBlocks is how long a contract key rotation may hold the
// contract's inputs: its miner's checkpoint under the new key must land
// within it, else the old key stays and inputs resume.
const RekeyHoldBlocks = 10

// rekeyBackoff is how long after a rotation that did not complete the
// next may start.
const rekeyBackoff = 10 * RekeyHoldBlocks

// DefaultCheckpointInterval is 20 blocks: about 20 s at the devnet's pace.
const DefaultCheckpointInterval = 20

// DefaultKeyRotationBlocks is a day of blocks at one a second.
const DefaultKeyRotationBlocks = 86_400

// DefaultParams: 8 MiB of code, 10 PHA to deploy, 1 uPHA per million gas
// (a 100 M gas command pays 100 uPHA on top of its fee), at most 1 G gas,
// a checkpoint every 20 blocks, contract keys rotated daily.
func DefaultParams() Params {
	return Params{MaxCodeBytes: 8 << 20, DeployFee: 10 * bank.UnitsPerPHA, GasPrice: 1, MaxGas: 1_000_000_000,
		CheckpointInterval: DefaultCheckpointInterval, KeyRotationBlocks: DefaultKeyRotationBlocks}
}

// interval is the checkpoint interval, the default for 0.
func (p Params) interval() uint64 {
	if p.CheckpointInterval == 0 {
		return DefaultCheckpointInterval
	}
	return p.CheckpointInterval
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.MaxCodeBytes < 1024 || p.MaxCodeBytes > 64<<20 || p.MaxGas == 0 || p.MaxGas > 1e12 || p.GasPrice > 1e9 || p.CheckpointInterval > 1e6 {
		return fmt.Errorf("contracts params: max_code_bytes 1 KiB..64 MiB, max_gas 1..1e12, gas_price_per_million at most 1e9, checkpoint_interval at most 1e6; got %+v", p)
	}
	if p.KeyRotationBlocks != 0 && (p.KeyRotationBlocks < 2*RekeyHoldBlocks || p.KeyRotationBlocks > 1e8) {
		return fmt.Errorf("contracts key_rotation_blocks must be 0 (never) or %d to 1e8, got %d", 2*RekeyHoldBlocks, p.KeyRotationBlocks)
	}
	return nil
}

// GasFee is what a command with gas limit gas pays for execution.
func (p Params) GasFee(gas uint64) uint64 {
	return (gas/1_000_000 + min(1, gas%1_000_000)) * p.GasPrice
}
