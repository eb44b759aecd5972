package chain

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/crypto"
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
	gen := newIdentity(t, 100)
	root := bytes.Repeat([]byte{42}, 32)
	p := contracts.DefaultParams()
	p.MaxCodeBytes = testMaxCode
	af := newAttestFixtureWith(t, func(g *Genesis) {
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: gen.pub(), HPKEKey: gen.hpke.PublicKey()}
		g.Gatekeeper = &gatekeeper.Genesis{Params: gatekeeper.Params{NGatekeepers: 2, ElectionHeight: 3, HandoverBlocks: 4}, RootPublicKey: crypto.RootPublicKey(root)}
		g.Staking.MinCandidateStake = 10 * 1_000_000
		g.Contracts = &p
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

func (f *contractFixture) deployMsg(miner []byte) *chainpb.MsgDeployContract {
	return &chainpb.MsgDeployContract{CodeGzip: gzipped(f.t, wasmOf(100)), Miner: miner, InitArgs: []byte(`{"owner":"alice"}`)}
}

// deploy deploys a contract run by miner from account from and returns its id.
func (f *contractFixture) deploy(from string, miner identity) crypto.ContractID {
	f.t.Helper()
	id := crypto.NewContractID(addr(f.keys[from]), f.nonces[from])
	if r := f.block(f.tx(from, f.deployMsg(miner.pub()))).TxResults[0]; r.Code != 0 {
		f.t.Fatalf("deploy: %s %s", code(r), r.Log)
	}
	return id
}

// contractKey is gatekeepers' copy of id's contract key k_c for its miner,
// and k_c.
func (f *contractFixture) contractKey(id crypto.ContractID, miner identity) (*chainpb.WorkerMessage, []byte) {
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
	sealed, err := crypto.Seal(miner.hpke.PublicKey(), crypto.ContractKeyInfo(testChainID, id, miner.pub()), kc)
	if err != nil {
		f.t.Fatal(err)
	}
	return &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractKey{ContractKey: &chainpb.ContractKey{
		Contract: id.Bytes(), PublicKey: ik.PublicKey(), WrappedKey: wrapped, SealedKey: sealed}}}, kc
}

// key has gatekeeper a key contract id (run by f.miner) and returns k_c.
func (f *contractFixture) key(id crypto.ContractID) []byte {
	f.t.Helper()
	wm, kc := f.contractKey(id, f.miner)
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
		if ev.GetContractDeployed() != nil || ev.GetContractKeyed() != nil || ev.GetContractCommand() != nil {
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
	f.refuse("init args not JSON before launch", "alice", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100)), Miner: f.miner.pub(), InitArgs: []byte("{oops")}, "contracts/3", true)
	f.launchNow()

	stranger := newIdentity(t, 77)
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
		{"no code", &chainpb.MsgDeployContract{Miner: f.miner.pub()}, "contracts/3", true},
		{"code not gzip", &chainpb.MsgDeployContract{CodeGzip: wasmOf(100), Miner: f.miner.pub()}, "contracts/3", false},
		{"truncated gzip", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100))[:20], Miner: f.miner.pub()}, "contracts/3", false},
		{"gzip of non-wasm", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, []byte("#!/bin/sh\necho hello\n")), Miner: f.miner.pub()}, "contracts/3", false},
		{"gzip of wasm version 2", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, []byte("\x00asm\x02\x00\x00\x00")), Miner: f.miner.pub()}, "contracts/3", false},
		{"code one byte over max_code_bytes", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(testMaxCode+1)), Miner: f.miner.pub()}, "contracts/4", false},
		{"code far over max_code_bytes", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(1<<20)), Miner: f.miner.pub()}, "contracts/4", false},
		{"init args not JSON", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(100)), Miner: f.miner.pub(), InitArgs: []byte("{oops")}, "contracts/3", true},
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
	res := f.block(f.tx("alice", &chainpb.MsgDeployContract{CodeGzip: gzipped(t, wasmOf(testMaxCode)), Miner: f.miner.pub()}))
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
	msg := &chainpb.MsgDeployContract{CodeGzip: gzipped(t, code1), Miner: f.miner.pub(), InitArgs: []byte(`{"owner":"alice"}`)}
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
	want := &chainpb.Contract{Id: id.Bytes(), CodeHash: sum[:], Deployer: alice.Bytes(), Miner: f.miner.pub(), DeployedHeight: f.height, CodeSize: uint64(len(code1))}
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
	wantEv := &chainpb.ContractDeployed{Contract: id.Bytes(), CodeHash: sum[:], CodeGzip: msg.CodeGzip, Miner: f.miner.pub(), Deployer: alice.Bytes(), InitArgs: msg.InitArgs}
	if got := evs[0].GetContractDeployed(); !proto.Equal(got, wantEv) {
		t.Fatalf("ContractDeployed\n got %v\nwant %v", got, wantEv)
	}

	// The ABCI event indexes the deployment by instance, deployer and miner.
	attrs := abciEvent(r, "deploy_contract")
	if attrs == nil || attrs["contract"] != id.String() || attrs["deployer"] != alice.String() || attrs["miner"] != hex.EncodeToString(f.miner.pub()) {
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
	if !bytes.Equal(c.PublicKey, pub) || !bytes.Equal(c.WrappedKey, sent.WrappedKey) || !bytes.Equal(c.KeyedBy, f.a.pub()) || c.KeyedHeight != keyedAt || c.Commands != 0 {
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
	wantKeyed := &chainpb.ContractKeyed{Contract: id.Bytes(), PublicKey: pub, Miner: f.miner.pub(), SealedKey: sent.SealedKey, Gatekeeper: f.a.pub()}
	if got := evs[0].GetContractKeyed(); !proto.Equal(got, wantKeyed) {
		t.Fatalf("ContractKeyed\n got %v\nwant %v", got, wantKeyed)
	}
	// Only the miner opens the sealed key.
	if got, err := f.miner.hpke.Open(evs[0].GetContractKeyed().SealedKey, crypto.ContractKeyInfo(testChainID, id, f.miner.pub())); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("miner opens the sealed key: %v", err)
	}
	if _, err := f.other.hpke.Open(evs[0].GetContractKeyed().SealedKey, crypto.ContractKeyInfo(testChainID, id, f.miner.pub())); err == nil {
		t.Fatal("another worker opened the miner's sealed key")
	}

	// Later copies, from b (the same key, or another) or from a again, are
	// ignored and change nothing.
	keyed := f.getContract(id)
	same, _ := f.contractKey(id, f.miner)
	forgedKC := bytes.Repeat([]byte{7}, 32)
	forgedIK, _ := crypto.ContractInputKey(forgedKC)
	forged, _ := f.contractKey(id, f.miner)
	forged.GetContractKey().PublicKey = forgedIK.PublicKey()
	for name, c := range map[string]struct {
		from identity
		wm   *chainpb.WorkerMessage
	}{"b, same key": {f.b, same}, "b, another key": {f.b, forged}, "a again": {f.a, same}} {
		r := f.block(f.message(c.from, c.wm)).TxResults[0]
		if r.Code != 0 || effect(r) == "applied" || effect(r) == "" {
			t.Fatalf("%s: %s %q %s", name, code(r), effect(r), r.Log)
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
	keyed.Commands = 3
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

// TestContractMessages: a contract-to-contract message is for the
// receiver's miner only if the sending contract's miner sent it to a keyed
// contract; otherwise it is delivered with a note (and pRuntime drops it).
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

	msg := func(a, b crypto.ContractID) *chainpb.ContractMessage {
		env, err := crypto.Seal(ikTo.PublicKey(), crypto.MessageInfo(testChainID, a, b), []byte("ping"))
		if err != nil {
			t.Fatal(err)
		}
		return &chainpb.ContractMessage{From: a.Bytes(), To: b.Bytes(), Envelope: env, GasLimit: 100_000_000}
	}
	badEnv := msg(from, to)
	badEnv.Envelope = []byte("not sealed")
	for _, c := range []struct {
		name   string
		sender identity
		m      *chainpb.ContractMessage
		note   bool
	}{
		{"from the sending contract's miner to a keyed contract", f.miner, msg(from, to), false},
		{"from another worker", f.other, msg(from, to), true},
		{"from a gatekeeper", f.a, msg(from, to), true},
		{"from an unknown contract", f.miner, msg(nowhere, to), true},
		{"to an unknown contract", f.miner, msg(from, nowhere), true},
		{"to an unkeyed contract", f.miner, msg(from, unkeyed), true},
		{"with a malformed envelope", f.miner, badEnv, true},
	} {
		// The rule itself, on committed state.
		f.app.mu.RLock()
		note, err := contracts.CheckMessage(f.app.view, c.sender.pub(), c.m)
		f.app.mu.RUnlock()
		if err != nil || (note != "") != c.note {
			t.Errorf("%s: CheckMessage note %q err %v", c.name, note, err)
		}
		// Through the chain: always delivered (the sequence is spent and
		// the message is in the log), applied only without a note.
		wm := &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: c.m}}
		r := f.block(f.message(c.sender, wm)).TxResults[0]
		wantEffect := "applied"
		if c.note {
			wantEffect = "ignored: " + note
		}
		if r.Code != 0 || effect(r) != wantEffect {
			t.Errorf("%s: delivered %s effect %q, want %q", c.name, code(r), effect(r), wantEffect)
		}
		log := f.eventLog(f.height)
		if len(log) != 1 || log[0].GetWorkerMessage() == nil {
			t.Errorf("%s: event log %v", c.name, log)
		}
	}
}
