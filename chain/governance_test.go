package chain

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/tee/sim"
)

const govDeposit = 100 * bank.UnitsPerPHA

// govFixture is a chain where alice holds 45,000,000 PHA (4.5% of the
// supply), bob 1,000,000 and carol 1,000; referenda vote for 5 blocks (2
// on the emergency track) and pass with a 4% turnout (4% of the supply
// voting yes on the emergency track), so alice alone carries one. Its
// launch elects nobody during a test (election at block 1,000).
type govFixture struct {
	*launchFixture
}

func newGovFixture(t *testing.T) *govFixture {
	t.Helper()
	gen := newIdentity(t, 100)
	a := newAttestFixtureWith(t, func(g *Genesis) {
		b, err := bank.NewGenesis(
			bank.Grant{Name: "alice", Category: "private_sale", Address: addr(testKey("alice")), Amount: 45_000_000 * bank.UnitsPerPHA},
			bank.Grant{Name: "bob", Category: "developers_community", Address: addr(testKey("bob")), Amount: 1_000_000 * bank.UnitsPerPHA},
			bank.Grant{Name: "carol", Category: "developers_community", Address: addr(testKey("carol")), Amount: 1_000 * bank.UnitsPerPHA},
		)
		if err != nil {
			t.Fatal(err)
		}
		g.Bank = b
		g.Governance = &governance.Params{VotingBlocks: 5, EmergencyVotingBlocks: 2, MinDeposit: govDeposit, QuorumPermille: 40, EmergencyThresholdPermille: 40, MaxOpen: 8}
		g.Registry.GenesisWorker = &registry.GenesisWorker{SigningKey: gen.pub(), HPKEKey: gen.hpke.PublicKey()}
		g.Gatekeeper = &gatekeeper.Genesis{Params: gatekeeper.Params{NGatekeepers: 2, ElectionHeight: 1000, HandoverBlocks: 4}, RootPublicKey: crypto.RootPublicKey(bytes.Repeat([]byte{42}, 32))}
	})
	a.keys["carol"] = testKey("carol")
	return &govFixture{&launchFixture{attestFixture: a, genesis: gen, seqs: map[string]uint64{}, nonces: map[string]uint64{}}}
}

func (f *govFixture) submit(from, title string, a *chainpb.ProposalAction) []byte {
	return f.tx(from, &chainpb.MsgSubmitProposal{Title: title, Deposit: govDeposit, Action: a})
}

func (f *govFixture) vote(from string, id uint64, o chainpb.VoteOption) []byte {
	return f.tx(from, &chainpb.MsgVote{Proposal: id, Option: o})
}

// propose submits a proposal in a block and returns its id.
func (f *govFixture) propose(from, title string, a *chainpb.ProposalAction) uint64 {
	f.t.Helper()
	mustApply(f.t, "submit "+title, f.block(f.submit(from, title, a)))
	ps := f.proposals()
	if len(ps) == 0 || ps[0].Title != title {
		f.t.Fatalf("%s: not the newest proposal: %+v", title, ps)
	}
	return ps[0].ID
}

// pass has alice vote yes on proposal id and runs blocks until its voting
// ends; it returns the proposal as it ended.
func (f *govFixture) pass(id uint64) ProposalRecord {
	f.t.Helper()
	mustApply(f.t, fmt.Sprintf("vote on %d", id), f.block(f.vote("alice", id, chainpb.VoteOption_VOTE_OPTION_YES)))
	return f.finish(id)
}

func (f *govFixture) finish(id uint64) ProposalRecord {
	f.t.Helper()
	for p := f.proposal(id); f.height < p.VotingEnd; {
		f.block()
	}
	return f.proposal(id)
}

func (f *govFixture) query(path string, data []byte) *abci.QueryResponse {
	f.t.Helper()
	res, err := f.app.Query(context.Background(), &abci.QueryRequest{Path: path, Data: data})
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *govFixture) queryJSON(path string, v any) {
	f.t.Helper()
	res := f.query(path, nil)
	if res.Code != 0 {
		f.t.Fatalf("query %s: %s %s", path, code(res), res.Log)
	}
	if err := json.Unmarshal(res.Value, v); err != nil {
		f.t.Fatalf("query %s: %v: %s", path, err, res.Value)
	}
}

func (f *govFixture) proposals() []ProposalRecord {
	var ps []ProposalRecord
	f.queryJSON(QueryProposals, &ps)
	return ps
}

func (f *govFixture) proposal(id uint64) ProposalRecord {
	var p ProposalRecord
	f.queryJSON(fmt.Sprintf("%s/%d", QueryProposal, id), &p)
	return p
}

func (f *govFixture) balance(name string) uint64 { return f.account(name).Balance }

func (f *govFixture) treasury() uint64 {
	b, err := bank.Balance(f.app.view, governance.Treasury)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// moduleParams is module's current parameters as the query serves them.
func (f *govFixture) moduleParams(module string) map[string]any {
	var m map[string]any
	f.queryJSON(QueryGovernanceParams+"/"+module, &m)
	return m
}

func paramChangeAction(module string, params any) *chainpb.ProposalAction {
	b, ok := params.([]byte)
	if !ok {
		b, _ = json.Marshal(params)
	}
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_ParamChange{ParamChange: &chainpb.ParamChange{Module: module, ParamsJson: b}}}
}

func setMeasurement(m []byte, allowed bool) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_SetMeasurement{SetMeasurement: &chainpb.SetMeasurementAction{Platform: "sim", Measurement: m, Allowed: allowed}}}
}

func freezePlatform(platform string, frozen bool) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_FreezePlatform{FreezePlatform: &chainpb.FreezePlatform{Platform: platform, Frozen: frozen}}}
}

func treasurySpend(to string, amount uint64) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_TreasurySpend{TreasurySpend: &chainpb.TreasurySpend{To: addr(testKey(to)).Bytes(), Amount: int64(amount)}}}
}

// register registers a new identity operated by bob on the fixture's
// current build; it returns the transaction.
func (f *govFixture) register(id identity) []byte {
	info := f.info(id, "bob", f.genHash)
	return f.tx("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)})
}

// TestGovernanceParamChange: a param_change passes by referendum and takes
// effect when its voting ends, not before; votes are weighed with the
// voter's bonds.
func TestGovernanceParamChange(t *testing.T) {
	f := newGovFixture(t)
	f.block()
	// bob bonds 200,000 PHA to a worker of his: they still count for him.
	w := newIdentity(t, 1)
	mustApply(t, "register", f.block(f.register(w)))
	mustApply(t, "stake", f.block(f.tx("bob", &chainpb.MsgStake{Worker: w.pub(), Amount: 200_000 * bank.UnitsPerPHA})))

	old, err := registry.LoadParams(f.app.view)
	if err != nil {
		t.Fatal(err)
	}
	p := f.moduleParams("registry")
	if p["registration_ttl_seconds"] != float64(old.RegistrationTTL) {
		t.Fatalf("registry params query: %v", p)
	}
	p["registration_ttl_seconds"] = 3600
	aliceBefore := f.balance("alice")
	res := f.block(f.submit("alice", "shorter registrations", paramChangeAction("registry", p)))
	mustApply(t, "submit", res)
	if ev := abciEvent(res.TxResults[0], "submit_proposal"); ev["action"] != "param_change" || ev["proposer"] != addr(f.keys["alice"]).String() {
		t.Errorf("submit_proposal event %v", ev)
	}
	submitted := f.height
	pr := f.proposals()[0]
	if pr.Status != governance.StatusVoting || pr.VotingEnd != submitted+5 || pr.Emergency || pr.Action.Module != "registry" || pr.Deposit != govDeposit {
		t.Fatalf("proposal %+v", pr)
	}
	if got := f.balance("alice"); got != aliceBefore-govDeposit-uint64(f.fee) {
		t.Fatalf("alice paid %d, want the deposit and the fee", aliceBefore-got)
	}
	res = f.block(f.vote("alice", pr.ID, chainpb.VoteOption_VOTE_OPTION_YES), f.vote("bob", pr.ID, chainpb.VoteOption_VOTE_OPTION_NO))
	mustApply(t, "votes", res)
	if ev := abciEvent(res.TxResults[1], "vote"); ev["proposal"] != fmt.Sprint(pr.ID) || ev["option"] != "no" {
		t.Errorf("vote event %v", ev)
	}
	if got := f.proposal(pr.ID); len(got.Votes) != 2 || got.Votes[0].Option != "yes" || got.Votes[1].Voter != addr(f.keys["bob"]).String() || got.Votes[1].Option != "no" {
		t.Fatalf("ballots %+v", got.Votes)
	}
	// Nothing changes before the voting ends.
	for f.height < pr.VotingEnd-1 {
		f.block()
	}
	if cur, _ := registry.LoadParams(f.app.view); cur.RegistrationTTL != old.RegistrationTTL {
		t.Fatalf("registration_ttl changed at block %d, before voting ends at %d", f.height, pr.VotingEnd)
	}
	f.block()
	got := f.proposal(pr.ID)
	if got.Status != governance.StatusPassed {
		t.Fatalf("proposal after voting: %+v", got)
	}
	if cur, _ := registry.LoadParams(f.app.view); cur.RegistrationTTL != 3600 || cur.MaxReportAge != old.MaxReportAge || len(cur.AttestationServices) != 1 {
		t.Fatalf("registry params after the referendum: %+v", cur)
	}
	// Weighed as voting ended, before the deposit came back.
	if want := f.balance("alice") - govDeposit; got.Yes != want {
		t.Errorf("yes %d, want alice's balance without the deposit %d", got.Yes, want)
	}
	if want := f.balance("bob") + 200_000*bank.UnitsPerPHA; got.No != want {
		t.Errorf("no %d, want bob's balance and bond %d", got.No, want)
	}
	if f.balance("alice") != aliceBefore-2*uint64(f.fee) {
		t.Errorf("alice's deposit was not returned: %d, want %d", f.balance("alice"), aliceBefore-2*uint64(f.fee))
	}
	// The new parameters apply: a registration lasts an hour.
	w2 := newIdentity(t, 2)
	mustApply(t, "register after the change", f.block(f.register(w2)))
	if r := f.worker(w2.pub()); r.ExpiresAt != r.RegisteredAt+3600 {
		t.Fatalf("registration under the new parameters: %+v", r)
	}

	// governance's own parameters change too, and a gatekeeper change that
	// keeps era_blocks is accepted.
	gp := f.moduleParams("governance")
	gp["voting_blocks"] = 7
	id := f.propose("alice", "longer votes", paramChangeAction("governance", gp))
	if f.pass(id).Status != governance.StatusPassed {
		t.Fatalf("governance param change: %+v", f.proposal(id))
	}
	if cur, _ := governance.LoadParams(f.app.view); cur.VotingBlocks != 7 {
		t.Fatalf("governance params: %+v", cur)
	}
	kp := f.moduleParams("gatekeeper")
	kp["n_gatekeepers"] = 3
	id = f.propose("alice", "three gatekeepers", paramChangeAction("gatekeeper", kp))
	if pr := f.proposal(id); pr.VotingEnd != f.height+7 {
		t.Fatalf("a proposal after voting_blocks became 7: %+v", pr)
	}
	f.pass(id)
	if cur, _ := gatekeeper.LoadParams(f.app.view); cur.NGatekeepers != 3 || cur.HandoverBlocks != 4 {
		t.Fatalf("gatekeeper params: %+v", cur)
	}
}

// TestGovernanceRefusesBadParams: a param_change that could not apply is
// refused at submission, in CheckTx and in a block, and changes nothing
// but the fee.
func TestGovernanceRefusesBadParams(t *testing.T) {
	f := newGovFixture(t)
	f.block()
	reg := f.moduleParams("registry")
	with := func(m map[string]any, k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range m {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	regJSON, _ := json.Marshal(reg)
	cases := []struct {
		name   string
		action *chainpb.ProposalAction
		want   string
	}{
		{"unknown field", paramChangeAction("registry", with(reg, "governance", "phala1xyz")), `unknown field "governance"`},
		{"invalid value", paramChangeAction("registry", with(reg, "registration_ttl_seconds", 0)), "registration_ttl_seconds and max_report_age_seconds must be positive"},
		{"field left out", paramChangeAction("registry", with(reg, "max_clock_skew_seconds", nil)), "lacks max_clock_skew_seconds"},
		{"not an object", paramChangeAction("registry", []byte(`[1,2]`)), "cannot unmarshal array"},
		{"a second object", paramChangeAction("registry", append(append([]byte{}, regJSON...), regJSON...)), "not valid JSON"},
		{"wrong type", paramChangeAction("registry", with(reg, "registration_ttl_seconds", "1h")), "registration_ttl_seconds"},
		{"no change", paramChangeAction("registry", reg), "would change nothing"},
		{"staking miner above candidate", paramChangeAction("staking", with(f.moduleParams("staking"), "min_miner_stake", 2_000_000_000)), "must not exceed min_candidate_stake"},
		{"governance zero voting", paramChangeAction("governance", with(f.moduleParams("governance"), "voting_blocks", 0)), "voting_blocks must be 1"},
		{"era_blocks", paramChangeAction("gatekeeper", with(with(f.moduleParams("gatekeeper"), "era_blocks", 100), "rotation_blocks", 20)), "era_blocks must stay 0"},
		{"monitor", paramChangeAction("monitor", map[string]any{"heartbeat_blocks": 5}), "fixed at genesis"},
		{"bank", paramChangeAction("bank", map[string]any{}), "no parameters"},
		{"unknown module", paramChangeAction("oracle", map[string]any{}), `no module "oracle"`},
		{"unknown platform", freezePlatform("tdx", true), `verifies platform "sim" only`},
		{"unfreeze what is not frozen", freezePlatform("sim", false), "not frozen"},
		{"allowed build", setMeasurement(f.platform.Measurement(), true), "already on the allowlist"},
		{"remove unknown build", setMeasurement([]byte("nope"), false), "not on the allowlist"},
		{"empty treasury", treasurySpend("carol", 1), "exceeds the 0 PHA the treasury holds"},
	}
	before := f.balance("alice")
	for _, c := range cases {
		r := f.checkTx(f.sign("alice", &chainpb.MsgSubmitProposal{Title: c.name, Deposit: govDeposit, Action: c.action}, 0))
		if code(r) != "governance/4" || !strings.Contains(r.Log, c.want) {
			t.Errorf("%s: got %s %q, want governance/4 with %q", c.name, code(r), r.Log, c.want)
		}
	}
	// In a block: refused the same way; the fee is charged, nothing else.
	res := f.block(f.submit("alice", "unknown field", cases[0].action), f.submit("alice", "invalid", cases[1].action))
	for i, r := range res.TxResults {
		if code(r) != "governance/4" {
			t.Errorf("in a block, tx %d: %s %s", i, code(r), r.Log)
		}
	}
	if got := f.balance("alice"); got != before-2*uint64(f.fee) {
		t.Errorf("alice's balance %d, want %d (two fees, no deposit)", got, before-2*uint64(f.fee))
	}
	if ps := f.proposals(); len(ps) != 0 {
		t.Errorf("refused submissions left proposals: %+v", ps)
	}
	if cur := f.moduleParams("registry"); fmt.Sprint(cur) != fmt.Sprint(reg) {
		t.Errorf("registry params changed: %v", cur)
	}
	// A deposit below the minimum and an empty title are refused too.
	if r := f.checkTx(f.sign("alice", &chainpb.MsgSubmitProposal{Title: "cheap", Deposit: govDeposit - 1, Action: treasurySpend("carol", 1)}, f.nonces["alice"])); code(r) != "governance/3" {
		t.Errorf("small deposit: %s %s", code(r), r.Log)
	}
	if r := f.checkTx(f.sign("alice", &chainpb.MsgSubmitProposal{Deposit: govDeposit, Action: treasurySpend("carol", 1)}, f.nonces["alice"])); code(r) != "governance/2" {
		t.Errorf("no title: %s %s", code(r), r.Log)
	}
	if r := f.checkTx(f.sign("alice", &chainpb.MsgVote{Proposal: 9, Option: chainpb.VoteOption_VOTE_OPTION_YES}, f.nonces["alice"])); code(r) != "governance/6" {
		t.Errorf("vote on no proposal: %s %s", code(r), r.Log)
	}
}

// TestGovernanceFreezePlatform: an emergency referendum freezes a
// platform's registrations and renewals (registry/20); another unfreezes it.
func TestGovernanceFreezePlatform(t *testing.T) {
	f := newGovFixture(t)
	f.block()
	w := newIdentity(t, 1)
	mustApply(t, "register", f.block(f.register(w)))

	id := f.propose("carol", "freeze sim", freezePlatform("sim", true))
	pr := f.proposal(id)
	if !pr.Emergency || pr.VotingEnd != f.height+2 || pr.Action.Platform != "sim" || pr.Action.Frozen == nil || !*pr.Action.Frozen {
		t.Fatalf("freeze proposal %+v", pr)
	}
	// Before it passes, sim still registers.
	if r := f.checkTx(f.sign("bob", f.registerMsg(newIdentity(t, 2)), f.nonces["bob"])); r.Code != 0 {
		t.Fatalf("registration before the freeze: %s %s", code(r), r.Log)
	}
	if pr = f.pass(id); pr.Status != governance.StatusPassed {
		t.Fatalf("freeze: %+v", pr)
	}
	var frozen []registry.Frozen
	f.queryJSON(QueryFrozen, &frozen)
	if len(frozen) != 1 || frozen[0].Platform != "sim" || frozen[0].Proposal != id {
		t.Fatalf("frozen platforms %+v", frozen)
	}
	wantLog := fmt.Sprintf("frozen by referendum %d", id)
	if r := f.checkTx(f.sign("bob", f.registerMsg(newIdentity(t, 3)), f.nonces["bob"])); code(r) != "registry/20" || !strings.Contains(r.Log, wantLog) || !strings.Contains(r.Log, "--unfreeze") {
		t.Fatalf("registration on a frozen platform: %s %s", code(r), r.Log)
	}
	if r := f.checkTx(f.sign("bob", f.renewal(w, newIdentity(t, 4), "bob", w.sign), f.nonces["bob"])); code(r) != "registry/20" || !strings.Contains(r.Log, wantLog) {
		t.Fatalf("renewal on a frozen platform: %s %s", code(r), r.Log)
	}
	res := f.block(f.tx("bob", f.registerMsg(newIdentity(t, 5))))
	if r := res.TxResults[0]; code(r) != "registry/20" {
		t.Fatalf("registration on a frozen platform, in a block: %s %s", code(r), r.Log)
	}
	if r := f.checkTx(f.sign("carol", &chainpb.MsgSubmitProposal{Title: "again", Deposit: govDeposit, Action: freezePlatform("sim", true)}, f.nonces["carol"])); code(r) != "governance/4" || !strings.Contains(r.Log, "already frozen") {
		t.Fatalf("second freeze: %s %s", code(r), r.Log)
	}

	// Unfreezing (on the emergency track as well) restores both.
	id2 := f.propose("carol", "unfreeze sim", freezePlatform("sim", false))
	if pr := f.pass(id2); pr.Status != governance.StatusPassed || !pr.Emergency {
		t.Fatalf("unfreeze: %+v", pr)
	}
	f.queryJSON(QueryFrozen, &frozen)
	if len(frozen) != 0 {
		t.Fatalf("frozen platforms after the unfreeze: %+v", frozen)
	}
	w4 := newIdentity(t, 4)
	mustApply(t, "renewal and registration after the unfreeze", f.block(f.tx("bob", f.renewal(w, w4, "bob", w.sign)), f.tx("bob", f.registerMsg(newIdentity(t, 6)))))
	if r := f.worker(w.pub()); !bytes.Equal(r.Successor, w4.pub()) {
		t.Fatalf("renewal after the unfreeze: %+v", r)
	}
}

func (f *govFixture) registerMsg(id identity) *chainpb.MsgRegisterWorker {
	info := f.info(id, "bob", f.genHash)
	return &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}
}

// TestGovernanceSetMeasurement: the allowlist changes by referendum only;
// a build allowed by one registers, a build removed by one does not.
func TestGovernanceSetMeasurement(t *testing.T) {
	f := newGovFixture(t)
	f.block()
	buildA := f.platform
	buildB := sim.New(f.cpu, sim.Measure([]byte("build B")))

	// MsgSetMeasurement is refused, in CheckTx and in a block.
	set := &chainpb.MsgSetMeasurement{Platform: "sim", Measurement: buildB.Measurement(), Allowed: true}
	if r := f.checkTx(f.sign("alice", set, 0)); code(r) != "tx/9" || !strings.Contains(r.Log, "by referendum") || !strings.Contains(r.Log, "phala gov propose set-measurement") {
		t.Fatalf("MsgSetMeasurement: %s %s", code(r), r.Log)
	}
	if r := f.block(f.sign("alice", set, 0)).TxResults[0]; code(r) != "tx/9" {
		t.Fatalf("MsgSetMeasurement in a block: %s %s", code(r), r.Log)
	}

	f.platform = buildB
	if r := f.checkTx(f.sign("bob", f.registerMsg(newIdentity(t, 1)), 0)); code(r) != "registry/9" || !strings.Contains(r.Log, "phala gov propose set-measurement") {
		t.Fatalf("build B before the referendum: %s %s", code(r), r.Log)
	}
	id := f.propose("alice", "allow build B", setMeasurement(buildB.Measurement(), true))
	if pr := f.pass(id); pr.Status != governance.StatusPassed || pr.Action.Measurement != fmt.Sprintf("%x", buildB.Measurement()) {
		t.Fatalf("allow build B: %+v", pr)
	}
	wb := newIdentity(t, 1)
	mustApply(t, "register build B", f.block(f.register(wb)))
	if r := f.worker(wb.pub()); !bytes.Equal(r.Measurement, buildB.Measurement()) {
		t.Fatalf("worker on build B: %+v", r)
	}

	// Removing build A stops new registrations on it.
	f.platform = buildA
	id = f.propose("alice", "retire build A", setMeasurement(buildA.Measurement(), false))
	if pr := f.pass(id); pr.Status != governance.StatusPassed {
		t.Fatalf("remove build A: %+v", pr)
	}
	if r := f.checkTx(f.sign("bob", f.registerMsg(newIdentity(t, 2)), f.nonces["bob"])); code(r) != "registry/9" {
		t.Fatalf("build A after its removal: %s %s", code(r), r.Log)
	}
	if ok, _ := registry.MeasurementAllowed(f.app.view, "sim", buildB.Measurement()); !ok {
		t.Fatal("build B left the allowlist with build A")
	}
}

// TestGovernanceTreasurySpend: a proposal too few voted on forfeits its
// deposit to the treasury; a treasury_spend pays from it; a spend the
// treasury can no longer pay when voting ends fails and pays nothing.
func TestGovernanceTreasurySpend(t *testing.T) {
	f := newGovFixture(t)
	f.block()
	gp := f.moduleParams("governance")
	gp["max_open"] = 9
	// carol's 1,000 PHA are far from the 4% quorum.
	id := f.propose("bob", "more open proposals", paramChangeAction("governance", gp))
	mustApply(t, "carol votes", f.block(f.vote("carol", id, chainpb.VoteOption_VOTE_OPTION_YES)))
	if pr := f.finish(id); pr.Status != governance.StatusRejected || pr.Yes != f.balance("carol") {
		t.Fatalf("proposal without quorum: %+v", pr)
	}
	if f.treasury() != govDeposit {
		t.Fatalf("treasury %d, want the forfeited deposit %d", f.treasury(), govDeposit)
	}

	carol := f.balance("carol")
	id = f.propose("alice", "pay carol", treasurySpend("carol", 60*bank.UnitsPerPHA))
	if pr := f.pass(id); pr.Status != governance.StatusPassed || pr.Action.Amount != 60*bank.UnitsPerPHA {
		t.Fatalf("spend: %+v", pr)
	}
	if got := f.balance("carol"); got != carol+60*bank.UnitsPerPHA {
		t.Fatalf("carol has %d, want %d", got, carol+60*bank.UnitsPerPHA)
	}
	if f.treasury() != 40*bank.UnitsPerPHA {
		t.Fatalf("treasury %d after the spend", f.treasury())
	}

	// Two spends of 30 PHA each fit the 40 PHA at submission; when both
	// pass, the first pays and the second fails, paying nothing.
	mustApply(t, "two spends", f.block(f.submit("alice", "first", treasurySpend("bob", 30*bank.UnitsPerPHA)), f.submit("alice", "second", treasurySpend("carol", 30*bank.UnitsPerPHA))))
	ps := f.proposals()
	first, second := ps[1].ID, ps[0].ID
	carol = f.balance("carol")
	mustApply(t, "votes", f.block(f.vote("alice", first, chainpb.VoteOption_VOTE_OPTION_YES), f.vote("alice", second, chainpb.VoteOption_VOTE_OPTION_YES)))
	f.finish(second)
	if pr := f.proposal(first); pr.Status != governance.StatusPassed {
		t.Fatalf("first spend: %+v", pr)
	}
	if pr := f.proposal(second); pr.Status != governance.StatusFailed || !strings.Contains(pr.Error, "treasury lacks the funds") {
		t.Fatalf("second spend: %+v", pr)
	}
	if f.treasury() != 10*bank.UnitsPerPHA || f.balance("carol") != carol {
		t.Fatalf("after the spends: treasury %d, carol %d (was %d)", f.treasury(), f.balance("carol"), carol)
	}
	// A proposal is unchanged by reading it back through the query.
	res := f.query(QueryProposal, []byte(fmt.Sprint(second)))
	var viaData ProposalRecord
	if res.Code != 0 || json.Unmarshal(res.Value, &viaData) != nil || viaData.ID != second {
		t.Fatalf("proposal by query data: %s %s", code(res), res.Log)
	}
	if r := f.query(QueryProposal+"/99", nil); code(r) != "governance/6" {
		t.Fatalf("unknown proposal query: %s %s", code(r), r.Log)
	}
}
