// Package lightclient is the verified chain sync of pRuntime, the program
// inside the TEE. pRuntime trusts nothing but the genesis validator set of
// the chain it was initialised for, and the validators' signatures: the
// untrusted host feeds it blocks one at a time, and a block is adopted only
// when CometBFT's own light-client verification accepts its header from the
// last trusted one, and the worker event log that comes with it matches the
// app hash that header commits to. Events are then handed to pRuntime in
// chain order; a host that forges, alters, reorders, drops or skips input is
// refused, and a refused block changes nothing.
//
// # Sync step
//
// Step h (a Block) carries header h with its commit, the validator set of h
// when the client does not already know it, and the worker event log of block
// h-1, which header h commits to through its app hash (package proof). So
// Ingest(h) returns the events of block h-1, and after it Height() is h: the
// events of every block below Height() have been returned, and state proofs
// are checked against the state after block Height()-1. IngestBatch takes
// many steps at once with the same outcome as Ingest on each in turn,
// verifying the commits' signatures together, in batches (batch.go).
//
// # Verification
//
// The first block (Config.InitialHeight, normally 1) must name the genesis
// validator set and be signed by more than 2/3 of its power
// (ValidatorSet.VerifyCommitLight). Every later block goes through
// light.VerifyAdjacent from the trusted header: its validators must be the
// ones the trusted header named as next (so validator-set changes are
// followed: the host sends the new set with the first block it signs, and
// its hash must match), more than 2/3 of them must have signed it, and its
// time must be after the trusted header's. On top of that the header must
// link to the trusted block (LastBlockID), which honest validators always
// ensure.
//
// pRuntime has no trusted clock, so the "now" handed to VerifyAdjacent is the
// untrusted header's own time. Consequences: the trusting-period check
// (trusted header time + TrustingPeriod must be after now) then bounds the
// time gap between two consecutive blocks, which keeps a pRuntime from
// adopting a block that follows its trusted one after an implausibly long
// time (a chain halted longer than the trusting period must be resumed from
// a newly sealed state); and the clock-drift check (header time before
// now + MaxClockDrift) holds trivially. Block times themselves are
// monotonic by consensus (BFT time, checked by VerifyAdjacent), and come
// from the signed header, so the host cannot move them.
//
// # Wire
//
// SyncBlock (proto/phala/pruntime/v1/sync.proto) is the host's encoding of a
// Block; DecodeBlock is strict and bounded, EncodeBlock is for the host.
// Marshal/Restore carry the state pRuntime seals (LightClientState).
package lightclient

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// Defaults for Config.
const (
	DefaultTrustingPeriod = 365 * 24 * time.Hour
	DefaultMaxClockDrift  = 10 * time.Second
)

// stateVersion is LightClientState.version.
const stateVersion = 1

// Errors wrapped by every refusal, so pRuntime can tell what the host got
// wrong. A refused block never changes the client. Errors from CometBFT
// (e.g. types.ErrNotEnoughVotingPowerSigned, light.ErrOldHeaderExpired) and
// from package proof (proof.ErrMismatch, ...) stay reachable with errors.Is
// and errors.As as well.
var (
	// ErrMalformed: bytes that do not decode, or a block missing a part.
	ErrMalformed = errors.New("malformed sync block")
	// ErrHeight: not the next block (a replayed or a skipping block).
	ErrHeight = errors.New("not the next block")
	// ErrValidatorSet: the validator set the block needs is missing, or the
	// one supplied is not the one the header names.
	ErrValidatorSet = errors.New("wrong validator set")
	// ErrHeader: the header or its commit failed verification (signatures,
	// chain id, validators, time, link to the trusted block).
	ErrHeader = errors.New("header refused")
	// ErrEventLog: the event log is missing or does not match the header.
	ErrEventLog = errors.New("event log refused")
	// ErrState: sealed state that is not this chain's or does not decode.
	ErrState = errors.New("unusable light client state")
)

// Config is what pRuntime was initialised with; everything else it trusts
// is derived from it. See ConfigFromGenesis.
type Config struct {
	ChainID string
	// GenesisValidators is the validator set of the chain's first block,
	// from the genesis document. The client keeps its own copy.
	GenesisValidators *types.ValidatorSet
	// InitialHeight is the chain's first block; 0 means 1.
	InitialHeight int64
	// TrustingPeriod bounds the time between two consecutive blocks (see
	// the package documentation); 0 means DefaultTrustingPeriod.
	TrustingPeriod time.Duration
	// MaxClockDrift is passed to light.VerifyAdjacent; 0 means
	// DefaultMaxClockDrift. It must be positive, and with "now" being the
	// header's own time it never refuses a header.
	MaxClockDrift time.Duration
}

// ConfigFromGenesis is the Config for the chain of doc, with default
// periods. doc must list the genesis validators (a chain whose validators
// come only from the application's InitChain cannot be followed from its
// genesis document).
func ConfigFromGenesis(doc *types.GenesisDoc) (Config, error) {
	if doc == nil {
		return Config{}, errors.New("no genesis document")
	}
	if len(doc.Validators) == 0 {
		return Config{}, fmt.Errorf("genesis document of chain %q lists no validators", doc.ChainID)
	}
	vals := make([]*types.Validator, len(doc.Validators))
	for i, v := range doc.Validators {
		if v.PubKey == nil || v.Power <= 0 {
			return Config{}, fmt.Errorf("genesis validator %d (%s) has no key or no power", i, v.Name)
		}
		vals[i] = types.NewValidator(v.PubKey, v.Power)
	}
	set := &types.ValidatorSet{}
	if err := set.UpdateWithChangeSet(vals); err != nil {
		return Config{}, fmt.Errorf("genesis validators: %w", err)
	}
	set.IncrementProposerPriority(1) // as types.NewValidatorSet does
	return Config{ChainID: doc.ChainID, GenesisValidators: set, InitialHeight: doc.InitialHeight}, nil
}

// Block is one sync step: block h's signed header, its validator set when
// needed, and block h-1's event log. See SyncBlock in sync.proto.
type Block struct {
	// SignedHeader is header h with the commit that signs it.
	SignedHeader *types.SignedHeader
	// Validators is the validator set of h. It may be nil when the client
	// knows it: for the first block (the genesis set) and whenever header
	// h-1 named the same set as next (NextValidatorsHash == ValidatorsHash).
	Validators *types.ValidatorSet
	// EventLog is block h-1's worker event log; nil for the first block.
	EventLog *chainpb.EventLog
}

// Client follows one chain from its genesis validator set. It is safe for
// concurrent use: Ingest calls are serialised, and readers (Height, Header,
// VerifyState, Marshal) see either the state before or after a block, never
// a mix, and never wait for verification.
type Client struct {
	chainID        string
	genesis        *types.ValidatorSet
	genesisHash    []byte
	initialHeight  int64
	trustingPeriod time.Duration
	maxClockDrift  time.Duration

	mu sync.Mutex // serialises Ingest
	st atomic.Pointer[state]
}

// state is immutable once published.
type state struct {
	// header is the last trusted block; nil before the first block.
	header *types.SignedHeader
	// vals is header's validator set (nil before the first block).
	vals *types.ValidatorSet
	// next is the validator set of the next block when known: the genesis
	// set before the first block, vals when header names it again as next,
	// and nil when the set changes (the host must send it).
	next *types.ValidatorSet
}

// New starts a client at the chain's genesis: Height() is
// InitialHeight-1 and the next block to ingest is the first one.
func New(cfg Config) (*Client, error) {
	if cfg.ChainID == "" || len(cfg.ChainID) > types.MaxChainIDLen {
		return nil, fmt.Errorf("chain id %q: want 1..%d bytes", cfg.ChainID, types.MaxChainIDLen)
	}
	if cfg.GenesisValidators == nil {
		return nil, errors.New("no genesis validator set")
	}
	if err := cfg.GenesisValidators.ValidateBasic(); err != nil {
		return nil, fmt.Errorf("genesis validator set: %w", err)
	}
	c := &Client{
		chainID:        cfg.ChainID,
		initialHeight:  cfg.InitialHeight,
		trustingPeriod: cfg.TrustingPeriod,
		maxClockDrift:  cfg.MaxClockDrift,
	}
	if c.initialHeight == 0 {
		c.initialHeight = 1
	}
	if c.trustingPeriod == 0 {
		c.trustingPeriod = DefaultTrustingPeriod
	}
	if c.maxClockDrift == 0 {
		c.maxClockDrift = DefaultMaxClockDrift
	}
	if c.initialHeight < 1 || c.trustingPeriod < 0 || c.maxClockDrift < 0 {
		return nil, fmt.Errorf("initial height %d, trusting period %s, max clock drift %s: none may be negative", cfg.InitialHeight, cfg.TrustingPeriod, cfg.MaxClockDrift)
	}
	c.genesis = cfg.GenesisValidators.Copy()
	c.genesisHash = c.genesis.Hash()
	c.st.Store(&state{next: c.genesis})
	return c, nil
}

// Height is the last trusted block; InitialHeight-1 (0) before the first.
// The events of every block below Height() have been returned by Ingest.
func (c *Client) Height() int64 {
	if h := c.st.Load().header; h != nil {
		return h.Height
	}
	return c.initialHeight - 1
}

// Header is the last trusted header, nil before the first block. It is a
// copy of the header struct; its byte slices are shared and must not be
// modified.
func (c *Client) Header() *types.Header {
	sh := c.st.Load().header
	if sh == nil {
		return nil
	}
	h := *sh.Header
	return &h
}

// VerifyState checks a state value (or its absence, when p.Value is nil)
// against the trusted header: p must be for the state after block
// Height()-1, the newest state a trusted header commits to.
func (c *Client) VerifyState(p *proof.StateProof) error {
	sh := c.st.Load().header
	if sh == nil {
		return fmt.Errorf("%w: no block trusted yet", proof.ErrHeight)
	}
	return proof.VerifyState(sh.Header, p)
}

// Ingest verifies b as the next block, Height()+1, adopts it, and returns
// the worker events of block Height()-1 (the previous block) in chain order;
// none for the first block. On any error the client is unchanged and b may
// be corrected and sent again.
//
// Ingest keeps b.SignedHeader and b.Validators as its trusted state once it
// accepts them, and reads b.EventLog; the caller must not modify any of them
// afterwards (DecodeBlock returns fresh ones).
func (c *Client) Ingest(b Block) ([]*chainpb.WorkerEvent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ingest(b)
}

// ingest is Ingest with c.mu held.
func (c *Client) ingest(b Block) ([]*chainpb.WorkerEvent, error) {
	st := c.st.Load()
	next, err := c.verifyHeader(st, b, nil)
	if err != nil {
		return nil, err
	}
	evs, err := c.verifyEventLog(st, b)
	if err != nil {
		return nil, err
	}
	c.st.Store(next)
	return evs, nil
}

// verifyEventLog checks b's event log against b's header, which must have
// passed verifyHeader from st, and returns its events (an empty, non-nil
// slice for the first block).
func (c *Client) verifyEventLog(st *state, b Block) ([]*chainpb.WorkerEvent, error) {
	sh := b.SignedHeader
	var evs []*chainpb.WorkerEvent
	if st.header == nil {
		if b.EventLog != nil {
			return nil, fmt.Errorf("%w: block %d is the chain's first, it has no previous block's event log to carry (got block %d's)", ErrEventLog, sh.Height, b.EventLog.Height)
		}
	} else {
		if b.EventLog == nil {
			return nil, fmt.Errorf("%w: block %d comes without the event log of block %d", ErrEventLog, sh.Height, sh.Height-1)
		}
		var err error
		if evs, err = proof.VerifyEventLog(sh.Header, b.EventLog); err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrEventLog, sh.Height, err)
		}
	}
	if evs == nil {
		evs = []*chainpb.WorkerEvent{}
	}
	return evs, nil
}

// verifyHeader checks b's header against st and returns the state that
// adopts it. With d nil the commit's signatures are verified here, by
// CometBFT (ValidatorSet.VerifyCommitLight, light.VerifyAdjacent); with d
// every other check is made the same, and the signatures CometBFT would
// batch-verify are added to d instead: the header is then verified only
// once d.verify says those signatures are valid (see batch.go).
func (c *Client) verifyHeader(st *state, b Block, d *sigBatch) (*state, error) {
	sh := b.SignedHeader
	if sh == nil || sh.Header == nil || sh.Commit == nil {
		return nil, fmt.Errorf("%w: the block has no header or no commit", ErrMalformed)
	}
	trusted := c.initialHeight - 1
	if st.header != nil {
		trusted = st.header.Height
	}
	switch {
	case sh.Height <= trusted:
		return nil, fmt.Errorf("%w: block %d is already trusted (trusted height %d): a replay", ErrHeight, sh.Height, trusted)
	case sh.Height > trusted+1:
		return nil, fmt.Errorf("%w: block %d skips ahead, the next block is %d", ErrHeight, sh.Height, trusted+1)
	}

	vals := b.Validators
	if vals != nil {
		if err := vals.ValidateBasic(); err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrValidatorSet, sh.Height, err)
		}
		if h := vals.Hash(); !bytes.Equal(h, sh.ValidatorsHash) {
			return nil, fmt.Errorf("%w: the set supplied for block %d hashes to %X, the header names %X", ErrValidatorSet, sh.Height, h, []byte(sh.ValidatorsHash))
		}
	}

	if st.header == nil {
		// The first block: nothing to be adjacent to but the genesis set.
		if vals == nil {
			vals = c.genesis
		}
		if err := sh.ValidateBasic(c.chainID); err != nil {
			return nil, fmt.Errorf("%w: block %d: %w", ErrHeader, sh.Height, err)
		}
		if !bytes.Equal(sh.ValidatorsHash, c.genesisHash) {
			return nil, fmt.Errorf("%w: first block %d names validators %X, the genesis set is %X", ErrHeader, sh.Height, []byte(sh.ValidatorsHash), c.genesisHash)
		}
		if err := verifyCommitLight(c.genesis, c.chainID, sh.Commit.BlockID, sh.Height, sh.Commit, d); err != nil {
			return nil, fmt.Errorf("%w: block %d is not signed by the genesis validators: %w", ErrHeader, sh.Height, err)
		}
	} else {
		if vals == nil {
			if vals = st.next; vals == nil {
				return nil, fmt.Errorf("%w: the validators change at block %d (header %d names next %X, it was signed by %X); the host must send the new set", ErrValidatorSet, sh.Height, st.header.Height, []byte(st.header.NextValidatorsHash), []byte(st.header.ValidatorsHash))
			}
		}
		if err := verifyAdjacent(st.header, sh, vals, c.trustingPeriod, sh.Time, c.maxClockDrift, d); err != nil {
			// light.ErrInvalidHeader does not unwrap; keep its cause
			// (e.g. types.ErrNotEnoughVotingPowerSigned) reachable.
			var ih light.ErrInvalidHeader
			if errors.As(err, &ih) && ih.Reason != nil {
				err = fmt.Errorf("invalid header: %w", ih.Reason)
			}
			return nil, fmt.Errorf("%w: block %d: %w", ErrHeader, sh.Height, err)
		}
		// VerifyAdjacent relies on the signatures alone; honest validators
		// also chain the headers, so a header that does not follow the
		// trusted block is refused too. (The trusted block's id is its
		// commit's, checked against its header hash when it was adopted.)
		if !sh.LastBlockID.Equals(st.header.Commit.BlockID) {
			return nil, fmt.Errorf("%w: block %d does not follow trusted block %d: its last block is %v, block %d is %v", ErrHeader, sh.Height, st.header.Height, sh.LastBlockID, st.header.Height, st.header.Commit.BlockID)
		}
	}

	next := &state{header: sh, vals: vals}
	if bytes.Equal(sh.NextValidatorsHash, sh.ValidatorsHash) {
		next.next = vals
	}
	return next, nil
}

// Marshal encodes the client's state for pRuntime to seal: the chain it
// follows, the last trusted signed header and its validator set. (The next
// block's validator set is known exactly when the header names its own set
// as next, so it is not stored twice.) Restore turns it back into a client.
func (c *Client) Marshal() ([]byte, error) {
	st := c.st.Load()
	s := &pruntimepb.LightClientState{
		Version:               stateVersion,
		ChainId:               c.chainID,
		GenesisValidatorsHash: c.genesisHash,
		InitialHeight:         c.initialHeight,
	}
	if st.header != nil {
		var err error
		if s.SignedHeader, err = st.header.ToProto().Marshal(); err != nil {
			return nil, fmt.Errorf("encode trusted header: %w", err)
		}
		vp, err := st.vals.ToProto()
		if err != nil {
			return nil, fmt.Errorf("encode trusted validators: %w", err)
		}
		if s.Validators, err = vp.Marshal(); err != nil {
			return nil, fmt.Errorf("encode trusted validators: %w", err)
		}
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(s)
}

// Restore is New followed by resuming from data, a Marshal of a client for
// the same chain (chain id, genesis validator set and initial height of cfg;
// anything else is refused with ErrState). The state is trusted as it was
// sealed, but it is also checked for consistency: the header is well formed
// and signed by more than 2/3 of the validator set stored with it.
func Restore(cfg Config, data []byte) (*Client, error) {
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	var s pruntimepb.LightClientState
	if err := proto.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads version %d", ErrState, s.Version, stateVersion)
	}
	if s.ChainId != c.chainID {
		return nil, fmt.Errorf("%w: state is for chain %q, this client follows %q", ErrState, s.ChainId, c.chainID)
	}
	if !bytes.Equal(s.GenesisValidatorsHash, c.genesisHash) {
		return nil, fmt.Errorf("%w: state was verified from genesis validators %X, this client trusts %X", ErrState, s.GenesisValidatorsHash, c.genesisHash)
	}
	if s.InitialHeight != c.initialHeight {
		return nil, fmt.Errorf("%w: state is for a chain starting at block %d, this one starts at %d", ErrState, s.InitialHeight, c.initialHeight)
	}
	if len(s.SignedHeader) == 0 {
		if len(s.Validators) != 0 {
			return nil, fmt.Errorf("%w: validators without a header", ErrState)
		}
		return c, nil
	}
	sh, err := decodeSignedHeader(s.SignedHeader)
	if err != nil {
		return nil, fmt.Errorf("%w: trusted header: %w", ErrState, err)
	}
	vals, err := decodeValidatorSet(s.Validators)
	if err != nil {
		return nil, fmt.Errorf("%w: trusted validators: %w", ErrState, err)
	}
	if err := sh.ValidateBasic(c.chainID); err != nil {
		return nil, fmt.Errorf("%w: trusted header: %w", ErrState, err)
	}
	if sh.Height < c.initialHeight {
		return nil, fmt.Errorf("%w: trusted header %d is below the initial height %d", ErrState, sh.Height, c.initialHeight)
	}
	if sh.Height == c.initialHeight && !bytes.Equal(sh.ValidatorsHash, c.genesisHash) {
		return nil, fmt.Errorf("%w: trusted first block does not name the genesis validators", ErrState)
	}
	if !bytes.Equal(vals.Hash(), sh.ValidatorsHash) {
		return nil, fmt.Errorf("%w: trusted validators are not header %d's", ErrState, sh.Height)
	}
	if err := vals.VerifyCommitLight(c.chainID, sh.Commit.BlockID, sh.Height, sh.Commit); err != nil {
		return nil, fmt.Errorf("%w: trusted header %d is not signed by its validators: %w", ErrState, sh.Height, err)
	}
	st := &state{header: sh, vals: vals}
	if bytes.Equal(sh.NextValidatorsHash, sh.ValidatorsHash) {
		st.next = vals
	}
	c.st.Store(st)
	return c, nil
}
