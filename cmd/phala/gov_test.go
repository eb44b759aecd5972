package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/keyring"
	"github.com/phala-go/phala/proto/chainpb"
)

// govChain answers the RPC calls the gov and staking commands make from
// the records it holds, and keeps what they broadcast.
type govChain struct {
	mu        sync.Mutex
	params    governance.Params
	proposals []chain.ProposalRecord // newest first
	frozen    []registry.Frozen
	workers   map[string]*chainpb.Worker
	refuse    *ctypes.ResultBroadcastTx
	broadcast [][]byte
}

func (f *govChain) serve(t *testing.T) string {
	t.Helper()
	return serveRPC(t, "phala-gov-test", &f.mu, f.query, func(tx []byte) *ctypes.ResultBroadcastTx {
		f.broadcast = append(f.broadcast, tx)
		return f.refuse
	})
}

func (f *govChain) query(path string, data []byte) abci.QueryResponse {
	value := func(v any) abci.QueryResponse {
		b, _ := json.Marshal(v)
		return abci.QueryResponse{Value: b}
	}
	switch {
	case path == chain.QueryGovernanceParams:
		return value(f.params)
	case path == chain.QueryGovernanceParams+"/staking":
		return value(map[string]any{"min_candidate_stake": 1, "min_miner_stake": 1, "unbonding_blocks": 200, "slash_miner_permille": 10, "slash_gatekeeper_permille": 100})
	case path == chain.QueryProposals:
		return value(f.proposals)
	case path == chain.QueryFrozen:
		return value(f.frozen)
	case strings.HasPrefix(path, chain.QueryProposal+"/"):
		for _, p := range f.proposals {
			if path == chain.QueryProposal+"/"+itoa(p.ID) {
				return value(p)
			}
		}
		return abci.QueryResponse{Codespace: governance.Codespace, Code: governance.ErrUnknownProposal.Code, Log: "unknown proposal"}
	case path == chain.QueryWorker:
		return workerQuery(f.workers, data)
	case path == chain.QueryWorkers:
		var l chainpb.WorkerList
		for _, w := range f.workers {
			l.Workers = append(l.Workers, w)
		}
		v, _ := proto.Marshal(&l)
		return abci.QueryResponse{Value: v}
	}
	return abci.QueryResponse{Codespace: "query", Code: 2, Log: "unknown query path " + path}
}

func itoa(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// lastBody is the body of the last transaction broadcast.
func (f *govChain) lastBody(t *testing.T) *chainpb.TxBody {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.broadcast) == 0 {
		t.Fatal("nothing broadcast")
	}
	var tx chainpb.Tx
	if err := proto.Unmarshal(f.broadcast[len(f.broadcast)-1], &tx); err != nil {
		t.Fatal(err)
	}
	var body chainpb.TxBody
	if err := proto.Unmarshal(tx.Body, &body); err != nil {
		t.Fatal(err)
	}
	return &body
}

type govEnv struct {
	f          *govChain
	home, node string
	alice, bob keyring.Key
	w1, w2     []byte
}

func newGovEnv(t *testing.T) *govEnv {
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
	bob, err := kr.Add("bob")
	if err != nil {
		t.Fatal(err)
	}
	key := func() []byte { pub, _, _ := ed25519.GenerateKey(rand.Reader); return pub }
	e := &govEnv{home: home, alice: alice, bob: bob, w1: key(), w2: key()}
	yes, no := true, false
	e.f = &govChain{
		params: governance.DefaultParams(),
		frozen: []registry.Frozen{{Platform: "sim", Proposal: 2}},
		workers: map[string]*chainpb.Worker{
			string(e.w1): {SigningKey: e.w1, Operator: alice.Address.Bytes(), Platform: "sim"},
			string(e.w2): {SigningKey: e.w2, Operator: bob.Address.Bytes(), Platform: "sim"},
		},
		proposals: []chain.ProposalRecord{
			{ID: 3, Proposer: alice.Address.String(), Title: "cheaper fees", Submitted: 42, VotingEnd: 142, Status: governance.StatusVoting, Deposit: 1000 * bank.UnitsPerPHA,
				Action: chain.ActionRecord{Kind: "param_change", Module: "auth", Params: json.RawMessage(`{"max_tx_bytes":1048576,"base_fee":500,"fee_per_byte":10}`)},
				Votes:  []chain.BallotRecord{{Voter: bob.Address.String(), Option: "no"}}},
			{ID: 2, Proposer: bob.Address.String(), Title: "freeze sim", Submitted: 10, VotingEnd: 30, Status: governance.StatusPassed, Emergency: true, Yes: 400_000_000 * bank.UnitsPerPHA,
				Action: chain.ActionRecord{Kind: "freeze_platform", Platform: "sim", Frozen: &yes}},
			{ID: 1, Proposer: bob.Address.String(), Title: "allow build", Submitted: 5, VotingEnd: 105, Status: governance.StatusFailed, Error: "boom",
				Action: chain.ActionRecord{Kind: "set_measurement", Platform: "sim", Measurement: "abcd", Allowed: &no}},
		},
	}
	e.node = e.f.serve(t)
	return e
}

func (e *govEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, e.home, e.node, args...)
}

func TestGovProposeCommands(t *testing.T) {
	e := newGovEnv(t)
	sign := []string{"--from", "alice", "--fee", "1000upha", "--nonce", "0"}

	// param-change from a file, with the chain's min_deposit.
	file := filepath.Join(e.home, "staking.json")
	os.WriteFile(file, []byte("{\n  \"min_candidate_stake\": 5,\n  \"min_miner_stake\": 1\n}\n"), 0o600)
	out, err := e.run(t, append([]string{"gov", "propose", "param-change", "--module", "staking", "--params", file, "--title", "cheaper fees"}, sign...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phala gov propose param-change:\n%s", out)
	m := e.f.lastBody(t).GetSubmitProposal()
	if m == nil || m.Title != "cheaper fees" || m.Deposit != int64(governance.DefaultParams().MinDeposit) ||
		m.Action.GetParamChange().GetModule() != "staking" || string(m.Action.GetParamChange().GetParamsJson()) != `{"min_candidate_stake":5,"min_miner_stake":1}` {
		t.Fatalf("param-change body %v", m)
	}
	// The fake's newest proposal by alice in block 42 is 3.
	for _, want := range []string{"committed in block 42", "proposal:", "3", "voting ends:", "block 142 (standard track)", "phala gov vote 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("propose output lacks %q:\n%s", want, out)
		}
	}

	// set-measurement --remove with a 0x-prefixed, mixed-case measurement.
	if _, err := e.run(t, append([]string{"gov", "propose", "set-measurement", "--platform", "sim", "--measurement", "0xABcd01", "--remove", "--title", "retire", "--deposit", "2000"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	m = e.f.lastBody(t).GetSubmitProposal()
	if sm := m.Action.GetSetMeasurement(); sm == nil || sm.Platform != "sim" || !bytes.Equal(sm.Measurement, []byte{0xab, 0xcd, 1}) || sm.Allowed || m.Deposit != 2000*bank.UnitsPerPHA {
		t.Fatalf("set-measurement body %v", m)
	}
	// freeze-platform --unfreeze.
	if _, err := e.run(t, append([]string{"gov", "propose", "freeze-platform", "--platform", "sim", "--unfreeze", "--title", "thaw"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if fp := e.f.lastBody(t).GetSubmitProposal().GetAction().GetFreezePlatform(); fp == nil || fp.Platform != "sim" || fp.Frozen {
		t.Fatalf("freeze-platform body %v", fp)
	}
	// treasury-spend to a key name.
	if _, err := e.run(t, append([]string{"gov", "propose", "treasury-spend", "--to", "bob", "--amount", "1.5", "--title", "pay bob"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if s := e.f.lastBody(t).GetSubmitProposal().GetAction().GetTreasurySpend(); s == nil || !bytes.Equal(s.To, e.bob.Address.Bytes()) || s.Amount != 1_500_000 {
		t.Fatalf("treasury-spend body %v", s)
	}

	// Refused by the chain: the code is the command's error.
	e.f.refuse = &ctypes.ResultBroadcastTx{Code: governance.ErrInvalidAction.Code, Codespace: governance.Codespace, Log: "invalid proposal action: monitor parameters are fixed at genesis", Hash: []byte{1}}
	_, err = e.run(t, append([]string{"gov", "propose", "param-change", "--module", "monitor", "--params", `{"heartbeat_blocks":5}`, "--title", "t"}, sign...)...)
	var txErr *client.TxError
	if !errors.As(err, &txErr) || !strings.Contains(err.Error(), "governance/4") || !strings.Contains(err.Error(), "fixed at genesis") {
		t.Fatalf("refused proposal: %v", err)
	}
	e.f.refuse = nil

	// Checked before any transaction.
	n := len(e.f.broadcast)
	for _, args := range [][]string{
		{"gov", "propose", "param-change", "--module", "staking", "--params", "{not json", "--title", "t"},
		{"gov", "propose", "param-change", "--module", "staking", "--params", filepath.Join(e.home, "missing.json"), "--title", "t"},
		{"gov", "propose", "set-measurement", "--platform", "sim", "--measurement", "xyz", "--title", "t"},
		{"gov", "propose", "treasury-spend", "--to", "bob", "--amount", "lots", "--title", "t"},
		{"gov", "propose", "freeze-platform", "--platform", "sim"}, // no --title
		{"gov", "vote", "3", "maybe"},
		{"gov", "vote", "zero", "yes"},
	} {
		if _, err := e.run(t, append(args, sign...)...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	if len(e.f.broadcast) != n {
		t.Errorf("a refused command line broadcast a transaction")
	}
}

func TestGovVoteAndShow(t *testing.T) {
	e := newGovEnv(t)
	out, err := e.run(t, "gov", "vote", "3", "ABSTAIN", "--from", "bob", "--fee", "1000upha", "--nonce", "4")
	if err != nil {
		t.Fatal(err)
	}
	if v := e.f.lastBody(t).GetVote(); v == nil || v.Proposal != 3 || v.Option != chainpb.VoteOption_VOTE_OPTION_ABSTAIN {
		t.Fatalf("vote body %v", v)
	}
	if !strings.Contains(out, "committed in block 42") {
		t.Errorf("vote output:\n%s", out)
	}

	out, err = e.run(t, "gov", "show")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phala gov show:\n%s", out)
	for _, want := range []string{"min deposit:", "1000 PHA", "quorum:", "10% of the supply", "33.4% of the supply", "frozen platforms:", "sim", "by referendum 2",
		"3", "voting", "param_change of auth", "cheaper fees", "freeze_platform: freeze sim", "set_measurement: remove sim build abcd", "failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out, err = e.run(t, "gov", "show", "3")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("phala gov show 3:\n%s", out)
	for _, want := range []string{"cheaper fees", "block 142 (standard track)", `"base_fee":500`, "votes:", e.bob.Address.String(), "no"} {
		if !strings.Contains(out, want) {
			t.Errorf("show 3 lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tally:") {
		t.Errorf("a voting proposal shows a tally:\n%s", out)
	}
	out, err = e.run(t, "gov", "show", "1", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var p chain.ProposalRecord
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.ID != 1 || p.Status != governance.StatusFailed || p.Error != "boom" || p.Action.Allowed == nil || *p.Action.Allowed {
		t.Fatalf("show 1 json: %v %s", err, out)
	}
	if _, err := e.run(t, "gov", "show", "9"); err == nil || !strings.Contains(err.Error(), "no proposal 9") {
		t.Errorf("unknown proposal: %v", err)
	}
	out, err = e.run(t, "gov", "params", "staking")
	if err != nil || !strings.Contains(out, `"unbonding_blocks": 200`) {
		t.Errorf("gov params staking: %v\n%s", err, out)
	}
}

func TestStakeCommands(t *testing.T) {
	e := newGovEnv(t)
	w1, w2 := hex.EncodeToString(e.w1), hex.EncodeToString(e.w2)
	sign := []string{"--from", "alice", "--fee", "1000upha", "--nonce", "0"}

	if _, err := e.run(t, append([]string{"tx", "stake", "--worker", w1, "--amount", "10"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if s := e.f.lastBody(t).GetStake(); s == nil || !bytes.Equal(s.Worker, e.w1) || s.Amount != 10*bank.UnitsPerPHA {
		t.Fatalf("stake body %v", s)
	}
	// A worker named by its operator's key.
	if _, err := e.run(t, append([]string{"tx", "stake", "--worker", "alice", "--amount", "5upha"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if s := e.f.lastBody(t).GetStake(); s == nil || !bytes.Equal(s.Worker, e.w1) || s.Amount != 5 {
		t.Fatalf("stake by operator name %v", s)
	}
	if _, err := e.run(t, append([]string{"tx", "nominate", "--target", w1, "--target", "bob", "--amount", "2.5"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if nm := e.f.lastBody(t).GetNominate(); nm == nil || len(nm.Targets) != 2 || !bytes.Equal(nm.Targets[0], e.w1) || !bytes.Equal(nm.Targets[1], e.w2) || nm.Amount != 2_500_000 {
		t.Fatalf("nominate body %v", nm)
	}
	if _, err := e.run(t, append([]string{"tx", "nominate", "--target", w2}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if nm := e.f.lastBody(t).GetNominate(); nm == nil || nm.Amount != 0 || len(nm.Targets) != 1 {
		t.Fatalf("retarget body %v", nm)
	}
	if _, err := e.run(t, append([]string{"tx", "unbond", "--amount", "1"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if u := e.f.lastBody(t).GetUnbond(); u == nil || len(u.Worker) != 0 || u.Amount != bank.UnitsPerPHA {
		t.Fatalf("unbond of the nomination %v", u)
	}
	if _, err := e.run(t, append([]string{"tx", "unbond", "--worker", w1, "--amount", "1"}, sign...)...); err != nil {
		t.Fatal(err)
	}
	if u := e.f.lastBody(t).GetUnbond(); u == nil || !bytes.Equal(u.Worker, e.w1) {
		t.Fatalf("unbond of a self stake %v", u)
	}

	n := len(e.f.broadcast)
	for _, args := range [][]string{
		{"tx", "stake", "--worker", hex.EncodeToString(bytes.Repeat([]byte{7}, 32)), "--amount", "1"},
		{"tx", "stake", "--worker", w1, "--amount", "much"},
		{"tx", "nominate", "--amount", "1"},
		{"tx", "unbond", "--worker", w1},
	} {
		if _, err := e.run(t, append(args, sign...)...); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
	if len(e.f.broadcast) != n {
		t.Errorf("a refused command line broadcast a transaction")
	}
}
