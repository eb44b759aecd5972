package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/chainpb"
)

// fakeChain answers the RPC calls the contract commands make: status,
// abci_query and broadcast_tx_sync/tx, from the records it holds.
type fakeChain struct {
	mu        sync.Mutex
	contract  *chainpb.Contract
	workers   map[string]*chainpb.Worker
	discs     []*chainpb.Discrepancy
	refuse    *ctypes.ResultBroadcastTx // broadcast_tx_sync's answer when set
	broadcast [][]byte
}

func (f *fakeChain) serve(t *testing.T) string {
	t.Helper()
	return serveRPC(t, "phala-cli-test", &f.mu, f.query, func(tx []byte) *ctypes.ResultBroadcastTx {
		f.broadcast = append(f.broadcast, tx)
		return f.refuse
	})
}

func (f *fakeChain) query(path string, data []byte) abci.QueryResponse {
	switch path {
	case chain.QueryContract:
		if f.contract == nil || !bytes.Equal(data, f.contract.Id) {
			return abci.QueryResponse{Codespace: contracts.Codespace, Code: contracts.ErrUnknownContract.Code, Log: "unknown contract"}
		}
		v, _ := proto.Marshal(f.contract)
		return abci.QueryResponse{Value: v}
	case chain.QueryContracts:
		v, _ := proto.Marshal(&chainpb.ContractList{Contracts: []*chainpb.Contract{f.contract}})
		return abci.QueryResponse{Value: v}
	case chain.QueryDiscrepancies:
		v, _ := proto.Marshal(&chainpb.DiscrepancyList{Discrepancies: f.discs})
		return abci.QueryResponse{Value: v}
	case chain.QueryWorker:
		return workerQuery(f.workers, data)
	}
	return abci.QueryResponse{Codespace: "query", Code: 2, Log: "unknown query path " + path}
}

type cliEnv struct {
	f        *fakeChain
	home     string
	node     string
	deployer keyring.Key
	id       crypto.ContractID
	m1, m2   []byte // miner identity keys
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	home := t.TempDir()
	kr, err := keyring.Open(devnet.KeyringDir(home))
	if err != nil {
		t.Fatal(err)
	}
	alice, err := kr.Add("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Add("mallory"); err != nil {
		t.Fatal(err)
	}
	key := func() []byte { pub, _, _ := ed25519.GenerateKey(rand.Reader); return pub }
	e := &cliEnv{home: home, deployer: alice, id: crypto.NewContractID(alice.Address, 3), m1: key(), m2: key()}
	e.f = &fakeChain{workers: map[string]*chainpb.Worker{
		string(e.m1): {SigningKey: e.m1, Platform: "sim"},
		string(e.m2): {SigningKey: e.m2, Platform: "sim"},
	}}
	e.f.contract = &chainpb.Contract{Id: e.id.Bytes(), CodeHash: bytes.Repeat([]byte{0x11}, 32), Deployer: alice.Address.Bytes(),
		Miners: [][]byte{e.m1, e.m2}, AwaitingKey: [][]byte{e.m2}, DeployedHeight: 7, CodeSize: 1234, PublicKey: []byte{1},
		KeyedBy: e.m1, KeyedHeight: 8, Commands: 5, CheckpointInterval: 10, Inputs: 9, InboxStart: 6, MessagesSent: 2,
		Checkpoint: &chainpb.Checkpoint{Height: 30, Inputs: 6, StateRoot: bytes.Repeat([]byte{0xee}, 32), Chunks: 2, Size: 70000,
			Miner: e.m1, Acks: [][]byte{e.m2}, StoredHeight: 31},
		Discrepancies: 1}
	e.f.discs = []*chainpb.Discrepancy{
		{Contract: e.id.Bytes(), Height: 30, Miner: e.m2, StateRoot: bytes.Repeat([]byte{0xdd}, 32), StoredRoot: bytes.Repeat([]byte{0xee}, 32), StoredBy: e.m1, RecordedHeight: 32},
		{Contract: crypto.NewContractID(alice.Address, 9).Bytes(), Height: 40, Miner: e.m1, StateRoot: []byte{1}, StoredRoot: []byte{2}, StoredBy: e.m2},
	}
	e.node = e.f.serve(t)
	return e
}

// run runs the phala CLI against the fake chain.
func (e *cliEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, e.home, e.node, args...)
}

func TestContractReassignCommand(t *testing.T) {
	e := newCLIEnv(t)
	m1, m2 := hex.EncodeToString(e.m1), hex.EncodeToString(e.m2)

	// Refused: the chain's error is the command's, and main exits 1 on it.
	e.f.refuse = &ctypes.ResultBroadcastTx{Code: contracts.ErrNotDeployer.Code, Codespace: contracts.Codespace,
		Log: "only the deployer may do this: contract was deployed by alice", Hash: []byte{1}}
	_, err := e.run(t, "contract", "reassign", e.id.String(), "--miner", m2, "--from", "mallory", "--fee", "1000upha", "--nonce", "0")
	var txErr *client.TxError
	if err == nil || !strings.Contains(err.Error(), "contracts/9") || !strings.Contains(err.Error(), "only the deployer") {
		t.Fatalf("refused reassign: %v", err)
	} else if !errors.As(err, &txErr) || txErr.Code != contracts.ErrNotDeployer.Code {
		t.Fatalf("refused reassign: %T %v, want a *client.TxError", err, err)
	}
	t.Logf("refused: %v", err)
	if len(e.f.broadcast) != 1 {
		t.Fatalf("%d transactions broadcast", len(e.f.broadcast))
	}
	var tx chainpb.Tx
	if err := proto.Unmarshal(e.f.broadcast[0], &tx); err != nil {
		t.Fatal(err)
	}
	var body chainpb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		t.Fatal(err)
	}
	msg := body.GetReassignContract()
	if msg == nil || !bytes.Equal(msg.Contract, e.id.Bytes()) || len(msg.Miners) != 1 || !bytes.Equal(msg.Miners[0], e.m2) {
		t.Fatalf("broadcast body %v", &body)
	}

	// Accepted: the result and the contract's miners as of its block.
	e.f.refuse = nil
	out, err := e.run(t, "contract", "reassign", e.id.String(), "--miner", m1, "--miner", m2, "--from", "alice", "--fee", "1000upha", "--nonce", "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phala contract reassign:\n%s", out)
	for _, want := range []string{"committed in block 42", "tx hash:", e.id.String(), "miners:", strings.ToUpper(m1), strings.ToUpper(m2) + " (awaiting its key)"} {
		if !strings.Contains(out, want) {
			t.Errorf("reassign output lacks %q:\n%s", want, out)
		}
	}
	out, err = e.run(t, "contract", "reassign", e.id.String(), "--miner", m1, "--miner", m2, "--from", "alice", "--fee", "1000upha", "--nonce", "2", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Instance    string   `json:"instance"`
		Height      int64    `json:"height"`
		Tx          string   `json:"tx"`
		Miners      []string `json:"miners"`
		AwaitingKey []string `json:"awaiting_key"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Instance != e.id.String() || res.Height != 42 || res.Tx == "" || len(res.Miners) != 2 || res.Miners[0] != m1 || len(res.AwaitingKey) != 1 || res.AwaitingKey[0] != m2 {
		t.Fatalf("reassign json %+v", res)
	}

	// Checked before any transaction: a worker named twice, an unknown one,
	// no --miner.
	n := len(e.f.broadcast)
	if _, err := e.run(t, "contract", "reassign", e.id.String(), "--miner", m1, "--miner", strings.ToUpper(m1), "--from", "alice"); err == nil || !strings.Contains(err.Error(), "same worker") {
		t.Errorf("worker named twice: %v", err)
	}
	if _, err := e.run(t, "contract", "reassign", e.id.String(), "--miner", strings.Repeat("ab", 32), "--from", "alice"); err == nil || !strings.Contains(err.Error(), "no worker has identity key") {
		t.Errorf("unknown worker: %v", err)
	}
	if _, err := e.run(t, "contract", "reassign", e.id.String(), "--from", "alice"); err == nil || !strings.Contains(err.Error(), "miner") {
		t.Errorf("no --miner: %v", err)
	}
	wasm := filepath.Join(e.home, "c.wasm")
	os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o600)
	if _, err := e.run(t, "contract", "deploy", wasm, "--miner", m1, "--miner", m1, "--from", "alice"); err == nil || !strings.Contains(err.Error(), "same worker") {
		t.Errorf("deploy with a worker named twice: %v", err)
	}
	if len(e.f.broadcast) != n {
		t.Errorf("a refused command line broadcast a transaction")
	}
}

func TestContractShowCommand(t *testing.T) {
	e := newCLIEnv(t)
	m1, m2 := hex.EncodeToString(e.m1), hex.EncodeToString(e.m2)
	out, err := e.run(t, "contract", "show", e.id.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phala contract show:\n%s", out)
	for _, want := range []string{
		"miners:", strings.ToUpper(m1), strings.ToUpper(m2) + " (awaiting its key)",
		"inputs:", "9 (kept on chain from input 6)", "messages sent:", "commands:",
		"checkpoint:", "block 30, covering inputs before 6, stored in block 31", strings.Repeat("EE", 32),
		"70000 bytes in 2 chunks", "acks:", "discrepancies:", "block 30:", strings.Repeat("DD", 32), "recorded in block 32",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "block 40") {
		t.Errorf("show lists another contract's discrepancy:\n%s", out)
	}

	out, err = e.run(t, "contract", "show", e.id.String(), "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Miners       []string `json:"miners"`
		AwaitingKey  []string `json:"awaiting_key"`
		Inputs       uint64   `json:"inputs"`
		InboxStart   uint64   `json:"inbox_start"`
		MessagesSent uint64   `json:"messages_sent"`
		Checkpoint   *struct {
			Height       int64    `json:"height"`
			Inputs       uint64   `json:"inputs"`
			StateRoot    string   `json:"state_root"`
			Chunks       uint32   `json:"chunks"`
			Size         uint64   `json:"size"`
			Miner        string   `json:"miner"`
			Acks         []string `json:"acks"`
			StoredHeight int64    `json:"stored_height"`
		} `json:"checkpoint"`
		Discrepancies uint64                     `json:"discrepancies"`
		Records       []client.DiscrepancyStatus `json:"discrepancy_records"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cp := v.Checkpoint
	if len(v.Miners) != 2 || v.Miners[1] != m2 || len(v.AwaitingKey) != 1 || v.Inputs != 9 || v.InboxStart != 6 || v.MessagesSent != 2 ||
		cp == nil || cp.Height != 30 || cp.Inputs != 6 || cp.StateRoot != strings.Repeat("ee", 32) || cp.Chunks != 2 || cp.Size != 70000 ||
		cp.Miner != m1 || len(cp.Acks) != 1 || cp.Acks[0] != m2 || cp.StoredHeight != 31 || v.Discrepancies != 1 ||
		len(v.Records) != 1 || v.Records[0].Miner != m2 || v.Records[0].StoredBy != m1 || v.Records[0].Contract != e.id.String() {
		t.Fatalf("show json: %s", out)
	}

	// The key's rotations: done, in progress, and due after a miner left
	// (key_since 0), which has no "since block".
	e.f.contract.KeyEpoch, e.f.contract.KeySince = 2, 50
	e.f.contract.Rekey = &chainpb.Rekey{Epoch: 3, Miner: e.m1, Deadline: 61}
	out, err = e.run(t, "contract", "show", e.id.String())
	if err != nil || !strings.Contains(out, "rotated:") || !strings.Contains(out, "2 times by its miners, the current key since block 50") ||
		!strings.Contains(out, "to epoch 3 by miner") || !strings.Contains(out, "held until block 61") || strings.Contains(out, "rotation due") {
		t.Fatalf("show while rotating: %v\n%s", err, out)
	}
	e.f.contract.KeySince, e.f.contract.Rekey = 0, nil
	out, err = e.run(t, "contract", "show", e.id.String())
	if err != nil || !strings.Contains(out, "2 times by its miners\n") || strings.Contains(out, "since block 0") || !strings.Contains(out, "rotation due:") {
		t.Fatalf("show after a miner left: %v\n%s", err, out)
	}

	// Before its first checkpoint: null in JSON, said so in text.
	e.f.contract.Checkpoint, e.f.contract.Discrepancies = nil, 0
	out, err = e.run(t, "contract", "list", "-o", "json")
	if err != nil || !strings.Contains(out, `"checkpoint": null`) {
		t.Fatalf("list json: %v\n%s", err, out)
	}
	out, err = e.run(t, "contract", "show", e.id.String())
	if err != nil || !strings.Contains(out, "none yet (taken at multiples of 10 blocks") {
		t.Fatalf("show without a checkpoint: %v\n%s", err, out)
	}
}

func TestStatusDiscrepancies(t *testing.T) {
	st := &client.Status{
		Workers: []client.WorkerStatus{
			{Worker: strings.Repeat("a1", 32), Platform: "sim", Discrepancies: 2},
			{Worker: strings.Repeat("b2", 32), Platform: "sim"},
		},
		Discrepancies: []client.DiscrepancyStatus{
			{Contract: "phalac1xyz", Height: 30, Miner: strings.Repeat("a1", 32), StateRoot: strings.Repeat("dd", 32), StoredRoot: strings.Repeat("ee", 32), StoredBy: strings.Repeat("b2", 32)},
		},
	}
	var out bytes.Buffer
	if err := emit(&out, &globals{output: "text"}, st, func(w io.Writer) { printWorkers(w, st) }); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	var a1, b2 string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "  a1a1"):
			a1 = l
		case strings.HasPrefix(l, "  b2b2"):
			b2 = l
		}
	}
	if !strings.Contains(a1, "2 discrepancies") || strings.Contains(b2, "discrepanc") {
		t.Errorf("worker lines:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1 (a redundant miner") || !strings.Contains(out.String(), "phalac1xyz") || !strings.Contains(out.String(), "block 30") {
		t.Errorf("status output:\n%s", out.String())
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"discrepancies":2`) || !strings.Contains(string(b), `"stored_root":"`+strings.Repeat("ee", 32)) {
		t.Errorf("status json: %s", b)
	}
	if b, _ := json.Marshal(client.Status{Workers: []client.WorkerStatus{{}}}); strings.Contains(string(b), "discrepanc") {
		t.Errorf("empty discrepancies not omitted: %s", b)
	}
}
