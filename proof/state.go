package proof

import (
	"bytes"
	"fmt"

	cmtcrypto "github.com/cometbft/cometbft/api/cometbft/crypto/v1"
	"github.com/cometbft/cometbft/types"
	ics23 "github.com/cosmos/ics23/go"
)

// Proof operation types in an ABCI query response, in order: the ICS-23
// proof of the key in the IAVL state tree, then the event log root that
// joins the state root to the app hash.
const (
	OpIAVL    = "ics23:iavl"
	OpLogRoot = "phala:logroot"
)

// StateProof proves the value of Key (or its absence, when Value is nil) in
// the state after block Height.
type StateProof struct {
	Height  int64
	Key     []byte
	Value   []byte
	Proof   *ics23.CommitmentProof
	LogRoot []byte
}

// ProofOps encodes p for an ABCI query response.
func (p *StateProof) ProofOps() (*cmtcrypto.ProofOps, error) {
	b, err := p.Proof.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode state proof: %w", err)
	}
	return &cmtcrypto.ProofOps{Ops: []cmtcrypto.ProofOp{
		{Type: OpIAVL, Key: p.Key, Data: b},
		{Type: OpLogRoot, Data: p.LogRoot},
	}}, nil
}

// StateProofFromOps decodes the proof operations of an ABCI query response
// for key at height. Value is what the response claims; nil means absent.
func StateProofFromOps(height int64, key, value []byte, ops *cmtcrypto.ProofOps) (*StateProof, error) {
	if ops == nil || len(ops.Ops) != 2 {
		return nil, fmt.Errorf("%w: want 2 proof operations (%s, %s)", ErrMalformed, OpIAVL, OpLogRoot)
	}
	if ops.Ops[0].Type != OpIAVL || ops.Ops[1].Type != OpLogRoot {
		return nil, fmt.Errorf("%w: proof operations are %q, %q; want %q, %q", ErrMalformed, ops.Ops[0].Type, ops.Ops[1].Type, OpIAVL, OpLogRoot)
	}
	if !bytes.Equal(ops.Ops[0].Key, key) {
		return nil, fmt.Errorf("%w: proof is for key %X, asked for %X", ErrMalformed, ops.Ops[0].Key, key)
	}
	var cp ics23.CommitmentProof
	if err := cp.Unmarshal(ops.Ops[0].Data); err != nil {
		return nil, fmt.Errorf("%w: ics23 proof: %v", ErrMalformed, err)
	}
	return &StateProof{Height: height, Key: key, Value: value, Proof: &cp, LogRoot: ops.Ops[1].Data}, nil
}

// VerifyState checks p against header: the value (or absence) of p.Key in
// the state after block header.Height-1. As with VerifyEventLog, header is
// the verified header the caller fetched for the height it asked about
// (never derived from p): a proof for any other block is refused.
func VerifyState(header *types.Header, p *StateProof) (err error) {
	if header == nil || p == nil || p.Proof == nil {
		return fmt.Errorf("%w: header and proof are both required", ErrMalformed)
	}
	if header.Height != p.Height+1 {
		return fmt.Errorf("%w: state after block %d is committed in header %d, got header %d", ErrHeight, p.Height, p.Height+1, header.Height)
	}
	if len(p.LogRoot) != RootSize {
		return fmt.Errorf("%w: event log root is %d bytes, want %d", ErrMalformed, len(p.LogRoot), RootSize)
	}
	if len(p.Key) == 0 {
		return fmt.Errorf("%w: empty key", ErrMalformed)
	}
	// ics23 walks attacker-chosen structures; treat any panic in it as a
	// malformed proof rather than crash the verifier.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: ics23 proof: %v", ErrMalformed, r)
		}
	}()
	root, err := p.Proof.Calculate()
	if err != nil {
		return fmt.Errorf("%w: ics23 proof: %v", ErrMalformed, err)
	}
	if got := AppHash(root, p.LogRoot); !bytes.Equal(got, header.AppHash) {
		return fmt.Errorf("%w: state proof for key %X at block %d yields app hash %X, header %d has %X", ErrMismatch, p.Key, p.Height, got, header.Height, []byte(header.AppHash))
	}
	if p.Value == nil {
		if !ics23.VerifyNonMembership(ics23.IavlSpec, root, p.Proof, p.Key) {
			return fmt.Errorf("%w: key %X is not proven absent at block %d", ErrMismatch, p.Key, p.Height)
		}
		return nil
	}
	if !ics23.VerifyMembership(ics23.IavlSpec, root, p.Proof, p.Key, p.Value) {
		return fmt.Errorf("%w: key %X does not hold the claimed value at block %d", ErrMismatch, p.Key, p.Height)
	}
	return nil
}
