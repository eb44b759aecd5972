package governance

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
	"google.golang.org/protobuf/proto"
)

var (
	paramsKey = []byte("governance/params")
	lastIDKey = []byte("governance/last_id")
	openKey   = []byte("governance/open")
)

func be(prefix string, ns ...uint64) []byte {
	k := []byte(prefix)
	for _, n := range ns {
		k = binary.BigEndian.AppendUint64(k, n)
	}
	return k
}

func proposalKey(id uint64) []byte { return be("governance/p/", id) }
func voteKey(id uint64, a crypto.Address) []byte {
	return append(be("governance/v/", id), a[:]...)
}
func voterCountKey(id uint64) []byte { return be("governance/vn/", id) }
func voterKey(id, i uint64) []byte   { return be("governance/vi/", id, i) }
func readUint64(r store.Reader, key []byte) (uint64, error) {
	return store.Uint64(r, key, fmt.Sprintf("governance record %q", key))
}

// Hooks connect governance to the rest of the chain; the app wires them.
type Hooks struct {
	// Check judges an action at submission against the current state
	// (a known module and valid parameters, a known platform, ...). Its
	// error refuses the proposal.
	Check func(a *chainpb.ProposalAction) error
	// Execute applies proposal id's passed action to kv, a write cache
	// that is dropped if it returns an error.
	Execute func(kv store.KV, id uint64, a *chainpb.ProposalAction) error
	// Weight is an account's voting weight now, in uPHA: its free balance
	// plus its own bonds.
	Weight func(a crypto.Address) (uint64, error)
	// Supply is the total supply of PHA now, in uPHA.
	Supply func() (uint64, error)
}

// Outcome is what became of a proposal whose voting ended.
type Outcome struct {
	ID        uint64
	Emergency bool
	// Status is StatusPassed, StatusRejected or StatusFailed.
	Status           string
	Yes, No, Abstain uint64
	// Error is why a passed action could not be applied (StatusFailed).
	Error string
	// DepositReturned: the deposit went back to the proposer (the turnout
	// reached the quorum); otherwise it went to the Treasury.
	DepositReturned bool
}

// Ballot is an account's current vote on a proposal.
type Ballot struct {
	Voter  crypto.Address
	Option chainpb.VoteOption
}

// InitGenesis writes the parameters.
func InitGenesis(kv store.KV, p Params) error { return SetParams(kv, p) }

// SetParams validates and writes the parameters (a param_change for module
// "governance" applies them with it). Proposals already voting keep their
// voting_end; everything else follows the new parameters from the next
// submission, vote or EndBlock on.
func SetParams(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the governance parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "governance parameters")
}

// ValidateTitle checks a proposal title: 1 to MaxTitleBytes bytes of
// printable UTF-8 (spaces allowed; no tabs, newlines or other controls).
func ValidateTitle(t string) error {
	if len(t) == 0 || len(t) > MaxTitleBytes {
		return ErrInvalidTitle.Wrapf("title must be 1 to %d bytes, got %d", MaxTitleBytes, len(t))
	}
	if !utf8.ValidString(t) {
		return ErrInvalidTitle.Wrapf("title is not valid UTF-8")
	}
	for i, r := range t {
		if !unicode.IsPrint(r) {
			return ErrInvalidTitle.Wrapf("title has the unprintable character %U at byte %d", r, i)
		}
	}
	return nil
}

// ValidateAction checks an action's shape without state: exactly one kind,
// with its fields within bounds. Whether it can apply (a known module, valid
// parameters, a known platform) is Hooks.Check's to judge.
func ValidateAction(a *chainpb.ProposalAction) error {
	switch k := a.GetKind().(type) {
	case nil:
		return ErrInvalidAction.Wrapf("a proposal carries exactly one action, got none")
	case *chainpb.ProposalAction_ParamChange:
		pc := k.ParamChange
		if pc == nil {
			return ErrInvalidAction.Wrapf("param_change is empty")
		}
		if !validModule(pc.Module) {
			return ErrInvalidAction.Wrapf("param_change module must be 1 to %d bytes of a-z and _, got %q", MaxModuleBytes, pc.Module)
		}
		if len(pc.ParamsJson) == 0 || len(pc.ParamsJson) > MaxParamsJSONBytes {
			return ErrInvalidAction.Wrapf("param_change params_json must be 1 to %d bytes, got %d", MaxParamsJSONBytes, len(pc.ParamsJson))
		}
		if !json.Valid(pc.ParamsJson) {
			return ErrInvalidAction.Wrapf("param_change params_json is not valid JSON")
		}
	case *chainpb.ProposalAction_SetMeasurement:
		sm := k.SetMeasurement
		if sm == nil {
			return ErrInvalidAction.Wrapf("set_measurement is empty")
		}
		if err := validatePlatform("set_measurement", sm.Platform); err != nil {
			return err
		}
		if len(sm.Measurement) == 0 || len(sm.Measurement) > MaxMeasurementBytes {
			return ErrInvalidAction.Wrapf("set_measurement measurement must be 1 to %d bytes, got %d", MaxMeasurementBytes, len(sm.Measurement))
		}
	case *chainpb.ProposalAction_FreezePlatform:
		fp := k.FreezePlatform
		if fp == nil {
			return ErrInvalidAction.Wrapf("freeze_platform is empty")
		}
		return validatePlatform("freeze_platform", fp.Platform)
	case *chainpb.ProposalAction_TreasurySpend:
		return validateSpend(k.TreasurySpend)
	default:
		return ErrInvalidAction.Wrapf("unknown action kind %T", k)
	}
	return nil
}

func validModule(m string) bool {
	if len(m) == 0 || len(m) > MaxModuleBytes {
		return false
	}
	for _, c := range []byte(m) {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

func validatePlatform(kind, p string) error {
	if len(p) == 0 || len(p) > MaxPlatformBytes {
		return ErrInvalidAction.Wrapf("%s platform must be 1 to %d bytes, got %d", kind, MaxPlatformBytes, len(p))
	}
	return nil
}

func validateSpend(s *chainpb.TreasurySpend) error {
	if s == nil {
		return ErrInvalidAction.Wrapf("treasury_spend is empty")
	}
	to, err := crypto.AddressFromBytes(s.To)
	if err != nil {
		return ErrInvalidAction.Wrapf("treasury_spend recipient: %v", err)
	}
	if to == Treasury {
		return ErrInvalidAction.Wrapf("treasury_spend recipient is the treasury itself")
	}
	if s.Amount <= 0 {
		return ErrInvalidAction.Wrapf("treasury_spend amount must be positive, got %d %s", s.Amount, bank.BaseDenom)
	}
	return nil
}

// IsEmergency reports whether an action runs on the emergency track.
func IsEmergency(a *chainpb.ProposalAction) bool { return a.GetFreezePlatform() != nil }

// ValidateSubmit checks a MsgSubmitProposal without state.
func ValidateSubmit(m *chainpb.MsgSubmitProposal) error {
	if err := ValidateTitle(m.GetTitle()); err != nil {
		return err
	}
	if m.GetDeposit() <= 0 {
		return ErrInvalidDeposit.Wrapf("deposit must be positive, got %d %s", m.GetDeposit(), bank.BaseDenom)
	}
	return ValidateAction(m.GetAction())
}

// ValidateVote checks a MsgVote without state.
func ValidateVote(m *chainpb.MsgVote) error {
	if m.GetProposal() == 0 {
		return ErrUnknownProposal.Wrapf("proposal ids start at 1")
	}
	switch m.GetOption() {
	case chainpb.VoteOption_VOTE_OPTION_YES, chainpb.VoteOption_VOTE_OPTION_NO, chainpb.VoteOption_VOTE_OPTION_ABSTAIN:
		return nil
	}
	return ErrInvalidOption.Wrapf("option must be yes, no or abstain, got %v", m.GetOption())
}

// Submit opens a referendum on m's action, taking the deposit from signer.
// A refused submission writes nothing.
func Submit(kv store.KV, signer crypto.Address, height int64, m *chainpb.MsgSubmitProposal, h Hooks) (uint64, error) {
	if err := ValidateSubmit(m); err != nil {
		return 0, err
	}
	if h.Check == nil {
		return 0, errors.New("governance: Check hook not wired")
	}
	p, err := LoadParams(kv)
	if err != nil {
		return 0, err
	}
	if uint64(m.Deposit) < p.MinDeposit {
		return 0, ErrInvalidDeposit.Wrapf("deposit %s is below the minimum %s", bank.FormatAmount(uint64(m.Deposit)), bank.FormatAmount(p.MinDeposit))
	}
	open, err := loadOpen(kv)
	if err != nil {
		return 0, err
	}
	if len(open) >= p.MaxOpen {
		return 0, ErrTooManyOpen.Wrapf("%d proposals are voting, the most allowed (max_open %d); wait until one ends", len(open), p.MaxOpen)
	}
	if err := h.Check(m.Action); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidAction, err)
	}
	last, err := readUint64(kv, lastIDKey)
	if err != nil {
		return 0, err
	}
	id := last + 1
	emergency := IsEmergency(m.Action)
	end := height + p.VotingBlocks
	if emergency {
		end = height + p.EmergencyVotingBlocks
	}
	pr := &chainpb.Proposal{
		Id:        id,
		Proposer:  signer.Bytes(),
		Title:     m.Title,
		Action:    proto.Clone(m.Action).(*chainpb.ProposalAction),
		Deposit:   uint64(m.Deposit),
		Submitted: height,
		VotingEnd: end,
		Status:    StatusVoting,
		Emergency: emergency,
	}
	// Every write goes through a cache, so a failure half way (the debit,
	// above all) leaves kv untouched.
	c := store.NewCache(kv)
	if err := bank.Debit(c, signer, pr.Deposit, "the proposal deposit"); err != nil {
		return 0, err
	}
	if err := bank.Credit(c, Deposits, pr.Deposit); err != nil {
		return 0, err
	}
	if err := saveProposal(c, pr); err != nil {
		return 0, err
	}
	if err := saveOpen(c, append(open, openEntry{end: end, id: id})); err != nil {
		return 0, err
	}
	if err := store.SetUint64(c, lastIDKey, id); err != nil {
		return 0, err
	}
	return id, c.Write(kv)
}

// Vote records signer's vote, replacing its earlier one on the proposal.
// Voting is open up to and including the proposal's voting_end block.
func Vote(kv store.KV, signer crypto.Address, height int64, m *chainpb.MsgVote) error {
	if err := ValidateVote(m); err != nil {
		return err
	}
	pr, err := Proposal(kv, m.Proposal)
	if err != nil {
		return err
	}
	if pr == nil {
		return ErrUnknownProposal.Wrapf("no proposal %d", m.Proposal)
	}
	if pr.Status != StatusVoting || height > pr.VotingEnd {
		return ErrVotingClosed.Wrapf("voting on proposal %d ended at block %d (now %d, status %s)", pr.Id, pr.VotingEnd, height, pr.Status)
	}
	prev, err := kv.Get(voteKey(pr.Id, signer))
	if err != nil {
		return err
	}
	if prev == nil {
		n, err := readUint64(kv, voterCountKey(pr.Id))
		if err != nil {
			return err
		}
		if err := kv.Set(voterKey(pr.Id, n), signer.Bytes()); err != nil {
			return err
		}
		if err := store.SetUint64(kv, voterCountKey(pr.Id), n+1); err != nil {
			return err
		}
	}
	return kv.Set(voteKey(pr.Id, signer), []byte{byte(m.Option)})
}

// EndBlock closes the proposals whose voting ends at height (or, should one
// have been missed, before it), in ascending id order. All of them are
// tallied first, against the same state, before any action runs or deposit
// moves; and all are judged by the parameters in force when the block ends,
// even if one of them changes them.
func EndBlock(kv store.KV, height int64, h Hooks) ([]Outcome, error) {
	open, err := loadOpen(kv)
	if err != nil {
		return nil, err
	}
	var due, rest []openEntry
	for _, e := range open {
		if e.end <= height {
			due = append(due, e)
		} else {
			rest = append(rest, e)
		}
	}
	if len(due) == 0 {
		return nil, nil
	}
	if h.Execute == nil || h.Weight == nil || h.Supply == nil {
		return nil, errors.New("governance: Execute, Weight or Supply hook not wired")
	}
	p, err := LoadParams(kv)
	if err != nil {
		return nil, err
	}
	supply, err := h.Supply()
	if err != nil {
		return nil, err
	}
	props := make([]*chainpb.Proposal, len(due))
	for i, e := range due {
		pr, err := Proposal(kv, e.id)
		if err != nil {
			return nil, err
		}
		if pr == nil || pr.Status != StatusVoting {
			return nil, fmt.Errorf("governance: open proposal %d is missing or not voting", e.id)
		}
		if err := tally(kv, pr, h.Weight); err != nil {
			return nil, err
		}
		props[i] = pr
	}
	out := make([]Outcome, 0, len(props))
	for _, pr := range props {
		turnout, carry := bits.Add64(pr.Yes, pr.No, 0)
		turnout, carry2 := bits.Add64(turnout, pr.Abstain, 0)
		if carry|carry2 != 0 {
			return nil, fmt.Errorf("governance: turnout of proposal %d overflows", pr.Id)
		}
		quorum := atLeastPermille(turnout, supply, p.QuorumPermille)
		passed := pr.Yes > pr.No && quorum
		if pr.Emergency {
			passed = pr.Yes > pr.No && atLeastPermille(pr.Yes, supply, p.EmergencyThresholdPermille)
		}
		pr.Status = StatusRejected
		if passed {
			c := store.NewCache(kv)
			if err := h.Execute(c, pr.Id, pr.Action); err != nil {
				pr.Status, pr.Error = StatusFailed, errorText(err)
			} else if err := c.Write(kv); err != nil {
				return nil, err
			} else {
				pr.Status = StatusPassed
			}
		}
		to := Treasury
		if quorum {
			to, _ = crypto.AddressFromBytes(pr.Proposer)
		}
		if err := bank.Debit(kv, Deposits, pr.Deposit, fmt.Sprintf("returning the deposit of proposal %d", pr.Id)); err != nil {
			return nil, err
		}
		if err := bank.Credit(kv, to, pr.Deposit); err != nil {
			return nil, err
		}
		if err := saveProposal(kv, pr); err != nil {
			return nil, err
		}
		out = append(out, Outcome{ID: pr.Id, Emergency: pr.Emergency, Status: pr.Status, Yes: pr.Yes, No: pr.No, Abstain: pr.Abstain, Error: pr.Error, DepositReturned: quorum})
	}
	return out, saveOpen(kv, rest)
}

// tally sets pr's yes, no and abstain from its votes, each voter weighed now.
func tally(r store.Reader, pr *chainpb.Proposal, weight func(crypto.Address) (uint64, error)) error {
	pr.Yes, pr.No, pr.Abstain = 0, 0, 0
	n, err := readUint64(r, voterCountKey(pr.Id))
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		v, err := loadVoter(r, pr.Id, i)
		if err != nil {
			return err
		}
		w, err := weight(v.Voter)
		if err != nil {
			return err
		}
		var sum *uint64
		switch v.Option {
		case chainpb.VoteOption_VOTE_OPTION_YES:
			sum = &pr.Yes
		case chainpb.VoteOption_VOTE_OPTION_NO:
			sum = &pr.No
		case chainpb.VoteOption_VOTE_OPTION_ABSTAIN:
			sum = &pr.Abstain
		default:
			return fmt.Errorf("governance: vote of %s on proposal %d has option %d", v.Voter, pr.Id, v.Option)
		}
		s, carry := bits.Add64(*sum, w, 0)
		if carry != 0 {
			return fmt.Errorf("governance: tally of proposal %d overflows", pr.Id)
		}
		*sum = s
	}
	return nil
}

// atLeastPermille reports x ≥ supply·permille/1000, exactly.
func atLeastPermille(x, supply, permille uint64) bool {
	xh, xl := bits.Mul64(x, 1000)
	sh, sl := bits.Mul64(supply, permille)
	return xh > sh || (xh == sh && xl >= sl)
}

// errorText is err's text as a proposal keeps it: valid UTF-8, bounded.
func errorText(err error) string {
	s := err.Error()
	if len(s) > MaxErrorBytes {
		s = s[:MaxErrorBytes]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ExecuteTreasurySpend pays a treasury_spend from the Treasury.
func ExecuteTreasurySpend(kv store.KV, s *chainpb.TreasurySpend) error {
	if err := validateSpend(s); err != nil {
		return err
	}
	to, _ := crypto.AddressFromBytes(s.To)
	amount := uint64(s.Amount)
	bal, err := bank.Balance(kv, Treasury)
	if err != nil {
		return err
	}
	if bal < amount {
		return ErrTreasuryFunds.Wrapf("spending %s to %s, but the treasury holds %s", bank.FormatAmount(amount), to, bank.FormatAmount(bal))
	}
	if err := bank.Debit(kv, Treasury, amount, "the treasury spend"); err != nil {
		return err
	}
	return bank.Credit(kv, to, amount)
}

// openEntry is a proposal still voting.
type openEntry struct {
	end int64
	id  uint64
}

func loadOpen(r store.Reader) ([]openEntry, error) {
	b, err := r.Get(openKey)
	if err != nil {
		return nil, err
	}
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("governance open index is %d bytes, not a multiple of 16", len(b))
	}
	out := make([]openEntry, 0, len(b)/16)
	for i := 0; i < len(b); i += 16 {
		out = append(out, openEntry{end: int64(binary.BigEndian.Uint64(b[i:])), id: binary.BigEndian.Uint64(b[i+8:])})
	}
	return out, nil
}

func saveOpen(kv store.KV, es []openEntry) error {
	if len(es) == 0 {
		return kv.Delete(openKey)
	}
	b := make([]byte, 0, 16*len(es))
	for _, e := range es {
		b = binary.BigEndian.AppendUint64(b, uint64(e.end))
		b = binary.BigEndian.AppendUint64(b, e.id)
	}
	return kv.Set(openKey, b)
}

func saveProposal(kv store.KV, pr *chainpb.Proposal) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(pr)
	if err != nil {
		return err
	}
	return kv.Set(proposalKey(pr.Id), b)
}

// Proposal returns proposal id, nil if there is none.
func Proposal(r store.Reader, id uint64) (*chainpb.Proposal, error) {
	b, err := r.Get(proposalKey(id))
	if err != nil || b == nil {
		return nil, err
	}
	var pr chainpb.Proposal
	if err := proto.Unmarshal(b, &pr); err != nil {
		return nil, fmt.Errorf("proposal %d is corrupt: %w", id, err)
	}
	return &pr, nil
}

// Proposals lists the proposals, newest first, at most MaxListedProposals.
func Proposals(r store.Reader) ([]*chainpb.Proposal, error) {
	last, err := readUint64(r, lastIDKey)
	if err != nil {
		return nil, err
	}
	var out []*chainpb.Proposal
	for id := last; id >= 1 && len(out) < MaxListedProposals; id-- {
		pr, err := Proposal(r, id)
		if err != nil {
			return nil, err
		}
		if pr == nil {
			return nil, fmt.Errorf("governance: proposal %d is missing", id)
		}
		out = append(out, pr)
	}
	return out, nil
}

// Votes lists the current votes on a proposal in the order the voters
// first voted (none for an unknown proposal). The options are as cast; the
// weights are known only when voting ends (Proposal's yes, no, abstain).
func Votes(r store.Reader, id uint64) ([]Ballot, error) {
	n, err := readUint64(r, voterCountKey(id))
	if err != nil {
		return nil, err
	}
	out := make([]Ballot, 0, n)
	for i := uint64(0); i < n; i++ {
		v, err := loadVoter(r, id, i)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func loadVoter(r store.Reader, id, i uint64) (Ballot, error) {
	b, err := r.Get(voterKey(id, i))
	if err != nil {
		return Ballot{}, err
	}
	a, err := crypto.AddressFromBytes(b)
	if err != nil {
		return Ballot{}, fmt.Errorf("governance: voter %d of proposal %d: %w", i, id, err)
	}
	o, err := r.Get(voteKey(id, a))
	if err != nil {
		return Ballot{}, err
	}
	if len(o) != 1 {
		return Ballot{}, fmt.Errorf("governance: vote of %s on proposal %d is %d bytes, want 1", a, id, len(o))
	}
	return Ballot{Voter: a, Option: chainpb.VoteOption(o[0])}, nil
}
