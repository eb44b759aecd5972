package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// launchFixture is a chain with a genesis worker and a launch that elects
// two gatekeepers from block 3, with 4 blocks to confirm.
type launchFixture struct {
	*attestFixture
	genesis identity
	root    []byte
	seqs    map[string]uint64
	nonces  map[string]uint64
}

func newLaunchFixture(t *testing.T) *launchFixture {
	t.Helper()
	gen := newIdentity(t, 100)
	root := bytes.Repeat([]byte{42}, 32)
	f := newAttestFixtureWith(t, func(g *Genesis) {
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: gen.pub(), HPKEKey: gen.hpke.PublicKey()}
		g.Gatekeeper = &gatekeeper.Genesis{Params: gatekeeper.Params{NGatekeepers: 2, ElectionHeight: 3, HandoverBlocks: 4}, RootPublicKey: crypto.RootPublicKey(root)}
		g.Staking.MinCandidateStake = 10 * 1_000_000
	})
	return &launchFixture{attestFixture: f, genesis: gen, root: root, seqs: map[string]uint64{}, nonces: map[string]uint64{}}
}

func (f *launchFixture) tx(from string, msg proto.Message) []byte {
	n := f.nonces[from]
	f.nonces[from]++
	return f.sign(from, msg, n)
}

// register registers and stakes a worker operated by bob.
func (f *launchFixture) candidate(seed byte, stake int64) identity {
	id := newIdentity(f.t, seed)
	info := f.info(id, "bob", f.genHash)
	res := f.block(f.tx("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}),
		f.tx("bob", &chainpb.MsgStake{Worker: id.pub(), Amount: stake}))
	for _, r := range res.TxResults {
		if r.Code != 0 {
			f.t.Fatalf("candidate %d: %s", seed, r.Log)
		}
	}
	return id
}

func (f *launchFixture) message(id identity, wm *chainpb.WorkerMessage) []byte {
	payload, _ := proto.Marshal(wm)
	seq := f.seqs[string(id.pub())]
	f.seqs[string(id.pub())]++
	return f.tx("alice", &chainpb.MsgSubmitMessage{Message: &chainpb.SignedMessage{Sender: id.pub(), Sequence: seq, Payload: payload,
		Signature: ed25519.Sign(id.sign, crypto.SignedMessageBytes(testChainID, id.pub(), seq, payload))}})
}

func (f *launchFixture) launch() *chainpb.LaunchState {
	f.t.Helper()
	res, err := f.app.Query(context.Background(), &abci.QueryRequest{Path: QueryLaunch})
	if err != nil || res.Code != 0 {
		f.t.Fatalf("launch query: %v %s", err, res.Log)
	}
	var st chainpb.LaunchState
	proto.Unmarshal(res.Value, &st)
	return &st
}

func (f *launchFixture) handover(round uint64, to ...identity) *chainpb.WorkerMessage {
	ho := &chainpb.RootKeyHandover{Round: round, RootPublicKey: crypto.RootPublicKey(f.root), RootHpkeKey: rootHPKE(f.t, f.root)}
	for _, g := range to {
		env, err := crypto.Seal(g.hpke.PublicKey(), []byte("test"), f.root)
		if err != nil {
			f.t.Fatal(err)
		}
		ho.Keys = append(ho.Keys, &chainpb.SealedKey{Recipient: g.pub(), Envelope: env})
	}
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Handover{Handover: ho}}
}

func confirm(round uint64, rootPub []byte) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: round, RootPublicKey: rootPub}}}
}

func effect(r *abci.ExecTxResult) string {
	for _, e := range r.Events {
		for _, a := range e.Attributes {
			if a.Key == "effect" {
				return a.Value
			}
		}
	}
	return ""
}

// TestLaunchElectsHandsOverAndRetiresGenesis goes through the launch with
// the chain alone: an election by stake, an expired round (a gatekeeper
// that never confirms is excluded and a new round elects another), the
// handover, confirmations, launch, and the genesis worker refused after.
func TestLaunchElectsHandsOverAndRetiresGenesis(t *testing.T) {
	f := newLaunchFixture(t)
	f.block()
	a := f.candidate(1, 30*1_000_000)
	b := f.candidate(2, 20*1_000_000)
	c := f.candidate(3, 15*1_000_000)
	f.candidate(4, 5*1_000_000) // below the minimum stake: never electable
	st := f.launch()
	if st.Phase != "pre-launch" || st.Round != 1 || len(st.Elected) != 2 {
		t.Fatalf("after block %d: %+v", f.height, st)
	}
	if !bytes.Equal(st.Elected[0].SigningKey, a.pub()) || !bytes.Equal(st.Elected[1].SigningKey, b.pub()) {
		t.Fatalf("elected %X %X, want the two largest stakes", st.Elected[0].SigningKey, st.Elected[1].SigningKey)
	}
	// Only the genesis worker hands over, only for the open round, only
	// to exactly the elected: anything else is delivered without effect.
	ignored := []struct {
		name string
		tx   []byte
	}{
		{"handover from a candidate", f.message(a, f.handover(1, a, b))},
		{"handover for another round", f.message(f.genesis, f.handover(2, a, b))},
		{"handover to the wrong set", f.message(f.genesis, f.handover(1, a, c))},
		{"confirm before handover", f.message(a, confirm(1, crypto.RootPublicKey(f.root)))},
	}
	res := f.block(ignored[0].tx, ignored[1].tx, ignored[2].tx, ignored[3].tx)
	for i, r := range res.TxResults {
		if r.Code != 0 || effect(r) == "applied" || effect(r) == "" {
			t.Errorf("%s: code %d effect %q", ignored[i].name, r.Code, effect(r))
		}
	}
	res = f.block(f.message(f.genesis, f.handover(1, a, b)), f.message(a, confirm(1, crypto.RootPublicKey(f.root))), f.message(b, confirm(1, []byte("another root key..............."))))
	if effect(res.TxResults[0]) != "applied" || effect(res.TxResults[1]) != "applied" || effect(res.TxResults[2]) == "applied" {
		t.Fatalf("handover %q, confirm %q, wrong-key confirm %q", effect(res.TxResults[0]), effect(res.TxResults[1]), effect(res.TxResults[2]))
	}
	// b never confirms the right key: the round expires at its deadline.
	for f.height < st.Deadline {
		f.block()
	}
	var expired *chainpb.ElectionExpired
	for _, ev := range f.eventLog(f.height) {
		if e := ev.GetElectionExpired(); e != nil {
			expired = e
		}
	}
	if expired == nil || len(expired.Missing) != 1 || !bytes.Equal(expired.Missing[0], b.pub()) {
		t.Fatalf("expiry at block %d: %+v", f.height, expired)
	}
	// The next block elects again without b.
	f.block()
	st = f.launch()
	if st.Round != 2 || len(st.Elected) != 2 || !bytes.Equal(st.Elected[1].SigningKey, c.pub()) {
		t.Fatalf("round 2: %+v", st)
	}
	res = f.block(f.message(f.genesis, f.handover(2, a, c)), f.message(a, confirm(2, crypto.RootPublicKey(f.root))), f.message(c, confirm(2, crypto.RootPublicKey(f.root))))
	for i, r := range res.TxResults {
		if r.Code != 0 || effect(r) != "applied" {
			t.Fatalf("round 2 tx %d: %d %q %s", i, r.Code, effect(r), r.Log)
		}
	}
	st = f.launch()
	if st.Phase != "launched" || f.app.mustPhase(t) != gatekeeper.PhaseLaunched {
		t.Fatalf("after every confirmation: %+v", st)
	}
	// The genesis worker is retired; the chain refuses anything from it.
	if w := f.worker(f.genesis.pub()); !w.Retired {
		t.Fatal("genesis worker not retired")
	}
	if r := f.checkTx(f.message(f.genesis, f.handover(3, a, c))); r.Codespace != "registry" || r.Code != 16 {
		t.Fatalf("message from the retired genesis worker: %s/%d %s", r.Codespace, r.Code, r.Log)
	}
}

func (a *App) mustPhase(t *testing.T) gatekeeper.Phase {
	a.mu.RLock()
	defer a.mu.RUnlock()
	p, err := gatekeeper.LoadPhase(a.view)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// rootHPKE is root's encryption public key, as a pRuntime publishes it.
func rootHPKE(t testing.TB, root []byte) []byte {
	t.Helper()
	k, err := crypto.RootHPKEKey(root)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}
