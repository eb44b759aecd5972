package pruntime

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee/sim"
)

// TestMinerRotatesContractKey drives the named miner of a key rotation:
// the rotation's checkpoint is the one sent even when a checkpoint height
// follows in the same sync batch; at ContractRekeyed the miner runs under
// the new key and erases the old one without touching the key a
// published query view holds; messages the chain has not accepted are
// resent when their receiver's rotation ends (not another's, and by a
// miner still recovering too), pruned when accepted, and carried by
// checkpoints.
func TestMinerRotatesContractKey(t *testing.T) {
	if raceEnabled {
		t.Skip("runs wasm; too slow under the race detector")
	}
	code := buildToken(t)
	cpu, _ := sim.OpenCPU(t.TempDir())
	r, err := New(Config{Platform: sim.New(cpu, sim.Measure([]byte("b"))), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitRuntime([]byte(testGenesis)); err != nil {
		t.Fatal(err)
	}
	me := r.Info().SigningKey
	gk := ed25519.PublicKey(make([]byte, 32))
	rootKey := make([]byte, 32)
	rand.Read(rootKey)
	rootEnc, err := crypto.RootHPKEKey(rootKey)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(h int64, blocks ...[]*chainpb.WorkerEvent) { t.Helper(); syncBatch(t, r, h, blocks...) }
	apply := func(h int64, evs ...*chainpb.WorkerEvent) { t.Helper(); batch(h, evs) }
	apply(1, registered(me, nil), &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_Launched{Launched: &chainpb.Launched{
		Gatekeepers: [][]byte{gk}, RootHpkeKey: rootEnc.PublicKey()}}})

	alice := crypto.AddressFromPubKey(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey))
	id := crypto.NewContractID(alice, 7)
	k := hexKey(id[:])
	sum := sha256.Sum256(code)
	apply(2, &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractDeployed{ContractDeployed: &chainpb.ContractDeployed{
		Contract: id.Bytes(), CodeHash: sum[:], CodeGzip: wasmcode.Gzip(code), Miners: [][]byte{me}, Deployer: alice.Bytes(),
		InitArgs: []byte(`{"name":"T"}`), CheckpointInterval: 3}}})
	kc0 := crypto.DeriveContractKey(rootKey, "a", id)
	in0, _ := crypto.ContractInputKey(kc0)
	env, err := crypto.Seal(r.id.HPKE.PublicKey(), crypto.ContractKeyInfo("a", id, me), kc0)
	if err != nil {
		t.Fatal(err)
	}
	apply(3, &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractKeyed{ContractKeyed: &chainpb.ContractKeyed{
		Contract: id.Bytes(), PublicKey: in0.PublicKey(), Keys: []*chainpb.SealedKey{{Recipient: me, Envelope: env}}, Gatekeeper: gk,
		Initial: true, InitArgs: []byte(`{"name":"T"}`)}}})
	command := func(pub []byte, epoch, nonce uint64) *chainpb.WorkerEvent {
		env, err := crypto.Seal(pub, crypto.CommandInfo("a", id, alice, nonce), []byte(fmt.Sprintf(`{"mint":{"to":%q,"amount":1}}`, alice)))
		if err != nil {
			t.Fatal(err)
		}
		return &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractCommand{ContractCommand: &chainpb.ContractCommand{
			Contract: id.Bytes(), Sender: alice.Bytes(), Nonce: nonce, GasLimit: 100_000_000, Envelope: env, KeyEpoch: epoch}}}
	}
	apply(4, command(in0.PublicKey(), 0, 1))
	c := r.st.Contracts[k]
	if !c.Live || c.Inputs != 2 {
		t.Fatalf("the instance is not running: live %v, %d inputs, %q", c.Live, c.Inputs, c.Broken)
	}
	outbox := func() (cps []*chainpb.ContractCheckpoint, msgs []*chainpb.ContractMessage) {
		t.Helper()
		se, err := r.DumpSideEffects()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range se.Messages {
			var wm chainpb.WorkerMessage
			if err := proto.Unmarshal(m.Payload, &wm); err != nil {
				t.Fatal(err)
			}
			if cp := wm.GetContractCheckpoint(); cp != nil {
				cps = append(cps, cp)
			}
			if cm := wm.GetContractMessage(); cm != nil {
				msgs = append(msgs, cm)
			}
		}
		r.st.Outbox = nil
		return cps, msgs
	}
	outbox()

	// The rotation starts at the end of block 5; block 6, a checkpoint
	// height with an input in the last interval, ends in the same batch.
	// The checkpoint sent is the rotation's.
	batch(5, []*chainpb.WorkerEvent{{Kind: &chainpb.WorkerEvent_ContractRekeyDue{ContractRekeyDue: &chainpb.ContractRekeyDue{
		Contract: id.Bytes(), Epoch: 1, Miner: me, Inputs: c.Inputs, Deadline: 15}}}}, nil)
	cps, _ := outbox()
	if len(cps) == 0 || cps[0].Rekey == nil || cps[0].KeyEpoch != 1 || cps[0].Height != 5 {
		t.Fatalf("the checkpoint sent is not the key rotation's: %+v", cps)
	}
	rk := cps[0].Rekey
	kc1, err := crypto.UnwrapContractKey(rootKey, "a", id, rk.WrappedKey)
	if err != nil || !bytes.Equal(kc1, c.NextKey) {
		t.Fatalf("the new key sealed to the root key is not the one kept: %v", err)
	}

	// The chain stores it: the miner switches keys and erases the old one,
	// while the view a query may be reading keeps its own copy.
	oldKey, oldCopy := c.Key, bytes.Clone(c.Key)
	viewKey := r.view.Load().contracts[id].key
	apply(10, &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractRekeyed{ContractRekeyed: &chainpb.ContractRekeyed{
		Contract: id.Bytes(), Epoch: 1, Ok: true, PublicKey: rk.PublicKey, Miner: me, Keys: rk.Sealed, WrappedKey: rk.WrappedKey}}})
	switch {
	case c.Broken != "":
		t.Fatalf("broken after the rotation: %s", c.Broken)
	case !bytes.Equal(c.Key, kc1) || c.NextKey != nil || c.KeyEpoch != 1 || c.Rekeying:
		t.Fatalf("not switched to the new key: epoch %d, rekeying %v", c.KeyEpoch, c.Rekeying)
	case !bytes.Equal(oldKey, make([]byte, len(oldKey))):
		t.Fatal("the old key was not erased")
	case !bytes.Equal(viewKey, oldCopy):
		t.Fatal("erasing the old key changed the key of a published query view")
	case !bytes.Equal(r.view.Load().contracts[id].key, kc1):
		t.Fatal("the query view does not hold the new key")
	}
	in1, _ := crypto.ContractInputKey(kc1)
	apply(11, command(in0.PublicKey(), 0, 2), command(in1.PublicKey(), 1, 3))
	if rc := r.receipts.get(k, alice[:], 2); rc == nil || rc.Ok {
		t.Fatalf("a command sealed to the erased key ran: %+v", rc)
	}
	if rc := r.receipts.get(k, alice[:], 3); rc == nil || !rc.Ok {
		t.Fatalf("a command sealed to the new key did not run: %+v", rc)
	}

	// Messages. The token sends none; give it one in flight to b, and
	// let c be another contract.
	other := func(n uint64) ([]byte, *contractState) {
		in, _ := crypto.ContractInputKey(bytes.Repeat([]byte{byte(n)}, 32))
		oid := crypto.NewContractID(alice, n)
		cs := &contractState{PublicKey: in.PublicKey(), KeyEpoch: 3}
		r.st.Contracts[hexKey(oid[:])] = cs
		return oid.Bytes(), cs
	}
	b, bc := other(100)
	cOther, cc := other(101)
	c.Sent, c.Outgoing = 1, []outgoing{{Seq: 0, To: b, Payload: []byte("pay")}}
	rekeyed := func(to []byte, epoch uint64) *chainpb.WorkerEvent {
		return &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractRekeyed{ContractRekeyed: &chainpb.ContractRekeyed{
			Contract: to, Epoch: epoch, Reason: "called off"}}}
	}
	cc.Rekeying = true
	apply(12, rekeyed(cOther, 4))
	if _, msgs := outbox(); len(msgs) != 0 {
		t.Fatalf("another contract's rotation resent a message in flight: %d sent", len(msgs))
	}
	bc.Rekeying = true
	apply(13, rekeyed(b, 4))
	_, msgs := outbox()
	if len(msgs) != 1 || msgs[0].Sequence != 0 || !bytes.Equal(msgs[0].To, b) || msgs[0].KeyEpoch != 3 {
		t.Fatalf("the receiver's rotation did not resend the message held for it: %+v", msgs)
	}
	// A miner still taking the instance over resends too.
	c.Live, c.Recovery = false, &recovery{Keyed: true, Loaded: true}
	bc.Rekeying = true
	apply(14, rekeyed(b, 4))
	if _, msgs := outbox(); len(msgs) != 1 {
		t.Fatalf("a recovering miner resent %d messages, want 1", len(msgs))
	}
	c.Live, c.Recovery = true, nil

	// A checkpoint carries the message the chain has not accepted.
	apply(15, command(in1.PublicKey(), 1, 4))
	cps, _ = outbox()
	if len(cps) != 1 {
		t.Fatalf("%d checkpoints at height 15", len(cps))
	}
	cp := cps[0]
	st, err := openSealedCheckpoint("a", id, kc1, &chainpb.Checkpoint{Height: cp.Height, Inputs: cp.Inputs, StateRoot: cp.StateRoot, Size: cp.Size}, cp.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(st.Outgoing, c.Outgoing, func(a, b outgoing) bool {
		return a.Seq == b.Seq && bytes.Equal(a.To, b.To) && bytes.Equal(a.Payload, b.Payload)
	}) || len(st.Outgoing) != 1 {
		t.Fatalf("the checkpoint carries %+v, the instance keeps %+v", st.Outgoing, c.Outgoing)
	}

	// The chain accepts it: no longer kept.
	wm, _ := proto.Marshal(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: msgs[0]}})
	apply(16, &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerMessage{WorkerMessage: &chainpb.SignedMessage{Sender: me, Payload: wm}}})
	if c.Accepted != 1 || len(c.Outgoing) != 0 {
		t.Fatalf("after the chain accepted it: accepted %d, %d kept", c.Accepted, len(c.Outgoing))
	}
}
