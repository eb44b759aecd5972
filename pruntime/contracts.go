package pruntime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/querywire"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/system"
	"github.com/phala-go/phala/pruntime/vm"
)

// MessageGas is the gas a contract-to-contract message runs with (at most).
const MessageGas = 100_000_000

// maxCodeBytes bounds contract code as pRuntime accepts it (the chain's
// default limit; the chain refuses larger code first).
const maxCodeBytes = 8 << 20

// contractState is what pRuntime keeps of one instance, sealed with the
// rest of its state. Every pRuntime tracks every instance's miner and
// public key (to seal messages to it and to vet messages from it); the
// miner also keeps the key, the code and the state.
type contractState struct {
	Miner     []byte `json:"miner"`
	CodeHash  []byte `json:"code_hash"`
	Deployer  []byte `json:"deployer"`
	PublicKey []byte `json:"public_key,omitempty"`
	// Mine: this pRuntime runs the instance.
	Mine     bool              `json:"mine,omitempty"`
	InitArgs []byte            `json:"init_args,omitempty"` // until init runs
	Key      []byte            `json:"key,omitempty"`       // k_c
	State    map[string][]byte `json:"state,omitempty"`     // the live store, as last sealed
	// Broken says why the instance cannot run (its code does not compile,
	// its key does not match, its initialiser failed); commands then
	// fail with this reason.
	Broken string `json:"broken,omitempty"`
}

// running is an instance this pRuntime runs, in memory.
type running struct {
	id    crypto.ContractID
	code  vm.CodeHash
	input *crypto.HPKEKey
	store *vm.MemStore
	dirty bool
	// session runs this block's calls (see endBlock).
	session *vm.Session
}

// contractView is a read-only snapshot of an instance for queries.
type contractView struct {
	code   vm.CodeHash
	key    []byte
	store  *vm.MemStore
	root   [32]byte
	broken string
}

// queryView is everything Query needs, swapped whole after each sync so
// queries never wait for one.
type queryView struct {
	chainID   string
	id        *system.Identity
	height    int64
	time      time.Time
	engine    *vm.Engine
	contracts map[crypto.ContractID]*contractView
}

func hexKey(b []byte) string { return hex.EncodeToString(b) }

// engine returns the VM, starting it on first use. Caller holds mu.
func (r *Runtime) engine() (*vm.Engine, error) {
	if r.vm != nil {
		return r.vm, nil
	}
	e, err := vm.NewEngine(context.Background(), vm.Config{CacheDir: filepath.Join(r.cfg.DataDir, "vmcache")})
	if err != nil {
		return nil, fmt.Errorf("start the contract VM: %w", err)
	}
	r.vm = e
	return e, nil
}

func (r *Runtime) codeFile(hash []byte) string {
	return filepath.Join(r.cfg.DataDir, "code", hexKey(hash)+".wasm")
}

// loadContracts rebuilds the instances this pRuntime runs from the sealed
// state: their stores, keys and compiled code (from DataDir/code, checked
// against the hash the chain published). Caller holds mu or has exclusive
// access.
func (r *Runtime) loadContracts() error {
	r.running = map[string]*running{}
	for k, c := range r.st.Contracts {
		if !c.Mine || c.Broken != "" {
			continue
		}
		code, err := os.ReadFile(r.codeFile(c.CodeHash))
		if err != nil {
			return fmt.Errorf("contract %s: its code file: %w", k, err)
		}
		if sum := sha256.Sum256(code); !bytes.Equal(sum[:], c.CodeHash) {
			return fmt.Errorf("contract %s: its code file %s does not match the published hash", k, r.codeFile(c.CodeHash))
		}
		if err := r.startInstance(k, c, code); err != nil {
			return err
		}
	}
	return nil
}

// startInstance compiles an instance's code and opens its store.
func (r *Runtime) startInstance(k string, c *contractState, code []byte) error {
	e, err := r.engine()
	if err != nil {
		return err
	}
	h, err := e.Compile(context.Background(), code)
	if err != nil {
		c.Broken = fmt.Sprintf("the contract's code is refused by the VM: %v", err)
		r.log.Warn("a contract this worker runs does not compile", "contract", k, "err", err)
		return nil
	}
	raw, _ := hex.DecodeString(k)
	id, _ := crypto.ContractIDFromBytes(raw)
	run := &running{id: id, code: h, store: vm.NewMemStoreFrom(c.State)}
	if c.Key != nil {
		if run.input, err = crypto.ContractInputKey(c.Key); err != nil {
			return err
		}
	}
	r.running[k] = run
	return nil
}

// sealContracts copies the live stores into the sealed state.
func (r *Runtime) sealContracts() {
	for k, run := range r.running {
		if run.dirty {
			r.st.Contracts[k].State = run.store.Pairs()
		}
	}
}

// publishView builds the snapshot queries read. Caller holds mu.
func (r *Runtime) publishView(blockTime time.Time) {
	old := r.view.Load()
	v := &queryView{chainID: r.chainID, engine: r.vm, time: blockTime, contracts: map[crypto.ContractID]*contractView{}}
	v.id = r.id
	if r.lc != nil {
		v.height = r.lc.Height() - 1
	}
	for k, run := range r.running {
		c := r.st.Contracts[k]
		if old != nil && !run.dirty {
			if ov, ok := old.contracts[run.id]; ok && ov.broken == c.Broken {
				v.contracts[run.id] = ov
				continue
			}
		}
		v.contracts[run.id] = &contractView{code: run.code, key: c.Key, store: run.store.Clone(), root: run.store.Root(), broken: c.Broken}
		run.dirty = false
	}
	r.view.Store(v)
}

// onWorkerRegistered tracks worker keys (gatekeepers seal contract keys to
// miners) and passes seats and instances of a renewed worker on.
func (r *Runtime) onWorkerRegistered(w *chainpb.Worker) {
	if r.st.WorkerKeys == nil {
		r.st.WorkerKeys = map[string][]byte{}
	}
	r.st.WorkerKeys[hexKey(w.SigningKey)] = w.HpkeKey
	if p := w.Predecessor; len(p) > 0 {
		for i, g := range r.st.Gatekeepers {
			if bytes.Equal(g, p) {
				r.st.Gatekeepers[i] = w.SigningKey
			}
		}
		for _, c := range r.st.Contracts {
			if bytes.Equal(c.Miner, p) {
				c.Miner = w.SigningKey
			}
		}
	}
}

func (r *Runtime) isGatekeeper(w []byte) bool {
	for _, g := range r.st.Gatekeepers {
		if bytes.Equal(g, w) {
			return true
		}
	}
	return false
}

// onDeployed records a new instance. A gatekeeper derives k_c and sends
// its copy (wrapped under the root key for the chain, sealed to the
// miner); the miner keeps and compiles the code and waits for the key.
func (r *Runtime) onDeployed(d *chainpb.ContractDeployed) error {
	id, err := crypto.ContractIDFromBytes(d.Contract)
	if err != nil {
		return err
	}
	k := hexKey(d.Contract)
	if r.st.Contracts == nil {
		r.st.Contracts = map[string]*contractState{}
	}
	c := &contractState{Miner: d.Miner, CodeHash: d.CodeHash, Deployer: d.Deployer}
	r.st.Contracts[k] = c
	if r.st.Role == RoleGatekeeper && r.st.RootKey != nil && r.id != nil {
		if err := r.sendContractKey(id, d.Miner); err != nil {
			return err
		}
	}
	if r.id == nil || !bytes.Equal(d.Miner, r.id.Public()) {
		return nil
	}
	c.Mine, c.InitArgs = true, d.InitArgs
	code, err := wasmcode.Gunzip(d.CodeGzip, maxCodeBytes)
	if err == nil {
		if sum := sha256.Sum256(code); !bytes.Equal(sum[:], d.CodeHash) {
			err = errors.New("the code does not match its published hash")
		}
	}
	if err != nil {
		c.Broken = err.Error()
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(r.codeFile(d.CodeHash)), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(r.codeFile(d.CodeHash), code, 0o600); err != nil {
		return err
	}
	r.log.Info("deployed to this worker; waiting for its key", "contract", id.String(), "code_bytes", len(code))
	return r.startInstance(k, c, code)
}

// sendContractKey: a gatekeeper's copy of k_c for instance id.
func (r *Runtime) sendContractKey(id crypto.ContractID, miner []byte) error {
	minerHPKE := r.st.WorkerKeys[hexKey(miner)]
	if minerHPKE == nil {
		r.log.Warn("a contract's miner is unknown to this gatekeeper; not sending its key", "contract", id.String())
		return nil
	}
	kc := crypto.DeriveContractKey(r.st.RootKey, r.chainID, id)
	in, err := crypto.ContractInputKey(kc)
	if err != nil {
		return err
	}
	wrapped, err := crypto.WrapContractKey(r.st.RootKey, r.chainID, id, kc)
	if err != nil {
		return err
	}
	sealed, err := crypto.Seal(minerHPKE, crypto.ContractKeyInfo(r.chainID, id, miner), kc)
	if err != nil {
		r.log.Warn("cannot seal a contract key to its miner", "contract", id.String(), "err", err)
		return nil
	}
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractKey{ContractKey: &chainpb.ContractKey{
		Contract: id.Bytes(), PublicKey: in.PublicKey(), WrappedKey: wrapped, SealedKey: sealed,
	}}})
}

// onKeyed: the chain took a gatekeeper's copy of k_c. Every pRuntime
// learns the public key; the miner opens k_c, but only from a current
// gatekeeper and only if it matches the public key, then runs init.
func (r *Runtime) onKeyed(ev *chainpb.WorkerEvent, kd *chainpb.ContractKeyed, t time.Time) error {
	k := hexKey(kd.Contract)
	c := r.st.Contracts[k]
	if c == nil {
		return nil
	}
	c.PublicKey = kd.PublicKey
	run := r.running[k]
	if !c.Mine || run == nil || c.Key != nil || r.id == nil {
		return nil
	}
	if !r.isGatekeeper(kd.Gatekeeper) {
		r.log.Warn("refused a contract key from a worker that is not a current gatekeeper", "contract", run.id.String(), "sender", hexKey(kd.Gatekeeper))
		return nil
	}
	kc, err := r.id.HPKE.Open(kd.SealedKey, crypto.ContractKeyInfo(r.chainID, run.id, r.id.Public()))
	if err != nil {
		c.Broken = fmt.Sprintf("the contract key sealed to this worker does not open: %v", err)
		return nil
	}
	in, err := crypto.ContractInputKey(kc)
	if err != nil || !bytes.Equal(in.PublicKey(), kd.PublicKey) {
		c.Broken = "the contract key does not match the contract's published public key"
		return nil
	}
	c.Key, run.input = kc, in
	args := c.InitArgs
	c.InitArgs = nil
	deployer, _ := crypto.AddressFromBytes(c.Deployer)
	rc := &pruntimepb.CommandReceipt{}
	if err := r.execute(vm.EntryInit, run, c, ev, t, deployer.String(), args, 0, rc); err != nil {
		return err
	}
	if !rc.Ok {
		c.Broken = "the contract's initialiser failed: " + rc.Error
		r.log.Warn("a contract's initialiser failed", "contract", run.id.String(), "err", rc.Error)
		return nil
	}
	r.log.Info("contract key received; instantiated and initialised", "contract", run.id.String(), "gas", rc.GasUsed)
	return nil
}

// onCommand executes a command to an instance this pRuntime runs, in block
// order, and records its receipt for the sender. A command that does not
// open (tampered, sealed to another contract, replayed by anyone or in
// another transaction) is refused unexecuted.
func (r *Runtime) onCommand(ev *chainpb.WorkerEvent, cmd *chainpb.ContractCommand, t time.Time) error {
	k := hexKey(cmd.Contract)
	c, run := r.st.Contracts[k], r.running[k]
	if c == nil || !c.Mine {
		return nil
	}
	sender, err := crypto.AddressFromBytes(cmd.Sender)
	if err != nil {
		return err
	}
	rc := &pruntimepb.CommandReceipt{Height: ev.Height, Index: ev.Index, Sender: cmd.Sender, Nonce: cmd.Nonce}
	defer r.receipts.put(k, cmd.Sender, cmd.Nonce, rc)
	id, _ := crypto.ContractIDFromBytes(cmd.Contract)
	return r.deliver(run, c, ev, t, sender.String(), cmd.Envelope, crypto.CommandInfo(r.chainID, id, sender, cmd.Nonce), cmd.GasLimit, rc)
}

// deliver opens a sealed command or message to an instance this pRuntime
// runs and executes it; rc records the outcome. What does not open is
// refused unexecuted.
func (r *Runtime) deliver(run *running, c *contractState, ev *chainpb.WorkerEvent, t time.Time, caller string, envelope, info []byte, gas uint64, rc *pruntimepb.CommandReceipt) error {
	if c.Broken != "" || run == nil || run.input == nil {
		rc.Error = "the contract cannot run: " + c.Broken
		return nil
	}
	payload, err := run.input.Open(envelope, info)
	if err != nil {
		rc.Error = "refused: it does not open with this contract's key for this sender (tampered, sealed to another contract, or replayed)"
		return nil
	}
	return r.execute(vm.EntryCommand, run, c, ev, t, caller, payload, gas, rc)
}

// execute runs one call of the block in its session; rc records the
// outcome. A successful call's messages are sent.
func (r *Runtime) execute(entry vm.Entry, run *running, c *contractState, ev *chainpb.WorkerEvent, t time.Time, caller string, payload []byte, gas uint64, rc *pruntimepb.CommandReceipt) error {
	res, err := r.session(run).Execute(context.Background(), entry, vm.Env{
		Contract: run.id.String(), Caller: caller, Height: ev.Height, Time: t,
		Seed: crypto.ContractSeed(c.Key, ev.Height, ev.Index), Gas: gas, CheckSend: r.checkSend,
	}, run.store, payload)
	if err != nil {
		rc.Error = "the contract could not be called: " + err.Error()
		return nil
	}
	rc.GasUsed, rc.Output = res.GasUsed, res.Output
	if res.Err != nil {
		rc.Error = res.Err.Error()
		return nil
	}
	rc.Ok, rc.Events, run.dirty = true, res.Events, true
	return r.sendMessages(run.id, res.Messages)
}

// session is the instance run executes this block's calls in: one per
// contract per block, a boundary every miner draws alike (endBlock).
func (r *Runtime) session(run *running) *vm.Session {
	if run.session == nil {
		run.session = r.vm.NewSession(run.code)
	}
	return run.session
}

// endBlock ends the block's sessions.
func (r *Runtime) endBlock() {
	for _, run := range r.running {
		if run.session != nil {
			run.session.Close(context.Background())
			run.session = nil
		}
	}
}

// checkSend vets a message's receiver as the chain will: a keyed instance.
func (r *Runtime) checkSend(to string) error {
	id, err := crypto.ParseContractID(to)
	if err != nil {
		return err
	}
	c := r.st.Contracts[hexKey(id[:])]
	switch {
	case c == nil:
		return fmt.Errorf("no contract %s", to)
	case c.PublicKey == nil:
		return fmt.Errorf("contract %s has no key yet", to)
	}
	return nil
}

// sendMessages seals each message to its receiver's public key and sends
// it as this worker's signed message.
func (r *Runtime) sendMessages(from crypto.ContractID, msgs []vm.Message) error {
	for _, m := range msgs {
		to, err := crypto.ParseContractID(m.To)
		if err != nil {
			return err // checkSend passed it
		}
		env, err := crypto.Seal(r.st.Contracts[hexKey(to[:])].PublicKey, crypto.MessageInfo(r.chainID, from, to), m.Payload)
		if err != nil {
			return err
		}
		if err := r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: &chainpb.ContractMessage{
			From: from.Bytes(), To: to.Bytes(), Envelope: env, GasLimit: MessageGas,
		}}}); err != nil {
			return err
		}
	}
	return nil
}

// onContractMessage executes a message another contract sent to an
// instance this pRuntime runs, with the sending contract as the caller. It
// applies the chain's rule (contracts.CheckMessage): only the sending
// contract's miner may send for it, only to a keyed instance.
func (r *Runtime) onContractMessage(ev *chainpb.WorkerEvent, sender []byte, m *chainpb.ContractMessage, t time.Time) error {
	from, to := r.st.Contracts[hexKey(m.From)], r.st.Contracts[hexKey(m.To)]
	if from == nil || !bytes.Equal(from.Miner, sender) || to == nil || to.PublicKey == nil || !to.Mine {
		return nil
	}
	fromID, _ := crypto.ContractIDFromBytes(m.From)
	toID, _ := crypto.ContractIDFromBytes(m.To)
	run := r.running[hexKey(m.To)]
	// No receipt is kept: a contract cannot sign a query to read one. A
	// failure is logged (without the payload) for the miner's operator.
	rc := &pruntimepb.CommandReceipt{}
	if err := r.deliver(run, to, ev, t, fromID.String(), m.Envelope, crypto.MessageInfo(r.chainID, fromID, toID), min(m.GasLimit, MessageGas), rc); err != nil {
		return err
	}
	if !rc.Ok {
		r.log.Info("a contract message failed", "from", fromID.String(), "to", hexKey(m.To), "height", ev.Height, "err", rc.Error)
	}
	return nil
}

// receiptBook keeps the latest command receipts for their senders. Sync
// adds to it; queries read it; neither waits for the other's work.
type receiptBook struct {
	mu    sync.RWMutex
	m     map[string]*pruntimepb.CommandReceipt
	order []string
}

// maxReceipts bounds the receipts kept (the oldest go first).
const maxReceipts = 100_000

func receiptKey(contract string, sender []byte, nonce uint64) string {
	return fmt.Sprintf("%s/%x/%d", contract, sender, nonce)
}

func (b *receiptBook) put(contract string, sender []byte, nonce uint64, rc *pruntimepb.CommandReceipt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*pruntimepb.CommandReceipt{}
	}
	k := receiptKey(contract, sender, nonce)
	if _, ok := b.m[k]; !ok {
		b.order = append(b.order, k)
	}
	b.m[k] = rc
	if len(b.order) > maxReceipts {
		delete(b.m, b.order[0])
		b.order = b.order[1:]
	}
}

func (b *receiptBook) get(contract string, sender []byte, nonce uint64) *pruntimepb.CommandReceipt {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.m[receiptKey(contract, sender, nonce)]
}

// Query answers a user's sealed, signed query from the last executed
// snapshot. It takes no lock that sync holds: a query never waits for
// block sync or command execution. The caller is the query's signer;
// contracts decide from it what to reveal.
func (r *Runtime) Query(ctx context.Context, req *pruntimepb.QueryRequest) (*pruntimepb.QueryResponse, error) {
	v := r.view.Load()
	if v == nil || v.chainID == "" {
		return nil, ErrNotInitialized
	}
	if v.id == nil {
		return nil, ErrRetired
	}
	q, err := querywire.OpenRequest(v.chainID, v.id.Public(), v.id.HPKE, req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	ans := &pruntimepb.QueryAnswer{Height: v.height}
	cv := v.contracts[q.Contract]
	if cv == nil {
		ans.Error = fmt.Sprintf("this worker does not run contract %s; ask its miner (`phala contract show`)", q.Contract)
		return querywire.Answer(v.chainID, v.id.Sign, q, ans)
	}
	ans.StateRoot = cv.root[:]
	switch q.Query.Kind {
	case pruntimepb.ContractQuery_STATUS:
		ans.Error = cv.broken
	case pruntimepb.ContractQuery_RECEIPT:
		ans.Receipt = r.receipts.get(hexKey(q.Contract[:]), q.Caller[:], q.Query.CommandNonce)
		if ans.Receipt == nil {
			ans.Error = fmt.Sprintf("no receipt for a command of yours with nonce %d (not executed yet as of block %d, or not to this contract)", q.Query.CommandNonce, v.height)
		}
	case pruntimepb.ContractQuery_QUERY:
		if cv.broken != "" {
			ans.Error = "the contract cannot run: " + cv.broken
			break
		}
		res, err := v.engine.Execute(ctx, cv.code, vm.EntryQuery, vm.Env{
			Contract: q.Contract.String(), Caller: q.Caller.String(), Height: v.height, Time: v.time,
			Seed: crypto.ContractSeed(cv.key, v.height, ^uint32(0)),
		}, cv.store, q.Query.Payload)
		if err != nil {
			return nil, err
		}
		ans.Output = res.Output
		if res.Err != nil {
			ans.Error = res.Err.Error()
		}
	}
	return querywire.Answer(v.chainID, v.id.Sign, q, ans)
}
