package governance

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"google.golang.org/protobuf/proto"
)

// memKV is an in-memory store.KV whose whole content can be compared.
type memKV map[string][]byte

func (m memKV) Get(k []byte) ([]byte, error) {
	v, ok := m[string(k)]
	if !ok {
		return nil, nil
	}
	return bytes.Clone(v), nil
}
func (m memKV) Set(k, v []byte) error { m[string(k)] = bytes.Clone(v); return nil }
func (m memKV) Delete(k []byte) error { delete(m, string(k)); return nil }

func (m memKV) snapshot() memKV { return maps.Clone(m) }

// diff names the keys whose values differ between m and o.
func (m memKV) diff(o memKV) []string {
	var out []string
	for k, v := range m {
		if w, ok := o[k]; !ok || !bytes.Equal(v, w) {
			out = append(out, k)
		}
	}
	for k := range o {
		if _, ok := m[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

const (
	pha    = bank.UnitsPerPHA
	supply = 1_000_000 * pha // quorum 10% = 100k PHA, emergency 33.4% = 334k PHA
)

var (
	yes     = chainpb.VoteOption_VOTE_OPTION_YES
	no      = chainpb.VoteOption_VOTE_OPTION_NO
	abstain = chainpb.VoteOption_VOTE_OPTION_ABSTAIN
)

func addr(name string) crypto.Address { return crypto.ModuleAddress("test-" + name) }

type fixture struct {
	t        testing.TB
	kv       memKV
	height   int64
	bonds    map[crypto.Address]uint64
	executed []string // actions applied, in order
}

// newFixture: alice 400k PHA, bob 200k, carol 100k, dave 50k, the treasury
// 10k; the supply is 1M PHA; default parameters.
func newFixture(t testing.TB) *fixture {
	f := &fixture{t: t, kv: memKV{}, height: 10, bonds: map[crypto.Address]uint64{}}
	if err := InitGenesis(f.kv, DefaultParams()); err != nil {
		t.Fatal(err)
	}
	for name, amount := range map[string]uint64{"alice": 400_000, "bob": 200_000, "carol": 100_000, "dave": 50_000} {
		f.credit(addr(name), amount*pha)
	}
	f.credit(Treasury, 10_000*pha)
	return f
}

func (f *fixture) credit(a crypto.Address, amount uint64) {
	f.t.Helper()
	if err := bank.Credit(f.kv, a, amount); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) bal(a crypto.Address) uint64 {
	f.t.Helper()
	b, err := bank.Balance(f.kv, a)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) move(from, to crypto.Address, amount uint64) {
	f.t.Helper()
	if err := bank.Transfer(f.kv, from, &chainpb.MsgTransfer{To: to.Bytes(), Amount: int64(amount)}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) hooks() Hooks {
	return Hooks{
		Check: func(a *chainpb.ProposalAction) error {
			if pc := a.GetParamChange(); pc != nil {
				switch pc.Module {
				case "governance":
					_, err := DecodeParams(pc.ParamsJson)
					return err
				case "staking", "fail":
					return nil
				}
				return fmt.Errorf("no module %q", pc.Module)
			}
			return nil
		},
		Execute: func(kv store.KV, _ uint64, a *chainpb.ProposalAction) error {
			switch k := a.Kind.(type) {
			case *chainpb.ProposalAction_ParamChange:
				f.executed = append(f.executed, "params "+k.ParamChange.Module)
				switch k.ParamChange.Module {
				case "governance":
					p, err := DecodeParams(k.ParamChange.ParamsJson)
					if err != nil {
						return err
					}
					return SetParams(kv, p)
				case "fail":
					if err := kv.Set([]byte("test/partial"), []byte{1}); err != nil {
						return err
					}
					if err := bank.Credit(kv, addr("dave"), 1); err != nil {
						return err
					}
					return errors.New("boom \xff")
				}
				return kv.Set([]byte("test/params/"+k.ParamChange.Module), k.ParamChange.ParamsJson)
			case *chainpb.ProposalAction_SetMeasurement:
				f.executed = append(f.executed, "measurement "+string(k.SetMeasurement.Measurement))
				return kv.Set([]byte("test/measurement/"+string(k.SetMeasurement.Measurement)), []byte{1})
			case *chainpb.ProposalAction_FreezePlatform:
				f.executed = append(f.executed, "freeze "+k.FreezePlatform.Platform)
				return kv.Set([]byte("test/frozen/"+k.FreezePlatform.Platform), []byte{1})
			case *chainpb.ProposalAction_TreasurySpend:
				f.executed = append(f.executed, "spend")
				return ExecuteTreasurySpend(kv, k.TreasurySpend)
			}
			return fmt.Errorf("unknown action %T", a.Kind)
		},
		Weight: func(a crypto.Address) (uint64, error) {
			b, err := bank.Balance(f.kv, a)
			return b + f.bonds[a], err
		},
		Supply: func() (uint64, error) { return supply, nil },
	}
}

func measurement(m string) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_SetMeasurement{SetMeasurement: &chainpb.SetMeasurementAction{Platform: "sim", Measurement: []byte(m), Allowed: true}}}
}
func freeze(platform string) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_FreezePlatform{FreezePlatform: &chainpb.FreezePlatform{Platform: platform, Frozen: true}}}
}
func spend(to crypto.Address, amount int64) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_TreasurySpend{TreasurySpend: &chainpb.TreasurySpend{To: to.Bytes(), Amount: amount}}}
}
func params(module, js string) *chainpb.ProposalAction {
	return &chainpb.ProposalAction{Kind: &chainpb.ProposalAction_ParamChange{ParamChange: &chainpb.ParamChange{Module: module, ParamsJson: []byte(js)}}}
}

func msg(a *chainpb.ProposalAction) *chainpb.MsgSubmitProposal {
	return &chainpb.MsgSubmitProposal{Title: "a proposal", Deposit: int64(DefaultParams().MinDeposit), Action: a}
}

func (f *fixture) submit(who string, a *chainpb.ProposalAction) uint64 {
	f.t.Helper()
	id, err := Submit(f.kv, addr(who), f.height, msg(a), f.hooks())
	if err != nil {
		f.t.Fatalf("submit by %s: %v", who, err)
	}
	return id
}

func (f *fixture) vote(who string, id uint64, o chainpb.VoteOption) {
	f.t.Helper()
	if err := Vote(f.kv, addr(who), f.height, &chainpb.MsgVote{Proposal: id, Option: o}); err != nil {
		f.t.Fatalf("vote by %s on %d: %v", who, id, err)
	}
}

func (f *fixture) endBlock(h int64) []Outcome {
	f.t.Helper()
	f.height = h
	out, err := EndBlock(f.kv, h, f.hooks())
	if err != nil {
		f.t.Fatalf("EndBlock %d: %v", h, err)
	}
	return out
}

func (f *fixture) proposal(id uint64) *chainpb.Proposal {
	f.t.Helper()
	pr, err := Proposal(f.kv, id)
	if err != nil || pr == nil {
		f.t.Fatalf("proposal %d: %v %v", id, pr, err)
	}
	return pr
}

func (f *fixture) open() []openEntry {
	f.t.Helper()
	es, err := loadOpen(f.kv)
	if err != nil {
		f.t.Fatal(err)
	}
	return es
}

func TestParams(t *testing.T) {
	p := DefaultParams()
	want := Params{VotingBlocks: 100, EmergencyVotingBlocks: 20, MinDeposit: 1_000_000_000, QuorumPermille: 100, EmergencyThresholdPermille: 334, MaxOpen: 32}
	if p != want {
		t.Fatalf("defaults %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		field string
		mut   func(*Params)
	}{
		{"voting_blocks", func(p *Params) { p.VotingBlocks = 0 }},
		{"voting_blocks", func(p *Params) { p.VotingBlocks = MaxVotingBlocks + 1 }},
		{"emergency_voting_blocks", func(p *Params) { p.EmergencyVotingBlocks = 0 }},
		{"emergency_voting_blocks", func(p *Params) { p.EmergencyVotingBlocks = p.VotingBlocks + 1 }},
		{"min_deposit", func(p *Params) { p.MinDeposit = 0 }},
		{"min_deposit", func(p *Params) { p.MinDeposit = bank.TotalSupply + 1 }},
		{"quorum_permille", func(p *Params) { p.QuorumPermille = 0 }},
		{"quorum_permille", func(p *Params) { p.QuorumPermille = 1001 }},
		{"emergency_threshold_permille", func(p *Params) { p.EmergencyThresholdPermille = 0 }},
		{"emergency_threshold_permille", func(p *Params) { p.EmergencyThresholdPermille = 1001 }},
		{"max_open", func(p *Params) { p.MaxOpen = 0 }},
		{"max_open", func(p *Params) { p.MaxOpen = MaxOpenLimit + 1 }},
	}
	for _, c := range bad {
		p := DefaultParams()
		c.mut(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.field+" must be") {
			t.Errorf("%+v: %v, want an error naming %s and its range", p, err, c.field)
		}
	}

	good := `{"voting_blocks":50,"emergency_voting_blocks":5,"min_deposit":7,"quorum_permille":200,"emergency_threshold_permille":500,"max_open":3}`
	if got, err := DecodeParams([]byte(good)); err != nil || got != (Params{50, 5, 7, 200, 500, 3}) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	for name, js := range map[string]string{
		"unknown field":  strings.Replace(good, `"max_open"`, `"max_opne"`, 1),
		"trailing data":  good + `{}`,
		"trailing brace": good + `}`,
		"invalid":        strings.Replace(good, `"quorum_permille":200`, `"quorum_permille":2000`, 1),
		"missing field":  `{"voting_blocks":50}`,
		"not an object":  `[]`,
		"null":           `null`,
		"empty":          ``,
	} {
		if p, err := DecodeParams([]byte(js)); err == nil {
			t.Errorf("%s: accepted %+v", name, p)
		}
	}
}

func TestSubmit(t *testing.T) {
	f := newFixture(t)
	p := DefaultParams()
	id1 := f.submit("alice", measurement("m1"))
	f.height = 12
	id2 := f.submit("bob", freeze("sgx"))
	if id1 != 1 || id2 != 2 {
		t.Fatalf("ids %d %d, want 1 2", id1, id2)
	}
	if got := f.bal(addr("alice")); got != 400_000*pha-p.MinDeposit {
		t.Errorf("alice holds %d after her deposit", got)
	}
	if got := f.bal(Deposits); got != 2*p.MinDeposit {
		t.Errorf("deposits account holds %d, want %d", got, 2*p.MinDeposit)
	}
	want1 := &chainpb.Proposal{Id: 1, Proposer: addr("alice").Bytes(), Title: "a proposal", Action: measurement("m1"), Deposit: p.MinDeposit, Submitted: 10, VotingEnd: 10 + p.VotingBlocks, Status: StatusVoting}
	if got := f.proposal(1); !proto.Equal(got, want1) {
		t.Errorf("proposal 1 = %v, want %v", got, want1)
	}
	if got := f.proposal(2); !got.Emergency || got.VotingEnd != 12+p.EmergencyVotingBlocks {
		t.Errorf("freeze proposal: emergency %v, voting_end %d, want true, %d", got.Emergency, got.VotingEnd, 12+p.EmergencyVotingBlocks)
	}
	if got, want := f.open(), []openEntry{{110, 1}, {32, 2}}; !slices.Equal(got, want) {
		t.Errorf("open index %v, want %v", got, want)
	}
	// The submitted action is a copy: changing the message later changes
	// nothing stored.
	m := msg(measurement("m3"))
	id3, err := Submit(f.kv, addr("carol"), f.height, m, f.hooks())
	if err != nil {
		t.Fatal(err)
	}
	m.Action.GetSetMeasurement().Measurement[0] = 'X'
	if got := f.proposal(id3).Action.GetSetMeasurement().Measurement; string(got) != "m3" {
		t.Errorf("stored action aliases the message: %q", got)
	}
}

// TestSubmitRefusals: each refused submission names its fault with a
// registered error and leaves the state exactly as it was.
func TestSubmitRefusals(t *testing.T) {
	tooLong := strings.Repeat("x", MaxTitleBytes+1)
	cases := []struct {
		name   string
		signer string
		m      *chainpb.MsgSubmitProposal
		setup  func(f *fixture)
		want   *errs.Error
		text   string
		// stateful: only Submit can tell; ValidateSubmit accepts it.
		stateful bool
	}{
		{name: "empty title", m: &chainpb.MsgSubmitProposal{Deposit: 1e9, Action: freeze("sgx")}, want: ErrInvalidTitle, text: "1 to 140 bytes"},
		{name: "title too long", m: &chainpb.MsgSubmitProposal{Title: tooLong, Deposit: 1e9, Action: freeze("sgx")}, want: ErrInvalidTitle, text: "got 141"},
		{name: "title with a newline", m: &chainpb.MsgSubmitProposal{Title: "a\nb", Deposit: 1e9, Action: freeze("sgx")}, want: ErrInvalidTitle, text: "U+000A"},
		{name: "title not UTF-8", m: &chainpb.MsgSubmitProposal{Title: "a\xffb", Deposit: 1e9, Action: freeze("sgx")}, want: ErrInvalidTitle, text: "UTF-8"},
		{name: "zero deposit", m: &chainpb.MsgSubmitProposal{Title: "t", Action: freeze("sgx")}, want: ErrInvalidDeposit, text: "positive"},
		{name: "negative deposit", m: &chainpb.MsgSubmitProposal{Title: "t", Deposit: -1, Action: freeze("sgx")}, want: ErrInvalidDeposit, text: "positive"},
		{name: "deposit below minimum", m: &chainpb.MsgSubmitProposal{Title: "t", Deposit: 1e9 - 1, Action: freeze("sgx")}, want: ErrInvalidDeposit, text: "below the minimum 1000 PHA", stateful: true},
		{name: "no action", m: &chainpb.MsgSubmitProposal{Title: "t", Deposit: 1e9}, want: ErrInvalidAction, text: "got none"},
		{name: "empty action", m: &chainpb.MsgSubmitProposal{Title: "t", Deposit: 1e9, Action: &chainpb.ProposalAction{}}, want: ErrInvalidAction, text: "got none"},
		{name: "nil param change", m: msg(&chainpb.ProposalAction{Kind: &chainpb.ProposalAction_ParamChange{}}), want: ErrInvalidAction, text: "param_change is empty"},
		{name: "bad module name", m: msg(params("Staking", `{}`)), want: ErrInvalidAction, text: "module"},
		{name: "params not JSON", m: msg(params("staking", `{`)), want: ErrInvalidAction, text: "not valid JSON"},
		{name: "unknown module (Check)", m: msg(params("nope", `{}`)), want: ErrInvalidAction, text: `no module "nope"`, stateful: true},
		{name: "invalid governance params (Check)", m: msg(params("governance", `{"voting_blocks":0}`)), want: ErrInvalidAction, text: "voting_blocks must be", stateful: true},
		{name: "measurement empty", m: msg(measurement("")), want: ErrInvalidAction, text: "measurement must be"},
		{name: "freeze no platform", m: msg(freeze("")), want: ErrInvalidAction, text: "platform must be"},
		{name: "spend to malformed address", m: msg(&chainpb.ProposalAction{Kind: &chainpb.ProposalAction_TreasurySpend{TreasurySpend: &chainpb.TreasurySpend{To: []byte{1}, Amount: 1}}}), want: ErrInvalidAction, text: "recipient"},
		{name: "spend to the treasury", m: msg(spend(Treasury, 1)), want: ErrInvalidAction, text: "treasury itself"},
		{name: "spend nothing", m: msg(spend(addr("bob"), 0)), want: ErrInvalidAction, text: "positive"},
		{name: "deposit exceeds balance", signer: "pauper", m: msg(freeze("sgx")), want: bank.ErrInsufficientFunds, text: "proposal deposit", stateful: true},
		{name: "too many open", setup: func(f *fixture) {
			p := DefaultParams()
			p.MaxOpen = 2
			if err := SetParams(f.kv, p); err != nil {
				f.t.Fatal(err)
			}
			f.submit("bob", freeze("a"))
			f.submit("bob", freeze("b"))
		}, m: msg(freeze("sgx")), want: ErrTooManyOpen, text: "max_open 2", stateful: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			signer := c.signer
			if signer == "" {
				signer = "alice"
			}
			f.credit(addr("pauper"), 999*pha)
			before := f.kv.snapshot()
			id, err := Submit(f.kv, addr(signer), f.height, c.m, f.hooks())
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("got id %d, %v; want %s/%d containing %q", id, err, c.want.Codespace, c.want.Code, c.text)
			}
			if space, code, _ := errs.ABCI(err); space != c.want.Codespace || code != c.want.Code {
				t.Errorf("ABCI %s/%d, want %s/%d", space, code, c.want.Codespace, c.want.Code)
			}
			if d := f.kv.diff(before); len(d) != 0 {
				t.Errorf("refused submission changed %q", d)
			}
			if err := ValidateSubmit(c.m); c.stateful && err != nil || !c.stateful && !errors.Is(err, c.want) {
				t.Errorf("ValidateSubmit: %v (stateless faults are caught without state, and only those)", err)
			}
		})
	}
}

func TestVote(t *testing.T) {
	f := newFixture(t)
	id := f.submit("alice", measurement("m"))
	end := f.proposal(id).VotingEnd
	f.vote("bob", id, yes)
	f.vote("carol", id, no)
	f.vote("bob", id, abstain) // replaces bob's yes
	want := []Ballot{{addr("bob"), abstain}, {addr("carol"), no}}
	if got, err := Votes(f.kv, id); err != nil || !slices.Equal(got, want) {
		t.Fatalf("votes %v %v, want %v", got, err, want)
	}
	f.height = end
	f.vote("dave", id, yes) // the last block still votes

	refusals := []struct {
		name   string
		height int64
		m      *chainpb.MsgVote
		want   *errs.Error
	}{
		{"after the end", end + 1, &chainpb.MsgVote{Proposal: id, Option: yes}, ErrVotingClosed},
		{"unspecified option", end, &chainpb.MsgVote{Proposal: id}, ErrInvalidOption},
		{"unknown option", end, &chainpb.MsgVote{Proposal: id, Option: 7}, ErrInvalidOption},
		{"unknown proposal", end, &chainpb.MsgVote{Proposal: 9, Option: yes}, ErrUnknownProposal},
		{"proposal 0", end, &chainpb.MsgVote{Proposal: 0, Option: yes}, ErrUnknownProposal},
	}
	for _, c := range refusals {
		before := f.kv.snapshot()
		if err := Vote(f.kv, addr("bob"), c.height, c.m); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if d := f.kv.diff(before); len(d) != 0 {
			t.Errorf("%s: refused vote changed %q", c.name, d)
		}
	}
	if out := f.endBlock(end); len(out) != 1 {
		t.Fatalf("outcomes %v", out)
	}
	// Closed: refused even at a height that would have been in time.
	if err := Vote(f.kv, addr("bob"), end, &chainpb.MsgVote{Proposal: id, Option: yes}); !errors.Is(err, ErrVotingClosed) {
		t.Fatalf("vote on a closed proposal: %v", err)
	}
	want = append(want, Ballot{addr("dave"), yes})
	if got, _ := Votes(f.kv, id); !slices.Equal(got, want) {
		t.Fatalf("votes after the end %v, want %v", got, want)
	}
}

// TestTally: standard and emergency outcomes, with the deposit returned if
// the turnout reached the quorum and sent to the treasury otherwise.
// Holdings (PHA): alice 400k, bob 200k, carol 100k, dave 50k; supply 1M.
func TestTally(t *testing.T) {
	type ballot struct {
		who string
		o   chainpb.VoteOption
	}
	cases := []struct {
		name          string
		action        *chainpb.ProposalAction
		votes         []ballot
		setup         func(f *fixture)
		status        string
		returned      bool
		yes, no, abst uint64 // uPHA
	}{
		{name: "passes", action: measurement("m"), votes: []ballot{{"bob", yes}, {"dave", no}}, status: StatusPassed, returned: true, yes: 200_000 * pha, no: 50_000 * pha},
		{name: "no beats yes", action: measurement("m"), votes: []ballot{{"carol", yes}, {"bob", no}}, status: StatusRejected, returned: true, yes: 100_000 * pha, no: 200_000 * pha},
		{name: "tie", action: measurement("m"), votes: []ballot{{"carol", yes}, {"bob", no}, {"dave", yes}, {"x50", yes}}, setup: func(f *fixture) { f.credit(addr("x50"), 50_000*pha) }, status: StatusRejected, returned: true, yes: 200_000 * pha, no: 200_000 * pha},
		{name: "no quorum", action: measurement("m"), votes: []ballot{{"dave", yes}}, status: StatusRejected, returned: false, yes: 50_000 * pha},
		{name: "quorum exactly", action: measurement("m"), votes: []ballot{{"dave", yes}, {"x50", abstain}}, setup: func(f *fixture) { f.credit(addr("x50"), 50_000*pha) }, status: StatusPassed, returned: true, yes: 50_000 * pha, abst: 50_000 * pha},
		{name: "one uPHA short of quorum", action: measurement("m"), votes: []ballot{{"dave", yes}, {"x50", abstain}}, setup: func(f *fixture) { f.credit(addr("x50"), 50_000*pha-1) }, status: StatusRejected, returned: false, yes: 50_000 * pha, abst: 50_000*pha - 1},
		{name: "abstentions make the quorum, none yes", action: measurement("m"), votes: []ballot{{"bob", abstain}}, status: StatusRejected, returned: true, abst: 200_000 * pha},
		{name: "nobody votes", action: measurement("m"), status: StatusRejected, returned: false},
		{name: "emergency passes", action: freeze("sgx"), votes: []ballot{{"alice", yes}, {"bob", no}}, status: StatusPassed, returned: true, yes: 400_000 * pha, no: 200_000 * pha},
		{name: "emergency: quorum but under the threshold", action: freeze("sgx"), votes: []ballot{{"bob", yes}, {"dave", yes}}, status: StatusRejected, returned: true, yes: 250_000 * pha},
		{name: "emergency: threshold but no ties yes", action: freeze("sgx"), votes: []ballot{{"alice", yes}, {"bob", no}, {"carol", no}, {"x100", no}}, setup: func(f *fixture) { f.credit(addr("x100"), 100_000*pha) }, status: StatusRejected, returned: true, yes: 400_000 * pha, no: 400_000 * pha},
		{name: "emergency: threshold exactly, bonds count", action: freeze("sgx"), votes: []ballot{{"carol", yes}}, setup: func(f *fixture) { f.bonds[addr("carol")] = 234_000 * pha }, status: StatusPassed, returned: true, yes: 334_000 * pha},
		{name: "emergency: one uPHA under the threshold", action: freeze("sgx"), votes: []ballot{{"carol", yes}}, setup: func(f *fixture) { f.bonds[addr("carol")] = 234_000*pha - 1 }, status: StatusRejected, returned: true, yes: 334_000*pha - 1},
		{name: "emergency: no quorum, deposit to the treasury", action: freeze("sgx"), votes: []ballot{{"dave", yes}}, setup: func(f *fixture) {
			p := DefaultParams()
			p.EmergencyThresholdPermille = 10 // 10k PHA
			if err := SetParams(f.kv, p); err != nil {
				f.t.Fatal(err)
			}
		}, status: StatusPassed, returned: false, yes: 50_000 * pha},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			proposer := "proposer"
			f.credit(addr(proposer), DefaultParams().MinDeposit)
			id := f.submit(proposer, c.action)
			for _, b := range c.votes {
				f.vote(b.who, id, b.o)
			}
			treasury := f.bal(Treasury)
			end := f.proposal(id).VotingEnd
			if out := f.endBlock(end - 1); len(out) != 0 {
				t.Fatalf("ended early: %v", out)
			}
			out := f.endBlock(end)
			want := Outcome{ID: id, Emergency: IsEmergency(c.action), Status: c.status, Yes: c.yes, No: c.no, Abstain: c.abst, DepositReturned: c.returned}
			if len(out) != 1 || out[0] != want {
				t.Fatalf("outcome %+v, want %+v", out, want)
			}
			pr := f.proposal(id)
			if pr.Status != c.status || pr.Yes != want.Yes || pr.No != want.No || pr.Abstain != want.Abstain {
				t.Errorf("stored proposal %v", pr)
			}
			dep := DefaultParams().MinDeposit
			gotBack, toTreasury := f.bal(addr(proposer)), f.bal(Treasury)-treasury
			if c.returned && (gotBack != dep || toTreasury != 0) || !c.returned && (gotBack != 0 || toTreasury != dep) {
				t.Errorf("deposit: proposer got %d, treasury %d (returned %v)", gotBack, toTreasury, c.returned)
			}
			if f.bal(Deposits) != 0 {
				t.Errorf("deposits account still holds %d", f.bal(Deposits))
			}
			applied := len(f.executed) == 1
			if applied != (c.status == StatusPassed) {
				t.Errorf("executed %v with status %s", f.executed, c.status)
			}
			if len(f.open()) != 0 {
				t.Errorf("still open: %v", f.open())
			}
			if out := f.endBlock(end + 1); len(out) != 0 {
				t.Errorf("closed twice: %v", out)
			}
		})
	}
}

// TestWeightAtEnd: votes weigh the PHA held when voting ends. Alice votes
// yes and hands her PHA to bob, who voted no: it counts once, for no.
func TestWeightAtEnd(t *testing.T) {
	f := newFixture(t)
	id := f.submit("dave", measurement("m"))
	f.vote("alice", id, yes)
	f.vote("bob", id, no)
	f.height++
	f.move(addr("alice"), addr("bob"), f.bal(addr("alice")))
	f.move(addr("carol"), addr("nonvoter"), 100_000*pha) // moved to a non-voter: not counted
	f.vote("carol", id, yes)                             // holds nothing now
	f.bonds[addr("bob")] = 7 * pha
	out := f.endBlock(f.proposal(id).VotingEnd)
	want := Outcome{ID: id, Status: StatusRejected, Yes: 0, No: 600_007 * pha, DepositReturned: true}
	if len(out) != 1 || out[0] != want {
		t.Fatalf("outcome %+v, want %+v", out, want)
	}
}

// TestFailedExecution: a passed action that fails keeps none of its writes;
// the proposal is "failed" with the error, and the deposit is returned.
func TestFailedExecution(t *testing.T) {
	f := newFixture(t)
	id := f.submit("dave", params("fail", `{}`))
	f.vote("alice", id, yes)
	end := f.proposal(id).VotingEnd
	f.height = end
	dave := f.bal(addr("dave"))
	before := f.kv.snapshot()
	out := f.endBlock(end)
	if len(out) != 1 || out[0].Status != StatusFailed || !strings.HasPrefix(out[0].Error, "boom ") || !out[0].DepositReturned {
		t.Fatalf("outcome %+v", out)
	}
	pr := f.proposal(id)
	if pr.Status != StatusFailed || pr.Error != "boom \uFFFD" {
		t.Fatalf("proposal %v", pr)
	}
	if v, _ := f.kv.Get([]byte("test/partial")); v != nil {
		t.Fatal("the failed action's write was kept")
	}
	if got := f.bal(addr("dave")); got != dave+DefaultParams().MinDeposit {
		t.Fatalf("dave holds %d, want %d (its deposit back, not the failed action's credit)", got, dave+DefaultParams().MinDeposit)
	}
	// Exactly the proposal, the open index and the deposit moved.
	wantChanged := []string{string(bank.BalanceKey(addr("dave"))), string(bank.BalanceKey(Deposits)), string(openKey), string(proposalKey(id))}
	slices.Sort(wantChanged)
	if d := f.kv.diff(before); !slices.Equal(d, wantChanged) {
		t.Fatalf("changed %q, want %q", d, wantChanged)
	}
}

// TestEndBlockSeveral: proposals ending in one block close in id order,
// all tallied before any action runs; others stay open.
func TestEndBlockSeveral(t *testing.T) {
	f := newFixture(t)
	p1 := f.submit("dave", spend(addr("carol"), 10_000*pha)) // ends at 110
	p2 := f.submit("dave", measurement("two"))               // ends at 110
	f.height = 90
	p3 := f.submit("dave", freeze("sgx")) // emergency: ends at 110 too
	p4 := f.submit("dave", measurement("four"))
	f.height = 100
	for _, id := range []uint64{p1, p3, p4} {
		f.vote("alice", id, yes)
	}
	// carol's yes on p2 weighs the 100k she holds, not the 110k p1 pays
	// her in the same block: 195k yes against bob's 200k no.
	f.credit(addr("x95"), 95_000*pha)
	f.vote("carol", p2, yes)
	f.vote("x95", p2, yes)
	f.vote("bob", p2, no)

	out := f.endBlock(110)
	var ids []uint64
	for _, o := range out {
		ids = append(ids, o.ID)
	}
	if !slices.Equal(ids, []uint64{p1, p2, p3}) {
		t.Fatalf("closed %v, want %v", ids, []uint64{p1, p2, p3})
	}
	if out[0].Status != StatusPassed || out[1].Status != StatusRejected || out[2].Status != StatusPassed {
		t.Fatalf("outcomes %+v", out)
	}
	if out[1].Yes != 195_000*pha || out[1].No != 200_000*pha {
		t.Fatalf("p2 tally %+v: carol must weigh what she held before p1 paid her", out[1])
	}
	if !slices.Equal(f.executed, []string{"spend", "freeze sgx"}) {
		t.Fatalf("executed %v", f.executed)
	}
	if got := f.bal(addr("carol")); got != 110_000*pha {
		t.Fatalf("carol holds %d after the spend", got)
	}
	if got := f.open(); !slices.Equal(got, []openEntry{{190, p4}}) {
		t.Fatalf("open %v", got)
	}
	if out := f.endBlock(190); len(out) != 1 || out[0].ID != p4 || out[0].Status != StatusPassed {
		t.Fatalf("p4: %+v", out)
	}
	if _, ok := f.kv[string(openKey)]; ok {
		t.Fatal("an empty open index is still stored")
	}
}

func TestEndBlockNothingDue(t *testing.T) {
	f := newFixture(t)
	f.submit("dave", measurement("m"))
	before := f.kv.snapshot()
	// With nothing due, EndBlock needs no hooks and writes nothing.
	out, err := EndBlock(f.kv, 50, Hooks{})
	if err != nil || len(out) != 0 {
		t.Fatalf("%v %v", out, err)
	}
	if d := f.kv.diff(before); len(d) != 0 {
		t.Fatalf("changed %q", d)
	}
}

func TestTreasurySpend(t *testing.T) {
	f := newFixture(t)
	before := f.kv.snapshot()
	err := ExecuteTreasurySpend(f.kv, &chainpb.TreasurySpend{To: addr("bob").Bytes(), Amount: int64(10_000*pha + 1)})
	if !errors.Is(err, ErrTreasuryFunds) || !strings.Contains(err.Error(), "holds 10000 PHA") {
		t.Fatalf("overdraw: %v", err)
	}
	if d := f.kv.diff(before); len(d) != 0 {
		t.Fatalf("refused spend changed %q", d)
	}
	bob := f.bal(addr("bob"))
	if err := ExecuteTreasurySpend(f.kv, &chainpb.TreasurySpend{To: addr("bob").Bytes(), Amount: 3_000 * pha}); err != nil {
		t.Fatal(err)
	}
	if f.bal(addr("bob")) != bob+3_000*pha || f.bal(Treasury) != 7_000*pha {
		t.Fatalf("bob %d, treasury %d", f.bal(addr("bob")), f.bal(Treasury))
	}

	// Through a referendum: an overdraw passes the vote but fails to apply.
	id := f.submit("dave", spend(addr("carol"), 8_000*pha))
	f.vote("alice", id, yes)
	out := f.endBlock(f.proposal(id).VotingEnd)
	if len(out) != 1 || out[0].Status != StatusFailed || !strings.Contains(out[0].Error, "treasury lacks the funds") {
		t.Fatalf("overdraw by referendum: %+v", out)
	}
	if f.bal(addr("carol")) != 100_000*pha || f.bal(Treasury) != 7_000*pha {
		t.Fatalf("carol %d, treasury %d", f.bal(addr("carol")), f.bal(Treasury))
	}
}

// TestParamChangeGovernance: governance can change its own parameters; the
// new ones apply from then on.
func TestParamChangeGovernance(t *testing.T) {
	f := newFixture(t)
	id := f.submit("dave", params("governance", `{"voting_blocks":5,"emergency_voting_blocks":2,"min_deposit":1000000,"quorum_permille":500,"emergency_threshold_permille":600,"max_open":4}`))
	f.vote("alice", id, yes)
	if out := f.endBlock(f.proposal(id).VotingEnd); len(out) != 1 || out[0].Status != StatusPassed {
		t.Fatalf("%+v", out)
	}
	p, err := LoadParams(f.kv)
	if err != nil || p != (Params{5, 2, 1_000_000, 500, 600, 4}) {
		t.Fatalf("params %+v %v", p, err)
	}
	m := msg(measurement("m"))
	m.Deposit = 1_000_000
	id2, err := Submit(f.kv, addr("dave"), f.height, m, f.hooks())
	if err != nil {
		t.Fatal(err)
	}
	if pr := f.proposal(id2); pr.VotingEnd != f.height+5 {
		t.Fatalf("voting_end %d under the new parameters", pr.VotingEnd)
	}
}

func TestProposalsQuery(t *testing.T) {
	f := newFixture(t)
	if ps, err := Proposals(f.kv); err != nil || len(ps) != 0 {
		t.Fatalf("%v %v", ps, err)
	}
	if pr, err := Proposal(f.kv, 1); pr != nil || err != nil {
		t.Fatalf("absent proposal: %v %v", pr, err)
	}
	for i := 0; i < 3; i++ {
		f.submit("dave", measurement(fmt.Sprint(i)))
	}
	ps, err := Proposals(f.kv)
	if err != nil || len(ps) != 3 || ps[0].Id != 3 || ps[2].Id != 1 {
		t.Fatalf("newest first: %v %v", ps, err)
	}
	// Bounded: only the newest MaxListedProposals.
	for id := uint64(4); id <= MaxListedProposals+5; id++ {
		if err := saveProposal(f.kv, &chainpb.Proposal{Id: id, Status: StatusRejected}); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.SetUint64(f.kv, lastIDKey, MaxListedProposals+5); err != nil {
		t.Fatal(err)
	}
	ps, err = Proposals(f.kv)
	if err != nil || len(ps) != MaxListedProposals || ps[0].Id != MaxListedProposals+5 || ps[len(ps)-1].Id != 6 {
		t.Fatalf("bounded: %d proposals, first %d, err %v", len(ps), ps[0].Id, err)
	}
}

func TestErrorCodesStable(t *testing.T) {
	want := map[*errs.Error]uint32{ErrInvalidTitle: 2, ErrInvalidDeposit: 3, ErrInvalidAction: 4, ErrTooManyOpen: 5, ErrUnknownProposal: 6, ErrVotingClosed: 7, ErrInvalidOption: 8, ErrTreasuryFunds: 9}
	for e, code := range want {
		if e.Codespace != "governance" || e.Code != code {
			t.Errorf("%q is %s/%d, want governance/%d", e.Desc, e.Codespace, e.Code, code)
		}
	}
	if Deposits != crypto.ModuleAddress("governance_deposits") || Treasury != crypto.ModuleAddress("treasury") {
		t.Fatal("module accounts moved")
	}
}

// TestEndBlockCatchesUp: a proposal whose end block was somehow not closed
// closes at the next EndBlock.
func TestEndBlockCatchesUp(t *testing.T) {
	f := newFixture(t)
	id := f.submit("dave", measurement("m"))
	f.vote("alice", id, yes)
	end := f.proposal(id).VotingEnd
	if out := f.endBlock(end + 3); len(out) != 1 || out[0].ID != id || out[0].Status != StatusPassed {
		t.Fatalf("%+v", out)
	}
}
