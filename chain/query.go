package chain

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
)

// Query paths served by the app (ABCI Query / CometBFT's /abci_query).
const (
	// QueryStore: data = raw state key; value = raw value (empty if absent).
	// With prove, ProofOps verify against the header at height+1 (package proof).
	QueryStore = "/store"
	// QueryEventLog: height = block; value = chainpb.EventLog.
	QueryEventLog = "/eventlog"
	// QueryAccount: data = 20-byte address; value = chainpb.Account.
	QueryAccount = "/auth/account"
	// QueryParams: value = JSON of the transaction parameters.
	QueryParams = "/auth/params"
	// QueryWorker: data = identity key; value = chainpb.Worker.
	QueryWorker = "/registry/worker"
	// QueryWorkers: value = chainpb.WorkerList, every worker ever registered.
	QueryWorkers = "/registry/workers"
	// QueryLaunch: value = chainpb.LaunchState (empty if no launch is configured).
	QueryLaunch = "/gatekeeper/launch"
	// QueryEra: value = chainpb.EraState (empty before the launch).
	QueryEra = "/gatekeeper/era"
	// QueryMonitor: value = the last era's responsiveness report as JSON
	// (monitor.Report; empty before the first era ends).
	QueryMonitor = "/monitor/report"
	// QueryRewards: value = the last era's payout as JSON (RewardsReport;
	// empty before the first era ends).
	QueryRewards = "/rewards/report"
	// QuerySequence: data = worker identity key; value = its next message
	// sequence, 8 bytes big endian.
	QuerySequence = "/mq/sequence"
	// QueryGenesisHash: value = the chain's genesis hash (32 bytes).
	QueryGenesisHash = "/registry/genesis_hash"
	// QueryContract: data = 20-byte instance id; value = chainpb.Contract.
	QueryContract = "/contracts/contract"
	// QueryContracts: value = chainpb.ContractList, every instance.
	QueryContracts = "/contracts/list"
	// QueryContractParams: value = JSON of the contract parameters.
	QueryContractParams = "/contracts/params"
	// QueryDiscrepancies: value = chainpb.DiscrepancyList, the newest
	// redundant-miner discrepancies.
	QueryDiscrepancies = "/contracts/discrepancies"
	// QueryFrozen: value = JSON []registry.Frozen, the TEE platforms whose
	// registrations a referendum froze.
	QueryFrozen = "/registry/frozen"
	// QueryProposals: value = JSON []ProposalRecord, newest first (at most
	// governance.MaxListedProposals), without ballots.
	QueryProposals = "/governance/proposals"
	// QueryProposal: "/governance/proposal/<id>" (decimal id; or the id as
	// query data); value = JSON ProposalRecord with its ballots.
	QueryProposal = "/governance/proposal"
	// QueryGovernanceParams: value = JSON governance.Params;
	// "/governance/params/<module>" (or the module as query data): that
	// module's parameters, the whole object a param_change carries.
	QueryGovernanceParams = "/governance/params"
)

// QueryCodespace holds the errors queries return.
const QueryCodespace = "query"

// Stable query error codes.
var (
	ErrUnknownQuery      = errs.Register(QueryCodespace, 2, "unknown query path")
	ErrBadQuery          = errs.Register(QueryCodespace, 3, "bad query")
	ErrHeightUnavailable = errs.Register(QueryCodespace, 4, "height unavailable")
)

// Query answers reads of committed state. It waits only while the tree is
// being changed (docs/chain.md), never for transaction execution.
func (a *App) Query(_ context.Context, req *abci.QueryRequest) (*abci.QueryResponse, error) {
	resp, err := a.query(req)
	if err != nil {
		space, code, log := errs.ABCI(err)
		return &abci.QueryResponse{Codespace: space, Code: code, Log: log, Height: req.Height}, nil
	}
	return resp, nil
}

func (a *App) query(req *abci.QueryRequest) (*abci.QueryResponse, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	path, data := req.Path, req.Data
	for _, p := range []string{QueryProposal, QueryGovernanceParams} {
		if arg, ok := strings.CutPrefix(path, p+"/"); ok {
			path, data = p, []byte(arg)
		}
	}
	height := req.Height
	if height == 0 {
		height = a.height
	}
	if height < 0 || height > a.height || a.height == 0 {
		return nil, ErrHeightUnavailable.Wrapf("height %d; the last committed block is %d", req.Height, a.height)
	}
	switch path {
	case QueryStore:
		return a.queryStore(req, height)
	case QueryEventLog:
		raw, err := a.meta.Get(mq.LogKey(height))
		if err != nil {
			return nil, err
		}
		if raw == nil {
			return nil, ErrHeightUnavailable.Wrapf("no event log kept for block %d", height)
		}
		return &abci.QueryResponse{Value: raw, Height: height}, nil
	case QueryAccount:
		addr, err := crypto.AddressFromBytes(req.Data)
		if err != nil {
			return nil, ErrBadQuery.Wrapf("%v", err)
		}
		snap, err := a.snapshotAt(height)
		if err != nil {
			return nil, err
		}
		bal, err := bank.Balance(snap, addr)
		if err != nil {
			return nil, err
		}
		nonce, _, err := auth.Nonce(snap, addr)
		if err != nil {
			return nil, err
		}
		v, _ := proto.Marshal(&chainpb.Account{Address: addr.Bytes(), Balance: bal, Nonce: nonce})
		return &abci.QueryResponse{Key: req.Data, Value: v, Height: height}, nil
	case QueryParams:
		snap, err := a.snapshotAt(height)
		if err != nil {
			return nil, err
		}
		p, err := loadParams(snap)
		if err != nil {
			return nil, err
		}
		v, _ := json.Marshal(p)
		return &abci.QueryResponse{Value: v, Height: height}, nil
	case QueryWorker, QueryWorkers, QueryLaunch, QueryEra, QueryMonitor, QueryRewards, QuerySequence, QueryGenesisHash, QueryContract, QueryContracts, QueryContractParams, QueryDiscrepancies,
		QueryFrozen, QueryProposals, QueryProposal, QueryGovernanceParams:
		snap, err := a.snapshotAt(height)
		if err != nil {
			return nil, err
		}
		v, err := queryModule(snap, path, data)
		if err != nil {
			return nil, err
		}
		return &abci.QueryResponse{Key: req.Data, Value: v, Height: height}, nil
	}
	return nil, ErrUnknownQuery.Wrapf("%q; known paths: %s", req.Path, strings.Join([]string{QueryStore, QueryEventLog, QueryAccount, QueryParams, QueryWorker, QueryWorkers, QueryLaunch, QueryEra, QueryMonitor, QueryRewards, QuerySequence, QueryGenesisHash, QueryContract, QueryContracts, QueryContractParams, QueryDiscrepancies, QueryFrozen, QueryProposals, QueryProposal + "/<id>", QueryGovernanceParams + "[/<module>]"}, " "))
}

// queryModule answers the module queries from a committed snapshot.
func queryModule(r store.Reader, path string, data []byte) ([]byte, error) {
	switch path {
	case QueryWorker:
		w, err := registry.Worker(r, data)
		if err != nil {
			return nil, err
		}
		if w == nil {
			return nil, registry.ErrUnknownWorker.Wrapf("no worker has identity key %X", data)
		}
		return proto.Marshal(w)
	case QueryWorkers:
		ws, err := registry.Workers(r)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(&chainpb.WorkerList{Workers: ws})
	case QueryLaunch:
		st, err := gatekeeper.Launch(r)
		if err != nil || st == nil {
			return nil, err
		}
		return proto.Marshal(st)
	case QueryEra:
		es, err := gatekeeper.Era(r)
		if err != nil || es == nil {
			return nil, err
		}
		return proto.Marshal(es)
	case QueryMonitor:
		rep, err := monitor.LastReport(r)
		if err != nil || rep == nil {
			return nil, err
		}
		return json.Marshal(rep)
	case QueryRewards:
		rep, err := LastRewards(r)
		if err != nil || rep == nil {
			return nil, err
		}
		return json.Marshal(rep)
	case QuerySequence:
		n, err := mq.NextSequence(r, data)
		return binary.BigEndian.AppendUint64(nil, n), err
	case QueryGenesisHash:
		return registry.GenesisHash(r)
	case QueryContract:
		c, err := contracts.Get(r, data)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(c)
	case QueryContracts:
		cs, err := contracts.List(r)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(&chainpb.ContractList{Contracts: cs})
	case QueryContractParams:
		p, err := contracts.LoadParams(r)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	case QueryDiscrepancies:
		ds, err := contracts.Discrepancies(r)
		if err != nil {
			return nil, err
		}
		return proto.Marshal(&chainpb.DiscrepancyList{Discrepancies: ds})
	case QueryFrozen:
		fs, err := registry.FrozenPlatforms(r)
		if err != nil {
			return nil, err
		}
		return json.Marshal(append([]registry.Frozen{}, fs...))
	case QueryProposals:
		ps, err := governance.Proposals(r)
		if err != nil {
			return nil, err
		}
		out := make([]ProposalRecord, len(ps))
		for i, p := range ps {
			out[i] = proposalRecord(p)
		}
		return json.Marshal(out)
	case QueryProposal:
		id, err := strconv.ParseUint(string(data), 10, 64)
		if err != nil {
			return nil, ErrBadQuery.Wrapf("proposal id %q: want a decimal number, as in %s/7", data, QueryProposal)
		}
		p, err := governance.Proposal(r, id)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, governance.ErrUnknownProposal.Wrapf("no proposal %d", id)
		}
		bs, err := governance.Votes(r, id)
		if err != nil {
			return nil, err
		}
		rec := proposalRecord(p)
		rec.Votes = make([]BallotRecord, len(bs))
		for i, b := range bs {
			rec.Votes[i] = BallotRecord{Voter: b.Voter.String(), Option: voteOption(b.Option)}
		}
		return json.Marshal(rec)
	case QueryGovernanceParams:
		if len(data) > 0 {
			return moduleParamsJSON(r, string(data))
		}
		p, err := governance.LoadParams(r)
		if err != nil {
			return nil, err
		}
		return json.Marshal(p)
	}
	return nil, ErrUnknownQuery.Wrapf("%q", path)
}

func (a *App) snapshotAt(height int64) (*store.Snapshot, error) {
	if height == a.height {
		return a.snapshot, nil
	}
	s, err := a.tree.Snapshot(height)
	if errors.Is(err, store.ErrVersionUnavailable) {
		return nil, ErrHeightUnavailable.Wrapf("%v", err)
	}
	return s, err
}

func (a *App) queryStore(req *abci.QueryRequest, height int64) (*abci.QueryResponse, error) {
	if len(req.Data) == 0 {
		return nil, ErrBadQuery.Wrapf("the state key (query data) is empty")
	}
	snap, err := a.snapshotAt(height)
	if err != nil {
		return nil, err
	}
	resp := &abci.QueryResponse{Key: req.Data, Height: height}
	if !req.Prove {
		resp.Value, err = snap.Get(req.Data)
		return resp, err
	}
	value, cp, err := snap.Prove(req.Data)
	if err != nil {
		return nil, err
	}
	logRoot, err := a.meta.Get(logRootKey(height))
	if err != nil {
		return nil, err
	}
	if logRoot == nil {
		return nil, ErrHeightUnavailable.Wrapf("no event log root kept for block %d", height)
	}
	sp := &proof.StateProof{Height: height, Key: req.Data, Value: value, Proof: cp, LogRoot: logRoot}
	if resp.ProofOps, err = sp.ProofOps(); err != nil {
		return nil, fmt.Errorf("encode proof: %w", err)
	}
	resp.Value = value
	return resp, nil
}

// IterateState calls fn for every key and value of the last committed
// state, in key order, until fn returns false (for audits and tests: it
// holds the state lock while it runs).
func (a *App) IterateState(fn func(key, value []byte) bool) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.snapshot == nil {
		return errors.New("no committed state yet")
	}
	return a.snapshot.Iterate(fn)
}

// ProposalRecord is a referendum as the governance queries serve it.
type ProposalRecord struct {
	ID        uint64       `json:"id"`
	Proposer  string       `json:"proposer"`
	Title     string       `json:"title"`
	Action    ActionRecord `json:"action"`
	Deposit   uint64       `json:"deposit"`
	Submitted int64        `json:"submitted_height"`
	VotingEnd int64        `json:"voting_end"`
	// Status is voting, passed, rejected or failed (passed, but the
	// action could not apply: Error says why).
	Status    string `json:"status"`
	Emergency bool   `json:"emergency"`
	// Yes, No and Abstain are the weighed votes, in uPHA; known once
	// voting ends.
	Yes     uint64 `json:"yes"`
	No      uint64 `json:"no"`
	Abstain uint64 `json:"abstain"`
	Error   string `json:"error,omitempty"`
	// Votes are the current ballots (QueryProposal only), in the order the
	// voters first voted.
	Votes []BallotRecord `json:"votes,omitempty"`
}

// ActionRecord is a proposal's action: Kind names it (param_change,
// set_measurement, freeze_platform, treasury_spend) and the fields of that
// kind are set.
type ActionRecord struct {
	Kind        string          `json:"kind"`
	Module      string          `json:"module,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	Platform    string          `json:"platform,omitempty"`
	Measurement string          `json:"measurement,omitempty"` // hex
	Allowed     *bool           `json:"allowed,omitempty"`
	Frozen      *bool           `json:"frozen,omitempty"`
	To          string          `json:"to,omitempty"`
	Amount      int64           `json:"amount,omitempty"`
}

// BallotRecord is an account's current vote: yes, no or abstain.
type BallotRecord struct {
	Voter  string `json:"voter"`
	Option string `json:"option"`
}

func proposalRecord(p *chainpb.Proposal) ProposalRecord {
	proposer, _ := crypto.AddressFromBytes(p.Proposer)
	rec := ProposalRecord{ID: p.Id, Proposer: proposer.String(), Title: p.Title, Action: ActionRecord{Kind: actionKind(p.Action)},
		Deposit: p.Deposit, Submitted: p.Submitted, VotingEnd: p.VotingEnd, Status: p.Status, Emergency: p.Emergency,
		Yes: p.Yes, No: p.No, Abstain: p.Abstain, Error: p.Error}
	a := &rec.Action
	switch k := p.Action.GetKind().(type) {
	case *chainpb.ProposalAction_ParamChange:
		a.Module = k.ParamChange.Module
		if json.Valid(k.ParamChange.ParamsJson) {
			a.Params = k.ParamChange.ParamsJson
		}
	case *chainpb.ProposalAction_SetMeasurement:
		a.Platform, a.Measurement, a.Allowed = k.SetMeasurement.Platform, hex.EncodeToString(k.SetMeasurement.Measurement), &k.SetMeasurement.Allowed
	case *chainpb.ProposalAction_FreezePlatform:
		a.Platform, a.Frozen = k.FreezePlatform.Platform, &k.FreezePlatform.Frozen
	case *chainpb.ProposalAction_TreasurySpend:
		to, _ := crypto.AddressFromBytes(k.TreasurySpend.To)
		a.To, a.Amount = to.String(), k.TreasurySpend.Amount
	}
	return rec
}
