package lightclient

import (
	"errors"
	"fmt"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/crypto/encoding"
	"github.com/cometbft/cometbft/types"

	"github.com/phala-go/phala/proto/pruntimepb"
)

// Bounds DecodeBlock enforces before decoding anything.
const (
	// MaxSignedHeaderBytes fits a header with a commit of types.MaxVotesCount
	// signatures (about 1.1 MB) with room to spare.
	MaxSignedHeaderBytes = 4 << 20
	// MaxValidatorSetBytes fits types.MaxVotesCount validators.
	MaxValidatorSetBytes = 4 << 20
	// MaxEvents and MaxEventLogBytes bound one block's event log.
	MaxEvents        = 1 << 20
	MaxEventLogBytes = 64 << 20
)

// DecodeBlock decodes a sync step as the host sent it. It is strict: unknown
// fields, oversize parts, a header without a commit, an ill-formed header,
// commit or validator set are refused (ErrMalformed). What needs the chain's
// identity or trust (chain id, that the commit signs this header, signatures,
// validators) is Ingest's to check. The returned Block shares nothing with
// sb but the event log.
func DecodeBlock(sb *pruntimepb.SyncBlock) (Block, error) {
	if sb == nil {
		return Block{}, fmt.Errorf("%w: no block", ErrMalformed)
	}
	if len(sb.ProtoReflect().GetUnknown()) != 0 {
		return Block{}, fmt.Errorf("%w: unknown fields in the sync block", ErrMalformed)
	}
	var b Block
	var err error
	if b.SignedHeader, err = decodeSignedHeader(sb.SignedHeader); err != nil {
		return Block{}, fmt.Errorf("%w: signed header: %w", ErrMalformed, err)
	}
	if len(sb.Validators) != 0 {
		if b.Validators, err = decodeValidatorSet(sb.Validators); err != nil {
			return Block{}, fmt.Errorf("%w: validators of block %d: %w", ErrMalformed, b.SignedHeader.Height, err)
		}
	}
	if l := sb.EventLog; l != nil {
		if len(l.ProtoReflect().GetUnknown()) != 0 {
			return Block{}, fmt.Errorf("%w: unknown fields in the event log", ErrMalformed)
		}
		if len(l.Events) > MaxEvents {
			return Block{}, fmt.Errorf("%w: event log of %d events, at most %d", ErrMalformed, len(l.Events), MaxEvents)
		}
		n := 0
		for _, e := range l.Events {
			n += len(e)
		}
		if n > MaxEventLogBytes {
			return Block{}, fmt.Errorf("%w: event log of %d bytes, at most %d", ErrMalformed, n, MaxEventLogBytes)
		}
		b.EventLog = l
	}
	return b, nil
}

// EncodeBlock is the host's side of DecodeBlock.
func EncodeBlock(b Block) (*pruntimepb.SyncBlock, error) {
	if b.SignedHeader == nil {
		return nil, errors.New("block has no signed header")
	}
	sh, err := b.SignedHeader.ToProto().Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode signed header: %w", err)
	}
	sb := &pruntimepb.SyncBlock{SignedHeader: sh, EventLog: b.EventLog}
	if b.Validators != nil {
		vp, err := b.Validators.ToProto()
		if err != nil {
			return nil, fmt.Errorf("encode validators: %w", err)
		}
		if sb.Validators, err = vp.Marshal(); err != nil {
			return nil, fmt.Errorf("encode validators: %w", err)
		}
	}
	return sb, nil
}

// decodeSignedHeader decodes a cometbft.types.v1.SignedHeader; the header
// and the commit each pass their ValidateBasic (in the FromProto calls) and
// must be for the same height.
func decodeSignedHeader(bz []byte) (*types.SignedHeader, error) {
	if len(bz) == 0 {
		return nil, errors.New("missing")
	}
	if len(bz) > MaxSignedHeaderBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", len(bz), MaxSignedHeaderBytes)
	}
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(bz); err != nil {
		return nil, err
	}
	if p.Header == nil || p.Commit == nil {
		return nil, errors.New("a header and its commit are both required")
	}
	if n := len(p.Commit.Signatures); n > types.MaxVotesCount {
		return nil, fmt.Errorf("commit has %d signatures, at most %d", n, types.MaxVotesCount)
	}
	sh, err := types.SignedHeaderFromProto(&p)
	if err != nil {
		return nil, err
	}
	if sh.Commit.Height != sh.Height {
		return nil, fmt.Errorf("header %d comes with a commit for block %d", sh.Height, sh.Commit.Height)
	}
	return sh, nil
}

// decodeValidatorSet decodes a cometbft.types.v1.ValidatorSet. The checks
// before types.ValidatorSetFromProto keep it from panicking on hostile
// input (a total power over types.MaxTotalVotingPower, a validator without
// any public key); it runs ValidatorSet.ValidateBasic itself.
func decodeValidatorSet(bz []byte) (*types.ValidatorSet, error) {
	if len(bz) > MaxValidatorSetBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", len(bz), MaxValidatorSetBytes)
	}
	var p cmtproto.ValidatorSet
	if err := p.Unmarshal(bz); err != nil {
		return nil, err
	}
	if n := len(p.Validators); n == 0 || n > types.MaxVotesCount {
		return nil, fmt.Errorf("%d validators, want 1..%d", n, types.MaxVotesCount)
	}
	var total int64
	for i, v := range p.Validators {
		if err := checkValidator(v); err != nil {
			return nil, fmt.Errorf("validator %d: %w", i, err)
		}
		if v.VotingPower <= 0 {
			return nil, fmt.Errorf("validator %d has voting power %d", i, v.VotingPower)
		}
		if total += v.VotingPower; total > types.MaxTotalVotingPower {
			return nil, fmt.Errorf("total voting power over %d", types.MaxTotalVotingPower)
		}
	}
	if err := checkValidator(p.Proposer); err != nil {
		return nil, fmt.Errorf("proposer: %w", err)
	}
	return types.ValidatorSetFromProto(&p)
}

func checkValidator(v *cmtproto.Validator) error {
	if v == nil {
		return errors.New("missing")
	}
	if v.VotingPower < 0 || v.VotingPower > types.MaxTotalVotingPower {
		return fmt.Errorf("voting power %d", v.VotingPower)
	}
	if v.PubKey == nil {
		// types.ValidatorFromProto falls back to *v.PubKey when these fail.
		if _, err := encoding.PubKeyFromTypeAndBytes(v.PubKeyType, v.PubKeyBytes); err != nil {
			return err
		}
	}
	return nil
}
