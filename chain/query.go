package chain

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/chain/gatekeeper"
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
	height := req.Height
	if height == 0 {
		height = a.height
	}
	if height < 0 || height > a.height || a.height == 0 {
		return nil, ErrHeightUnavailable.Wrapf("height %d; the last committed block is %d", req.Height, a.height)
	}
	switch req.Path {
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
	case QueryWorker, QueryWorkers, QueryLaunch, QueryEra, QueryMonitor, QueryRewards, QuerySequence, QueryGenesisHash, QueryContract, QueryContracts, QueryContractParams, QueryDiscrepancies:
		snap, err := a.snapshotAt(height)
		if err != nil {
			return nil, err
		}
		v, err := queryModule(snap, req.Path, req.Data)
		if err != nil {
			return nil, err
		}
		return &abci.QueryResponse{Key: req.Data, Value: v, Height: height}, nil
	}
	return nil, ErrUnknownQuery.Wrapf("%q; known paths: %s", req.Path, strings.Join([]string{QueryStore, QueryEventLog, QueryAccount, QueryParams, QueryWorker, QueryWorkers, QueryLaunch, QueryEra, QueryMonitor, QueryRewards, QuerySequence, QueryGenesisHash, QueryContract, QueryContracts, QueryContractParams, QueryDiscrepancies}, " "))
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
