// Package chain is the Phala-Go ABCI application: the state machine
// CometBFT replicates. It orders every command as (eventually) ciphertext,
// keeps accounts and PHA, and commits each block's worker event log in the
// app hash (see package proof).
//
// Threading: CometBFT serialises the consensus calls (InitChain,
// PrepareProposal, ProcessProposal, FinalizeBlock, Commit). CheckTx and
// Query arrive concurrently on their own goroutines (the node uses
// proxy.NewConsensusSyncLocalClientCreator); they read committed snapshots
// and the check state under mu's read lock. The consensus side takes the
// write lock only to change the tree (a block's writes, its hash, saving the
// version) and to swap snapshots at Commit.
package chain

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	dbm "github.com/cometbft/cometbft-db"
	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
)

// AppVersion is the version of the state machine's rules. It changes when a
// block would execute differently.
const AppVersion uint64 = 1

// Config configures an App. Zero fields take defaults.
type Config struct {
	// DataDir holds the app database. Required.
	DataDir string
	// Tree tunes the state tree.
	Tree store.TreeConfig
	// TxCacheSize bounds how many admitted transactions are kept decoded and
	// verified for block execution. Default 200,000.
	TxCacheSize int
	// TxCacheBytes bounds the same cache by size. Default 128 MiB.
	TxCacheBytes int
	// Logger receives the app's logs. Default: discard.
	Logger *slog.Logger
}

// App is the ABCI application.
type App struct {
	abci.BaseApplication

	log  *slog.Logger
	db   dbm.DB
	meta dbm.DB // app metadata and event logs, outside the Merkle state
	tree *store.Tree
	txs  *txCache

	// Consensus goroutine only.
	block *pendingBlock
	names addressNames

	// mu guards everything below against Commit, which swaps it.
	mu       sync.RWMutex
	chainID  string
	params   auth.Params
	height   int64
	appHash  []byte
	blkTime  time.Time    // the last committed block's time (genesis time before block 1)
	view     store.Reader // committed state CheckTx and Query read: a snapshot, or the genesis state before block 1 commits
	snapshot *store.Snapshot
	checkMu  sync.Mutex // serialises CheckTx's use of check, checkTx, checkLog and admitted
	check    *store.Cache
	checkTx  *store.Cache // scratch for one CheckTx, over check
	checkLog *mq.Log      // scratch event log; CheckTx's events are discarded
	// admitted holds the transactions check has applied since the last
	// commit. A transaction checked again (CometBFT's /check_tx RPC, then a
	// broadcast of the same bytes) passes without being applied twice.
	admitted map[[32]byte]struct{}
	closed   bool
}

type pendingBlock struct {
	height    int64
	time      time.Time
	log       *mq.Log
	stateRoot []byte
	logRoot   []byte
	appHash   []byte
}

type appMeta struct {
	Height  int64  `json:"height"`
	AppHash []byte `json:"app_hash"`
	ChainID string `json:"chain_id"`
	// BlockTime is the committed block's time (CheckTx checks against it).
	BlockTime time.Time `json:"block_time"`
}

var metaKey = []byte("meta")

// logRootKey is where block h's event log root is kept for state proofs.
func logRootKey(h int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("mq/logroot/"), uint64(h))
}

// NewApp opens (or creates) the application's database in cfg.DataDir and
// resumes from the last committed block.
func NewApp(cfg Config) (*App, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("chain: Config.DataDir is required")
	}
	if cfg.TxCacheSize == 0 {
		cfg.TxCacheSize = 200_000
	}
	if cfg.TxCacheBytes == 0 {
		cfg.TxCacheBytes = 128 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	db, err := store.OpenDB("phala-app", cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a := &App{
		log:  cfg.Logger,
		db:   db,
		meta: dbm.NewPrefixDB(db, []byte("a/")),
		txs:  newTxCache(cfg.TxCacheSize, cfg.TxCacheBytes),
	}
	if err := a.load(cfg.Tree); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) load(tcfg store.TreeConfig) error {
	var m appMeta
	raw, err := a.meta.Get(metaKey)
	if err != nil {
		return fmt.Errorf("read app metadata: %w", err)
	}
	if raw != nil {
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("app metadata is corrupt: %w", err)
		}
	}
	a.tree, err = store.OpenTree(dbm.NewPrefixDB(a.db, []byte("s/")), m.Height, tcfg)
	if err != nil {
		return err
	}
	a.chainID, a.height, a.appHash, a.blkTime = m.ChainID, m.Height, m.AppHash, m.BlockTime
	if m.Height == 0 {
		return nil // InitChain comes next
	}
	if err := a.swapView(); err != nil {
		return err
	}
	logRoot, err := a.meta.Get(logRootKey(m.Height))
	if err != nil {
		return err
	}
	if got := proof.AppHash(a.snapshot.Hash(), logRoot); !bytes.Equal(got, m.AppHash) {
		return fmt.Errorf("the state at height %d hashes to app hash %X but %X was committed: the data directory is damaged; restore it from a backup or resync the node", m.Height, got, m.AppHash)
	}
	a.log.Info("resumed state", "height", m.Height, "app_hash", fmt.Sprintf("%X", m.AppHash))
	return nil
}

// swapView points CheckTx and Query at the latest committed version. Caller
// holds mu for writing (or has exclusive access).
func (a *App) swapView() error {
	snap, err := a.tree.Snapshot(a.height)
	if err != nil {
		return err
	}
	params, err := loadParams(snap)
	if err != nil {
		return fmt.Errorf("load parameters at height %d: %w", a.height, err)
	}
	if params != a.params {
		// Cached verdicts were reached under the old parameters.
		a.txs.clear()
	}
	a.snapshot, a.view, a.params = snap, snap, params
	a.resetCheck(snap)
	return nil
}

// Height is the last committed block.
func (a *App) Height() int64 {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.height
}

// resetCheck starts a fresh check state over committed state. Caller holds
// mu for writing.
func (a *App) resetCheck(committed store.Reader) {
	a.check = store.NewCache(committed)
	a.checkTx = store.NewCache(a.check)
	a.checkLog = mq.NewLog(0)
	a.admitted = map[[32]byte]struct{}{}
}

// Close releases the database. Call it after the node has stopped; later
// calls do nothing.
func (a *App) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	err := a.tree.Close()
	return errors.Join(err, a.db.Close())
}

// Info reports the last committed block so CometBFT can replay what the app
// lacks. Data carries the network phase as JSON.
func (a *App) Info(context.Context, *abci.InfoRequest) (*abci.InfoResponse, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	info := map[string]string{"phase": ""}
	if a.view != nil {
		p, err := gatekeeper.LoadPhase(a.view)
		if err != nil {
			return nil, err
		}
		info["phase"] = string(p)
	}
	data, _ := json.Marshal(info)
	return &abci.InfoResponse{
		Data:             string(data),
		Version:          "phala-go",
		AppVersion:       AppVersion,
		LastBlockHeight:  a.height,
		LastBlockAppHash: a.appHash,
	}, nil
}

// InitChain loads the genesis state into the working tree; it is saved with
// block 1.
func (a *App) InitChain(_ context.Context, req *abci.InitChainRequest) (*abci.InitChainResponse, error) {
	if req.InitialHeight > 1 {
		return nil, fmt.Errorf("genesis initial_height is %d; this chain starts at 1", req.InitialHeight)
	}
	g, err := ParseGenesis(req.AppStateBytes)
	if err != nil {
		return nil, err
	}
	gen := store.NewCache(emptyReader{})
	if err := initGenesis(gen, g, GenesisHash(req), req.Time); err != nil {
		return nil, fmt.Errorf("apply genesis: %w", err)
	}
	if err := gen.Write(a.tree); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.chainID, a.params, a.view, a.blkTime = req.ChainId, g.Auth, gen, req.Time
	a.resetCheck(gen)
	a.mu.Unlock()
	appHash := proof.AppHash(a.tree.WorkingHash(), proof.EventLogRoot(nil))
	a.log.Info("genesis loaded", "chain_id", req.ChainId, "accounts", len(g.Bank.Accounts))
	return &abci.InitChainResponse{AppHash: appHash}, nil
}

type emptyReader struct{}

func (emptyReader) Get([]byte) ([]byte, error) { return nil, nil }

// decode decodes, validates and verifies raw, or returns the decoded
// transaction this node admitted or accepted earlier for the same bytes.
// It takes no lock; callers pass the parameters they read under mu.
// cached reports whether tx came from the cache (and is shared).
func (a *App) decode(raw []byte, p auth.Params, chainID string) (tx *auth.Tx, cached bool, err error) {
	hash := sha256.Sum256(raw)
	if tx := a.txs.get(hash); tx != nil {
		return tx, true, nil
	}
	tx, err = auth.DecodeHashed(raw, hash, p.MaxTxBytes)
	if err != nil {
		return nil, false, err
	}
	if err := validateStateless(tx, p, chainID); err != nil {
		return nil, false, err
	}
	if err := tx.Verify(chainID); err != nil {
		return nil, false, err
	}
	return tx, false, nil
}

// CheckTx admits a transaction to the mempool if it would succeed on top of
// the committed state and the transactions admitted before it.
func (a *App) CheckTx(_ context.Context, req *abci.CheckTxRequest) (*abci.CheckTxResponse, error) {
	a.mu.RLock()
	params, chainID, ready := a.params, a.chainID, a.check != nil
	a.mu.RUnlock()
	// CheckTx judges a transaction as if it ran in the next block at the
	// last block's time.
	if !ready {
		return checkResp(errors.New("the chain has not loaded its genesis yet; retry in a moment")), nil
	}
	// The signature check, the expensive part, runs outside every lock.
	tx, cached, err := a.decode(req.Tx, params, chainID)
	if err != nil {
		return checkResp(err), nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.params != params { // a commit changed them meanwhile
		if tx, cached, err = a.decode(req.Tx, a.params, a.chainID); err != nil {
			return checkResp(err), nil
		}
	}
	a.checkMu.Lock()
	defer a.checkMu.Unlock()
	if _, ok := a.admitted[tx.Hash]; ok {
		return &abci.CheckTxResponse{Code: 0}, nil
	}
	c := a.checkTx
	c.Reset()
	a.checkLog.Truncate(0)
	if err := ante(c, tx); err != nil {
		return checkResp(err), nil
	}
	if _, err := execMsg(execEnv{kv: c, log: a.checkLog, block: registry.Block{Height: a.height + 1, Time: a.blkTime}}, tx); err != nil {
		return checkResp(err), nil
	}
	if err := c.Write(a.check); err != nil {
		return checkResp(err), nil
	}
	a.admitted[tx.Hash] = struct{}{}
	if !cached {
		a.txs.add(tx)
	}
	return &abci.CheckTxResponse{Code: 0}, nil
}

func checkResp(err error) *abci.CheckTxResponse {
	space, code, log := errs.ABCI(err)
	return &abci.CheckTxResponse{Codespace: space, Code: code, Log: log}
}

// decodeAll decodes and verifies a block's transactions, spreading signature
// checks the node has not done before over every core.
func (a *App) decodeAll(txs [][]byte, p auth.Params, chainID string) (out []*auth.Tx, fresh []bool, errl []error) {
	out = make([]*auth.Tx, len(txs))
	fresh = make([]bool, len(txs))
	errl = make([]error, len(txs))
	workers := min(runtime.GOMAXPROCS(0), len(txs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(txs); i += workers {
				var cached bool
				out[i], cached, errl[i] = a.decode(txs[i], p, chainID)
				fresh[i] = !cached
			}
		}()
	}
	wg.Wait()
	return out, fresh, errl
}

// FinalizeBlock executes a decided block on the working state and returns
// the app hash that commits to its resulting state and its event log.
func (a *App) FinalizeBlock(_ context.Context, req *abci.FinalizeBlockRequest) (*abci.FinalizeBlockResponse, error) {
	a.mu.RLock()
	height, chainID, params := a.height, a.chainID, a.params
	a.mu.RUnlock()
	if req.Height != height+1 {
		return nil, fmt.Errorf("FinalizeBlock for height %d but the app is at %d", req.Height, height)
	}
	txs, _, decodeErrs := a.decodeAll(req.Txs, params, chainID)
	log := mq.NewLog(req.Height)
	results := make([]*abci.ExecTxResult, len(req.Txs))
	// The block's writes collect here and reach the tree once per key, in
	// key order, when the block ends: an account touched by many
	// transactions costs one tree update.
	blk := store.NewCache(a.tree)
	c := store.NewCache(blk) // one transaction's message writes
	blkCtx := registry.Block{Height: req.Height, Time: req.Time}
	var fees uint64
	for i, tx := range txs {
		if decodeErrs[i] != nil {
			results[i] = execResult(decodeErrs[i], nil)
			continue
		}
		// The fee and nonce stay charged even if the message fails.
		if err := ante(blk, tx); err != nil {
			if !isRejection(err) {
				return nil, fmt.Errorf("block %d tx %d: %w", req.Height, i, err)
			}
			results[i] = execResult(err, nil)
			continue
		}
		fees += uint64(tx.Body.Fee)
		signer := a.names.name(tx.Signer)
		mark := log.Len()
		c.Reset()
		note, err := execMsg(execEnv{kv: c, log: log, block: blkCtx}, tx)
		if err == nil {
			err = c.Write(blk)
		}
		if err != nil {
			if !isRejection(err) {
				return nil, fmt.Errorf("block %d tx %d: %w", req.Height, i, err)
			}
			log.Truncate(mark)
			results[i] = execResult(err, []abci.Event{txEvent(tx, signer)})
			continue
		}
		results[i] = execResult(nil, append([]abci.Event{txEvent(tx, signer)}, msgEvents(tx, signer, &a.names, mark, note)...))
	}
	if fees > 0 {
		if err := bank.Credit(blk, bank.FeePool, fees); err != nil {
			return nil, fmt.Errorf("collect fees of block %d: %w", req.Height, err)
		}
	}
	if err := endBlock(execEnv{kv: blk, log: log, block: blkCtx, hash: req.Hash}); err != nil {
		return nil, fmt.Errorf("end block %d: %w", req.Height, err)
	}
	// Updating the tree detaches children from nodes that committed
	// snapshots share: readers wait for this short step only.
	a.mu.Lock()
	err := blk.Write(a.tree)
	stateRoot := a.tree.WorkingHash()
	a.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("apply block %d to the state tree: %w", req.Height, err)
	}
	b := &pendingBlock{height: req.Height, time: req.Time, log: log, stateRoot: stateRoot, logRoot: proof.EventLogRoot(log.Events())}
	b.appHash = proof.AppHash(b.stateRoot, b.logRoot)
	a.block = b
	return &abci.FinalizeBlockResponse{TxResults: results, AppHash: b.appHash}, nil
}

// isRejection tells a transaction's fault (a registered code) from a
// failure of this node, which must stop it rather than diverge.
func isRejection(err error) bool {
	var e *errs.Error
	return errors.As(err, &e)
}

func execResult(err error, events []abci.Event) *abci.ExecTxResult {
	space, code, log := errs.ABCI(err)
	return &abci.ExecTxResult{Codespace: space, Code: code, Log: log, Events: events}
}

// Commit persists the block FinalizeBlock executed, then points CheckTx and
// Query at it. The event log goes first, the tree version next, and the
// synced commit record last: a crash anywhere leaves the record at the
// previous block, and the tree is rolled back to it on restart.
func (a *App) Commit(context.Context, *abci.CommitRequest) (*abci.CommitResponse, error) {
	b := a.block
	if b == nil {
		return nil, errors.New("Commit without FinalizeBlock")
	}
	logBytes, err := proto.Marshal(&chainpb.EventLog{Height: b.height, StateRoot: b.stateRoot, Events: b.log.Events()})
	if err != nil {
		return nil, err
	}
	if err := a.writeMeta(false, [2][]byte{mq.LogKey(b.height), logBytes}, [2][]byte{logRootKey(b.height), b.logRoot}); err != nil {
		return nil, fmt.Errorf("persist event log of block %d: %w", b.height, err)
	}

	a.mu.Lock()
	root, version, err := a.tree.SaveVersion()
	if err == nil && (version != b.height || !bytes.Equal(root, b.stateRoot)) {
		err = fmt.Errorf("saved state version %d root %X, executed block %d root %X", version, root, b.height, b.stateRoot)
	}
	if err == nil {
		a.height, a.appHash, a.blkTime, a.block = b.height, b.appHash, b.time, nil
		err = a.swapView()
	}
	chainID := a.chainID
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}

	meta, _ := json.Marshal(appMeta{Height: b.height, AppHash: b.appHash, ChainID: chainID, BlockTime: b.time})
	if err := a.writeMeta(true, [2][]byte{metaKey, meta}); err != nil {
		return nil, fmt.Errorf("persist commit record of block %d: %w", b.height, err)
	}
	if n := b.log.Len(); n > 0 {
		a.log.Debug("committed", "height", b.height, "events", n)
	}
	return &abci.CommitResponse{}, nil
}

// writeMeta writes key-value pairs to the app database in one batch.
func (a *App) writeMeta(sync bool, kvs ...[2][]byte) error {
	batch := a.meta.NewBatch()
	defer batch.Close()
	for _, kv := range kvs {
		if err := batch.Set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if sync {
		return batch.WriteSync()
	}
	return batch.Write()
}

// ProcessProposal refuses a block carrying a transaction that no honest
// proposer would include: one that fails its format, fee floor or
// signature. The check is deterministic, so every validator agrees. (An
// honest proposer's mempool holds only transactions that passed CheckTx
// under the current parameters: CometBFT rechecks it after every block, so
// PrepareProposal needs no filter of its own.)
func (a *App) ProcessProposal(_ context.Context, req *abci.ProcessProposalRequest) (*abci.ProcessProposalResponse, error) {
	a.mu.RLock()
	params, chainID := a.params, a.chainID
	a.mu.RUnlock()
	txs, fresh, errl := a.decodeAll(req.Txs, params, chainID)
	for i, err := range errl {
		if err != nil {
			a.log.Info("rejecting proposal", "height", req.Height, "tx", i, "reason", err)
			return &abci.ProcessProposalResponse{Status: abci.PROCESS_PROPOSAL_STATUS_REJECT}, nil
		}
	}
	for i, tx := range txs {
		if fresh[i] {
			a.txs.add(tx) // FinalizeBlock will need it
		}
	}
	return &abci.ProcessProposalResponse{Status: abci.PROCESS_PROPOSAL_STATUS_ACCEPT}, nil
}
