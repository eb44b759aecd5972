package chain

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
)

// testMaxCode is the contract fixture's max_code_bytes: the smallest the
// parameters allow, so an oversized module still fits in a transaction.
const testMaxCode = 1024

// wasmHeader is the smallest WebAssembly version-1 module.
var wasmHeader = []byte("\x00asm\x01\x00\x00\x00")

// wasmOf is a module of exactly n bytes (the header, then zeros).
func wasmOf(n int) []byte {
	return append(bytes.Clone(wasmHeader), make([]byte, n-len(wasmHeader))...)
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// contractFixture is the launch fixture with small contract parameters,
// gatekeepers a and b elected (not yet launched), and two plain workers
// registered by bob: miner, which runs the contracts, and other.
type contractFixture struct {
	*launchFixture
	params       contracts.Params
	a, b         identity // the gatekeepers
	miner, other identity
}

func newContractFixture(t *testing.T) *contractFixture {
	t.Helper()
	return newContractFixtureWith(t, nil)
}

// newContractFixtureWith lets tune adjust the genesis further.
func newContractFixtureWith(t *testing.T, tune func(*Genesis)) *contractFixture {
	t.Helper()
	gen := newIdentity(t, 100)
	root := bytes.Repeat([]byte{42}, 32)
	p := contracts.DefaultParams()
	p.MaxCodeBytes = testMaxCode
	af := newAttestFixtureWith(t, func(g *Genesis) {
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: gen.pub(), HPKEKey: gen.hpke.PublicKey()}
		g.Gatekeeper = &gatekeeper.Genesis{Params: gatekeeper.Params{NGatekeepers: 2, ElectionHeight: 3, HandoverBlocks: 4}, RootPublicKey: crypto.RootPublicKey(root)}
		g.Staking.MinCandidateStake = 10 * 1_000_000
		g.Staking.MinMinerStake = 0 // TestMinerBond covers the minimum
		g.Contracts = &p
		if tune != nil {
			tune(g)
		}
	})
	f := &contractFixture{
		launchFixture: &launchFixture{attestFixture: af, genesis: gen, root: root, seqs: map[string]uint64{}, nonces: map[string]uint64{}},
		params:        p,
	}
	f.block()
	f.a = f.candidate(1, 30*1_000_000)
	f.b = f.candidate(2, 20*1_000_000)
	f.miner, f.other = newIdentity(t, 5), newIdentity(t, 6)
	var txs [][]byte
	for _, id := range []identity{f.miner, f.other} {
		info := f.info(id, "bob", f.genHash)
		txs = append(txs, f.tx("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}))
	}
	for i, r := range f.block(txs...).TxResults {
		if r.Code != 0 {
			t.Fatalf("register worker %d: %s %s", i, code(r), r.Log)
		}
	}
	st := f.launch()
	if st.Phase != "pre-launch" || len(st.Elected) != 2 || !bytes.Equal(st.Elected[0].SigningKey, f.a.pub()) || !bytes.Equal(st.Elected[1].SigningKey, f.b.pub()) {
		t.Fatalf("election: %+v", st)
	}
	return f
}

// launchNow hands the root key over to a and b, who confirm it.
func (f *contractFixture) launchNow() {
	f.t.Helper()
	res := f.block(f.message(f.genesis, f.handover(1, f.a, f.b)), f.message(f.a, confirm(1, crypto.RootPublicKey(f.root))), f.message(f.b, confirm(1, crypto.RootPublicKey(f.root))))
	for i, r := range res.TxResults {
		if r.Code != 0 || effect(r) != "applied" {
			f.t.Fatalf("launch tx %d: %s %q %s", i, code(r), effect(r), r.Log)
		}
	}
	if st := f.launch(); st.Phase != "launched" {
		f.t.Fatalf("not launched: %+v", st)
	}
}

func (f *contractFixture) deployMsg(miners ...[]byte) *chainpb.MsgDeployContract {
	return &chainpb.MsgDeployContract{CodeGzip: gzipped(f.t, wasmOf(100)), Miners: miners, InitArgs: []byte(`{"owner":"alice"}`)}
}

// deploy deploys a contract run by miners from account from and returns its id.
func (f *contractFixture) deploy(from string, miners ...identity) crypto.ContractID {
	f.t.Helper()
	id := crypto.NewContractID(addr(f.keys[from]), f.nonces[from])
	if r := f.block(f.tx(from, f.deployMsg(pubs(miners...)...))).TxResults[0]; r.Code != 0 {
		f.t.Fatalf("deploy: %s %s", code(r), r.Log)
	}
	return id
}

// pubs are the identities' signing keys.
func pubs(ids ...identity) [][]byte {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		out[i] = id.pub()
	}
	return out
}

// contractKey is a gatekeeper's copy of id's contract key k_c sealed to
// miners, and k_c.
func (f *contractFixture) contractKey(id crypto.ContractID, miners ...identity) (*chainpb.WorkerMessage, []byte) {
	f.t.Helper()
	kc := crypto.DeriveContractKey(f.root, testChainID, id)
	ik, err := crypto.ContractInputKey(kc)
	if err != nil {
		f.t.Fatal(err)
	}
	wrapped, err := crypto.WrapContractKey(f.root, testChainID, id, kc)
	if err != nil {
		f.t.Fatal(err)
	}
	var sealed []*chainpb.SealedKey
	for _, m := range miners {
		env, err := crypto.Seal(m.hpke.PublicKey(), crypto.ContractKeyInfo(testChainID, id, m.pub()), kc)
		if err != nil {
			f.t.Fatal(err)
		}
		sealed = append(sealed, &chainpb.SealedKey{Recipient: m.pub(), Envelope: env})
	}
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractKey{ContractKey: &chainpb.ContractKey{
		Contract: id.Bytes(), PublicKey: ik.PublicKey(), WrappedKey: wrapped, Sealed: sealed}}}, kc
}

// key has gatekeeper a key contract id for miners (f.miner if none) and
// returns k_c.
func (f *contractFixture) key(id crypto.ContractID, miners ...identity) []byte {
	f.t.Helper()
	if len(miners) == 0 {
		miners = []identity{f.miner}
	}
	wm, kc := f.contractKey(id, miners...)
	if r := f.block(f.message(f.a, wm)).TxResults[0]; r.Code != 0 || effect(r) != "applied" {
		f.t.Fatalf("contract key: %s %q %s", code(r), effect(r), r.Log)
	}
	return kc
}

// command is a command to id sealed to input key pub for from's next nonce.
func (f *contractFixture) command(from string, id crypto.ContractID, pub []byte, gas uint64) *chainpb.MsgContractCommand {
	f.t.Helper()
	env, err := crypto.Seal(pub, crypto.CommandInfo(testChainID, id, addr(f.keys[from]), f.nonces[from]), []byte(`{"add":1}`))
	if err != nil {
		f.t.Fatal(err)
	}
	return &chainpb.MsgContractCommand{Contract: id.Bytes(), Envelope: env, GasLimit: gas}
}

func (f *contractFixture) query(path string, data []byte) *abci.QueryResponse {
	f.t.Helper()
	res, err := f.app.Query(context.Background(), &abci.QueryRequest{Path: path, Data: data})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *contractFixture) getContract(id crypto.ContractID) *chainpb.Contract {
	f.t.Helper()
	res := f.query(QueryContract, id[:])
	if res.Code != 0 {
		f.t.Fatalf("query contract %s: %s %s", id, code(res), res.Log)
	}
	var c chainpb.Contract
	if err := proto.Unmarshal(res.Value, &c); err != nil {
		f.t.Fatal(err)
	}
	return &c
}

func (f *contractFixture) listContracts() []*chainpb.Contract {
	f.t.Helper()
	res := f.query(QueryContracts, nil)
	if res.Code != 0 {
		f.t.Fatalf("query contracts: %s %s", code(res), res.Log)
	}
	var l chainpb.ContractList
	if err := proto.Unmarshal(res.Value, &l); err != nil {
		f.t.Fatal(err)
	}
	return l.Contracts
}

// contractEvents are the contract events of the last block's log.
func (f *contractFixture) contractEvents() []*chainpb.WorkerEvent {
	f.t.Helper()
	var out []*chainpb.WorkerEvent
	for _, ev := range f.eventLog(f.height) {
		if ev.GetContractDeployed() != nil || ev.GetContractKeyed() != nil || ev.GetContractCommand() != nil || ev.GetContractReassigned() != nil ||
			ev.GetContractRekeyDue() != nil || ev.GetContractRekeyed() != nil {
			out = append(out, ev)
		}
	}
	return out
}

func sameContracts(a, b []*chainpb.Contract) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// refuse checks that CheckTx and block execution refuse from's msg with
// want, and that the refusal changes only what the rules allow: nothing
// after CheckTx (the nonce stays free), nothing in a block for a stateless
// refusal (the transaction is invalid), only the fee and the nonce for a
// stateful one; never an instance or a contract event.
func (f *contractFixture) refuse(name, from string, msg proto.Message, want string, stateless bool) {
	f.t.Helper()
	before, list := f.account(from), f.listContracts()
	nonce := f.nonces[from]
	raw := f.sign(from, msg, nonce)
	if r := f.checkTx(raw); code(r) != want {
		f.t.Errorf("%s: CheckTx %s (%s), want %s", name, code(r), r.Log, want)
	}
	// The refused check wrote nothing: the same nonce is still admitted.
	if r := f.checkTx(f.sign(from, transfer("carol", 1), nonce)); r.Code != 0 {
		f.t.Errorf("%s: after the refused CheckTx, nonce %d is refused: %s %s", name, nonce, code(r), r.Log)
	}
	r := f.block(raw).TxResults[0]
	if code(r) != want {
		f.t.Errorf("%s: block %s (%s), want %s", name, code(r), r.Log, want)
	}
	after := f.account(from)
	wantBal, wantNonce := before.Balance, before.Nonce
	if !stateless {
		wantBal, wantNonce = before.Balance-uint64(f.fee), before.Nonce+1
		f.nonces[from]++
	}
	if after.Balance != wantBal || after.Nonce != wantNonce {
		f.t.Errorf("%s: %s holds %d with nonce %d, want %d and %d", name, from, after.Balance, after.Nonce, wantBal, wantNonce)
	}
	if evs := f.contractEvents(); len(evs) != 0 {
		f.t.Errorf("%s: contract events %v", name, evs)
	}
	if l := f.listContracts(); !sameContracts(l, list) {
		f.t.Errorf("%s: contracts changed from %v to %v", name, list, l)
	}
}

// TestDeployRefusals: every deployment the chain must refuse, with its
// code, before and after the launch.
func TestDeployRefusals(t *testing.T) {
	f := newContractFixture(t)
	// Before the launch nobody holds the root key: no contract can get k_c.
	f.refuse("before launch", "alice", f.deployMsg(f.miner.pub()), "contracts/5", false)
	// The stateless checks come first, whatever the phase.
	f.refuse("init args not JSON before launch", "alice", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100)), Miners: pubs(f.miner), InitArgs: []byte("{oops")}, "contracts/3", true)
	f.launchNow()

	stranger := newIdentity(t, 77)
	var tooMany [][]byte // distinct keys, one more than MaxMiners
	for i := range contracts.MaxMiners + 1 {
		tooMany = append(tooMany, newIdentity(t, byte(200+i)).pub())
	}
	for _, c := range []struct {
		name      string
		msg       *chainpb.MsgDeployContract
		want      string
		stateless bool
	}{
		{"unknown miner", f.deployMsg(stranger.pub()), "contracts/6", false},
		{"genesis worker as miner", f.deployMsg(f.genesis.pub()), "contracts/6", false},
		{"gatekeeper a as miner", f.deployMsg(f.a.pub()), "contracts/6", false},
		{"gatekeeper b as miner", f.deployMsg(f.b.pub()), "contracts/6", false},
		{"miner key of the wrong size", f.deployMsg(f.miner.pub()[:31]), "contracts/3", true},
		{"no miner", f.deployMsg(), "contracts/3", true},
		{"one miner named twice", f.deployMsg(f.miner.pub(), f.other.pub(), f.miner.pub()), "contracts/3", true},
		{"one miner over MaxMiners", f.deployMsg(tooMany...), "contracts/3", true},
		{"a redundant miner unknown", f.deployMsg(f.miner.pub(), stranger.pub()), "contracts/6", false},
		{"a redundant miner a gatekeeper", f.deployMsg(f.miner.pub(), f.other.pub(), f.b.pub()), "contracts/6", false},
		{"no code", &chainpb.MsgDeployContract{Miners: pubs(f.miner)}, "contracts/3", true},
		{"code not gzip", &chainpb.MsgDeployContract{CodeGzip: wasmOf(100), Miners: pubs(f.miner)}, "contracts/3", false},
		{"truncated gzip", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100))[:20], Miners: pubs(f.miner)}, "contracts/3", false},
		{"gzip of non-wasm", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, []byte("#!/bin/sh\necho hello\n")), Miners: pubs(f.miner)}, "contracts/3", false},
		{"gzip of wasm version 2", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, []byte("\x00asm\x02\x00\x00\x00")), Miners: pubs(f.miner)}, "contracts/3", false},
		{"code one byte over max_code_bytes", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(testMaxCode+1)), Miners: pubs(f.miner)}, "contracts/4", false},
		{"code far over max_code_bytes", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(1<<20)), Miners: pubs(f.miner)}, "contracts/4", false},
		{"init args not JSON", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100)), Miners: pubs(f.miner), InitArgs: []byte("{oops")}, "contracts/3", true},
	} {
		f.refuse(c.name, "alice", c.msg, c.want, c.stateless)
	}
	// A deployer who cannot pay the deploy fee on top of the fee: carol
	// holds enough for the transaction fee only.
	if r := f.block(f.tx("bob", transfer("carol", 2*f.fee))).TxResults[0]; r.Code != 0 {
		t.Fatalf("fund carol: %s", r.Log)
	}
	f.keys["carol"] = testKey("carol")
	f.refuse("deploy fee unaffordable", "carol", f.deployMsg(f.miner.pub()), "bank/3", false)

	// The boundaries pass: code of exactly max_code_bytes, no init args.
	res := f.block(f.tx("alice", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(testMaxCode)), Miners: pubs(f.miner)}))
	if r := res.TxResults[0]; r.Code != 0 {
		t.Fatalf("code of exactly max_code_bytes: %s %s", code(r), r.Log)
	}
	if l := f.listContracts(); len(l) != 1 || l[0].CodeSize != testMaxCode {
		t.Fatalf("contracts after the boundary deploy: %v", l)
	}
}

// TestDeploy: a valid deployment after the launch creates the instance
// named by the deployer and nonce, charges the deploy fee on top of the
// fee, publishes the code and asks the gatekeepers for a key.
func TestDeploy(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()

	// The parameters the genesis set are readable.
	res := f.query(QueryContractParams, nil)
	var p contracts.Params
	if res.Code != 0 || json.Unmarshal(res.Value, &p) != nil || p != f.params {
		t.Fatalf("params query: %s %s %+v, want %+v", code(res), res.Value, p, f.params)
	}
	if l := f.listContracts(); len(l) != 0 {
		t.Fatalf("contracts before any deployment: %v", l)
	}

	alice := addr(f.keys["alice"])
	code1 := wasmOf(200)
	msg := &chainpb.MsgDeployContract{CodeGzip: gzipped(t, code1), Miners: pubs(f.miner), InitArgs: []byte(`{"owner":"alice"}`)}
	before := f.account("alice")
	nonce := f.nonces["alice"]
	if nonce != before.Nonce {
		t.Fatalf("fixture nonce %d, chain %d", nonce, before.Nonce)
	}
	if r := f.checkTx(f.sign("alice", msg, nonce)); r.Code != 0 {
		t.Fatalf("CheckTx deploy: %s %s", code(r), r.Log)
	}
	blk := f.block(f.tx("alice", msg))
	r := blk.TxResults[0]
	if r.Code != 0 {
		t.Fatalf("deploy: %s %s", code(r), r.Log)
	}
	id := crypto.NewContractID(alice, nonce)
	after := f.account("alice")
	if want := before.Balance - uint64(f.fee) - f.params.DeployFee; after.Balance != want || after.Nonce != nonce+1 {
		t.Fatalf("alice holds %d nonce %d after the deploy, want %d and %d (fee %d + deploy fee %d)", after.Balance, after.Nonce, want, nonce+1, f.fee, f.params.DeployFee)
	}

	sum := sha256.Sum256(code1)
	c := f.getContract(id)
	// The miner awaits k_c; checkpoints come every checkpoint_interval
	// blocks; the init arguments are kept for a miner that takes over.
	want := &chainpb.Contract{Id: id.Bytes(), CodeHash: sum[:], Deployer: alice.Bytes(), Miners: pubs(f.miner), DeployedHeight: f.height, CodeSize: uint64(len(code1)),
		CheckpointInterval: f.params.CheckpointInterval, AwaitingKey: pubs(f.miner), InitArgs: msg.InitArgs}
	if f.params.CheckpointInterval != contracts.DefaultCheckpointInterval {
		t.Fatalf("fixture checkpoint interval %d", f.params.CheckpointInterval)
	}
	if !proto.Equal(c, want) {
		t.Fatalf("contract record\n got %v\nwant %v", c, want)
	}
	if l := f.listContracts(); len(l) != 1 || !proto.Equal(l[0], want) {
		t.Fatalf("contract list %v", l)
	}
	// The code is published under its hash, as deployed.
	if res := f.query(QueryStore, append([]byte("contracts/code/"), sum[:]...)); res.Code != 0 || !bytes.Equal(res.Value, msg.CodeGzip) {
		t.Fatalf("published code: %s %X", code(res), res.Value)
	}

	// The event log asks the gatekeepers for k_c and gives the miner the code.
	evs := f.contractEvents()
	if len(evs) != 1 || evs[0].GetContractDeployed() == nil {
		t.Fatalf("contract events %v", evs)
	}
	wantEv := &chainpb.ContractDeployed{Contract: id.Bytes(), CodeHash: sum[:], CodeGzip: msg.CodeGzip, Miners: pubs(f.miner), Deployer: alice.Bytes(), InitArgs: msg.InitArgs,
		CheckpointInterval: f.params.CheckpointInterval}
	if got := evs[0].GetContractDeployed(); !proto.Equal(got, wantEv) {
		t.Fatalf("ContractDeployed\n got %v\nwant %v", got, wantEv)
	}

	// The ABCI event indexes the deployment by instance, deployer and miner.
	attrs := abciEvent(r, "deploy_contract")
	if attrs == nil || attrs["contract"] != id.String() || attrs["deployer"] != alice.String() || attrs["miners"] != hex.EncodeToString(f.miner.pub()) {
		t.Fatalf("deploy_contract event %v (want contract %s)", attrs, id)
	}

	// Another deployment of the same code from another account: a new
	// instance, listed after the first, the code stored once.
	id2 := f.deploy("bob", f.miner)
	if id2 == id {
		t.Fatal("two deployments share an id")
	}
	l := f.listContracts()
	if len(l) != 2 || !bytes.Equal(l[0].Id, id[:]) || !bytes.Equal(l[1].Id, id2[:]) {
		t.Fatalf("contract list after two deployments: %v", l)
	}
	// An unknown instance id, or one of the wrong size, is contracts/2.
	for _, data := range [][]byte{bytes.Repeat([]byte{1}, 20), {1, 2, 3}, nil} {
		if res := f.query(QueryContract, data); code(res) != "contracts/2" {
			t.Errorf("query contract %X: %s %s", data, code(res), res.Log)
		}
	}
	// The deployment survives a restart.
	f.reopen()
	if got := f.getContract(id); !proto.Equal(got, want) {
		t.Fatalf("after a restart: %v", got)
	}
}

// abciEvent returns the attributes of r's first event of type typ.
func abciEvent(r *abci.ExecTxResult, typ string) map[string]string {
	for _, e := range r.Events {
		if e.Type == typ {
			m := map[string]string{}
			for _, a := range e.Attributes {
				m[a.Key] = a.Value
			}
			return m
		}
	}
	return nil
}

// TestContractKeyAndCommands: commands are refused until the contract is
// keyed; only a gatekeeper's key counts and the first copy wins; keyed
// commands are ordered, still sealed, with their gas paid.
func TestContractKeyAndCommands(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	id := f.deploy("alice", f.miner)
	kc := crypto.DeriveContractKey(f.root, testChainID, id)
	ik, err := crypto.ContractInputKey(kc)
	if err != nil {
		t.Fatal(err)
	}
	pub := ik.PublicKey()
	unknown := crypto.NewContractID(addr(f.keys["alice"]), 9999)

	// Refusals before the key.
	notEnvelope := f.command("alice", id, pub, 1_000_000)
	notEnvelope.Envelope = []byte("plaintext: transfer everything to mallory")
	otherSuite := f.command("alice", id, pub, 1_000_000)
	otherSuite.Envelope = bytes.Clone(otherSuite.Envelope)
	otherSuite.Envelope[5] ^= 0xff // the KEM id
	shortID := f.command("alice", id, pub, 1_000_000)
	shortID.Contract = shortID.Contract[:19]
	for _, c := range []struct {
		name      string
		msg       *chainpb.MsgContractCommand
		want      string
		stateless bool
	}{
		{"unknown contract", f.command("alice", unknown, pub, 1_000_000), "contracts/2", false},
		{"not yet keyed", f.command("alice", id, pub, 1_000_000), "contracts/7", false},
		{"gas limit 0", f.command("alice", id, pub, 0), "contracts/8", true},
		{"envelope not an envelope", notEnvelope, "contracts/3", true},
		{"envelope of another suite", otherSuite, "contracts/3", true},
		{"contract id of 19 bytes", shortID, "contracts/3", true},
	} {
		f.refuse(c.name, "alice", c.msg, c.want, c.stateless)
	}

	// A contract key from workers without a gatekeeper seat is delivered
	// and ignored: the miner itself, another worker.
	for _, w := range []identity{f.miner, f.other} {
		wm, _ := f.contractKey(id, f.miner)
		r := f.block(f.message(w, wm)).TxResults[0]
		if r.Code != 0 || effect(r) == "applied" || effect(r) == "" {
			t.Fatalf("key from a non-gatekeeper: %s %q %s", code(r), effect(r), r.Log)
		}
		if evs := f.contractEvents(); len(evs) != 0 {
			t.Fatalf("key from a non-gatekeeper logged %v", evs)
		}
		if c := f.getContract(id); c.PublicKey != nil || c.WrappedKey != nil || c.KeyedBy != nil {
			t.Fatalf("key from a non-gatekeeper keyed the contract: %v", c)
		}
		// The message itself was delivered: its sequence is spent.
		if log := f.eventLog(f.height); len(log) != 1 || log[0].GetWorkerMessage() == nil {
			t.Fatalf("event log of the ignored key: %v", log)
		}
	}
	// A key for an unknown contract is ignored too.
	wm, _ := f.contractKey(unknown, f.miner)
	if r := f.block(f.message(f.a, wm)).TxResults[0]; r.Code != 0 || effect(r) == "applied" {
		t.Fatalf("key for an unknown contract: %s %q", code(r), effect(r))
	}

	// Gatekeeper a's copy keys it.
	wm, _ = f.contractKey(id, f.miner)
	sent := wm.GetContractKey()
	r := f.block(f.message(f.a, wm)).TxResults[0]
	if r.Code != 0 || effect(r) != "applied" {
		t.Fatalf("key from gatekeeper a: %s %q %s", code(r), effect(r), r.Log)
	}
	keyedAt := f.height
	c := f.getContract(id)
	if !bytes.Equal(c.PublicKey, pub) || !bytes.Equal(c.WrappedKey, sent.WrappedKey) || !bytes.Equal(c.KeyedBy, f.a.pub()) || c.KeyedHeight != keyedAt || c.Commands != 0 ||
		c.Inputs != 1 || len(c.AwaitingKey) != 0 {
		t.Fatalf("keyed record %v", c)
	}
	// The stored wrapped key opens under the root key to k_c.
	if got, err := crypto.UnwrapContractKey(f.root, testChainID, id, c.WrappedKey); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("unwrap the stored key: %v", err)
	}
	evs := f.contractEvents()
	if len(evs) != 1 || evs[0].GetContractKeyed() == nil {
		t.Fatalf("events after keying: %v", evs)
	}
	// The first copy is the instance's input 0: it carries the init
	// arguments with k_c sealed to the miner.
	wantKeyed := &chainpb.ContractKeyed{Contract: id.Bytes(), PublicKey: pub, Keys: sent.Sealed, Gatekeeper: f.a.pub(), Initial: true, InitArgs: []byte(`{"owner":"alice"}`), WrappedKey: sent.WrappedKey}
	if got := evs[0].GetContractKeyed(); !proto.Equal(got, wantKeyed) {
		t.Fatalf("ContractKeyed\n got %v\nwant %v", got, wantKeyed)
	}
	// Only the miner opens the sealed key.
	if got, err := f.miner.hpke.Open(evs[0].GetContractKeyed().Keys[0].Envelope, crypto.ContractKeyInfo(testChainID, id, f.miner.pub())); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("miner opens the sealed key: %v", err)
	}
	if _, err := f.other.hpke.Open(evs[0].GetContractKeyed().Keys[0].Envelope, crypto.ContractKeyInfo(testChainID, id, f.miner.pub())); err == nil {
		t.Fatal("another worker opened the miner's sealed key")
	}

	// Later copies, from b (the same key, or another) or from a again, are
	// ignored and change nothing: the first copy keyed every awaiting
	// miner, so none awaits one now; a copy naming another public key is
	// refused outright.
	keyed := f.getContract(id)
	same, _ := f.contractKey(id, f.miner)
	forgedKC := bytes.Repeat([]byte{7}, 32)
	forgedIK, _ := crypto.ContractInputKey(forgedKC)
	forged, _ := f.contractKey(id, f.miner)
	forged.GetContractKey().PublicKey = forgedIK.PublicKey()
	for name, c := range map[string]struct {
		from identity
		wm   *chainpb.WorkerMessage
		note string
	}{"b, same key": {f.b, same, "no miner of the contract awaits"}, "b, another key": {f.b, forged, "another public key"}, "a again": {f.a, same, "no miner of the contract awaits"}} {
		r := f.block(f.message(c.from, c.wm)).TxResults[0]
		if r.Code != 0 || !strings.HasPrefix(effect(r), "ignored: ") || !strings.Contains(effect(r), c.note) {
			t.Fatalf("%s: %s %q %s, want a note about %q", name, code(r), effect(r), r.Log, c.note)
		}
		if evs := f.contractEvents(); len(evs) != 0 {
			t.Fatalf("%s: logged %v", name, evs)
		}
		if got := f.getContract(id); !proto.Equal(got, keyed) {
			t.Fatalf("%s: record changed to %v", name, got)
		}
	}

	// Keyed, a gas limit over max_gas is refused (contracts/8), and exactly
	// max_gas passes CheckTx.
	f.refuse("gas over max_gas", "alice", f.command("alice", id, pub, f.params.MaxGas+1), "contracts/8", false)
	if r := f.checkTx(f.sign("alice", f.command("alice", id, pub, f.params.MaxGas), f.nonces["alice"])); r.Code != 0 {
		t.Fatalf("gas limit of exactly max_gas: %s %s", code(r), r.Log)
	}

	// A command is ordered: logged with its sender, nonce, gas limit and
	// sealed bytes; the gas fee is charged on top of the fee.
	alice := addr(f.keys["alice"])
	for i, gas := range []uint64{5_000_000, 1, 2_500_001} {
		before := f.account("alice")
		nonce := f.nonces["alice"]
		msg := f.command("alice", id, pub, gas)
		r := f.block(f.tx("alice", msg)).TxResults[0]
		if r.Code != 0 {
			t.Fatalf("command %d: %s %s", i, code(r), r.Log)
		}
		gasFee := f.params.GasFee(gas)
		if want := []uint64{5, 1, 3}[i] * f.params.GasPrice; gasFee != want {
			t.Fatalf("GasFee(%d) = %d, want %d", gas, gasFee, want)
		}
		after := f.account("alice")
		if want := before.Balance - uint64(f.fee) - gasFee; after.Balance != want || after.Nonce != nonce+1 {
			t.Fatalf("command %d: alice holds %d nonce %d, want %d and %d", i, after.Balance, after.Nonce, want, nonce+1)
		}
		evs := f.contractEvents()
		if len(evs) != 1 || evs[0].GetContractCommand() == nil {
			t.Fatalf("command %d events %v", i, evs)
		}
		wantCmd := &chainpb.ContractCommand{Contract: id.Bytes(), Sender: alice.Bytes(), Nonce: nonce, GasLimit: gas, Envelope: msg.Envelope}
		if got := evs[0].GetContractCommand(); !proto.Equal(got, wantCmd) {
			t.Fatalf("ContractCommand\n got %v\nwant %v", got, wantCmd)
		}
		// Only the contract key opens the command, bound to sender and nonce.
		if pt, err := ik.Open(evs[0].GetContractCommand().Envelope, crypto.CommandInfo(testChainID, id, alice, nonce)); err != nil || string(pt) != `{"add":1}` {
			t.Fatalf("open command %d: %v %q", i, err, pt)
		}
		if _, err := ik.Open(evs[0].GetContractCommand().Envelope, crypto.CommandInfo(testChainID, id, alice, nonce+1)); err == nil {
			t.Fatalf("command %d opens under another nonce", i)
		}
		if got := f.getContract(id).Commands; got != uint64(i+1) {
			t.Fatalf("commands after %d: %d", i+1, got)
		}
		attrs := abciEvent(r, "contract_command")
		if attrs["contract"] != id.String() || attrs["sender"] != alice.String() || attrs["nonce"] != strconv.FormatUint(nonce, 10) || attrs["event_index"] != "0" {
			t.Fatalf("contract_command event %v", attrs)
		}
	}
	// The keying and the count are all that changed.
	final := f.getContract(id)
	keyed.Commands, keyed.Inputs = 3, 4
	if !proto.Equal(final, keyed) {
		t.Fatalf("record after commands %v, want %v", final, keyed)
	}

	// A command the sender cannot pay the gas of: carol holds the fee and
	// less than the gas fee of max_gas.
	if r := f.block(f.tx("bob", transfer("carol", f.fee+int64(f.params.GasFee(f.params.MaxGas))/2))).TxResults[0]; r.Code != 0 {
		t.Fatalf("fund carol: %s", r.Log)
	}
	f.keys["carol"] = testKey("carol")
	f.refuse("gas fee unaffordable", "carol", f.command("carol", id, pub, f.params.MaxGas), "bank/3", false)
	if got := f.getContract(id).Commands; got != 3 {
		t.Fatalf("an unpaid command was counted: %d", got)
	}
}

// TestContractMessages: a contract-to-contract message is an input of the
// receiver only if a miner of the sending contract sent it, with the
// sender's next sequence, to a keyed contract; otherwise it is delivered
// with a note (and pRuntime, applying the same rule, drops it).
func TestContractMessages(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	from := f.deploy("alice", f.miner)
	to := f.deploy("alice", f.other)
	unkeyed := f.deploy("bob", f.other)
	f.key(from)
	kcTo := crypto.DeriveContractKey(f.root, testChainID, to)
	wm, _ := f.contractKey(to, f.other)
	if r := f.block(f.message(f.b, wm)).TxResults[0]; effect(r) != "applied" {
		t.Fatalf("key to: %s %q", code(r), effect(r))
	}
	ikTo, _ := crypto.ContractInputKey(kcTo)
	nowhere := crypto.NewContractID(addr(testKey("carol")), 0)

	msg := func(a, b crypto.ContractID, seq uint64) *chainpb.ContractMessage {
		env, err := crypto.Seal(ikTo.PublicKey(), crypto.MessageInfo(testChainID, a, b), []byte("ping"))
		if err != nil {
			t.Fatal(err)
		}
		return &chainpb.ContractMessage{From: a.Bytes(), To: b.Bytes(), Envelope: env, GasLimit: 100_000_000, Sequence: seq}
	}
	// After the first, accepted, message the sender's next sequence is 1:
	// every refusal below carries it, so only its own flaw refuses it.
	badEnv := msg(from, to, 1)
	badEnv.Envelope = []byte("not sealed")
	for _, c := range []struct {
		name   string
		sender identity
		m      *chainpb.ContractMessage
		note   string // "" for accepted
	}{
		{"from the sending contract's miner to a keyed contract", f.miner, msg(from, to, 0), ""},
		{"from another worker", f.other, msg(from, to, 1), "not a miner of the sending contract"},
		{"from a gatekeeper", f.a, msg(from, to, 1), "not a miner of the sending contract"},
		{"from an unknown contract", f.miner, msg(nowhere, to, 0), "from an unknown contract"},
		{"to an unknown contract", f.miner, msg(from, nowhere, 1), "to an unknown contract"},
		{"to an unkeyed contract", f.miner, msg(from, unkeyed, 1), "without a key"},
		{"with a malformed envelope", f.miner, badEnv, "malformed envelope"},
		{"again, with the spent sequence", f.miner, msg(from, to, 0), "duplicate"},
	} {
		before := f.listContracts()
		wm := &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: c.m}}
		// The rule itself, on committed state (in a scratch cache, with the
		// message delivered to a scratch log, as the chain delivers it).
		f.app.mu.RLock()
		scratch := mq.NewLog(f.height + 1)
		if err := scratch.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerMessage{WorkerMessage: &chainpb.SignedMessage{Sender: c.sender.pub()}}}); err != nil {
			t.Fatal(err)
		}
		note, err := contracts.HandleMessage(store.NewCache(f.app.view), scratch, c.sender.pub(), c.m, f.last)
		f.app.mu.RUnlock()
		if err != nil || (note == "") != (c.note == "") || !strings.Contains(note, c.note) {
			t.Errorf("%s: HandleMessage note %q err %v, want a note about %q", c.name, note, err, c.note)
		}
		// Through the chain: always delivered (the sequence is spent and
		// the message is in the log), applied only without a note.
		r := f.block(f.message(c.sender, wm)).TxResults[0]
		wantEffect := "applied"
		if c.note != "" {
			wantEffect = "ignored: " + note
		}
		if r.Code != 0 || effect(r) != wantEffect {
			t.Errorf("%s: delivered %s effect %q, want %q", c.name, code(r), effect(r), wantEffect)
		}
		log := f.eventLog(f.height)
		if len(log) != 1 || log[0].GetWorkerMessage() == nil {
			t.Errorf("%s: event log %v", c.name, log)
		}
		// An accepted message is the receiver's next input and spends the
		// sender's sequence; an ignored one changes no instance.
		after := f.listContracts()
		if c.note != "" {
			if !sameContracts(after, before) {
				t.Errorf("%s: ignored, yet contracts changed from %v to %v", c.name, before, after)
			}
			continue
		}
		if got, want := f.getContract(from).MessagesSent, uint64(1); got != want {
			t.Errorf("%s: sender's messages_sent %d, want %d", c.name, got, want)
		}
		rc := f.getContract(to)
		if rc.Inputs != 2 {
			t.Errorf("%s: receiver's inputs %d, want 2 (its init and the message)", c.name, rc.Inputs)
		}
		in := f.input(to, 1)
		if got := in.GetWorkerMessage(); got == nil || !proto.Equal(got, log[0].GetWorkerMessage()) {
			t.Errorf("%s: receiver's input 1 is %v, want the delivered message", c.name, in)
		}
	}
}

// state is the committed value at key, nil if there is none.
func (f *contractFixture) state(key []byte) []byte {
	f.t.Helper()
	res := f.query(QueryStore, key)
	if res.Code != 0 {
		f.t.Fatalf("query state %q: %s %s", key, code(res), res.Log)
	}
	return res.Value
}

// inboxEntry is input n of id as the inbox keeps it, nil if it keeps none.
func (f *contractFixture) inboxEntry(id crypto.ContractID, n uint64) *chainpb.ContractInput {
	f.t.Helper()
	b := f.state(inbox.InputKey(id.Bytes(), n))
	if b == nil {
		return nil
	}
	var in chainpb.ContractInput
	if err := proto.Unmarshal(b, &in); err != nil {
		f.t.Fatalf("inbox input %d of %s: %v", n, id, err)
	}
	return &in
}

// input is the worker event of input n of id; the test fails if the inbox
// does not keep it.
func (f *contractFixture) input(id crypto.ContractID, n uint64) *chainpb.WorkerEvent {
	f.t.Helper()
	in := f.inboxEntry(id, n)
	if in == nil {
		f.t.Fatalf("the inbox of %s keeps no input %d", id, n)
	}
	var ev chainpb.WorkerEvent
	if err := proto.Unmarshal(in.Event, &ev); err != nil {
		f.t.Fatalf("inbox input %d of %s: %v", n, id, err)
	}
	return &ev
}

// chunk is chunk i of id's stored checkpoint, nil if none.
func (f *contractFixture) chunk(id crypto.ContractID, i uint32) []byte {
	f.t.Helper()
	return f.state(inbox.ChunkKey(id.Bytes(), i))
}

// contractState is everything the chain keeps of the ids: their records,
// their inbox inputs (and the next slot) and their first checkpoint chunks.
func (f *contractFixture) contractState(ids ...crypto.ContractID) [][]byte {
	f.t.Helper()
	var out [][]byte
	for _, id := range ids {
		c := f.getContract(id)
		out = append(out, f.state(inbox.RecordKey(id.Bytes())))
		for n := range c.Inputs + 1 {
			out = append(out, f.state(inbox.InputKey(id.Bytes(), n)))
		}
		for i := range uint32(4) {
			out = append(out, f.chunk(id, i))
		}
	}
	return out
}

func sameState(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// ignored sends wm from w and checks that the chain delivers it, ignored
// with a note containing note, and changes nothing it keeps of ids nor any
// instance, and logs no contract event.
func (f *contractFixture) ignored(name string, w identity, wm *chainpb.WorkerMessage, note string, ids ...crypto.ContractID) {
	f.t.Helper()
	before, list := f.contractState(ids...), f.listContracts()
	r := f.block(f.message(w, wm)).TxResults[0]
	if r.Code != 0 || !strings.HasPrefix(effect(r), "ignored: ") || !strings.Contains(effect(r), note) {
		f.t.Errorf("%s: %s effect %q %s, want ignored with a note about %q", name, code(r), effect(r), r.Log, note)
	}
	if evs := f.contractEvents(); len(evs) != 0 {
		f.t.Errorf("%s: logged %v", name, evs)
	}
	if l := f.listContracts(); !sameContracts(l, list) {
		f.t.Errorf("%s: an instance changed", name)
	}
	if after := f.contractState(ids...); !sameState(after, before) {
		f.t.Errorf("%s: the contract's state changed", name)
	}
}

// applied sends wm from w and checks that the chain applies it.
func (f *contractFixture) applied(name string, w identity, wm *chainpb.WorkerMessage) {
	f.t.Helper()
	if r := f.block(f.message(w, wm)).TxResults[0]; r.Code != 0 || effect(r) != "applied" {
		f.t.Fatalf("%s: %s effect %q %s", name, code(r), effect(r), r.Log)
	}
}

// commandBlock has from send a command to id (sealed to pub) in a block of
// its own and returns the command as logged.
func (f *contractFixture) commandBlock(from string, id crypto.ContractID, pub []byte) *chainpb.ContractCommand {
	f.t.Helper()
	r := f.block(f.tx(from, f.command(from, id, pub, 1_000_000))).TxResults[0]
	if r.Code != 0 {
		f.t.Fatalf("command: %s %s", code(r), r.Log)
	}
	for _, ev := range f.contractEvents() {
		if c := ev.GetContractCommand(); c != nil {
			return c
		}
	}
	f.t.Fatal("the command was not logged")
	return nil
}

func inputKeyOf(t *testing.T, kc []byte) []byte {
	t.Helper()
	ik, err := crypto.ContractInputKey(kc)
	if err != nil {
		t.Fatal(err)
	}
	return ik.PublicKey()
}

// TestContractInbox: the chain keeps every input of an instance in order
// until a checkpoint covers it: the first key is input 0 (the init, with
// the init arguments), each command the next input, with its block's time.
func TestContractInbox(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	id := f.deploy("alice", f.miner)
	other := f.deploy("bob", f.miner)
	// Deployed, not yet keyed: no input.
	if c := f.getContract(id); c.Inputs != 0 || c.InboxStart != 0 || f.inboxEntry(id, 0) != nil {
		t.Fatalf("inbox before the key: %v", c)
	}
	kc := f.key(id)
	pub := inputKeyOf(t, kc)
	keyed := f.contractEvents()[0].GetContractKeyed()

	// Input 0: the first key, as logged, with the block's time.
	if c := f.getContract(id); c.Inputs != 1 || c.InboxStart != 0 {
		t.Fatalf("inputs after the key: %v", c)
	}
	in0 := f.inboxEntry(id, 0)
	if in0 == nil || in0.TimeUnixNano != f.last.UnixNano() {
		t.Fatalf("input 0 %v, want the time %d", in0, f.last.UnixNano())
	}
	ev := f.input(id, 0).GetContractKeyed()
	if ev == nil || !ev.Initial || string(ev.InitArgs) != `{"owner":"alice"}` || !proto.Equal(ev, keyed) {
		t.Fatalf("input 0 is %v, want the initial ContractKeyed %v", ev, keyed)
	}
	if f.inboxEntry(id, 1) != nil {
		t.Fatal("an input 1 before any command")
	}

	// Each command is the next input, as logged, with its block's time.
	for i := uint64(1); i <= 3; i++ {
		cmd := f.commandBlock("alice", id, pub)
		c := f.getContract(id)
		if c.Inputs != i+1 || c.Commands != i || c.InboxStart != 0 {
			t.Fatalf("after command %d: inputs %d commands %d start %d", i, c.Inputs, c.Commands, c.InboxStart)
		}
		if in := f.inboxEntry(id, i); in == nil || in.TimeUnixNano != f.last.UnixNano() {
			t.Fatalf("input %d: %v, want time %d", i, in, f.last.UnixNano())
		}
		if got := f.input(id, i).GetContractCommand(); !proto.Equal(got, cmd) {
			t.Fatalf("input %d is %v, want the command %v", i, got, cmd)
		}
		if f.inboxEntry(id, i+1) != nil {
			t.Fatalf("an input %d after %d commands", i+1, i)
		}
	}
	// Two commands in one block, a refused one between them: two inputs
	// in order, both with that block's time (not a whole second here).
	n1 := f.nonces["alice"]
	raw1 := f.tx("alice", f.command("alice", id, pub, 1_000_000))
	bad := f.tx("alice", f.command("alice", id, pub, f.params.MaxGas+1))
	n2 := f.nonces["alice"]
	raw2 := f.tx("alice", f.command("alice", id, pub, 2_000_000))
	at := f.last.Add(1500 * time.Millisecond)
	res := f.blockAt(at, raw1, bad, raw2)
	if res.TxResults[0].Code != 0 || code(res.TxResults[1]) != "contracts/8" || res.TxResults[2].Code != 0 {
		t.Fatalf("block of commands: %s %s %s", code(res.TxResults[0]), code(res.TxResults[1]), code(res.TxResults[2]))
	}
	if c := f.getContract(id); c.Inputs != 6 || c.Commands != 5 {
		t.Fatalf("after a block of two commands: inputs %d commands %d", c.Inputs, c.Commands)
	}
	for n, nonce := range map[uint64]uint64{4: n1, 5: n2} {
		in := f.inboxEntry(id, n)
		if in == nil || in.TimeUnixNano != at.UnixNano() {
			t.Fatalf("input %d: %v, want time %d", n, in, at.UnixNano())
		}
		if got := f.input(id, n).GetContractCommand(); got == nil || got.Nonce != nonce {
			t.Fatalf("input %d is %v, want the command of nonce %d", n, got, nonce)
		}
	}
	if f.inboxEntry(id, 6) != nil {
		t.Fatal("the refused command is in the inbox")
	}
	// Nothing reached the other instance, unkeyed.
	if c := f.getContract(other); c.Inputs != 0 || f.inboxEntry(other, 0) != nil {
		t.Fatalf("the other instance: %v", c)
	}
	// The inbox survives a restart.
	want := f.contractState(id)
	f.reopen()
	if got := f.contractState(id); !sameState(got, want) {
		t.Fatal("the inbox changed across a restart")
	}
}

// checkpoint is a miner's checkpoint of id at height covering inputs with
// state root root: data split into chunks of at most inbox.ChunkBytes.
func checkpoint(id crypto.ContractID, height int64, inputs uint64, root, data []byte) []*chainpb.ContractCheckpoint {
	var out []*chainpb.ContractCheckpoint
	n := (len(data) + inbox.ChunkBytes - 1) / inbox.ChunkBytes
	for i := range n {
		out = append(out, &chainpb.ContractCheckpoint{Contract: id.Bytes(), Height: height, Inputs: inputs, StateRoot: root,
			Index: uint32(i), Chunks: uint32(n), Size: uint64(len(data)), Data: data[i*inbox.ChunkBytes : min(len(data), (i+1)*inbox.ChunkBytes)]})
	}
	return out
}

func ckptMsg(cp *chainpb.ContractCheckpoint) *chainpb.WorkerMessage {
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractCheckpoint{ContractCheckpoint: cp}}
}

// one is a one-chunk checkpoint, altered by edit.
func one(id crypto.ContractID, height int64, inputs uint64, root []byte, edit func(*chainpb.ContractCheckpoint)) *chainpb.WorkerMessage {
	cp := checkpoint(id, height, inputs, root, bytes.Repeat([]byte{0xc5}, 200))[0]
	if edit != nil {
		edit(cp)
	}
	return ckptMsg(cp)
}

func rootOf(s string) []byte {
	sum := sha256.Sum256([]byte(s))
	return sum[:]
}

// newCheckpointFixture is the contract fixture with transactions large
// enough for a full checkpoint chunk (about 61 KiB, 10 uPHA a byte).
func newCheckpointFixture(t *testing.T) *contractFixture {
	t.Helper()
	f := newContractFixtureWith(t, func(g *Genesis) { g.Auth.MaxTxBytes = 256 << 10 })
	f.fee = 1_000_000
	return f
}

// TestContractCheckpoints: a miner's encrypted checkpoint, in chunks, is
// stored when its last chunk arrives and drops the inbox inputs it covers;
// every malformed or misplaced chunk is ignored with a note and changes
// nothing; a newer checkpoint replaces the older one.
func TestContractCheckpoints(t *testing.T) {
	f := newCheckpointFixture(t)
	f.launchNow()
	id := f.deploy("alice", f.miner)
	deployedAt := f.height
	kc := f.key(id)
	keyedAt := f.height
	pub := inputKeyOf(t, kc)
	for range 3 {
		f.commandBlock("alice", id, pub)
	}
	if c := f.getContract(id); c.Inputs != 4 || c.Checkpoint != nil {
		t.Fatalf("before any checkpoint: %v", c)
	}

	// The state after inputs 0 and 1, at the end of block keyedAt+1,
	// sealed under k_c: two chunks, a full one and a short one.
	h1, root1 := keyedAt+1, rootOf("state 1")
	ad1 := crypto.CheckpointAD(testChainID, id, h1, 2, root1)
	state1 := bytes.Repeat([]byte("state "), inbox.ChunkBytes/6+20)
	sealed1, err := crypto.SealCheckpoint(kc, ad1, state1)
	if err != nil {
		t.Fatal(err)
	}
	cps := checkpoint(id, h1, 2, root1, sealed1)
	if len(cps) != 2 || len(cps[0].Data) != inbox.ChunkBytes || len(cps[1].Data) == 0 {
		t.Fatalf("fixture: %d chunks", len(cps))
	}

	// A last chunk without its first is out of order.
	f.ignored("chunk 1 first", f.miner, ckptMsg(cps[1]), "out of order", id)
	// The first chunk is kept aside: nothing is stored yet.
	before := f.getContract(id)
	f.applied("chunk 0", f.miner, ckptMsg(cps[0]))
	if c := f.getContract(id); !proto.Equal(c, before) || f.chunk(id, 0) != nil || f.inboxEntry(id, 0) == nil {
		t.Fatalf("after the first chunk of two: %v, chunk 0 stored %t", c, f.chunk(id, 0) != nil)
	}
	// While it waits, a chunk from a worker that is not its miner, or of
	// another checkpoint, is ignored and does not disturb it.
	otherRoot := proto.Clone(cps[1]).(*chainpb.ContractCheckpoint)
	otherRoot.StateRoot = rootOf("another state")
	otherHeight := proto.Clone(cps[1]).(*chainpb.ContractCheckpoint)
	otherHeight.Height--
	f.ignored("chunk 1 from another worker", f.other, ckptMsg(cps[1]), "not a miner of the contract", id)
	f.ignored("chunk 1 from a gatekeeper", f.a, ckptMsg(cps[1]), "not a miner of the contract", id)
	f.ignored("chunk 1 of another state root", f.miner, ckptMsg(otherRoot), "of another checkpoint", id)
	f.ignored("chunk 1 of another height", f.miner, ckptMsg(otherHeight), "of another checkpoint", id)

	// The last chunk stores it and drops inputs 0 and 1.
	f.applied("chunk 1", f.miner, ckptMsg(cps[1]))
	c := f.getContract(id)
	want1 := &chainpb.Checkpoint{Height: h1, Inputs: 2, StateRoot: root1, Chunks: 2, Size: uint64(len(sealed1)), Miner: f.miner.pub(), StoredHeight: f.height}
	if !proto.Equal(c.Checkpoint, want1) || c.InboxStart != 2 || c.Inputs != 4 {
		t.Fatalf("stored checkpoint %v inbox_start %d inputs %d, want %v, 2 and 4", c.Checkpoint, c.InboxStart, c.Inputs, want1)
	}
	if f.inboxEntry(id, 0) != nil || f.inboxEntry(id, 1) != nil || f.inboxEntry(id, 2) == nil || f.inboxEntry(id, 3) == nil {
		t.Fatal("the inbox does not keep exactly the inputs after the checkpoint")
	}
	if !bytes.Equal(f.chunk(id, 0), cps[0].Data) || !bytes.Equal(f.chunk(id, 1), cps[1].Data) || f.chunk(id, 2) != nil {
		t.Fatal("stored chunks differ from the sent ones")
	}
	// A miner taking over opens the stored chunks with k_c.
	if got, err := crypto.OpenCheckpoint(kc, ad1, append(f.chunk(id, 0), f.chunk(id, 1)...)); err != nil || !bytes.Equal(got, state1) {
		t.Fatalf("open the stored checkpoint: %v", err)
	}
	if evs := f.contractEvents(); len(evs) != 0 {
		t.Fatalf("a stored checkpoint logged %v", evs)
	}

	// Every malformed or misplaced checkpoint is ignored with a note.
	root := rootOf("state 3")
	h := f.height - 1
	// now is a checkpoint for the height of the block that will carry it
	// plus ahead.
	now := func(ahead int64) func() *chainpb.WorkerMessage {
		return func() *chainpb.WorkerMessage { return one(id, f.height+1+ahead, 3, root, nil) }
	}
	for _, c := range []struct {
		name string
		wm   *chainpb.WorkerMessage
		note string
		mk   func() *chainpb.WorkerMessage // builds wm when sent
	}{
		{"from a non-miner", nil, "not a miner of the contract", nil},
		{"older than the stored one", one(id, h1-1, 1, root, nil), "older than the stored one", nil},
		{"covering inputs the chain has not ordered", one(id, h, 5, root, nil), "has not ordered", nil},
		{"covering no input", one(id, h, 0, root, nil), "has not ordered", nil},
		{"root of 31 bytes", one(id, h, 3, root[:31], nil), "state root is not 32 bytes", nil},
		{"root of 33 bytes", one(id, h, 3, append(bytes.Clone(root), 0), nil), "state root is not 32 bytes", nil},
		{"no root", one(id, h, 3, nil, nil), "state root is not 32 bytes", nil},
		{"height of this block", nil, "not a past block", now(0)},
		{"height in the future", nil, "not a past block", now(4)},
		{"height before the deployment", one(id, deployedAt-1, 1, root, nil), "not a past block", nil},
		{"chunk index past the count", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Index = 1 }), "index or count", nil},
		{"no chunks", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Chunks = 0 }), "index or count", nil},
		{"too many chunks", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Chunks = inbox.MaxChunks + 1 }), "index or count", nil},
		{"empty chunk", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Data = nil }), "empty or over the chunk size", nil},
		{"chunk over ChunkBytes", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) {
			cp.Chunks, cp.Size, cp.Data = 2, inbox.ChunkBytes+2, make([]byte, inbox.ChunkBytes+1)
		}), "empty or over the chunk size", nil},
		{"size beyond its chunks", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Size = inbox.ChunkBytes + 1 }), "does not fit its chunk count", nil},
		{"size below an empty seal", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Size, cp.Data = 27, cp.Data[:27] }), "does not fit its chunk count", nil},
		{"chunks not adding up to its size", one(id, h, 3, root, func(cp *chainpb.ContractCheckpoint) { cp.Size = 300 }), "do not add up", nil},
		{"newer, covering fewer inputs than the stored", one(id, h, 1, root, nil), "fewer inputs", nil},
	} {
		from := f.miner
		switch {
		case c.mk != nil:
			c.wm = c.mk()
		case c.wm == nil:
			from, c.wm = f.other, one(id, h, 3, root, nil)
		}
		f.ignored(c.name, from, c.wm, c.note, id)
	}
	if got := f.getContract(id).Checkpoint; !proto.Equal(got, want1) {
		t.Fatalf("after the refusals the stored checkpoint is %v", got)
	}

	// A newer checkpoint of three chunks: a chunk that skips one, or
	// repeats one, is out of order and does not disturb it.
	ad3 := crypto.CheckpointAD(testChainID, id, h, 3, root)
	sealed3, err := crypto.SealCheckpoint(kc, ad3, bytes.Repeat([]byte("x"), 2*inbox.ChunkBytes+50))
	if err != nil {
		t.Fatal(err)
	}
	cps3 := checkpoint(id, h, 3, root, sealed3)
	if len(cps3) != 3 {
		t.Fatalf("fixture: %d chunks", len(cps3))
	}
	f.applied("chunk 0 of 3", f.miner, ckptMsg(cps3[0]))
	f.ignored("chunk 2 of 3 after chunk 0", f.miner, ckptMsg(cps3[2]), "out of order", id)
	f.applied("chunk 1 of 3", f.miner, ckptMsg(cps3[1]))
	f.ignored("chunk 1 of 3 again", f.miner, ckptMsg(cps3[1]), "out of order", id)
	if got := f.getContract(id).Checkpoint; !proto.Equal(got, want1) {
		t.Fatalf("two chunks of three changed the stored checkpoint to %v", got)
	}
	f.applied("chunk 2 of 3", f.miner, ckptMsg(cps3[2]))
	c = f.getContract(id)
	want3 := &chainpb.Checkpoint{Height: h, Inputs: 3, StateRoot: root, Chunks: 3, Size: uint64(len(sealed3)), Miner: f.miner.pub(), StoredHeight: f.height}
	if !proto.Equal(c.Checkpoint, want3) || c.InboxStart != 3 || f.inboxEntry(id, 2) != nil || f.inboxEntry(id, 3) == nil {
		t.Fatalf("three-chunk checkpoint: %v", c)
	}
	if got, err := crypto.OpenCheckpoint(kc, ad3, slices.Concat(f.chunk(id, 0), f.chunk(id, 1), f.chunk(id, 2))); err != nil || len(got) != 2*inbox.ChunkBytes+50 {
		t.Fatalf("open the three-chunk checkpoint: %v", err)
	}

	// A newer checkpoint, of one chunk covering every input, replaces it:
	// the surplus chunks and the covered inputs go.
	h2, root2 := f.height-1, rootOf("state 4")
	data2 := bytes.Repeat([]byte{0x42}, 300)
	f.applied("newer checkpoint", f.miner, ckptMsg(checkpoint(id, h2, 4, root2, data2)[0]))
	c = f.getContract(id)
	want2 := &chainpb.Checkpoint{Height: h2, Inputs: 4, StateRoot: root2, Chunks: 1, Size: 300, Miner: f.miner.pub(), StoredHeight: f.height}
	if !proto.Equal(c.Checkpoint, want2) || c.InboxStart != 4 || c.Inputs != 4 {
		t.Fatalf("newer checkpoint %v inbox_start %d inputs %d, want %v, 4 and 4", c.Checkpoint, c.InboxStart, c.Inputs, want2)
	}
	if !bytes.Equal(f.chunk(id, 0), data2) || f.chunk(id, 1) != nil || f.chunk(id, 2) != nil {
		t.Fatal("the newer checkpoint's chunks are not exactly the stored ones")
	}
	for n := range uint64(4) {
		if f.inboxEntry(id, n) != nil {
			t.Fatalf("input %d outlived the checkpoint covering it", n)
		}
	}
	// The older one is now refused, and new inputs are kept after it.
	f.ignored("the first checkpoint again", f.miner, ckptMsg(cps[0]), "older than the stored one", id)
	cmd := f.commandBlock("alice", id, pub)
	if c := f.getContract(id); c.Inputs != 5 || c.InboxStart != 4 || !proto.Equal(f.input(id, 4).GetContractCommand(), cmd) {
		t.Fatalf("a command after the checkpoint: %v", c)
	}
}

func (f *contractFixture) discrepancies() []*chainpb.Discrepancy {
	f.t.Helper()
	res := f.query(QueryDiscrepancies, nil)
	if res.Code != 0 {
		f.t.Fatalf("query discrepancies: %s %s", code(res), res.Log)
	}
	var l chainpb.DiscrepancyList
	if err := proto.Unmarshal(res.Value, &l); err != nil {
		f.t.Fatal(err)
	}
	return l.Discrepancies
}

// TestRedundantMiners: an instance run by two miners. The first
// gatekeeper copy keys the miners it was sealed to, a later one the rest;
// the first checkpoint for a height is stored, the other miner's with the
// same root acknowledges it and one with another root is a discrepancy.
func TestRedundantMiners(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	id := f.deploy("alice", f.miner, f.other)
	if c := f.getContract(id); len(c.Miners) != 2 || len(c.AwaitingKey) != 2 {
		t.Fatalf("deployed with two miners: %v", c)
	}
	// a's copy, sealed to the first miner only, is the initial key.
	wm, kc := f.contractKey(id, f.miner)
	f.applied("key for the first miner", f.a, wm)
	ev := f.contractEvents()[0].GetContractKeyed()
	if ev == nil || !ev.Initial || len(ev.Keys) != 1 || !bytes.Equal(ev.Keys[0].Recipient, f.miner.pub()) {
		t.Fatalf("first ContractKeyed %v", ev)
	}
	c := f.getContract(id)
	if c.Inputs != 1 || len(c.AwaitingKey) != 1 || !bytes.Equal(c.AwaitingKey[0], f.other.pub()) || !bytes.Equal(c.KeyedBy, f.a.pub()) {
		t.Fatalf("after the first key: %v", c)
	}
	// b's copy, sealed to both, keys the other: not initial, no input.
	wm, _ = f.contractKey(id, f.miner, f.other)
	f.applied("key for both", f.b, wm)
	ev = f.contractEvents()[0].GetContractKeyed()
	want := &chainpb.ContractKeyed{Contract: id.Bytes(), PublicKey: inputKeyOf(t, kc), Keys: wm.GetContractKey().Sealed[1:], Gatekeeper: f.b.pub()}
	if !proto.Equal(ev, want) {
		t.Fatalf("second ContractKeyed\n got %v\nwant %v", ev, want)
	}
	if got, err := f.other.hpke.Open(ev.Keys[0].Envelope, crypto.ContractKeyInfo(testChainID, id, f.other.pub())); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("the second miner opens its key: %v", err)
	}
	c2 := f.getContract(id)
	c.AwaitingKey = nil
	if !proto.Equal(c2, c) || f.inboxEntry(id, 1) != nil {
		t.Fatalf("after the second key %v, want %v", c2, c)
	}
	f.ignored("a third copy", f.a, wm, "no miner of the contract awaits", id)

	f.commandBlock("alice", id, inputKeyOf(t, kc))
	f.commandBlock("alice", id, inputKeyOf(t, kc))
	h, root, wrong := f.height-1, rootOf("agreed"), rootOf("diverged")
	f.applied("the first miner's checkpoint", f.miner, one(id, h, 3, root, nil))
	stored := f.getContract(id)
	wantCP := &chainpb.Checkpoint{Height: h, Inputs: 3, StateRoot: root, Chunks: 1, Size: 200, Miner: f.miner.pub(), StoredHeight: f.height}
	if !proto.Equal(stored.Checkpoint, wantCP) || stored.InboxStart != 3 || stored.Discrepancies != 0 {
		t.Fatalf("stored %v", stored)
	}
	if l := f.discrepancies(); len(l) != 0 {
		t.Fatalf("discrepancies before any: %v", l)
	}

	// The second miner disagrees: a discrepancy against it; the stored
	// checkpoint stands.
	r := f.block(f.message(f.other, one(id, h, 3, wrong, nil))).TxResults[0]
	if r.Code != 0 || !strings.Contains(effect(r), "discrepancy recorded") {
		t.Fatalf("a different root: %s %q", code(r), effect(r))
	}
	c = f.getContract(id)
	if !proto.Equal(c.Checkpoint, wantCP) || c.Discrepancies != 1 || c.InboxStart != 3 {
		t.Fatalf("after a discrepancy: %v", c)
	}
	wantD := &chainpb.Discrepancy{Contract: id.Bytes(), Height: h, Miner: f.other.pub(), StateRoot: wrong, StoredRoot: root, StoredBy: f.miner.pub(), RecordedHeight: f.height, Inputs: 3, StoredInputs: 3}
	if l := f.discrepancies(); len(l) != 1 || !proto.Equal(l[0], wantD) {
		t.Fatalf("discrepancies %v, want %v", l, wantD)
	}

	// The same root from the second miner acknowledges it.
	f.applied("the second miner's matching checkpoint", f.other, one(id, h, 3, root, nil))
	wantCP.Acks = pubs(f.other)
	if c := f.getContract(id); !proto.Equal(c.Checkpoint, wantCP) || c.Discrepancies != 1 {
		t.Fatalf("after the ack: %v", c)
	}
	// Again, from either: a duplicate.
	f.ignored("the second miner again", f.other, one(id, h, 3, root, nil), "duplicate checkpoint", id)
	f.ignored("the first miner again", f.miner, one(id, h, 3, root, nil), "duplicate checkpoint", id)

	// The same miner differing again at that height (here: the same root
	// but another input count) adds no second record.
	r = f.block(f.message(f.other, one(id, h, 2, root, nil))).TxResults[0]
	if r.Code != 0 || !strings.Contains(effect(r), "already recorded") {
		t.Fatalf("a second difference at the same height: %s %q", code(r), effect(r))
	}
	if c := f.getContract(id); !proto.Equal(c.Checkpoint, wantCP) || c.Discrepancies != 1 || len(f.discrepancies()) != 1 {
		t.Fatalf("a second difference at the same height changed state: %v", c)
	}

	// A newer checkpoint from the second miner replaces it, without acks;
	// the first miner's match acknowledges that one.
	f.commandBlock("alice", id, inputKeyOf(t, kc))
	h2, root2 := f.height-1, rootOf("agreed again")
	f.applied("the second miner's newer checkpoint", f.other, one(id, h2, 4, root2, nil))
	want2 := &chainpb.Checkpoint{Height: h2, Inputs: 4, StateRoot: root2, Chunks: 1, Size: 200, Miner: f.other.pub(), StoredHeight: f.height}
	if c := f.getContract(id); !proto.Equal(c.Checkpoint, want2) || c.InboxStart != 4 {
		t.Fatalf("newer checkpoint %v", c)
	}
	f.applied("the first miner's match", f.miner, one(id, h2, 4, root2, nil))
	want2.Acks = pubs(f.miner)
	// A discrepancy against the first miner now: it names the second
	// miner as the one that stored the checkpoint.
	r = f.block(f.message(f.miner, one(id, h2, 4, wrong, nil))).TxResults[0]
	if r.Code != 0 || !strings.Contains(effect(r), "discrepancy recorded") {
		t.Fatalf("a different root from the first miner: %s %q", code(r), effect(r))
	}
	if c := f.getContract(id); !proto.Equal(c.Checkpoint, want2) || c.Discrepancies != 2 {
		t.Fatalf("after the ack and a second discrepancy: %v", c)
	}
	wantD2 := &chainpb.Discrepancy{Contract: id.Bytes(), Height: h2, Miner: f.miner.pub(), StateRoot: wrong, StoredRoot: root2, StoredBy: f.other.pub(), RecordedHeight: f.height, Inputs: 4, StoredInputs: 4}
	if l := f.discrepancies(); len(l) != 2 || !proto.Equal(l[0], wantD) || !proto.Equal(l[1], wantD2) {
		t.Fatalf("discrepancies %v, want %v and %v", l, wantD, wantD2)
	}
}

// TestContractMessageDedup: every miner of a sending contract sends its
// messages; the chain accepts each sequence once, from whichever miner
// comes first, and drops copies and skipped-ahead sequences.
func TestContractMessageDedup(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	from := f.deploy("alice", f.miner, f.other)
	kcFrom := f.key(from, f.miner, f.other)
	to := f.deploy("bob", f.miner)
	kcTo := f.key(to)
	msg := func(a, b crypto.ContractID, kc []byte, seq uint64) *chainpb.WorkerMessage {
		ik, err := crypto.ContractInputKey(kc)
		if err != nil {
			t.Fatal(err)
		}
		env, err := crypto.Seal(ik.PublicKey(), crypto.MessageInfo(testChainID, a, b), []byte("ping "+strconv.FormatUint(seq, 10)))
		if err != nil {
			t.Fatal(err)
		}
		return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: &chainpb.ContractMessage{
			From: a.Bytes(), To: b.Bytes(), Envelope: env, GasLimit: 1_000_000, Sequence: seq}}}
	}
	// accepted checks that the last block's message was the receiver's
	// input n and the sender has sent sent messages.
	accepted := func(name string, sender, receiver crypto.ContractID, n, sent uint64) {
		t.Helper()
		log := f.eventLog(f.height)
		if got := f.getContract(sender).MessagesSent; got != sent {
			t.Fatalf("%s: messages_sent %d, want %d", name, got, sent)
		}
		if got := f.getContract(receiver).Inputs; got != n+1 {
			t.Fatalf("%s: receiver's inputs %d, want %d", name, got, n+1)
		}
		in := f.inboxEntry(receiver, n)
		if in == nil || in.TimeUnixNano != f.last.UnixNano() || !proto.Equal(f.input(receiver, n).GetWorkerMessage(), log[0].GetWorkerMessage()) {
			t.Fatalf("%s: receiver's input %d is %v, want the message", name, n, in)
		}
	}

	copy0 := msg(from, to, kcTo, 0)
	f.applied("sequence 0 from the first miner", f.miner, copy0)
	accepted("sequence 0", from, to, 1, 1)
	// The second miner's copy of the same message: a duplicate.
	f.ignored("sequence 0 from the second miner", f.other, msg(from, to, kcTo, 0), "duplicate", from, to)
	f.ignored("sequence 0 again from the first miner", f.miner, copy0, "duplicate", from, to)
	f.ignored("sequence 2, skipping 1", f.other, msg(from, to, kcTo, 2), "skips ahead", from, to)
	// Sequence 1 comes first from the second miner this time.
	f.applied("sequence 1 from the second miner", f.other, msg(from, to, kcTo, 1))
	accepted("sequence 1", from, to, 2, 2)
	f.ignored("sequence 1 from the first miner", f.miner, msg(from, to, kcTo, 1), "duplicate", from, to)
	// A message to itself is its own next input and spends its sequence.
	f.applied("sequence 2 to itself", f.miner, msg(from, from, kcFrom, 2))
	accepted("to itself", from, from, 1, 3)
	// The receiver's sequence is its own: its first message is 0.
	f.ignored("the receiver's sequence 1 first", f.miner, msg(to, from, kcFrom, 1), "skips ahead", from, to)
	f.applied("the receiver's sequence 0", f.miner, msg(to, from, kcFrom, 0))
	accepted("the receiver's first", to, from, 2, 1)
	if got := f.getContract(from).MessagesSent; got != 3 {
		t.Fatalf("the sender's messages_sent moved to %d", got)
	}
}

// TestReassignContract: the deployer, only, replaces an instance's miners
// with workers that can run contracts; a gatekeeper then seals k_c to the
// new miner, which recovers the state, without a new input.
func TestReassignContract(t *testing.T) {
	f := newCheckpointFixture(t)
	f.launchNow()
	id := f.deploy("alice", f.miner)
	kc := f.key(id)
	pub := inputKeyOf(t, kc)
	f.commandBlock("alice", id, pub)
	// The miner starts a checkpoint of two chunks it will not finish.
	halfway := checkpoint(id, f.height-1, 2, rootOf("halfway"), bytes.Repeat([]byte{1}, inbox.ChunkBytes+100))
	f.applied("the first chunk of two", f.miner, ckptMsg(halfway[0]))
	before := f.getContract(id)
	stranger := newIdentity(t, 77)
	reassign := func(id crypto.ContractID, miners ...[]byte) *chainpb.MsgReassignContract {
		return &chainpb.MsgReassignContract{Contract: id.Bytes(), Miners: miners}
	}
	for _, c := range []struct {
		name, from string
		msg        *chainpb.MsgReassignContract
		want       string
		stateless  bool
	}{
		{"by another account", "bob", reassign(id, f.other.pub()), "contracts/9", false},
		{"to a gatekeeper", "alice", reassign(id, f.a.pub()), "contracts/6", false},
		{"adding a gatekeeper", "alice", reassign(id, f.miner.pub(), f.b.pub()), "contracts/6", false},
		{"to an unknown worker", "alice", reassign(id, stranger.pub()), "contracts/6", false},
		{"to the retired genesis worker", "alice", reassign(id, f.genesis.pub()), "contracts/6", false},
		{"to the same miner", "alice", reassign(id, f.miner.pub()), "contracts/3", false},
		{"of an unknown contract", "alice", reassign(crypto.NewContractID(addr(f.keys["alice"]), 9999), f.other.pub()), "contracts/2", false},
		{"to no miner", "alice", reassign(id), "contracts/3", true},
		{"to a miner named twice", "alice", reassign(id, f.other.pub(), f.other.pub()), "contracts/3", true},
		{"with a 19-byte id", "alice", &chainpb.MsgReassignContract{Contract: id.Bytes()[:19], Miners: pubs(f.other)}, "contracts/3", true},
	} {
		f.refuse(c.name, c.from, c.msg, c.want, c.stateless)
	}
	if got := f.getContract(id); !proto.Equal(got, before) {
		t.Fatalf("refusals changed the contract to %v", got)
	}

	// The deployer moves it to the other worker.
	r := f.block(f.tx("alice", reassign(id, f.other.pub()))).TxResults[0]
	if r.Code != 0 {
		t.Fatalf("reassign: %s %s", code(r), r.Log)
	}
	evs := f.contractEvents()
	wantEv := &chainpb.ContractReassigned{Contract: id.Bytes(), Miners: pubs(f.other), Added: pubs(f.other), Removed: pubs(f.miner), Reason: contracts.ReasonRequested}
	if len(evs) != 1 || !proto.Equal(evs[0].GetContractReassigned(), wantEv) {
		t.Fatalf("events %v, want %v", evs, wantEv)
	}
	if attrs := abciEvent(r, "reassign_contract"); attrs["contract"] != id.String() || attrs["miners"] != hex.EncodeToString(f.other.pub()) {
		t.Fatalf("reassign_contract event %v", attrs)
	}
	c := f.getContract(id)
	want := proto.Clone(before).(*chainpb.Contract)
	// KeySince 0: the removed miner held k_c, so its rotation is due.
	want.Miners, want.AwaitingKey, want.KeySince = pubs(f.other), pubs(f.other), 0
	if !proto.Equal(c, want) {
		t.Fatalf("reassigned\n got %v\nwant %v", c, want)
	}
	// The removed miner's checkpoints no longer count.
	f.ignored("a checkpoint of the removed miner", f.miner, one(id, f.height-1, 2, rootOf("s"), nil), "not a miner of the contract", id)
	// Commands still go to the inbox while the new miner awaits its key.
	cmd := f.commandBlock("alice", id, pub)
	if got := f.getContract(id); got.Inputs != 3 || !proto.Equal(f.input(id, 2).GetContractCommand(), cmd) {
		t.Fatalf("a command while the new miner awaits its key: %v", got)
	}
	// A copy sealed to the removed miner keys no one.
	wm, _ := f.contractKey(id, f.miner)
	f.ignored("a key for the removed miner", f.a, wm, "no miner of the contract awaits", id)
	// A gatekeeper's copy for the new miner keys it: not initial, no input.
	wm, _ = f.contractKey(id, f.other)
	f.applied("a key for the new miner", f.b, wm)
	evs = f.contractEvents()
	wantKeyed := &chainpb.ContractKeyed{Contract: id.Bytes(), PublicKey: pub, Keys: wm.GetContractKey().Sealed, Gatekeeper: f.b.pub()}
	if len(evs) != 1 || !proto.Equal(evs[0].GetContractKeyed(), wantKeyed) {
		t.Fatalf("events %v, want %v", evs, wantKeyed)
	}
	if got, err := f.other.hpke.Open(wantKeyed.Keys[0].Envelope, crypto.ContractKeyInfo(testChainID, id, f.other.pub())); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("the new miner opens k_c: %v", err)
	}
	c = f.getContract(id)
	if len(c.AwaitingKey) != 0 || c.Inputs != 3 || !bytes.Equal(c.KeyedBy, f.a.pub()) || c.KeyedHeight != before.KeyedHeight || f.inboxEntry(id, 3) != nil {
		t.Fatalf("after keying the new miner: %v", c)
	}
	// The new miner checkpoints it (at the height of the removed miner's
	// unfinished one).
	f.applied("a checkpoint of the new miner", f.other, one(id, halfway[0].Height, 2, rootOf("s"), nil))
	if c := f.getContract(id); c.Checkpoint == nil || !bytes.Equal(c.Checkpoint.Miner, f.other.pub()) || c.InboxStart != 2 {
		t.Fatalf("the new miner's checkpoint: %v", c)
	}

	// Adding the first miner back: it alone awaits a key.
	if r := f.block(f.tx("alice", reassign(id, f.other.pub(), f.miner.pub()))).TxResults[0]; r.Code != 0 {
		t.Fatalf("reassign to two: %s %s", code(r), r.Log)
	}
	wantEv = &chainpb.ContractReassigned{Contract: id.Bytes(), Miners: pubs(f.other, f.miner), Added: pubs(f.miner), Reason: contracts.ReasonRequested}
	// The new miner's checkpoint made the rotation of the removed miner's
	// key due; this reassignment calls it off (the new key would be
	// sealed to the old miners only).
	if evs := f.contractEvents(); len(evs) != 2 || evs[0].GetContractRekeyed() == nil || evs[0].GetContractRekeyed().Ok ||
		!proto.Equal(evs[1].GetContractReassigned(), wantEv) {
		t.Fatalf("events %v, want a rotation called off and %v", evs, wantEv)
	}
	if c := f.getContract(id); len(c.Miners) != 2 || len(c.AwaitingKey) != 1 || !bytes.Equal(c.AwaitingKey[0], f.miner.pub()) {
		t.Fatalf("two miners: %v", c)
	}
	// Its checkpoint in progress went with its removal.
	f.ignored("the second chunk from before the removal", f.miner, ckptMsg(halfway[1]), "out of order", id)

	// Reassigned before its first key, an instance's first key goes to the
	// new miner, and is its init.
	id2 := f.deploy("alice", f.miner)
	if r := f.block(f.tx("alice", reassign(id2, f.other.pub()))).TxResults[0]; r.Code != 0 {
		t.Fatalf("reassign unkeyed: %s %s", code(r), r.Log)
	}
	if c := f.getContract(id2); c.PublicKey != nil || len(c.AwaitingKey) != 1 || !bytes.Equal(c.AwaitingKey[0], f.other.pub()) {
		t.Fatalf("unkeyed, reassigned: %v", c)
	}
	wm, _ = f.contractKey(id2, f.miner)
	f.ignored("the first key, for the removed miner", f.a, wm, "no miner of the contract awaits", id2)
	if c := f.getContract(id2); c.PublicKey != nil {
		t.Fatalf("a key for the removed miner keyed it: %v", c)
	}
	f.key(id2, f.other)
	if ev := f.input(id2, 0).GetContractKeyed(); ev == nil || !ev.Initial || len(ev.Keys) != 1 || !bytes.Equal(ev.Keys[0].Recipient, f.other.pub()) {
		t.Fatalf("input 0 of the reassigned instance: %v", ev)
	}
}

// next is a block one second after the last, whatever the last one's time.
func (f *contractFixture) next(txs ...[]byte) *abci.FinalizeBlockResponse {
	f.t.Helper()
	return f.blockAt(f.last.Add(time.Second), txs...)
}

// reassigned are the ContractReassigned events of the last block.
func (f *contractFixture) reassigned() []*chainpb.ContractReassigned {
	f.t.Helper()
	var out []*chainpb.ContractReassigned
	for _, ev := range f.eventLog(f.height) {
		if r := ev.GetContractReassigned(); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// register registers workers operated by bob in a block at time at, with
// attestation reports of that time.
func (f *contractFixture) register(at time.Time, ids ...identity) {
	f.t.Helper()
	f.now = at
	var txs [][]byte
	for _, id := range ids {
		info := f.info(id, "bob", f.genHash)
		txs = append(txs, f.tx("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}))
	}
	for i, r := range f.blockAt(at, txs...).TxResults {
		if r.Code != 0 {
			f.t.Fatalf("register worker %d: %s %s", i, code(r), r.Log)
		}
	}
}

// TestAutoReassign: when a miner can no longer run contracts (its
// registration expired), the block's end moves its instances to another
// eligible worker, or leaves them waiting without one until a worker
// registers; commands keep landing in the inbox all along.
func TestAutoReassign(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	// spare registers after miner and other: its registration outlives
	// theirs.
	spare := newIdentity(t, 7)
	f.register(f.last.Add(time.Second), spare)
	x := f.deploy("alice", f.miner)
	pubX := inputKeyOf(t, f.key(x))
	y := f.deploy("alice", f.miner, spare)
	f.key(y, f.miner, spare)
	z := f.deploy("bob", f.other)
	exp := f.worker(f.miner.pub()).ExpiresAt
	if f.worker(f.other.pub()).ExpiresAt != exp || f.worker(spare.pub()).ExpiresAt <= exp {
		t.Fatal("fixture: miner and other must expire together, before spare")
	}

	// Until the expiry nothing moves.
	f.blockAt(time.Unix(exp-1, 0))
	if r := f.reassigned(); len(r) != 0 {
		t.Fatalf("reassigned before the expiry: %v", r)
	}
	// The block at the expiry: a command to x is still ordered, and the
	// block's end moves every instance off the expired miners.
	at := time.Unix(exp, 0)
	cmdNonce := f.nonces["alice"]
	if r := f.blockAt(at, f.tx("alice", f.command("alice", x, pubX, 1_000_000))).TxResults[0]; r.Code != 0 {
		t.Fatalf("a command as its miner expires: %s %s", code(r), r.Log)
	}
	reason := contracts.ReasonUnavailable
	want := []*chainpb.ContractReassigned{
		{Contract: x.Bytes(), Miners: pubs(spare), Added: pubs(spare), Removed: pubs(f.miner), Reason: reason},
		{Contract: y.Bytes(), Miners: pubs(spare), Removed: pubs(f.miner), Reason: reason},
		{Contract: z.Bytes(), Miners: pubs(spare), Added: pubs(spare), Removed: pubs(f.other), Reason: reason},
	}
	got := f.reassigned()
	if len(got) != len(want) {
		t.Fatalf("reassigned %v, want %v", got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("reassignment %d\n got %v\nwant %v", i, got[i], want[i])
		}
	}
	cx := f.getContract(x)
	if len(cx.Miners) != 1 || !bytes.Equal(cx.Miners[0], spare.pub()) || len(cx.AwaitingKey) != 1 || !bytes.Equal(cx.AwaitingKey[0], spare.pub()) || cx.Inputs != 2 {
		t.Fatalf("x after the expiry: %v", cx)
	}
	if cmd := f.input(x, 1).GetContractCommand(); cmd == nil || cmd.Nonce != cmdNonce {
		t.Fatalf("the command is not x's input 1: %v", cmd)
	}
	if cy := f.getContract(y); len(cy.AwaitingKey) != 0 { // spare already holds y's key
		t.Fatalf("y after the expiry: %v", cy)
	}
	if cz := f.getContract(z); len(cz.AwaitingKey) != 1 || !bytes.Equal(cz.AwaitingKey[0], spare.pub()) {
		t.Fatalf("z after the expiry: %v", cz)
	}
	// The next block moves nothing; commands keep coming in.
	f.next(f.tx("alice", f.command("alice", x, pubX, 1_000_000)))
	if r := f.reassigned(); len(r) != 0 {
		t.Fatalf("reassigned again: %v", r)
	}
	if c := f.getContract(x); c.Inputs != 3 || f.input(x, 2).GetContractCommand() == nil {
		t.Fatalf("x after another command: %v", c)
	}

	// When spare expires too, no worker is eligible: the instances wait
	// without a miner, and still take commands.
	at = time.Unix(f.worker(spare.pub()).ExpiresAt, 0)
	f.blockAt(at, f.tx("alice", f.command("alice", x, pubX, 1_000_000)))
	got = f.reassigned()
	if len(got) != 3 {
		t.Fatalf("reassigned %v as spare expires", got)
	}
	for i, id := range []crypto.ContractID{x, y, z} {
		w := &chainpb.ContractReassigned{Contract: id.Bytes(), Removed: pubs(spare), Reason: reason}
		if !proto.Equal(got[i], w) {
			t.Fatalf("reassignment %d\n got %v\nwant %v", i, got[i], w)
		}
		if c := f.getContract(id); len(c.Miners) != 0 || len(c.AwaitingKey) != 0 {
			t.Fatalf("%s without an eligible worker: %v", id, c)
		}
	}
	if c := f.getContract(x); c.Inputs != 4 || f.input(x, 3).GetContractCommand() == nil {
		t.Fatalf("x takes a command without a miner: %v", c)
	}
	f.next()
	if r := f.reassigned(); len(r) != 0 {
		t.Fatalf("minerless instances reassigned with no eligible worker: %v", r)
	}

	// Two workers register: the block's end gives each instance the least
	// loaded, the earliest registered on a tie.
	w1, w2 := newIdentity(t, 8), newIdentity(t, 9)
	f.register(f.last.Add(time.Second), w1, w2)
	want = []*chainpb.ContractReassigned{
		{Contract: x.Bytes(), Miners: pubs(w1), Added: pubs(w1), Reason: reason},
		{Contract: y.Bytes(), Miners: pubs(w2), Added: pubs(w2), Reason: reason},
		{Contract: z.Bytes(), Miners: pubs(w1), Added: pubs(w1), Reason: reason},
	}
	got = f.reassigned()
	if len(got) != len(want) {
		t.Fatalf("reassigned %v, want %v", got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("reassignment %d\n got %v\nwant %v", i, got[i], want[i])
		}
	}
	if c := f.getContract(x); len(c.AwaitingKey) != 1 || !bytes.Equal(c.AwaitingKey[0], w1.pub()) || c.Inputs != 4 {
		t.Fatalf("x with its new miner: %v", c)
	}
}

// TestOperatorDeregistersMiner: a worker's operator deregisters it with
// MsgRetireWorker; the chain retires it and, at the block's end, moves the
// contracts it ran to another eligible worker. Anyone else, a gatekeeper,
// an unknown or an already retired worker is refused with state unchanged.
func TestOperatorDeregistersMiner(t *testing.T) {
	f := newContractFixture(t)
	f.launchNow()
	x := f.deploy("alice", f.miner)
	f.key(x)
	retire := func(w identity) *chainpb.MsgRetireWorker { return &chainpb.MsgRetireWorker{Worker: w.pub()} }
	f.refuse("malformed", "bob", &chainpb.MsgRetireWorker{Worker: []byte{1}}, "registry/2", true)
	f.refuse("not its operator", "alice", retire(f.miner), "registry/3", false)
	f.refuse("a gatekeeper", "bob", retire(f.a), "registry/19", false)
	f.refuse("unknown", "bob", retire(newIdentity(t, 9)), "registry/14", false)
	if f.worker(f.miner.pub()).Retired {
		t.Fatal("a refused deregistration retired the miner")
	}

	if r := f.next(f.tx("bob", retire(f.miner))).TxResults[0]; r.Code != 0 {
		t.Fatalf("deregister: %s %s", code(r), r.Log)
	}
	if !f.worker(f.miner.pub()).Retired {
		t.Fatal("the deregistered miner is not retired")
	}
	retired := false
	for _, ev := range f.eventLog(f.height) {
		if r := ev.GetWorkerRetired(); r != nil && bytes.Equal(r.Worker, f.miner.pub()) {
			retired = true
		}
	}
	want := []*chainpb.ContractReassigned{{Contract: x.Bytes(), Miners: pubs(f.other), Added: pubs(f.other), Removed: pubs(f.miner), Reason: contracts.ReasonUnavailable}}
	if got := f.reassigned(); !retired || len(got) != 1 || !proto.Equal(got[0], want[0]) {
		t.Fatalf("in the deregistration's block: retired event %v, reassigned %v, want %v", retired, got, want)
	}
	f.refuse("already retired", "bob", retire(f.miner), "registry/16", false)
}
