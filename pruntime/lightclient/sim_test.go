package lightclient_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	cmtversion "github.com/cometbft/cometbft/api/cometbft/version/v1"
	cmted25519 "github.com/cometbft/cometbft/crypto/ed25519"
	"github.com/cometbft/cometbft/types"
	"github.com/cometbft/cometbft/version"
	"github.com/cosmos/iavl"
	iavldb "github.com/cosmos/iavl/db"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

// simChain is a synthetic CometBFT chain signed by real ed25519 validator
// keys, with app hashes that commit to each block's worker event log the way
// the real chain does (proof.AppHash), so its blocks verify like real ones.
type simChain struct {
	t       testing.TB
	chainID string
	keys    map[string]cmted25519.PrivKey // by validator address
	genesis *types.ValidatorSet
	// cur is the validator set of the next block to produce, upcoming the
	// set of the block after it (what the next header names as next).
	cur, upcoming *types.ValidatorSet
	// blocks[h] is block h as an honest host sends it; logs[h] is block h's
	// own event log and events[h] its payloads.
	blocks []lc.Block
	logs   []*chainpb.EventLog
	events [][]string
	sets   []*types.ValidatorSet // sets[h]: validator set of block h
	start  time.Time
	// state is the chain's state: block h sets key-h to value-h; version h
	// is the state after block h.
	state *iavl.MutableTree
}

func newSimChain(t testing.TB, chainID string, n int) *simChain {
	c := &simChain{
		t: t, chainID: chainID, keys: map[string]cmted25519.PrivKey{},
		blocks: []lc.Block{{}}, logs: []*chainpb.EventLog{nil}, events: [][]string{nil}, sets: []*types.ValidatorSet{nil},
		start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		state: iavl.NewMutableTree(iavldb.NewMemDB(), 1000, true, iavl.NewNopLogger()),
	}
	vals := make([]*types.Validator, n)
	for i := range vals {
		vals[i] = types.NewValidator(c.key(fmt.Sprintf("val-%d", i)).PubKey(), 10)
	}
	c.genesis = types.NewValidatorSet(vals)
	c.cur, c.upcoming = c.genesis, c.genesis
	return c
}

// key returns the deterministic key named name, registering it as a signer.
func (c *simChain) key(name string) cmted25519.PrivKey {
	k := cmted25519.GenPrivKeyFromSecret([]byte(name))
	c.keys[string(k.PubKey().Address())] = k
	return k
}

func (c *simChain) config() lc.Config {
	return lc.Config{ChainID: c.chainID, GenesisValidators: c.genesis}
}

// height is the last block produced.
func (c *simChain) height() int64 { return int64(len(c.blocks) - 1) }

// change applies validator updates (power 0 removes) to the set of the
// block after the next one produced: the next header names it as next.
func (c *simChain) change(updates ...*types.Validator) {
	s := c.upcoming.Copy()
	if err := s.UpdateWithChangeSet(updates); err != nil {
		c.t.Fatal(err)
	}
	c.upcoming = s
}

// encodeEvent is event i of block h, as the chain encodes it.
func encodeEvent(h int64, i int, payload string) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&chainpb.WorkerEvent{Height: h, Index: uint32(i), Kind: &chainpb.WorkerEvent_Ingress{
		Ingress: &chainpb.IngressMessage{Sender: bytes.Repeat([]byte{7}, 20), Topic: "sim", Payload: []byte(payload)},
	}})
	if err != nil {
		panic(err)
	}
	return b
}

func hash32(parts ...any) []byte {
	s := sha256.Sum256(fmt.Append(nil, parts...))
	return s[:]
}

// next produces the next block, whose event log holds payloads.
func (c *simChain) next(payloads ...string) {
	h := c.height() + 1
	appHash := proof.AppHash(make([]byte, proof.RootSize), proof.EventLogRoot(nil)) // genesis state
	var lastID types.BlockID
	var prevLog *chainpb.EventLog
	if h > 1 {
		prevLog = c.logs[h-1]
		appHash = proof.AppHash(prevLog.StateRoot, proof.EventLogRoot(prevLog.Events))
		lastID = c.blocks[h-1].SignedHeader.Commit.BlockID
	}
	hdr := &types.Header{
		Version:            cmtversion.Consensus{Block: version.BlockProtocol},
		ChainID:            c.chainID,
		Height:             h,
		Time:               c.start.Add(time.Duration(h) * time.Second),
		LastBlockID:        lastID,
		LastCommitHash:     hash32("last commit", h),
		DataHash:           hash32("data", h),
		ValidatorsHash:     c.cur.Hash(),
		NextValidatorsHash: c.upcoming.Hash(),
		ConsensusHash:      hash32("consensus"),
		AppHash:            appHash,
		LastResultsHash:    hash32("results", h),
		EvidenceHash:       hash32("evidence", h),
		ProposerAddress:    c.cur.GetProposer().Address,
	}
	b := lc.Block{SignedHeader: c.sign(hdr, c.cur, c.chainID, nil), EventLog: prevLog}
	if h > 1 && !bytes.Equal(c.cur.Hash(), c.sets[h-1].Hash()) {
		b.Validators = c.cur
	}
	if _, err := c.state.Set(fmt.Appendf(nil, "key-%d", h), fmt.Appendf(nil, "value-%d", h)); err != nil {
		c.t.Fatal(err)
	}
	root, v, err := c.state.SaveVersion()
	if err != nil || v != h {
		c.t.Fatalf("state version %d: %v", v, err)
	}
	log := &chainpb.EventLog{Height: h, StateRoot: root}
	for i, p := range payloads {
		log.Events = append(log.Events, encodeEvent(h, i, p))
	}
	c.blocks = append(c.blocks, b)
	c.logs = append(c.logs, log)
	c.events = append(c.events, payloads)
	c.sets = append(c.sets, c.cur)
	c.cur = c.upcoming
}

// grow produces blocks up to height with a few events each.
func (c *simChain) grow(height int64) {
	for h := c.height() + 1; h <= height; h++ {
		var p []string
		for i := range int(1 + h%3) {
			p = append(p, fmt.Sprintf("block %d event %d", h, i))
		}
		c.next(p...)
	}
}

// sign makes a commit for hdr by vals as chain chainID would: every
// validator for which signs returns true (all when signs is nil) signs a
// precommit, the others are absent.
func (c *simChain) sign(hdr *types.Header, vals *types.ValidatorSet, chainID string, signs func(i int) bool) *types.SignedHeader {
	hh := hdr.Hash()
	commit := &types.Commit{
		Height:     hdr.Height,
		BlockID:    types.BlockID{Hash: hh, PartSetHeader: types.PartSetHeader{Total: 1, Hash: hash32("parts", hh)}},
		Signatures: make([]types.CommitSig, vals.Size()),
	}
	for i, v := range vals.Validators {
		if signs != nil && !signs(i) {
			commit.Signatures[i] = types.NewCommitSigAbsent()
			continue
		}
		commit.Signatures[i] = types.CommitSig{BlockIDFlag: types.BlockIDFlagCommit, ValidatorAddress: v.Address, Timestamp: hdr.Time.Add(500 * time.Millisecond)}
	}
	for i, v := range vals.Validators {
		if commit.Signatures[i].BlockIDFlag != types.BlockIDFlagCommit {
			continue
		}
		k, ok := c.keys[string(v.Address)]
		if !ok {
			c.t.Fatalf("no key for validator %X", v.Address)
		}
		sig, err := k.Sign(commit.VoteSignBytes(chainID, int32(i)))
		if err != nil {
			c.t.Fatal(err)
		}
		commit.Signatures[i].Signature = sig
	}
	return &types.SignedHeader{Header: hdr, Commit: commit}
}

// forge returns block h's header changed by mut and signed for chainID by
// vals (those signs picks), with block h's event log and no validator set.
func (c *simChain) forge(h int64, mut func(*types.Header), vals *types.ValidatorSet, chainID string, signs func(int) bool) lc.Block {
	hdr := *c.blocks[h].SignedHeader.Header
	if mut != nil {
		mut(&hdr)
	}
	return lc.Block{SignedHeader: c.sign(&hdr, vals, chainID, signs), EventLog: c.blocks[h].EventLog}
}

// synced is a client that has ingested blocks 1..height.
func (c *simChain) synced(height int64) *lc.Client {
	c.t.Helper()
	cl, err := lc.New(c.config())
	if err != nil {
		c.t.Fatal(err)
	}
	for h := int64(1); h <= height; h++ {
		if _, err := cl.Ingest(c.blocks[h]); err != nil {
			c.t.Fatalf("block %d: %v", h, err)
		}
	}
	return cl
}

// checkEvents checks that evs are block h's events.
func (c *simChain) checkEvents(t testing.TB, h int64, evs []*chainpb.WorkerEvent) {
	t.Helper()
	want := c.events[h]
	if len(evs) != len(want) {
		t.Fatalf("block %d: %d events, want %d", h, len(evs), len(want))
	}
	for i, ev := range evs {
		if ev.Height != h || ev.Index != uint32(i) || string(ev.GetIngress().GetPayload()) != want[i] {
			t.Fatalf("block %d event %d: got %v, want payload %q", h, i, ev, want[i])
		}
	}
}
