package lightclient_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	cmtproto "github.com/cometbft/cometbft/api/cometbft/types/v1"
	"github.com/cometbft/cometbft/light"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

func mustMarshal(t testing.TB, cl *lc.Client) []byte {
	t.Helper()
	b, err := cl.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wire sends b the way pRuntime receives it: encoded by the host, bytes,
// decoded by pRuntime.
func wire(t testing.TB, b lc.Block) lc.Block {
	t.Helper()
	sb, err := lc.EncodeBlock(b)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := proto.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	var got pruntimepb.SyncBlock
	if err := proto.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	out, err := lc.DecodeBlock(&got)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFollowChain follows 64 blocks across validator-set changes (a
// validator added, one removed, a power change, and an add and a remove at
// once), over the wire encoding, and resumes from a sealed state midway.
func TestFollowChain(t *testing.T) {
	c := newSimChain(t, "sim-follow", 4)
	changes := map[int64][]*types.Validator{
		18: {types.NewValidator(c.key("newcomer").PubKey(), 10)}, // block 20 adds one
		28: {types.NewValidator(c.key("val-0").PubKey(), 0)},     // block 30 removes one
		38: {types.NewValidator(c.key("val-1").PubKey(), 35)},    // block 40 changes a power
		47: {types.NewValidator(c.key("late").PubKey(), 5), // block 49 adds one
			types.NewValidator(c.key("newcomer").PubKey(), 0)}, // and removes another
	}
	for h := int64(1); h <= 64; h++ {
		if u := changes[h-1]; u != nil {
			c.change(u...)
		}
		c.grow(h)
	}
	// The honest host sent a set exactly with the blocks after a change.
	for h := int64(1); h <= 64; h++ {
		sent := c.blocks[h].Validators != nil
		if want := changes[h-2] != nil; sent != want {
			t.Fatalf("block %d: validator set sent %v, want %v", h, sent, want)
		}
	}
	if c.sets[64].Size() != 4 || bytes.Equal(c.sets[64].Hash(), c.genesis.Hash()) {
		t.Fatal("the validator set did not change as planned")
	}

	cl, err := lc.New(c.config())
	if err != nil {
		t.Fatal(err)
	}
	if cl.Height() != 0 || cl.Header() != nil {
		t.Fatalf("fresh client at height %d", cl.Height())
	}
	for h := int64(1); h <= 64; h++ {
		evs, err := cl.Ingest(wire(t, c.blocks[h]))
		if err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		if h > 1 {
			c.checkEvents(t, h-1, evs)
		} else if len(evs) != 0 {
			t.Fatalf("first block returned %d events", len(evs))
		}
		if cl.Height() != h || !bytes.Equal(cl.Header().Hash(), c.blocks[h].SignedHeader.Hash()) {
			t.Fatalf("after block %d: height %d", h, cl.Height())
		}
		// The sealed state restores to the same state; pRuntime resumes
		// from it at a few points, among them right before a change (the
		// next set is then unknown and must come with the next block).
		sealed := mustMarshal(t, cl)
		r, err := lc.Restore(c.config(), sealed)
		if err != nil {
			t.Fatalf("restore at %d: %v", h, err)
		}
		if r.Height() != h || !bytes.Equal(mustMarshal(t, r), sealed) || !bytes.Equal(r.Header().Hash(), cl.Header().Hash()) {
			t.Fatalf("restore at %d: different state", h)
		}
		if h == 19 || h == 33 || h == 48 {
			cl = r
		}
	}
}

func TestRestoreRefusesOtherState(t *testing.T) {
	c := newSimChain(t, "sim-restore", 4)
	c.grow(5)
	sealed := mustMarshal(t, c.synced(5))
	fresh := mustMarshal(t, c.synced(0))

	other := newSimChain(t, "sim-restore", 3)
	otherSealed := mustMarshal(t, func() *lc.Client { other.grow(2); return other.synced(2) }())
	cfg := c.config()
	otherChain := c.config()
	otherChain.ChainID = "sim-other"
	otherStart := c.config()
	otherStart.InitialHeight = 100

	tampered := func(mut func(*pruntimepb.LightClientState)) []byte {
		var s pruntimepb.LightClientState
		if err := proto.Unmarshal(sealed, &s); err != nil {
			t.Fatal(err)
		}
		mut(&s)
		b, _ := proto.Marshal(&s)
		return b
	}
	cases := []struct {
		name string
		cfg  lc.Config
		data []byte
		msg  string
	}{
		{"another chain id", otherChain, sealed, `state is for chain "sim-restore", this client follows "sim-other"`},
		{"another chain id, fresh", otherChain, fresh, "state is for chain"},
		{"another genesis set", cfg, otherSealed, "verified from genesis validators"},
		{"another initial height", otherStart, sealed, "starting at block 1"},
		{"garbage", cfg, []byte("not a state"), "unusable"},
		{"another version", cfg, tampered(func(s *pruntimepb.LightClientState) { s.Version = 2 }), "version 2"},
		{"validators of another chain", cfg, tampered(func(s *pruntimepb.LightClientState) {
			var o pruntimepb.LightClientState
			proto.Unmarshal(otherSealed, &o)
			s.Validators = o.Validators
		}), "trusted validators are not header 5's"},
		{"header without validators", cfg, tampered(func(s *pruntimepb.LightClientState) { s.Validators = nil }), "trusted validators"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := lc.Restore(tc.cfg, tc.data)
			if cl != nil || !errors.Is(err, lc.ErrState) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want ErrState mentioning %q", err, tc.msg)
			}
		})
	}
	// And the genuine state for the same configuration restores.
	if _, err := lc.Restore(cfg, sealed); err != nil {
		t.Fatal(err)
	}
}

// TestMaliciousHost feeds a client forged, altered, reordered, skipped,
// replayed and badly signed blocks. Each is refused with an error naming
// the problem, the client is unchanged, and the genuine block is accepted
// afterwards.
func TestMaliciousHost(t *testing.T) {
	c := newSimChain(t, "sim-malice", 4)
	c.grow(6)
	// Block 8 is signed by a new set: val-3 leaves, a newcomer joins.
	c.change(types.NewValidator(c.key("val-3").PubKey(), 0), types.NewValidator(c.key("newcomer").PubKey(), 10))
	c.grow(12)
	if c.blocks[8].Validators == nil {
		t.Fatal("block 8 should carry the new validator set")
	}
	const k = 4 // the client trusts blocks 1..k; block k+1 (with log k) is next
	if len(c.logs[k].Events) < 2 {
		t.Fatalf("block %d needs at least 2 events, has %d", k, len(c.logs[k].Events))
	}
	honest := func(h int64) lc.Block { return c.blocks[h] }
	withLog := func(h int64, mut func(*chainpb.EventLog)) func() lc.Block {
		return func() lc.Block {
			b := honest(h)
			b.EventLog = proto.Clone(b.EventLog).(*chainpb.EventLog)
			mut(b.EventLog)
			return b
		}
	}
	strangers := newSimChain(t, "sim-malice", 4) // the same chain id, other keys
	for i := range 4 {
		strangers.key("stranger-" + string(rune('a'+i)))
	}
	strangerVals := func() *types.ValidatorSet {
		var vs []*types.Validator
		for i := range 4 {
			vs = append(vs, types.NewValidator(strangers.key("stranger-"+string(rune('a'+i))).PubKey(), 10))
		}
		return types.NewValidatorSet(vs)
	}()

	cases := []struct {
		name  string
		at    int64 // the client trusts 1..at
		block func() lc.Block
		want  error
		msg   string
	}{
		{"forged event added", k, withLog(k+1, func(l *chainpb.EventLog) {
			l.Events = append(l.Events, encodeEvent(k, len(l.Events), "forged"))
		}), proof.ErrMismatch, "event log of block 4 (3 events) hashes to app hash"},
		{"event altered by one byte", k, withLog(k+1, func(l *chainpb.EventLog) {
			l.Events[1][len(l.Events[1])-1] ^= 1
		}), proof.ErrMismatch, "does not match the header's app hash"},
		{"events reordered", k, withLog(k+1, func(l *chainpb.EventLog) {
			l.Events[0], l.Events[1] = l.Events[1], l.Events[0]
		}), proof.ErrMismatch, "does not match the header's app hash"},
		{"event dropped", k, withLog(k+1, func(l *chainpb.EventLog) { l.Events = l.Events[1:] }), proof.ErrMismatch, "app hash"},
		{"state root swapped", k, withLog(k+1, func(l *chainpb.EventLog) { l.StateRoot = hash32("other state") }), proof.ErrMismatch, "app hash"},
		{"event log of another block", k, func() lc.Block { b := honest(k + 1); b.EventLog = c.logs[k-1]; return b }, proof.ErrHeight, "the event log of block 3 is committed in header 4"},
		{"event log missing", k, func() lc.Block { b := honest(k + 1); b.EventLog = nil; return b }, lc.ErrEventLog, "comes without the event log of block 4"},
		{"event log with the first block", 0, func() lc.Block { b := honest(1); b.EventLog = c.logs[1]; return b }, lc.ErrEventLog, "it has no previous block's event log"},
		{"skipped block", k, func() lc.Block { return honest(k + 2) }, lc.ErrHeight, "block 6 skips ahead, the next block is 5"},
		{"replayed block", k, func() lc.Block { return honest(k) }, lc.ErrHeight, "block 4 is already trusted"},
		{"replayed old block", k, func() lc.Block { return honest(2) }, lc.ErrHeight, "block 2 is already trusted"},
		{"signed by a minority", k, func() lc.Block {
			return c.forge(k+1, nil, c.sets[k+1], c.chainID, func(i int) bool { return i < 2 })
		}, types.ErrNotEnoughVotingPowerSigned{}, "invalid commit -- insufficient voting power: got 20, needed more than 26"},
		{"first block signed by a minority", 0, func() lc.Block {
			return c.forge(1, nil, c.genesis, c.chainID, func(i int) bool { return i < 2 })
		}, types.ErrNotEnoughVotingPowerSigned{}, "is not signed by the genesis validators"},
		{"signature altered", k, func() lc.Block {
			b := c.forge(k+1, nil, c.sets[k+1], c.chainID, nil)
			b.SignedHeader.Commit.Signatures[2].Signature[5] ^= 1
			return b
		}, lc.ErrHeader, "wrong signature"},
		{"header of another chain id", k, func() lc.Block {
			return c.forge(k+1, func(h *types.Header) { h.ChainID = "sim-evil" }, c.sets[k+1], "sim-evil", nil)
		}, lc.ErrHeader, `header belongs to another chain "sim-evil", not "sim-malice"`},
		{"first block of another chain id", 0, func() lc.Block {
			return c.forge(1, func(h *types.Header) { h.ChainID = "sim-evil" }, c.genesis, "sim-evil", nil)
		}, lc.ErrHeader, `header belongs to another chain "sim-evil"`},
		{"signed for another chain id", k, func() lc.Block {
			return c.forge(k+1, nil, c.sets[k+1], "sim-evil", nil)
		}, lc.ErrHeader, "wrong signature"},
		{"commit for another block", k, func() lc.Block {
			b := honest(k + 1)
			forged := c.forge(k+1, func(h *types.Header) { h.AppHash = hash32("forged app hash") }, c.sets[k+1], c.chainID, nil)
			return lc.Block{SignedHeader: &types.SignedHeader{Header: b.SignedHeader.Header, Commit: forged.SignedHeader.Commit}, EventLog: b.EventLog}
		}, lc.ErrHeader, "commit signs block"},
		{"commit for another height", k, func() lc.Block {
			b := honest(k + 1)
			return lc.Block{SignedHeader: &types.SignedHeader{Header: b.SignedHeader.Header, Commit: c.blocks[k+2].SignedHeader.Commit}, EventLog: b.EventLog}
		}, lc.ErrHeader, "header and commit height mismatch: 5 vs 6"},
		{"forged app hash signed by strangers", k, func() lc.Block {
			hdr := c.forgeHeader(k+1, func(h *types.Header) {
				h.AppHash = hash32("forged")
				h.ValidatorsHash, h.NextValidatorsHash = strangerVals.Hash(), strangerVals.Hash()
			})
			return lc.Block{SignedHeader: strangers.sign(hdr, strangerVals, c.chainID, nil), Validators: strangerVals, EventLog: c.logs[k]}
		}, lc.ErrHeader, "expected old header next validators"},
		{"header not following the trusted block", k, func() lc.Block {
			return c.forge(k+1, func(h *types.Header) { h.LastBlockID = c.blocks[k-1].SignedHeader.Commit.BlockID }, c.sets[k+1], c.chainID, nil)
		}, lc.ErrHeader, "block 5 does not follow trusted block 4"},
		{"header time not after the trusted one", k, func() lc.Block {
			return c.forge(k+1, func(h *types.Header) { h.Time = c.blocks[k].SignedHeader.Time }, c.sets[k+1], c.chainID, nil)
		}, lc.ErrHeader, "to be after old header time"},
		{"time gap beyond the trusting period", k, func() lc.Block {
			return c.forge(k+1, func(h *types.Header) { h.Time = h.Time.Add(lc.DefaultTrustingPeriod) }, c.sets[k+1], c.chainID, nil)
		}, light.ErrOldHeaderExpired{}, "old header has expired"},
		{"first block naming other validators", 0, func() lc.Block {
			return c.forge(1, func(h *types.Header) { h.ValidatorsHash = c.sets[8].Hash() }, c.genesis, c.chainID, nil)
		}, lc.ErrHeader, "first block 1 names validators"},
		{"new validator set withheld", 7, func() lc.Block { b := honest(8); b.Validators = nil; return b }, lc.ErrValidatorSet, "the validators change at block 8"},
		{"old validator set for a change", 7, func() lc.Block { b := honest(8); b.Validators = c.sets[7]; return b }, lc.ErrValidatorSet, "the set supplied for block 8 hashes to"},
		{"altered validator set for a change", 7, func() lc.Block {
			b := honest(8)
			b.Validators = b.Validators.Copy()
			if err := b.Validators.UpdateWithChangeSet([]*types.Validator{types.NewValidator(c.key("val-0").PubKey(), 11)}); err != nil {
				t.Fatal(err)
			}
			return b
		}, lc.ErrValidatorSet, "the set supplied for block 8 hashes to"},
		{"change signed by the old set", 7, func() lc.Block {
			b := c.forge(8, nil, c.sets[7], c.chainID, nil)
			b.Validators = c.sets[7]
			return b
		}, lc.ErrValidatorSet, "the set supplied for block 8 hashes to"},
		{"change signed by the old set naming it", 7, func() lc.Block {
			b := c.forge(8, func(h *types.Header) { h.ValidatorsHash = c.sets[7].Hash() }, c.sets[7], c.chainID, nil)
			b.Validators = c.sets[7]
			return b
		}, lc.ErrHeader, "expected old header next validators"},
		{"no header", k, func() lc.Block { return lc.Block{EventLog: c.logs[k]} }, lc.ErrMalformed, "no header or no commit"},
	}
	matches := func(err, want error) bool {
		switch w := want.(type) {
		case types.ErrNotEnoughVotingPowerSigned:
			return errors.As(err, &w) && errors.Is(err, lc.ErrHeader)
		case light.ErrOldHeaderExpired:
			return errors.As(err, &w) && errors.Is(err, lc.ErrHeader)
		default:
			return errors.Is(err, want)
		}
	}
	for _, tc := range cases {
		// Each refusal through Ingest, then through IngestBatch, with the
		// bad block after a few genuine ones and before genuine ones.
		var ingestErr string
		t.Run(tc.name, func(t *testing.T) {
			cl := c.synced(tc.at)
			before := mustMarshal(t, cl)
			var hdrBefore []byte
			if cl.Header() != nil {
				hdrBefore = cl.Header().Hash()
			}
			evs, err := cl.Ingest(tc.block())
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			ingestErr = err.Error()
			if !matches(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || evs != nil {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			var hdrAfter []byte
			if cl.Header() != nil {
				hdrAfter = cl.Header().Hash()
			}
			if cl.Height() != tc.at || !bytes.Equal(hdrBefore, hdrAfter) || !bytes.Equal(mustMarshal(t, cl), before) {
				t.Fatal("a refused block changed the client")
			}
			// The host may still send the genuine block, and the chain goes on.
			for h := tc.at + 1; h <= tc.at+2; h++ {
				evs, err := cl.Ingest(honest(h))
				if err != nil {
					t.Fatalf("genuine block %d after the refusal: %v", h, err)
				}
				if h > 1 {
					c.checkEvents(t, h-1, evs)
				}
			}
		})
		t.Run(tc.name+", batched", func(t *testing.T) {
			from := max(0, tc.at-3)
			cl := c.synced(from)
			var bs []lc.Block
			for h := from + 1; h <= tc.at; h++ {
				bs = append(bs, honest(h))
			}
			bs = append(bs, tc.block(), honest(tc.at+1), honest(tc.at+2))
			good := int(tc.at - from)
			if n := cl.BatchFastPath(bs); n != good {
				t.Fatalf("the batched verification accepted %d blocks, want the %d genuine ones before the bad one", n, good)
			}
			evs, err := cl.IngestBatch(bs)
			if err == nil {
				t.Fatal("accepted")
			}
			if !matches(err, tc.want) || err.Error() != ingestErr {
				t.Fatalf("got %v, want Ingest's error %q", err, ingestErr)
			}
			if len(evs) != good {
				t.Fatalf("%d blocks adopted, want %d", len(evs), good)
			}
			for i, e := range evs {
				if h := from + 1 + int64(i); h > 1 {
					c.checkEvents(t, h-1, e)
				}
			}
			if cl.Height() != tc.at || !bytes.Equal(mustMarshal(t, cl), mustMarshal(t, c.synced(tc.at))) {
				t.Fatalf("after the refusal the client is at %d, not where Ingest leaves it (%d)", cl.Height(), tc.at)
			}
			evs, err = cl.IngestBatch([]lc.Block{honest(tc.at + 1), honest(tc.at + 2)})
			if err != nil || len(evs) != 2 {
				t.Fatalf("genuine blocks after the refusal: %d adopted, %v", len(evs), err)
			}
		})
	}
}

// forgeHeader is a copy of block h's header changed by mut.
func (c *simChain) forgeHeader(h int64, mut func(*types.Header)) *types.Header {
	hdr := *c.blocks[h].SignedHeader.Header
	mut(&hdr)
	return &hdr
}

func TestVerifyState(t *testing.T) {
	c := newSimChain(t, "sim-state", 4)
	c.grow(6)
	if err := c.synced(0).VerifyState(&proof.StateProof{Height: 0}); !errors.Is(err, proof.ErrHeight) {
		t.Fatalf("before the first block: %v", err)
	}
	cl := c.synced(5) // header 5 commits the state after block 4
	stateProof := func(key string, version int64, value string) *proof.StateProof {
		t.Helper()
		p, err := c.state.GetVersionedProof([]byte(key), version)
		if err != nil {
			t.Fatal(err)
		}
		sp := &proof.StateProof{Height: 4, Key: []byte(key), Proof: p, LogRoot: proof.EventLogRoot(c.logs[version].Events)}
		if value != "" {
			sp.Value = []byte(value)
		}
		return sp
	}
	for _, ok := range []*proof.StateProof{
		stateProof("key-4", 4, "value-4"),
		stateProof("key-1", 4, "value-1"),
		stateProof("key-5", 4, ""), // written by block 5: absent after block 4
	} {
		if err := cl.VerifyState(ok); err != nil {
			t.Fatalf("genuine proof for %s refused: %v", ok.Key, err)
		}
	}
	for name, bad := range map[string]*proof.StateProof{
		"wrong value":            stateProof("key-4", 4, "value-5"),
		"present claimed absent": stateProof("key-4", 4, ""),
		"state of block 3":       stateProof("key-3", 3, "value-3"),
		"state of block 5":       stateProof("key-5", 5, "value-5"),
	} {
		if err := cl.VerifyState(bad); !errors.Is(err, proof.ErrMismatch) {
			t.Errorf("%s: got %v, want ErrMismatch", name, err)
		}
	}
	old := stateProof("key-3", 3, "value-3")
	old.Height = 3
	if err := cl.VerifyState(old); !errors.Is(err, proof.ErrHeight) {
		t.Errorf("proof for height 3: got %v, want ErrHeight", err)
	}
}

func TestDecodeBlockStrict(t *testing.T) {
	c := newSimChain(t, "sim-decode", 4)
	c.grow(4)
	c.change(types.NewValidator(c.key("x").PubKey(), 3))
	c.grow(6)
	good, err := lc.EncodeBlock(c.blocks[6])
	if err != nil {
		t.Fatal(err)
	}
	if len(good.Validators) == 0 {
		t.Fatal("block 6 should carry validators")
	}
	mut := func(f func(*pruntimepb.SyncBlock)) *pruntimepb.SyncBlock {
		sb := proto.Clone(good).(*pruntimepb.SyncBlock)
		f(sb)
		return sb
	}
	withUnknown := mut(func(sb *pruntimepb.SyncBlock) { sb.ProtoReflect().SetUnknown([]byte{0xf8, 0x01, 0x01}) })
	cases := map[string]*pruntimepb.SyncBlock{
		"nil":                 nil,
		"no header":           mut(func(sb *pruntimepb.SyncBlock) { sb.SignedHeader = nil }),
		"truncated header":    mut(func(sb *pruntimepb.SyncBlock) { sb.SignedHeader = sb.SignedHeader[:len(sb.SignedHeader)-3] }),
		"huge header":         mut(func(sb *pruntimepb.SyncBlock) { sb.SignedHeader = make([]byte, lc.MaxSignedHeaderBytes+1) }),
		"truncated vals":      mut(func(sb *pruntimepb.SyncBlock) { sb.Validators = sb.Validators[:len(sb.Validators)-3] }),
		"unknown field":       withUnknown,
		"unknown log field":   mut(func(sb *pruntimepb.SyncBlock) { sb.EventLog.ProtoReflect().SetUnknown([]byte{0xf8, 0x01, 0x01}) }),
		"garbage validators":  mut(func(sb *pruntimepb.SyncBlock) { sb.Validators = []byte{0x0a, 0x00} }),
		"header, no commit":   mut(func(sb *pruntimepb.SyncBlock) { sb.SignedHeader = withoutCommit(t, sb.SignedHeader) }),
		"overpowered set":     mut(func(sb *pruntimepb.SyncBlock) { sb.Validators = overpowered(t, c.sets[6]) }),
		"validator sans keys": mut(func(sb *pruntimepb.SyncBlock) { sb.Validators = keyless(t, c.sets[6]) }),
	}
	for name, sb := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := lc.DecodeBlock(sb); !errors.Is(err, lc.ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	b, err := lc.DecodeBlock(good)
	if err != nil || b.Validators == nil || !bytes.Equal(b.Validators.Hash(), c.sets[6].Hash()) || !bytes.Equal(b.SignedHeader.Hash(), c.blocks[6].SignedHeader.Hash()) {
		t.Fatalf("genuine block: %v", err)
	}
}

// withoutCommit is a signed header's encoding with its commit left out.
func withoutCommit(t *testing.T, bz []byte) []byte {
	var p cmtproto.SignedHeader
	if err := p.Unmarshal(bz); err != nil {
		t.Fatal(err)
	}
	p.Commit = nil
	b, _ := p.Marshal()
	return b
}

// overpowered is vals encoded with a total power CometBFT would panic on.
func overpowered(t *testing.T, vals *types.ValidatorSet) []byte {
	vp, err := vals.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vp.Validators {
		v.VotingPower = types.MaxTotalVotingPower / 2
	}
	b, _ := vp.Marshal()
	return b
}

// keyless is vals encoded with a validator that has no public key at all.
func keyless(t *testing.T, vals *types.ValidatorSet) []byte {
	vp, err := vals.ToProto()
	if err != nil {
		t.Fatal(err)
	}
	vp.Validators[1].PubKeyType, vp.Validators[1].PubKeyBytes = "", nil
	b, _ := vp.Marshal()
	return b
}

func TestConfig(t *testing.T) {
	c := newSimChain(t, "sim-config", 2)
	for name, cfg := range map[string]lc.Config{
		"no chain id":      {GenesisValidators: c.genesis},
		"long chain id":    {ChainID: strings.Repeat("x", 51), GenesisValidators: c.genesis},
		"no validators":    {ChainID: "x"},
		"empty validators": {ChainID: "x", GenesisValidators: &types.ValidatorSet{}},
		"negative drift":   {ChainID: "x", GenesisValidators: c.genesis, MaxClockDrift: -time.Second},
	} {
		if _, err := lc.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	doc := &types.GenesisDoc{ChainID: "sim-config", InitialHeight: 1}
	for _, v := range c.genesis.Validators {
		doc.Validators = append(doc.Validators, types.GenesisValidator{Address: v.Address, PubKey: v.PubKey, Power: v.VotingPower})
	}
	cfg, err := lc.ConfigFromGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.GenesisValidators.Hash(), doc.ValidatorHash()) || cfg.ChainID != "sim-config" {
		t.Fatal("config from genesis: wrong validator set")
	}
	doc.Validators = append(doc.Validators, doc.Validators[0])
	if _, err := lc.ConfigFromGenesis(doc); err == nil {
		t.Fatal("duplicate genesis validator accepted")
	}
	if _, err := lc.ConfigFromGenesis(&types.GenesisDoc{ChainID: "x"}); err == nil {
		t.Fatal("genesis without validators accepted")
	}
}

// TestConcurrentReads reads the client while it ingests, block by block and
// in batches: readers see whole states (run with -race).
func TestConcurrentReads(t *testing.T) {
	c := newSimChain(t, "sim-concurrent", 4)
	c.grow(40)
	cl := c.synced(0)
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-done:
				return
			default:
			}
			h := cl.Height()
			hdr := cl.Header()
			if hdr != nil && hdr.Height < h {
				errs <- errors.New("header older than the height read before it")
				return
			}
			if _, err := cl.Marshal(); err != nil {
				errs <- err
				return
			}
		}
	}()
	for h := int64(1); h <= 20; h++ {
		if _, err := cl.Ingest(c.blocks[h]); err != nil {
			t.Fatal(err)
		}
	}
	for h := int64(21); h <= 40; h += 5 {
		if _, err := cl.IngestBatch(c.blocks[h : h+5]); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
