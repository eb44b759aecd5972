package chain

import (
	"bytes"
	"crypto/rand"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
)

// rekeyEvents are the key rotation events of the last block.
func (f *contractFixture) rekeyEvents() (due []*chainpb.ContractRekeyDue, done []*chainpb.ContractRekeyed) {
	for _, ev := range f.contractEvents() {
		if d := ev.GetContractRekeyDue(); d != nil {
			due = append(due, d)
		}
		if d := ev.GetContractRekeyed(); d != nil {
			done = append(done, d)
		}
	}
	return due, done
}

// untilRekey makes empty blocks until contract id's key rotation starts
// (at most limit) and returns its event.
func (f *contractFixture) untilRekey(id crypto.ContractID, limit int) *chainpb.ContractRekeyDue {
	f.t.Helper()
	for range limit {
		f.block()
		if due, _ := f.rekeyEvents(); len(due) == 1 {
			return due[0]
		}
	}
	f.t.Fatalf("no key rotation of %s within %d blocks: %v", id, limit, f.getContract(id))
	return nil
}

// rekeyMsg is miner's checkpoint of id's state under a new key kc, sealed
// to the root key and to others, as one chunk.
func (f *contractFixture) rekeyMsg(id crypto.ContractID, epoch uint64, height int64, inputs uint64, kc []byte, others ...identity) *chainpb.WorkerMessage {
	f.t.Helper()
	wrapped, err := crypto.SealContractKeyToRoot(rootHPKE(f.t, f.root), testChainID, id, kc)
	if err != nil {
		f.t.Fatal(err)
	}
	rk := &chainpb.ContractRekey{Epoch: epoch, PublicKey: inputKeyOf(f.t, kc), WrappedKey: wrapped}
	for _, o := range others {
		env, err := crypto.Seal(o.hpke.PublicKey(), crypto.ContractKeyInfo(testChainID, id, o.pub()), kc)
		if err != nil {
			f.t.Fatal(err)
		}
		rk.Sealed = append(rk.Sealed, &chainpb.SealedKey{Recipient: o.pub(), Envelope: env})
	}
	return one(id, height, inputs, rootOf("rekeyed"), func(cp *chainpb.ContractCheckpoint) { cp.KeyEpoch, cp.Rekey = epoch, rk })
}

// TestContractKeyRotation drives a contract key rotation through the
// chain: it starts when the key is due, holds commands, refuses every
// misfit checkpoint without a change, takes the named miner's checkpoint
// and key together, then refuses commands sealed to the retired key; a
// rotation whose miner does not answer is called off at its deadline, and
// one in progress when the miners change is called off at once.
func TestContractKeyRotation(t *testing.T) {
	const every = 20
	f := newContractFixtureWith(t, func(g *Genesis) { g.Contracts.KeyRotationBlocks = every; g.Auth.MaxTxBytes = 256 << 10 })
	f.fee = 1_000_000
	f.launchNow()
	id := f.deploy("alice", f.miner, f.other)
	kc0 := f.key(id, f.miner, f.other)
	pub0 := inputKeyOf(t, kc0)
	f.commandBlock("alice", id, pub0)
	keyed := f.getContract(id)
	if keyed.KeyEpoch != 0 || keyed.KeySince == 0 || keyed.Rekey != nil {
		t.Fatalf("keyed record: epoch %d since %d rekey %v", keyed.KeyEpoch, keyed.KeySince, keyed.Rekey)
	}

	due := f.untilRekey(id, every+2)
	c := f.getContract(id)
	if f.height-keyed.KeySince != every || due.Epoch != 1 || due.Inputs != c.Inputs || due.Deadline != f.height+contracts.RekeyHoldBlocks ||
		c.Rekey == nil || c.Rekey.Started != f.height || !bytes.Equal(c.Rekey.Miner, due.Miner) {
		t.Fatalf("rotation started at %d (keyed at %d): event %v, record %v", f.height, keyed.KeySince, due, c.Rekey)
	}
	started, inputs := f.height, c.Inputs
	named, other := f.miner, f.other
	if bytes.Equal(due.Miner, f.other.pub()) {
		named, other = f.other, f.miner
	}

	// Held: commands are refused until it ends.
	f.refuse("a command during the rotation", "alice", f.command("alice", id, pub0, 1_000_000), "contracts/10", false)

	kc1 := make([]byte, crypto.ContractKeySize)
	rand.Read(kc1)
	f.ignored("the other miner's rotation", other, f.rekeyMsg(id, 1, started, inputs, kc1, named), "not named", id)
	f.ignored("a rotation to epoch 2", named, f.rekeyMsg(id, 2, started, inputs, kc1, other), "another key epoch", id)
	f.ignored("a rotation that misses an input", named, f.rekeyMsg(id, 1, started, inputs-1, kc1, other), "every input", id)
	f.ignored("a rotation not sealed to the other miner", named, f.rekeyMsg(id, 1, started, inputs, kc1), "exactly the contract's other miners", id)
	aes := f.rekeyMsg(id, 1, started, inputs, kc1, other)
	aes.GetContractCheckpoint().Rekey.WrappedKey, _ = crypto.WrapContractKey(f.root, testChainID, id, kc1)
	f.ignored("a rotation whose key is not sealed to the root key", named, aes, "sealed to the root key", id)
	f.ignored("a checkpoint under the next key without the key", named, one(id, started, inputs, rootOf("x"), func(cp *chainpb.ContractCheckpoint) { cp.KeyEpoch = 1 }), "current key", id)

	f.applied("the named miner's rotation", named, f.rekeyMsg(id, 1, started, inputs, kc1, other))
	_, done := f.rekeyEvents()
	c = f.getContract(id)
	pub1 := inputKeyOf(t, kc1)
	if len(done) != 1 || !done[0].Ok || done[0].Epoch != 1 || !bytes.Equal(done[0].PublicKey, pub1) || len(done[0].Keys) != 1 ||
		!bytes.Equal(done[0].Keys[0].Recipient, other.pub()) || !bytes.Equal(done[0].WrappedKey, c.WrappedKey) {
		t.Fatalf("rotation event %v", done)
	}
	if c.KeyEpoch != 1 || !bytes.Equal(c.PublicKey, pub1) || c.Rekey != nil || c.KeySince != f.height ||
		c.Checkpoint == nil || c.Checkpoint.KeyEpoch != 1 || c.Checkpoint.Inputs != inputs || c.InboxStart != inputs || c.Checkpoint.Rekey != nil {
		t.Fatalf("record after the rotation: %v", c)
	}
	if got, err := crypto.UnwrapContractKey(f.root, testChainID, id, c.WrappedKey); err != nil || !bytes.Equal(got, kc1) {
		t.Fatalf("the chain's copy of the new key does not open to it under the root key: %v", err)
	}

	// Commands sealed to the retired key are refused; to the new one, taken.
	f.refuse("a command sealed to the retired key", "alice", f.command("alice", id, pub0, 1_000_000), "contracts/11", false)
	cmd := f.command("alice", id, pub1, 1_000_000)
	cmd.KeyEpoch = 1
	if r := f.block(f.tx("alice", cmd)).TxResults[0]; r.Code != 0 {
		t.Fatalf("a command sealed to the new key: %s %s", code(r), r.Log)
	}
	f.ignored("a checkpoint under the retired key", named, one(id, f.height-1, inputs+1, rootOf("y"), nil), "current key", id)

	// The next rotation: its miner never answers, so it is called off at
	// the deadline, and the next waits out the back-off.
	due = f.untilRekey(id, every+2)
	if due.Epoch != 2 {
		t.Fatalf("second rotation %v", due)
	}
	for range contracts.RekeyHoldBlocks - 1 {
		f.block()
		if _, done := f.rekeyEvents(); len(done) != 0 {
			t.Fatalf("called off before its deadline: %v", done)
		}
	}
	f.block()
	_, done = f.rekeyEvents()
	c = f.getContract(id)
	if len(done) != 1 || done[0].Ok || done[0].Epoch != 2 || done[0].Reason == "" || c.Rekey != nil || c.KeyEpoch != 1 ||
		!bytes.Equal(c.PublicKey, pub1) || c.RekeyAfter <= f.height {
		t.Fatalf("at the deadline: events %v, record %v", done, c)
	}
	cmd = f.command("alice", id, pub1, 1_000_000)
	cmd.KeyEpoch = 1
	if r := f.block(f.tx("alice", cmd)).TxResults[0]; r.Code != 0 {
		t.Fatalf("a command after the rotation was called off: %s %s", code(r), r.Log)
	}

	// A rotation in progress when the miners change is called off, and
	// the removed miner's key is due for rotation right after.
	before := f.getContract(id)
	due = f.untilRekey(id, int(before.RekeyAfter-f.height)+2)
	r := f.block(f.tx("alice", &chainpb.MsgReassignContract{Contract: id.Bytes(), Miners: [][]byte{f.miner.pub()}})).TxResults[0]
	if r.Code != 0 {
		t.Fatalf("reassign: %s %s", code(r), r.Log)
	}
	_, done = f.rekeyEvents()
	c = f.getContract(id)
	if len(done) != 1 || done[0].Ok || done[0].Epoch != due.Epoch || c.Rekey != nil || c.KeySince != 0 {
		t.Fatalf("after a reassignment during a rotation: events %v, record %v", done, c)
	}
	if !proto.Equal(c.Checkpoint, before.Checkpoint) || c.KeyEpoch != 1 {
		t.Fatalf("the reassignment changed the key or checkpoint: %v", c)
	}
}

// rekeyChunks is rekeyMsg's checkpoint in chunks of a 61 KiB state: the
// key rides on the first, every chunk names the new epoch.
func (f *contractFixture) rekeyChunks(id crypto.ContractID, epoch uint64, height int64, inputs uint64, kc []byte, others ...identity) []*chainpb.WorkerMessage {
	f.t.Helper()
	rk := f.rekeyMsg(id, epoch, height, inputs, kc, others...).GetContractCheckpoint().Rekey
	var out []*chainpb.WorkerMessage
	for i, cp := range checkpoint(id, height, inputs, rootOf("rekeyed"), bytes.Repeat([]byte{0xc6}, inbox.ChunkBytes+1000)) {
		cp.KeyEpoch = epoch
		if i == 0 {
			cp.Rekey = rk
		}
		out = append(out, ckptMsg(cp))
	}
	return out
}

// pending is miner w's checkpoint in progress for id, nil if none.
func (f *contractFixture) pending(id crypto.ContractID, w identity) []byte {
	return f.state(append(append(append([]byte("contracts/ckptp/"), id.Bytes()...), '/'), w.pub()...))
}

// calledOff checks the last block called id's key rotation off for a
// reason naming why, and left its key and inputs free.
func (f *contractFixture) calledOff(id crypto.ContractID, epoch uint64, why string) *chainpb.Contract {
	f.t.Helper()
	_, done := f.rekeyEvents()
	c := f.getContract(id)
	if len(done) != 1 || done[0].Ok || done[0].Epoch != epoch || !strings.Contains(done[0].Reason, why) || c.Rekey != nil {
		f.t.Fatalf("rotation to epoch %d not called off (%q) at block %d: events %v, rotation %v", epoch, why, f.height, done, c.Rekey)
	}
	return c
}

// TestContractKeyRotationEndings: a misfit first chunk keeps nothing and
// leaves the named miner's checkpoint in progress alone; a miner's identity
// renewal calls a rotation off, and so does the contract losing every
// miner, after which its inputs are no longer held.
func TestContractKeyRotationEndings(t *testing.T) {
	const every = 20
	f := newContractFixtureWith(t, func(g *Genesis) { g.Contracts.KeyRotationBlocks = every; g.Auth.MaxTxBytes = 256 << 10 })
	f.fee = 1_000_000
	f.launchNow()
	id := f.deploy("alice", f.miner, f.other)
	pub0 := inputKeyOf(t, f.key(id, f.miner, f.other))
	f.commandBlock("alice", id, pub0)

	due := f.untilRekey(id, every+2)
	started, inputs := f.height, f.getContract(id).Inputs
	named, other := f.miner, f.other
	if bytes.Equal(due.Miner, f.other.pub()) {
		named, other = f.other, f.miner
	}
	kc1 := make([]byte, crypto.ContractKeySize)
	rand.Read(kc1)
	chunks := f.rekeyChunks(id, 1, started, inputs, kc1, other)
	if len(chunks) != 2 {
		t.Fatalf("%d chunks", len(chunks))
	}
	f.applied("the named miner's first chunk", named, chunks[0])
	if f.pending(id, named) == nil {
		t.Fatal("the first chunk is not kept")
	}
	f.ignored("the named miner's first chunk for another epoch", named, f.rekeyMsg(id, 2, started, inputs, kc1, other), "another key epoch", id)
	if f.pending(id, named) == nil {
		t.Fatal("a misfit first chunk dropped the named miner's checkpoint in progress")
	}
	f.ignored("the other miner's first chunk", other, f.rekeyChunks(id, 1, started, inputs, kc1, named)[0], "not named", id)
	if f.pending(id, other) != nil {
		t.Fatal("a first chunk from a miner not named to rotate the key is kept")
	}
	f.applied("the named miner's last chunk", named, chunks[1])
	if _, done := f.rekeyEvents(); len(done) != 1 || !done[0].Ok || f.getContract(id).KeyEpoch != 1 || f.pending(id, named) != nil {
		t.Fatalf("after the last chunk: events %v, record %v", done, f.getContract(id))
	}

	// A miner renews its identity during the next rotation: called off,
	// the successor takes its place.
	due = f.untilRekey(id, every+2)
	other2 := newIdentity(t, 16)
	if r := f.block(f.tx("bob", f.renewal(f.other, other2, "bob", f.other.sign))).TxResults[0]; r.Code != 0 {
		t.Fatalf("renewal: %s %s", code(r), r.Log)
	}
	c := f.calledOff(id, due.Epoch, "renewed")
	if !sameKeySet(c.Miners, pubs(f.miner, other2)) || c.KeyEpoch != 1 {
		t.Fatalf("after the renewal: %v", c)
	}

	// Both miners leave during the next: called off, the contract waits
	// without a miner, and its commands are taken again.
	due = f.untilRekey(id, int(c.RekeyAfter-f.height)+2)
	retire := func(w identity) []byte { return f.tx("bob", &chainpb.MsgRetireWorker{Worker: w.pub()}) }
	mustApply(t, "retirements", f.block(retire(f.miner), retire(other2)))
	c = f.calledOff(id, due.Epoch, "miners changed")
	if len(c.Miners) != 0 || c.KeyEpoch != 1 {
		t.Fatalf("after every miner left: %v", c)
	}
	cmd := f.command("alice", id, inputKeyOf(t, kc1), 1_000_000)
	cmd.KeyEpoch = 1
	if r := f.block(f.tx("alice", cmd)).TxResults[0]; r.Code != 0 {
		t.Fatalf("a command to the contract without miners: %s %s", code(r), r.Log)
	}
	for range contracts.RekeyHoldBlocks + 1 {
		if f.block(); f.getContract(id).Rekey != nil {
			t.Fatal("a rotation started for a contract without miners")
		}
	}
}

// TestContractKeyRotationYieldsToRootRotation: the block that starts a
// root key rotation calls a contract key rotation in progress off (so the
// chain never stores a contract key the root rotation did not
// re-encrypt), and its miner's checkpoint under the new key is refused.
func TestContractKeyRotationYieldsToRootRotation(t *testing.T) {
	const every, era = 20, 60
	f := newContractFixtureWith(t, func(g *Genesis) {
		g.Contracts.KeyRotationBlocks = every
		g.Auth.MaxTxBytes = 256 << 10
		g.Gatekeeper.Params.EraBlocks, g.Gatekeeper.Params.RotationBlocks = era, 10
	})
	f.fee = 1_000_000
	f.launchNow()
	id := f.deploy("alice", f.miner)
	f.commandBlock("alice", id, inputKeyOf(t, f.key(id, f.miner)))

	// The first rotation completes where the next falls due just before
	// the era ends.
	f.untilRekey(id, every+2)
	started, inputs := f.height, f.getContract(id).Inputs
	complete := int64(era - every - contracts.RekeyHoldBlocks/2)
	if complete <= started || complete >= started+contracts.RekeyHoldBlocks {
		t.Fatalf("the fixture's first rotation started at %d; it cannot complete at %d", started, complete)
	}
	for f.height < complete-1 {
		f.block()
	}
	kc := make([]byte, crypto.ContractKeySize)
	rand.Read(kc)
	f.applied("the first rotation", f.miner, f.rekeyMsg(id, 1, started, inputs, kc))
	due := f.untilRekey(id, every+2)
	if f.height >= era || due.Deadline <= era {
		t.Fatalf("the second rotation runs from %d to %d, not across the era's end at %d", f.height, due.Deadline, era)
	}
	started = f.height

	for f.height < era-1 {
		f.block()
	}
	f.block()
	if rot := f.rotation(); rot == nil {
		t.Fatalf("no root key rotation started at %d", f.height)
	}
	c := f.calledOff(id, due.Epoch, "root key rotation")
	rand.Read(kc)
	f.ignored("the rotation's checkpoint during the root key rotation", f.miner, f.rekeyMsg(id, due.Epoch, started, c.Inputs, kc), "not rotating", id)
	if c = f.getContract(id); c.KeyEpoch != 1 {
		t.Fatalf("the key changed during the root key rotation: epoch %d", c.KeyEpoch)
	}
}

// rotation is the root key rotation in progress, nil if none.
func (f *contractFixture) rotation() *chainpb.Rotation {
	f.t.Helper()
	res := f.query(QueryEra, nil)
	var es chainpb.EraState
	if res.Code != 0 || proto.Unmarshal(res.Value, &es) != nil {
		f.t.Fatalf("era query: %s %s", code(res), res.Log)
	}
	return es.Rotation
}
