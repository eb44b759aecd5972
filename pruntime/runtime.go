// Package pruntime is the program that runs inside the TEE. It holds every
// secret of a worker, follows the chain through its light client, and
// produces signed messages (side effects) its host relays. It trusts only
// the genesis it was initialised with, the validators' signatures and its
// own platform; its host can delay or drop its inputs, never forge them.
//
// Runtime is the in-enclave object; Serve exposes it over gRPC on a local
// socket and Dial is the host's client. A Runtime is safe for concurrent
// use: calls are serialised, and Info never waits for a sync.
package pruntime

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/liveness"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/lightclient"
	"github.com/phala-go/phala/pruntime/system"
	"github.com/phala-go/phala/pruntime/vm"
	"github.com/phala-go/phala/tee"
)

// Roles a pRuntime plays.
const (
	RoleWorker     = "worker"
	RoleGenesis    = "genesis"
	RoleGatekeeper = "gatekeeper"
	RoleRetired    = "retired"
)

// Errors the API returns; each wraps one of these.
var (
	ErrNotInitialized = errors.New("pRuntime has no genesis yet; the host must call InitRuntime")
	ErrInitialized    = errors.New("pRuntime is initialised with another genesis")
	ErrRetired        = errors.New("pRuntime retired and erased its secrets")
	ErrBadRequest     = errors.New("bad request")
	ErrRefusedBlock   = errors.New("block refused")
)

// Config configures a Runtime. Zero fields take defaults.
type Config struct {
	// Platform is the TEE. Required.
	Platform tee.Platform
	// DataDir holds the sealed state. Required.
	DataDir string
	// Logger receives logs (never secrets). Default: discard.
	Logger *slog.Logger
	// MaxBatch bounds the blocks one SyncBlockchain call may carry.
	// Default 2,000.
	MaxBatch int
}

// sealedState is everything pRuntime persists, sealed.
type sealedState struct {
	Version      int    `json:"version"`
	IdentitySeed []byte `json:"identity_seed,omitempty"`
	// NextIdentitySeed is a pending renewal's successor identity; it
	// replaces IdentitySeed once a verified block shows it registered.
	NextIdentitySeed []byte `json:"next_identity_seed,omitempty"`
	// Registered: a verified block showed the identity registered.
	Registered   bool     `json:"registered,omitempty"`
	Genesis      []byte   `json:"genesis,omitempty"` // genesis.json as given to InitRuntime
	LightClient  []byte   `json:"light_client,omitempty"`
	Role         string   `json:"role"`
	RootKey      []byte   `json:"root_key,omitempty"`
	GenesisPeer  []byte   `json:"genesis_worker,omitempty"` // who may hand the root key over
	NextSequence uint64   `json:"next_sequence"`
	Outbox       [][]byte `json:"outbox,omitempty"` // serialized SignedMessages not yet seen on chain
	// Gatekeepers are the current seats (from the launch, following
	// renewals): the only workers a contract key is accepted from.
	Gatekeepers [][]byte `json:"gatekeepers,omitempty"`
	// WorkerKeys maps every registered worker's identity key (hex) to its
	// HPKE key, for a gatekeeper to seal contract keys to miners.
	WorkerKeys map[string][]byte `json:"worker_keys,omitempty"`
	// Contracts are every instance on chain, by hex id.
	Contracts map[string]*contractState `json:"contracts,omitempty"`
	// Rotation is the root key rotation in progress, as followed here.
	Rotation *rotation `json:"rotation,omitempty"`
	// RootHPKE is the current root key's encryption public key (from the
	// launch or the last Rotation Ready): a miner seals a rotated
	// contract key to it.
	RootHPKE []byte `json:"root_hpke,omitempty"`
	// BlockTime is the time of the last block whose events were applied.
	BlockTime time.Time `json:"block_time"`
}

const stateVersion = 1

// Runtime is pRuntime.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	store *system.SealedFile

	mu      sync.Mutex
	st      sealedState
	id      *system.Identity // nil once retired
	next    *system.Identity // a pending renewal's successor
	broken  error            // set when a verified event could not be applied
	chainID string
	genHash []byte
	lc      *lightclient.Client
	info    *pruntimepb.InfoResponse // for Info without the lock
	infoMu  sync.RWMutex

	vm       *vm.Engine          // started with the first contract
	running  map[string]*running // instances this pRuntime runs
	faults   faults
	view     atomic.Pointer[queryView]
	receipts receiptBook
	// heartbeat is the heartbeat interval (0: the chain has no eras);
	// dueBeat the latest heartbeat block of the sync batch in progress.
	heartbeat int64
	dueBeat   int64
}

// New opens (or creates) pRuntime's sealed state in cfg.DataDir. A sealed
// state that fails authentication is refused (wrapping system.ErrSealed).
func New(cfg Config) (*Runtime, error) {
	if cfg.Platform == nil || cfg.DataDir == "" {
		return nil, errors.New("pruntime: Config.Platform and Config.DataDir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 2000
	}
	key, err := cfg.Platform.SealingKey()
	if err != nil {
		return nil, fmt.Errorf("pruntime: sealing key: %w", err)
	}
	store, err := system.NewSealedFile(filepath.Join(cfg.DataDir, "pruntime.sealed"), key, "phala/pruntime/state/v1")
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, log: cfg.Logger, store: store, faults: newFaults(cfg.DataDir)}
	raw, err := store.Load()
	if err != nil {
		return nil, err
	}
	if raw == nil {
		seed := make([]byte, 32)
		rand.Read(seed)
		r.st = sealedState{Version: stateVersion, IdentitySeed: seed, Role: RoleWorker}
		if err := r.persist(); err != nil {
			return nil, err
		}
	} else if err := json.Unmarshal(raw, &r.st); err != nil || r.st.Version != stateVersion {
		return nil, fmt.Errorf("pruntime: sealed state decodes to nothing this build knows (version %d): %v", r.st.Version, err)
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	if err := r.loadContracts(); err != nil {
		return nil, err
	}
	r.publishInfo()
	r.publishView(r.st.BlockTime)
	r.log.Info("pRuntime ready", "platform", cfg.Platform.Name(), "role", r.st.Role, "height", r.height())
	return r, nil
}

// load rebuilds the in-memory objects from r.st.
func (r *Runtime) load() error {
	if r.st.IdentitySeed != nil {
		id, err := system.NewIdentity(r.st.IdentitySeed)
		if err != nil {
			return err
		}
		r.id = id
	}
	r.next = nil
	if r.st.NextIdentitySeed != nil {
		id, err := system.NewIdentity(r.st.NextIdentitySeed)
		if err != nil {
			return err
		}
		r.next = id
	}
	if r.st.Genesis == nil {
		return nil
	}
	doc, cfg, err := parseGenesis(r.st.Genesis)
	if err != nil {
		return err
	}
	r.chainID, r.genHash = doc.ChainID, genesisHash(doc)
	r.heartbeat = heartbeatInterval(doc.AppState)
	if r.st.LightClient == nil {
		r.lc, err = lightclient.New(cfg)
	} else {
		r.lc, err = lightclient.Restore(cfg, r.st.LightClient)
	}
	return err
}

// heartbeatInterval reads the chain's heartbeat interval from the genesis
// app state (monitor.heartbeat_blocks, default liveness's); 0 when the
// chain has no eras, so nobody counts heartbeats.
func heartbeatInterval(appState []byte) int64 {
	var g struct {
		Gatekeeper *struct {
			Params struct {
				EraBlocks int64 `json:"era_blocks"`
			} `json:"params"`
		} `json:"gatekeeper"`
		Monitor *struct {
			HeartbeatBlocks int64 `json:"heartbeat_blocks"`
		} `json:"monitor"`
	}
	if json.Unmarshal(appState, &g) != nil || g.Gatekeeper == nil || g.Gatekeeper.Params.EraBlocks <= 0 {
		return 0
	}
	if g.Monitor == nil {
		return liveness.DefaultHeartbeatBlocks
	}
	return g.Monitor.HeartbeatBlocks
}

// sendHeartbeat posts a heartbeat for the latest heartbeat block of the
// batch: one per batch, so a pRuntime catching up does not post heartbeats
// the chain would find stale.
func (r *Runtime) sendHeartbeat() error {
	h := r.dueBeat
	r.dueBeat = 0
	if h == 0 || r.id == nil || !r.st.Registered || r.st.Role == RoleGenesis || r.st.Role == RoleRetired {
		return nil
	}
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Heartbeat{Heartbeat: &chainpb.Heartbeat{Height: h}}})
}

func parseGenesis(raw []byte) (*types.GenesisDoc, lightclient.Config, error) {
	doc, err := types.GenesisDocFromJSON(raw)
	if err != nil {
		return nil, lightclient.Config{}, fmt.Errorf("%w: genesis: %v", ErrBadRequest, err)
	}
	cfg, err := lightclient.ConfigFromGenesis(doc)
	if err != nil {
		return nil, cfg, fmt.Errorf("%w: genesis: %v", ErrBadRequest, err)
	}
	return doc, cfg, nil
}

// genesisHash is the chain's genesis hash as pRuntime computes it from the
// document it was given (proof.GenesisHash; the chain computes the same
// from InitChain).
func genesisHash(doc *types.GenesisDoc) []byte {
	vals := make([]proof.GenesisValidator, len(doc.Validators))
	for i, v := range doc.Validators {
		vals[i] = proof.GenesisValidator{KeyType: v.PubKey.Type(), PubKey: v.PubKey.Bytes(), Power: v.Power}
	}
	return proof.GenesisHash(doc.ChainID, doc.InitialHeight, doc.GenesisTime, vals, doc.AppState)
}

func (r *Runtime) persist() error {
	r.sealContracts()
	raw, err := json.Marshal(r.st)
	if err != nil {
		return err
	}
	return r.store.Store(raw)
}

func (r *Runtime) height() int64 {
	if r.lc == nil {
		return 0
	}
	return r.lc.Height()
}

// publishInfo refreshes the snapshot Info serves. Caller holds mu (or has
// exclusive access).
func (r *Runtime) publishInfo() {
	in := &pruntimepb.InfoResponse{
		Platform: r.cfg.Platform.Name(), Measurement: r.cfg.Platform.Measurement(),
		ChainId: r.chainID, GenesisHash: r.genHash, Height: r.height(),
		Role: r.st.Role, HoldsRootKey: r.st.RootKey != nil, NextSequence: r.st.NextSequence,
		PendingMessages: uint32(len(r.st.Outbox)), Initialized: r.st.Genesis != nil,
		RenewalPending: r.next != nil, Registered: r.st.Registered, Recovering: r.recoveries(),
	}
	if r.next != nil {
		in.NextSigningKey = r.next.Public()
	}
	if r.id != nil {
		in.SigningKey = r.id.Public()
	}
	r.infoMu.Lock()
	r.info = in
	r.infoMu.Unlock()
}

// Info reports pRuntime's state. It never waits for a sync in progress.
func (r *Runtime) Info() *pruntimepb.InfoResponse {
	r.infoMu.RLock()
	defer r.infoMu.RUnlock()
	return proto.Clone(r.info).(*pruntimepb.InfoResponse)
}

// InitRuntime sets the genesis pRuntime follows, once.
func (r *Runtime) InitRuntime(genesis []byte) (*pruntimepb.InfoResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st.Genesis != nil {
		if bytes.Equal(r.st.Genesis, genesis) {
			return r.Info(), nil
		}
		return nil, fmt.Errorf("%w (chain %q); start a new worker for another chain", ErrInitialized, r.chainID)
	}
	if _, _, err := parseGenesis(genesis); err != nil {
		return nil, err
	}
	prev := r.st
	r.st.Genesis = bytes.Clone(genesis)
	if err := r.load(); err != nil {
		r.st = prev
		return nil, err
	}
	if err := r.persist(); err != nil {
		r.st = prev
		return nil, err
	}
	r.publishInfo()
	r.log.Info("pRuntime initialised", "chain_id", r.chainID, "genesis_hash", fmt.Sprintf("%X", r.genHash))
	return r.Info(), nil
}

func (r *Runtime) identity() (*system.Identity, error) {
	if r.id == nil {
		return nil, ErrRetired
	}
	return r.id, nil
}

// GetIdentity returns the identity's public keys.
func (r *Runtime) GetIdentity() (*pruntimepb.Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := r.identity()
	if err != nil {
		return nil, err
	}
	return &pruntimepb.Identity{SigningKey: id.Public(), HpkeKey: id.HPKE.PublicKey()}, nil
}

// GetRAQuote builds the registration info (identity keys, operator, genesis
// hash, endpoint) and quotes its hash.
func (r *Runtime) GetRAQuote(operator []byte, endpoint string) (*pruntimepb.RAQuote, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := r.identity()
	if err != nil {
		return nil, err
	}
	if r.st.Genesis == nil {
		return nil, ErrNotInitialized
	}
	if len(operator) != crypto.AddressLen {
		return nil, fmt.Errorf("%w: operator must be a %d-byte address, got %d bytes", ErrBadRequest, crypto.AddressLen, len(operator))
	}
	// During a renewal the successor is quoted, naming the current
	// identity as its predecessor.
	quoted := id
	if r.next != nil {
		quoted = r.next
	}
	wi := &chainpb.WorkerInfo{SigningKey: quoted.Public(), HpkeKey: quoted.HPKE.PublicKey(), Operator: operator, GenesisHash: r.genHash, Endpoint: endpoint}
	if r.next != nil {
		wi.Predecessor = id.Public()
	}
	info, err := proto.MarshalOptions{Deterministic: true}.Marshal(wi)
	if err != nil {
		return nil, err
	}
	q, err := r.cfg.Platform.Quote(crypto.WorkerReportData(info))
	if err != nil {
		return nil, fmt.Errorf("quote: %w", err)
	}
	out := &pruntimepb.RAQuote{Platform: r.cfg.Platform.Name(), Info: info, Quote: q, Measurement: r.cfg.Platform.Measurement()}
	if r.next != nil {
		out.PredecessorSignature = ed25519.Sign(id.Sign, crypto.RenewalBytes(info))
	}
	return out, nil
}

// RenewIdentity prepares a successor identity so the host can register it
// before the current registration expires. The current identity keeps
// signing and receiving meanwhile (it may be elected, handed the root key,
// or have messages in flight); quotes name it as the successor's
// predecessor, with its signature. When a verified block shows the
// successor registered, pRuntime switches to it (switchIdentity). Calling
// again while pending returns the same successor.
func (r *Runtime) RenewIdentity() (*pruntimepb.Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.identity()
	switch {
	case err != nil:
		return nil, err
	case r.st.Genesis == nil:
		return nil, ErrNotInitialized
	case r.st.Role == RoleGenesis:
		return nil, fmt.Errorf("%w: the genesis worker retires at launch; it does not renew", ErrBadRequest)
	case r.next != nil:
		// pending: the same successor
	case !r.st.Registered:
		return nil, fmt.Errorf("%w: no verified block shows this identity registered yet; register it (and sync that block) before renewing", ErrBadRequest)
	default:
		seed := make([]byte, 32)
		rand.Read(seed)
		next, err := system.NewIdentity(seed)
		if err != nil {
			return nil, err
		}
		r.st.NextIdentitySeed = seed
		if err := r.persist(); err != nil {
			r.st.NextIdentitySeed = nil
			return nil, err
		}
		r.next = next
		r.publishInfo()
		r.log.Info("prepared a successor identity; the host must register it", "identity", fmt.Sprintf("%X", r.id.Public()), "successor", fmt.Sprintf("%X", next.Public()))
	}
	return &pruntimepb.Identity{SigningKey: r.next.Public(), HpkeKey: r.next.HPKE.PublicKey()}, nil
}

// switchIdentity makes the registered successor the identity and erases the
// old key. Messages the old identity signed that the chain has not
// delivered never will be (it takes nothing from a renewed worker): they are
// signed again by the successor, whose sequence starts at 0.
func (r *Runtime) switchIdentity() error {
	old := r.id
	pending := r.st.Outbox
	clear(r.st.IdentitySeed)
	r.st.IdentitySeed, r.st.NextIdentitySeed = r.st.NextIdentitySeed, nil
	r.id, r.next = r.next, nil
	r.st.NextSequence, r.st.Outbox, r.st.Registered = 0, nil, true
	clear(old.Sign)
	for _, raw := range pending {
		var m chainpb.SignedMessage
		if err := proto.Unmarshal(raw, &m); err != nil {
			return err
		}
		if err := r.sendPayload(m.Payload); err != nil {
			return err
		}
	}
	r.log.Info("the chain registered the successor identity; switched to it and erased the old key", "identity", fmt.Sprintf("%X", r.id.Public()), "resigned_messages", len(pending))
	return nil
}

// Bootstrap makes this pRuntime the genesis worker and creates the root key
// k_r^(0). Calling it again returns the same identity and root public key.
func (r *Runtime) Bootstrap() (*pruntimepb.BootstrapResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := r.identity()
	if err != nil {
		return nil, err
	}
	switch {
	case r.st.Role == RoleGenesis:
	case r.st.Genesis != nil || r.st.Role != RoleWorker:
		return nil, fmt.Errorf("%w: only a fresh pRuntime, before InitRuntime, can bootstrap a network", ErrBadRequest)
	default:
		prev := r.st
		r.st.Role = RoleGenesis
		r.st.RootKey = make([]byte, 32)
		rand.Read(r.st.RootKey)
		if err := r.persist(); err != nil {
			r.st = prev
			return nil, err
		}
		r.publishInfo()
		r.log.Info("bootstrapped the genesis identity and root key")
	}
	return &pruntimepb.BootstrapResponse{
		Identity:      &pruntimepb.Identity{SigningKey: id.Public(), HpkeKey: id.HPKE.PublicKey()},
		RootPublicKey: crypto.RootPublicKey(r.st.RootKey),
	}, nil
}

// DumpSideEffects returns the signed messages not yet seen on chain, in
// sequence order.
func (r *Runtime) DumpSideEffects() (*pruntimepb.SideEffects, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := &pruntimepb.SideEffects{}
	for _, raw := range r.st.Outbox {
		var m chainpb.SignedMessage
		if err := proto.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		out.Messages = append(out.Messages, &m)
	}
	return out, nil
}

// SyncBlockchain verifies blocks in order and applies their events. It
// stops at the first block that fails verification: the blocks before it
// are kept, that block and the rest are not, and the error says why.
func (r *Runtime) SyncBlockchain(blocks []*pruntimepb.SyncBlock) (*pruntimepb.SyncResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lc == nil {
		return nil, ErrNotInitialized
	}
	if r.broken != nil {
		return nil, fmt.Errorf("pRuntime stopped syncing after a verified event it could not apply (%w); restart it to resume from its sealed state", r.broken)
	}
	if len(blocks) > r.cfg.MaxBatch {
		return nil, fmt.Errorf("%w: %d blocks in one call, limit %d", ErrBadRequest, len(blocks), r.cfg.MaxBatch)
	}
	// Receipts of a batch that was not kept must not show.
	r.receipts.discard()
	var accepted uint32
	var verr error
	// Decode up to the first block that does not decode, verify those in
	// one IngestBatch call (signatures batch-verified; the blocks before a
	// refused one are adopted, as with one Ingest each), then apply the
	// events of the blocks it adopted.
	bs := make([]lightclient.Block, 0, len(blocks))
	for _, sb := range blocks {
		b, err := lightclient.DecodeBlock(sb)
		if err != nil {
			verr = err
			break
		}
		bs = append(bs, b)
	}
	evss, err := r.lc.IngestBatch(bs)
	if err != nil {
		verr = err // refused before the block that did not decode, if any
	}
	for i, evs := range evss {
		// Block h's events are those of block h-1: its time is that of
		// the header trusted before bs[i].
		t := r.st.BlockTime
		for _, ev := range evs {
			if err := r.apply(ev, t); err != nil {
				// A verified event pRuntime cannot apply is this build's
				// fault; stop rather than diverge. The light client and
				// state in memory are past what is sealed: refuse every
				// later sync until a restart reloads the sealed state.
				r.broken = fmt.Errorf("apply event %d of block %d: %w", ev.Index, ev.Height, err)
				r.endBlock(0)
				return nil, r.broken
			}
		}
		if h := bs[i].SignedHeader.Height - 1; liveness.Due(h, r.heartbeat) {
			r.dueBeat = h
		}
		if err := r.endBlock(bs[i].SignedHeader.Height - 1); err != nil {
			r.broken = fmt.Errorf("end block %d: %w", bs[i].SignedHeader.Height-1, err)
			return nil, r.broken
		}
		r.st.BlockTime = bs[i].SignedHeader.Time
		accepted++
	}
	if accepted > 0 {
		if err := r.sendHeartbeat(); err != nil {
			r.broken = fmt.Errorf("send a heartbeat: %w", err)
			return nil, r.broken
		}
		if err := r.flushCheckpoints(); err != nil {
			r.broken = fmt.Errorf("send checkpoints: %w", err)
			return nil, r.broken
		}
		lc, err := r.lc.Marshal()
		if err != nil {
			return nil, err
		}
		r.st.LightClient = lc
		if err := r.persist(); err != nil {
			return nil, err
		}
		r.publishInfo()
		r.publishView(r.st.BlockTime)
	}
	resp := &pruntimepb.SyncResponse{Height: r.lc.Height(), Accepted: accepted}
	if verr != nil {
		r.log.Warn("refused a block from the host", "height", r.lc.Height()+1, "err", verr)
		return resp, fmt.Errorf("%w: block %d: %w", ErrRefusedBlock, r.lc.Height()+1, verr)
	}
	return resp, nil
}

// apply acts on one verified worker event of a block with time t.
func (r *Runtime) apply(ev *chainpb.WorkerEvent, t time.Time) error {
	switch k := ev.Kind.(type) {
	case *chainpb.WorkerEvent_WorkerMessage:
		m := k.WorkerMessage
		if r.id != nil && bytes.Equal(m.Sender, r.id.Public()) {
			r.delivered(m.Sequence)
		}
		var wm chainpb.WorkerMessage
		if proto.Unmarshal(m.Payload, &wm) != nil {
			return nil
		}
		switch wm.Kind.(type) {
		case *chainpb.WorkerMessage_ContractMessage:
			return r.onContractMessage(ev, m.Sender, wm.GetContractMessage(), t)
		case *chainpb.WorkerMessage_RotationShare, *chainpb.WorkerMessage_RotationKeys,
			*chainpb.WorkerMessage_RotationState, *chainpb.WorkerMessage_RotationConfirm:
			return r.onRotationMessage(m.Sender, &wm)
		}
		return r.onMessage(m, &wm)
	case *chainpb.WorkerEvent_GatekeepersElected:
		return r.onElected(k.GatekeepersElected)
	case *chainpb.WorkerEvent_Launched:
		r.st.Gatekeepers, r.st.RootHPKE = k.Launched.Gatekeepers, k.Launched.RootHpkeKey
		if r.st.Role == RoleGenesis {
			r.retire("the network launched")
		}
	case *chainpb.WorkerEvent_RotationStarted:
		return r.onRotationStarted(k.RotationStarted)
	case *chainpb.WorkerEvent_RotationReady:
		return r.onRotationReady(k.RotationReady)
	case *chainpb.WorkerEvent_RotationExpired:
		r.onRotationExpired(k.RotationExpired)
	case *chainpb.WorkerEvent_ContractDeployed:
		return r.onDeployed(k.ContractDeployed)
	case *chainpb.WorkerEvent_ContractKeyed:
		return r.onKeyed(ev, k.ContractKeyed, t)
	case *chainpb.WorkerEvent_ContractCommand:
		return r.onCommand(ev, k.ContractCommand, t)
	case *chainpb.WorkerEvent_ContractReassigned:
		return r.onReassigned(k.ContractReassigned)
	case *chainpb.WorkerEvent_ContractRekeyDue:
		return r.onRekeyDue(k.ContractRekeyDue)
	case *chainpb.WorkerEvent_ContractRekeyed:
		return r.onRekeyed(k.ContractRekeyed)
	case *chainpb.WorkerEvent_WorkerRegistered:
		w := k.WorkerRegistered.Worker
		r.onWorkerRegistered(w)
		switch {
		case r.id == nil:
		case bytes.Equal(w.GetSigningKey(), r.id.Public()):
			r.st.Registered = true
		case r.next != nil && bytes.Equal(w.GetSigningKey(), r.next.Public()) && bytes.Equal(w.GetPredecessor(), r.id.Public()):
			return r.switchIdentity()
		}
	case *chainpb.WorkerEvent_WorkerRetired:
		if r.id != nil && bytes.Equal(k.WorkerRetired.Worker, r.id.Public()) {
			r.retire("the chain retired this worker")
		}
	}
	return nil
}

// delivered drops outbox messages up to seq: the chain has them.
func (r *Runtime) delivered(seq uint64) {
	keep := r.st.Outbox[:0]
	for _, raw := range r.st.Outbox {
		var m chainpb.SignedMessage
		if proto.Unmarshal(raw, &m) == nil && m.Sequence > seq {
			keep = append(keep, raw)
		}
	}
	r.st.Outbox = keep
}

// send signs a worker message with the identity key and queues it.
func (r *Runtime) send(wm *chainpb.WorkerMessage) error {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(wm)
	if err != nil {
		return err
	}
	return r.sendPayload(payload)
}

// sendPayload signs payload as the identity's next message and queues it.
func (r *Runtime) sendPayload(payload []byte) error {
	id, err := r.identity()
	if err != nil {
		return err
	}
	seq := r.st.NextSequence
	pub := id.Public()
	m := &chainpb.SignedMessage{Sender: pub, Sequence: seq, Payload: payload,
		Signature: ed25519.Sign(id.Sign, crypto.SignedMessageBytes(r.chainID, pub, seq, payload))}
	raw, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	r.st.NextSequence++
	r.st.Outbox = append(r.st.Outbox, raw)
	return nil
}

// handoverInfo binds a sealed root key to its chain, round and recipient.
func handoverInfo(chainID string, round uint64, recipient []byte) []byte {
	b := append([]byte("phala/root-key/handover/v1\x00"), chainID...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, round)
	return append(b, recipient...)
}

// onElected: the genesis worker seals the root key to each elected
// gatekeeper's registered HPKE key.
func (r *Runtime) onElected(e *chainpb.GatekeepersElected) error {
	r.st.GenesisPeer = e.GenesisWorker
	if r.st.Role != RoleGenesis || r.id == nil || !bytes.Equal(e.GenesisWorker, r.id.Public()) {
		return nil
	}
	rk, err := crypto.RootHPKEKey(r.st.RootKey)
	if err != nil {
		return err
	}
	ho := &chainpb.RootKeyHandover{Round: e.Round, RootPublicKey: crypto.RootPublicKey(r.st.RootKey), RootHpkeKey: rk.PublicKey()}
	for _, g := range e.Gatekeepers {
		env, err := crypto.Seal(g.HpkeKey, handoverInfo(r.chainID, e.Round, g.SigningKey), r.st.RootKey)
		if err != nil {
			// The chain accepted this key at registration; an unusable one
			// means no handover this round, and the round will expire.
			r.log.Warn("cannot seal the root key to an elected gatekeeper", "gatekeeper", fmt.Sprintf("%X", g.SigningKey), "err", err)
			return nil
		}
		ho.Keys = append(ho.Keys, &chainpb.SealedKey{Recipient: g.SigningKey, Envelope: env})
	}
	r.log.Info("handing the root key over", "round", e.Round, "gatekeepers", len(ho.Keys))
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Handover{Handover: ho}})
}

// onMessage: an elected gatekeeper opens the root key sealed to it and
// confirms.
func (r *Runtime) onMessage(m *chainpb.SignedMessage, wm *chainpb.WorkerMessage) error {
	if r.id == nil || r.st.GenesisPeer == nil || !bytes.Equal(m.Sender, r.st.GenesisPeer) {
		return nil
	}
	ho := wm.GetHandover()
	if ho == nil {
		return nil
	}
	me := r.id.Public()
	for _, k := range ho.Keys {
		if !bytes.Equal(k.Recipient, me) {
			continue
		}
		root, err := r.id.HPKE.Open(k.Envelope, handoverInfo(r.chainID, ho.Round, me))
		if err != nil {
			r.log.Warn("a root key handover for this worker does not open", "round", ho.Round, "err", err)
			return nil
		}
		if rk, err := crypto.RootHPKEKey(root); err != nil || !bytes.Equal(crypto.RootPublicKey(root), ho.RootPublicKey) || !bytes.Equal(rk.PublicKey(), ho.RootHpkeKey) {
			r.log.Warn("the handed-over root key does not match its public keys", "round", ho.Round)
			return nil
		}
		if r.st.RootKey == nil {
			r.st.RootKey = root
		}
		r.st.Role = RoleGatekeeper
		r.log.Info("received the root key; confirming", "round", ho.Round)
		return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: ho.Round, RootPublicKey: ho.RootPublicKey}}})
	}
	return nil
}

// retire erases every secret: the root key and the identity.
func (r *Runtime) retire(why string) {
	r.st.Rotation.erase()
	r.st.Rotation = nil
	clear(r.st.RootKey)
	clear(r.st.IdentitySeed)
	clear(r.st.NextIdentitySeed)
	for _, id := range []*system.Identity{r.id, r.next} {
		if id != nil {
			clear(id.Sign)
		}
	}
	r.st.RootKey, r.st.IdentitySeed, r.st.NextIdentitySeed, r.id, r.next, r.st.Outbox = nil, nil, nil, nil, nil, nil
	for _, c := range r.st.Contracts {
		clear(c.Key)
		c.Key, c.State, c.Mine, c.Live, c.Recovery = nil, nil, false, false, nil
	}
	r.endBlock(0)
	r.running = map[string]*running{}
	r.st.Role = RoleRetired
	r.log.Info("retired: secrets erased", "why", why)
}
