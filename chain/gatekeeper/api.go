// Package gatekeeper runs the network launch (paper section 4.4): in the
// pre-launch phase workers register and stake; gatekeepers are elected by
// stake; the genesis worker seals the root key to each of them; when every
// gatekeeper confirms it holds the key, the chain is launched and the
// genesis worker retired. A round whose gatekeepers do not all confirm by
// the deadline expires and a new election follows.
package gatekeeper

import (
	"crypto/ed25519"
	"fmt"

	"github.com/phala-go/phala/chain/errs"
)

// Codespace of the errors below.
const Codespace = "gatekeeper"

// Stable rejection codes. Never renumber.
var (
	ErrInOpenRound = errs.Register(Codespace, 2, "worker is elected in an open launch round")
	ErrInRotation  = errs.Register(Codespace, 3, "worker takes part in a root key rotation")
)

// Phase is where the network is in its life.
type Phase string

const (
	// PhasePreLaunch: after the genesis block and until the elected
	// gatekeepers hold the root key; confidential contracts are disabled.
	PhasePreLaunch Phase = "pre-launch"
	// PhaseLaunched: gatekeepers hold the root key; the genesis worker is retired.
	PhaseLaunched Phase = "launched"
)

// Params are the launch's chain parameters.
type Params struct {
	// NGatekeepers is how many gatekeepers the election seats.
	NGatekeepers int `json:"n_gatekeepers"`
	// ElectionHeight is the first block at which pre-launch may end with an
	// election (it is retried each block until enough candidates stand).
	ElectionHeight int64 `json:"election_height"`
	// HandoverBlocks is how long elected gatekeepers have, in blocks, to
	// receive the root key and confirm.
	HandoverBlocks int64 `json:"handover_blocks"`
	// EraBlocks is the length of an era: its last block elects the next
	// gatekeeper set and starts the root key rotation (docs/eras.md).
	// 0: no eras, the launch's gatekeepers and root key stay.
	EraBlocks int64 `json:"era_blocks"`
	// RotationBlocks is how long a rotation attempt has, in blocks, before
	// it expires and the unresponsive are slashed.
	RotationBlocks int64 `json:"rotation_blocks"`
}

// DefaultParams: three gatekeepers, elected from block 20, with 50 blocks
// to confirm; eras of 600 blocks, 30 blocks per rotation attempt.
func DefaultParams() Params {
	return Params{NGatekeepers: 3, ElectionHeight: 20, HandoverBlocks: 50, EraBlocks: 600, RotationBlocks: 30}
}

// Genesis is the launch's genesis state.
type Genesis struct {
	Params Params `json:"params"`
	// RootPublicKey names the root key k_r^(0) the genesis worker created
	// (crypto.RootPublicKey); gatekeepers must confirm this one.
	RootPublicKey []byte `json:"root_public_key"`
}

// Validate checks the genesis state.
func (g Genesis) Validate() error {
	if err := g.Params.Validate(); err != nil {
		return err
	}
	if len(g.RootPublicKey) != ed25519.PublicKeySize {
		return fmt.Errorf("gatekeeper root_public_key must be %d bytes, got %d", ed25519.PublicKeySize, len(g.RootPublicKey))
	}
	return nil
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.NGatekeepers < 1 || p.NGatekeepers > 100 || p.ElectionHeight < 1 || p.HandoverBlocks < 1 {
		return fmt.Errorf("gatekeeper params: n_gatekeepers 1..100, election_height and handover_blocks positive; got %+v", p)
	}
	if p.EraBlocks < 0 || (p.EraBlocks > 0 && (p.RotationBlocks < 3 || p.RotationBlocks >= p.EraBlocks)) {
		return fmt.Errorf("gatekeeper params: era_blocks 0 (no eras) or positive, and then rotation_blocks from 3 to era_blocks-1; got era_blocks %d, rotation_blocks %d", p.EraBlocks, p.RotationBlocks)
	}
	return nil
}
