package pruntime

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/querywire"
	"github.com/phala-go/phala/internal/wasmbuild"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/tee/sim"
)

func buildToken(t *testing.T) []byte {
	t.Helper()
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	code, err := wasmbuild.Code(context.Background(), root, "./contracts/token")
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestMinerRunsContract drives a miner's pRuntime with verified events:
// it keeps the deployed code, accepts the contract key only from a current
// gatekeeper and only if it matches the published key, runs commands in
// order with receipts (refusing tampered and replayed ones unexecuted),
// answers sealed queries from its snapshot, and resumes it all after a
// restart.
func TestMinerRunsContract(t *testing.T) {
	if raceEnabled {
		t.Skip("runs wasm; too slow under the race detector")
	}
	code := buildToken(t)
	cpu, _ := sim.OpenCPU(t.TempDir())
	p := sim.New(cpu, sim.Measure([]byte("b")))
	dir := t.TempDir()
	r, err := New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitRuntime([]byte(testGenesis)); err != nil {
		t.Fatal(err)
	}
	me := r.Info().SigningKey
	gk, other := ed25519.PublicKey(make([]byte, 32)), ed25519.PublicKey(append(make([]byte, 31), 1))
	apply := func(h int64, evs ...*chainpb.WorkerEvent) { t.Helper(); syncBatch(t, r, h, evs) }
	apply(1, registered(me, nil), &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_Launched{Launched: &chainpb.Launched{Gatekeepers: [][]byte{gk}}}})

	alice := ed25519.NewKeyFromSeed(make([]byte, 32))
	aliceAddr := crypto.AddressFromPubKey(alice.Public().(ed25519.PublicKey))
	bob := ed25519.NewKeyFromSeed(append(make([]byte, 31), 2))
	id := crypto.NewContractID(aliceAddr, 7)
	sum := sha256.Sum256(code)
	apply(2, &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractDeployed{ContractDeployed: &chainpb.ContractDeployed{
		Contract: id.Bytes(), CodeHash: sum[:], CodeGzip: wasmcode.Gzip(code), Miners: [][]byte{me}, Deployer: aliceAddr.Bytes(), InitArgs: []byte(`{"name":"T"}`), CheckpointInterval: 3}}})

	kc := crypto.DeriveContractKey(make([]byte, 32), "a", id)
	in, _ := crypto.ContractInputKey(kc)
	keyed := func(from []byte, key []byte) *chainpb.WorkerEvent {
		env, err := crypto.Seal(r.id.HPKE.PublicKey(), crypto.ContractKeyInfo("a", id, me), key)
		if err != nil {
			t.Fatal(err)
		}
		return &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractKeyed{ContractKeyed: &chainpb.ContractKeyed{
			Contract: id.Bytes(), PublicKey: in.PublicKey(), Keys: []*chainpb.SealedKey{{Recipient: me, Envelope: env}}, Gatekeeper: from,
			Initial: true, InitArgs: []byte(`{"name":"T"}`)}}}
	}
	// From a worker holding no seat: refused, the contract stays unkeyed.
	apply(3, keyed(other, kc))
	if c := r.st.Contracts[hexKey(id[:])]; c.Key != nil {
		t.Fatal("accepted a contract key from a worker that is not a gatekeeper")
	}
	apply(4, keyed(gk, kc))
	if c := r.st.Contracts[hexKey(id[:])]; c.Key == nil || c.Broken != "" {
		t.Fatalf("contract not keyed from the gatekeeper: %q", c.Broken)
	}

	command := func(nonce uint64, msg string, tamper bool) *chainpb.WorkerEvent {
		env, err := crypto.Seal(in.PublicKey(), crypto.CommandInfo("a", id, aliceAddr, nonce), []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		if tamper {
			env[len(env)-3] ^= 1
		}
		return &chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractCommand{ContractCommand: &chainpb.ContractCommand{
			Contract: id.Bytes(), Sender: aliceAddr.Bytes(), Nonce: nonce, GasLimit: 100_000_000, Envelope: env}}}
	}
	mint := fmt.Sprintf(`{"mint":{"to":%q,"amount":1000}}`, aliceAddr)
	replay := command(10, mint, false)
	replay.GetContractCommand().Nonce = 11
	apply(5, command(10, mint, false), replay, command(12, mint, true), command(13, `{"transfer":{"to":"x","amount":1}}`, false))
	for nonce, want := range map[uint64]string{10: "", 11: "refused", 12: "refused"} {
		rc := r.receipts.get(hexKey(id[:]), aliceAddr[:], nonce)
		if rc == nil || rc.Ok != (want == "") || !strings.Contains(rc.Error, want) {
			t.Fatalf("receipt of nonce %d: %+v", nonce, rc)
		}
	}

	ask := func(user ed25519.PrivateKey, q *pruntimepb.ContractQuery) *pruntimepb.QueryAnswer {
		t.Helper()
		q.Contract = id.Bytes()
		w := &chainpb.Worker{SigningKey: me, HpkeKey: r.id.HPKE.PublicKey()}
		pend, err := querywire.NewRequest("a", w, user, q)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := r.Query(context.Background(), pend.Request)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := pend.Open(resp)
		if err != nil {
			t.Fatal(err)
		}
		return ans
	}
	if a := ask(alice, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)}); string(a.Output) != "999" || len(a.StateRoot) != 32 {
		t.Fatalf("alice's balance %q (%s) at height %d", a.Output, a.Error, a.Height)
	}
	if a := ask(bob, &pruntimepb.ContractQuery{Payload: []byte(fmt.Sprintf(`{"balance":{"account":%q}}`, aliceAddr))}); !strings.Contains(a.Error, "only the holder") {
		t.Fatalf("bob read alice's balance: %q %q", a.Output, a.Error)
	}
	if a := ask(bob, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_RECEIPT, CommandNonce: 10}); a.Receipt != nil {
		t.Fatal("bob read alice's receipt")
	}
	root := ask(alice, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_STATUS}).StateRoot

	// A query never waits for sync: with the runtime's lock held (as a
	// sync or a command in progress holds it), it is still answered.
	pend, err := querywire.NewRequest("a", &chainpb.Worker{SigningKey: me, HpkeKey: r.id.HPKE.PublicKey()}, alice,
		&pruntimepb.ContractQuery{Contract: id.Bytes(), Payload: []byte(`{"balance":{}}`)})
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	answered := make(chan error, 1)
	go func() {
		resp, err := r.Query(context.Background(), pend.Request)
		if err == nil {
			var a *pruntimepb.QueryAnswer
			if a, err = pend.Open(resp); err == nil && string(a.Output) != "999" {
				err = fmt.Errorf("answer %q %q", a.Output, a.Error)
			}
		}
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			t.Errorf("query during a sync: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("a query waited for the runtime's lock")
	}
	r.mu.Unlock()

	// Block 6 is a checkpoint height (interval 3) and inputs ran since the
	// last one: the miner seals its state under k_c and sends it.
	apply(6)
	cp, sealed := sentCheckpoint(t, r, id)
	if cp.Height != 6 || cp.Inputs != 5 || string(cp.StateRoot) != string(root) {
		t.Fatalf("checkpoint at %d of %d inputs, root %X; want 6, 5 (init and four commands), %X", cp.Height, cp.Inputs, cp.StateRoot, root)
	}
	if st, err := openSealedCheckpoint("a", id, kc, cp, sealed); err != nil || st.Inputs != 5 || st.Sent != 0 || len(st.Pairs) == 0 {
		t.Fatalf("the checkpoint does not open to the state: %+v, %v", st, err)
	}
	for name, f := range map[string]func(cp *chainpb.Checkpoint, sealed []byte){
		"a flipped byte":   func(_ *chainpb.Checkpoint, b []byte) { b[len(b)/2] ^= 1 },
		"another root":     func(cp *chainpb.Checkpoint, _ []byte) { cp.StateRoot = make([]byte, 32) },
		"another height":   func(cp *chainpb.Checkpoint, _ []byte) { cp.Height++ },
		"fewer inputs":     func(cp *chainpb.Checkpoint, _ []byte) { cp.Inputs-- },
		"a different size": func(cp *chainpb.Checkpoint, _ []byte) { cp.Size++ },
	} {
		cp2, b := proto.Clone(cp).(*chainpb.Checkpoint), bytes.Clone(sealed)
		f(cp2, b)
		if _, err := openSealedCheckpoint("a", id, kc, cp2, b); err == nil {
			t.Errorf("a checkpoint with %s opened", name)
		}
	}
	apply(9) // nothing ran since: no checkpoint
	if msgs, _ := r.DumpSideEffects(); len(msgs.Messages) != 1 {
		t.Fatalf("%d messages queued after an idle checkpoint height, want the one checkpoint chunk", len(msgs.Messages))
	}

	// A restart resumes the instance from the sealed state.
	r2, err := New(Config{Platform: p, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r = r2
	if a := ask(alice, &pruntimepb.ContractQuery{Kind: pruntimepb.ContractQuery_STATUS}); string(a.StateRoot) != string(root) || a.Error != "" {
		t.Fatalf("after restart: root %X (%s), want %X", a.StateRoot, a.Error, root)
	}
	if a := ask(alice, &pruntimepb.ContractQuery{Payload: []byte(`{"balance":{}}`)}); string(a.Output) != "999" {
		t.Fatalf("after restart alice holds %q", a.Output)
	}
}

// sentCheckpoint reassembles the last checkpoint of id in r's outbox.
func sentCheckpoint(t *testing.T, r *Runtime, id crypto.ContractID) (*chainpb.Checkpoint, []byte) {
	t.Helper()
	msgs, err := r.DumpSideEffects()
	if err != nil {
		t.Fatal(err)
	}
	var cp *chainpb.Checkpoint
	var sealed []byte
	for _, m := range msgs.Messages {
		var wm chainpb.WorkerMessage
		if err := proto.Unmarshal(m.Payload, &wm); err != nil {
			t.Fatal(err)
		}
		c := wm.GetContractCheckpoint()
		if c == nil || string(c.Contract) != string(id[:]) {
			continue
		}
		if c.Index == 0 {
			cp, sealed = &chainpb.Checkpoint{Height: c.Height, Inputs: c.Inputs, StateRoot: c.StateRoot, Chunks: c.Chunks, Size: c.Size}, nil
		}
		sealed = append(sealed, c.Data...)
	}
	if cp == nil {
		t.Fatal("no checkpoint sent")
	}
	return cp, sealed
}

// syncBatch applies blocks h, h+1, ... (one list of events each) to r as
// one sync batch does: each block's events and end, then the batch's
// checkpoints, the sealed state and the query view.
func syncBatch(t *testing.T, r *Runtime, h int64, blocks ...[]*chainpb.WorkerEvent) {
	t.Helper()
	for b, evs := range blocks {
		height := h + int64(b)
		for i, ev := range evs {
			ev.Height, ev.Index = height, uint32(i)
			if err := r.apply(ev, time.Unix(1_800_000_000+height, 0)); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.endBlock(height); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.flushCheckpoints(); err != nil {
		t.Fatal(err)
	}
	if err := r.persist(); err != nil {
		t.Fatal(err)
	}
	r.publishView(time.Unix(1_800_000_000+h, 0))
}
