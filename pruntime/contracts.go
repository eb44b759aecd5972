package pruntime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
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
// rest of its state. Every pRuntime tracks every instance's miners, public
// key and accepted message count (to seal messages to it and to vet
// messages from it as the chain does); a miner also keeps the key, the
// code, the state and its place in the instance's inputs.
type contractState struct {
	Miners    [][]byte `json:"miners"`
	CodeHash  []byte   `json:"code_hash"`
	Deployer  []byte   `json:"deployer"`
	PublicKey []byte   `json:"public_key,omitempty"`
	Interval  uint64   `json:"checkpoint_interval,omitempty"`
	// Accepted mirrors the chain's messages_sent: how many of the
	// instance's messages the chain took (inbox.AcceptMessage).
	Accepted uint64 `json:"accepted,omitempty"`
	// Mine: this pRuntime is one of the instance's miners.
	Mine bool `json:"mine,omitempty"`
	// Live: it executes the instance's inputs as blocks arrive: it ran
	// input 0 (init) or recovered. A miner that is not live ignores them
	// (they wait in the chain's inbox).
	Live bool `json:"live,omitempty"`
	// Recovery is a miner's takeover in progress (nil otherwise).
	Recovery *recovery `json:"recovery,omitempty"`
	Key      []byte    `json:"key,omitempty"` // k_c
	// Wrapped is k_c under the current root key as the chain keeps it
	// (crypto.WrapContractKey): gatekeepers serve later miners from it, and
	// a root key rotation re-encrypts it.
	Wrapped []byte            `json:"wrapped,omitempty"`
	State   map[string][]byte `json:"state,omitempty"` // the live store, as last sealed
	// Inputs counts the inputs executed (the next one's number, as the
	// chain numbers them); Sent the messages the execution produced (the
	// next one's sequence).
	Inputs uint64 `json:"inputs,omitempty"`
	Sent   uint64 `json:"sent,omitempty"`
	// LastInput is the height of the last input executed (or of the
	// checkpoint recovered from): a checkpoint is due at a multiple of the
	// interval when it is within the last interval, a rule every miner of
	// the instance evaluates alike.
	LastInput int64 `json:"last_input,omitempty"`
	// KeyedHeight and KeyedIndex place the instance's first key in the
	// chain's event order: a contract may send to it only from a later
	// event, in live execution and in any replay alike.
	KeyedHeight int64  `json:"keyed_height,omitempty"`
	KeyedIndex  uint32 `json:"keyed_index,omitempty"`
	// Broken says why the instance cannot run (its code does not compile,
	// its key does not match, its initialiser failed); commands then
	// fail with this reason.
	Broken string `json:"broken,omitempty"`
	// KeyEpoch and Rekeying mirror the chain's key_epoch and whether a
	// key rotation holds the instance's inputs (inbox.Receiver).
	KeyEpoch uint64 `json:"key_epoch,omitempty"`
	Rekeying bool   `json:"rekeying,omitempty"`
	// NextKey is the new k_c this miner made and sent to rotate the key
	// (noteRekey), until the rotation ends.
	NextKey []byte `json:"next_key,omitempty"`
	// Outgoing are the instance's messages the chain has not accepted yet
	// (sequence from Accepted on): a message refused because of its
	// receiver's key rotation is sealed again and resent.
	Outgoing []outgoing `json:"outgoing,omitempty"`
}

// outgoing is a message an instance sent, kept until the chain accepts it.
type outgoing struct {
	Seq     uint64 `json:"seq"`
	To      []byte `json:"to"`
	Payload []byte `json:"payload"`
}

// recovery is a miner's progress in taking an instance over (see
// RecoverContract).
type recovery struct {
	Keyed  bool   `json:"keyed,omitempty"`
	Loaded bool   `json:"loaded,omitempty"`
	Error  string `json:"error,omitempty"`
}

// running is an instance this pRuntime runs, in memory.
type running struct {
	id    crypto.ContractID
	code  vm.CodeHash
	input *crypto.HPKEKey
	store *vm.MemStore
	dirty bool
	// session runs the calls of block sessionHeight (see endBlock).
	session       *vm.Session
	sessionHeight int64
	// due is the checkpoint to send at the end of the sync batch.
	due *dueCheckpoint
	// rekey: this miner is to rotate the key to this epoch at the end of
	// the block (onRekeyDue, then endBlock); 0: not.
	rekey uint64
}

// contractView is a read-only snapshot of an instance for queries.
type contractView struct {
	code   vm.CodeHash
	key    []byte
	store  *vm.MemStore
	root   [32]byte
	broken string
	// pending: the instance does not run here yet (awaiting its key or
	// being taken over); answers carry broken and no state root.
	pending bool
}

// recoveringNote answers queries to an instance this worker was assigned
// and has not recovered yet.
const recoveringNote = "this worker is still taking the contract over (recovering its state); ask again shortly"

// awaitingKeyNote answers queries to an instance deployed to this worker
// that its key has not reached yet.
const awaitingKeyNote = "this worker has not received the contract's key yet; ask again shortly"

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

// idOf is the instance id of a hexKey this pRuntime wrote.
func idOf(k string) crypto.ContractID {
	raw, _ := hex.DecodeString(k)
	id, _ := crypto.ContractIDFromBytes(raw)
	return id
}

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
// against the hash the chain published). A miner still waiting to recover
// an instance whose code it never had starts it when recovery brings the
// code. Caller holds mu or has exclusive access.
func (r *Runtime) loadContracts() error {
	r.running = map[string]*running{}
	for k, c := range r.st.Contracts {
		if !c.Mine || c.Broken != "" {
			continue
		}
		if _, err := os.Stat(r.codeFile(c.CodeHash)); err != nil {
			// Its code is gone (or never came): take it over again from the
			// chain's checkpoint and inbox, code included.
			if c.Recovery == nil {
				c.Recovery = &recovery{}
			}
			c.Live, c.Recovery.Keyed, c.Recovery.Loaded = false, c.Key != nil, false
			continue
		}
		if err := r.startInstance(k, c); err != nil {
			return err
		}
	}
	return nil
}

// startInstance compiles an instance's code (kept by writeCode) and opens
// its store.
func (r *Runtime) startInstance(k string, c *contractState) error {
	code, err := os.ReadFile(r.codeFile(c.CodeHash))
	if err != nil {
		return fmt.Errorf("contract %s: its code file: %w", k, err)
	}
	if sum := sha256.Sum256(code); !bytes.Equal(sum[:], c.CodeHash) {
		return fmt.Errorf("contract %s: its code file %s does not match the published hash", k, r.codeFile(c.CodeHash))
	}
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
	id := idOf(k)
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
		broken := c.Broken
		switch {
		case !c.Live && c.Recovery != nil:
			broken = recoveringNote
		case !c.Live:
			broken = awaitingKeyNote
		}
		if old != nil && !run.dirty {
			if ov, ok := old.contracts[run.id]; ok && ov.broken == broken {
				v.contracts[run.id] = ov
				continue
			}
		}
		// The view's own copy of k_c: erasing the instance's (a key
		// rotation, a removal) must not change it under a query.
		v.contracts[run.id] = &contractView{code: run.code, key: bytes.Clone(c.Key), store: run.store.Clone(), root: run.store.Root(), broken: broken, pending: !c.Live}
		run.dirty = false
	}
	for k, c := range r.st.Contracts {
		if c.Mine && !c.Live && r.running[k] == nil {
			// Assigned, its code not loaded yet: say so rather than deny it.
			id := idOf(k)
			v.contracts[id] = &contractView{store: vm.NewMemStore(), broken: recoveringNote, pending: true}
		}
	}
	r.view.Store(v)
	r.receipts.publish()
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
			for i, m := range c.Miners {
				if bytes.Equal(m, p) {
					c.Miners[i] = w.SigningKey
				}
			}
		}
	}
}

func (r *Runtime) isGatekeeper(w []byte) bool {
	return slices.ContainsFunc(r.st.Gatekeepers, func(g []byte) bool { return bytes.Equal(g, w) })
}

// isMe reports whether w is this pRuntime's identity.
func (r *Runtime) isMe(w []byte) bool { return r.id != nil && bytes.Equal(w, r.id.Public()) }

// onDeployed records a new instance. A gatekeeper derives k_c and sends
// its copy (wrapped under the root key for the chain, sealed to each
// miner); a miner keeps and compiles the code and waits for the key.
func (r *Runtime) onDeployed(d *chainpb.ContractDeployed) error {
	id, err := crypto.ContractIDFromBytes(d.Contract)
	if err != nil {
		return err
	}
	k := hexKey(d.Contract)
	if r.st.Contracts == nil {
		r.st.Contracts = map[string]*contractState{}
	}
	c := &contractState{Miners: d.Miners, CodeHash: d.CodeHash, Deployer: d.Deployer, Interval: d.CheckpointInterval}
	r.st.Contracts[k] = c
	if err := r.sendContractKey(id, d.Miners); err != nil {
		return err
	}
	if r.id == nil || !inbox.IsMiner(d.Miners, r.id.Public()) {
		return nil
	}
	c.Mine = true
	code, err := checkCode(c, d.CodeGzip)
	if err != nil {
		c.Broken = err.Error()
		return nil
	}
	if err := r.writeCode(c, code); err != nil {
		return err
	}
	r.log.Info("deployed to this worker; waiting for its key", "contract", id.String())
	return r.startInstance(k, c)
}

// checkCode decompresses an instance's published code and checks it
// against the instance's code hash.
func checkCode(c *contractState, gz []byte) ([]byte, error) {
	code, err := wasmcode.Gunzip(gz, maxCodeBytes)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(code); !bytes.Equal(sum[:], c.CodeHash) {
		return nil, errors.New("the code does not match its published hash")
	}
	return code, nil
}

// writeCode keeps checked code in DataDir/code, where startInstance reads
// it.
func (r *Runtime) writeCode(c *contractState, code []byte) error {
	if err := os.MkdirAll(filepath.Dir(r.codeFile(c.CodeHash)), 0o700); err != nil {
		return err
	}
	return os.WriteFile(r.codeFile(c.CodeHash), code, 0o600)
}

// sendContractKey: a gatekeeper's copy of k_c for instance id, sealed to
// each of miners. Other pRuntimes send nothing.
func (r *Runtime) sendContractKey(id crypto.ContractID, miners [][]byte) error {
	if r.st.Role != RoleGatekeeper || r.st.RootKey == nil || r.id == nil || len(miners) == 0 {
		return nil
	}
	if r.st.Rotation != nil {
		// Key traffic is paused; RotationReady names the miners owed keys.
		return nil
	}
	// A keyed instance's k_c is the one the chain keeps; a new one is
	// derived from the current root key.
	var kc, wrapped []byte
	if c := r.st.Contracts[hexKey(id[:])]; c != nil && c.Wrapped != nil {
		var err error
		if kc, err = crypto.UnwrapContractKey(r.st.RootKey, r.chainID, id, c.Wrapped); err != nil {
			r.log.Warn("a stored contract key does not open under this gatekeeper's root key", "contract", id.String(), "err", err)
			return nil
		}
		wrapped = c.Wrapped
	} else {
		kc = crypto.DeriveContractKey(r.st.RootKey, r.chainID, id)
		var err error
		if wrapped, err = crypto.WrapContractKey(r.st.RootKey, r.chainID, id, kc); err != nil {
			return err
		}
	}
	in, err := crypto.ContractInputKey(kc)
	if err != nil {
		return err
	}
	ck := &chainpb.ContractKey{Contract: id.Bytes(), PublicKey: in.PublicKey(), WrappedKey: wrapped}
	for _, m := range miners {
		sk, err := r.sealKeyTo(id, m, kc)
		if err != nil {
			r.log.Warn("not sealing a contract key to its miner", "contract", id.String(), "miner", hexKey(m), "err", err)
			continue
		}
		ck.Sealed = append(ck.Sealed, sk)
	}
	if len(ck.Sealed) == 0 {
		return nil
	}
	return r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractKey{ContractKey: ck}})
}

// sealKeyTo seals instance id's k_c to miner m's registered HPKE key (a
// gatekeeper serving the key, or a miner rotating it).
func (r *Runtime) sealKeyTo(id crypto.ContractID, m, kc []byte) (*chainpb.SealedKey, error) {
	hk := r.st.WorkerKeys[hexKey(m)]
	if hk == nil {
		return nil, errors.New("the miner is not registered as far as this pRuntime knows")
	}
	env, err := crypto.Seal(hk, crypto.ContractKeyInfo(r.chainID, id, m), kc)
	if err != nil {
		return nil, err
	}
	return &chainpb.SealedKey{Recipient: m, Envelope: env}, nil
}

// sealedToMe is the envelope of keys sealed to this pRuntime (nil if none).
func (r *Runtime) sealedToMe(keys []*chainpb.SealedKey) []byte {
	for _, sk := range keys {
		if r.isMe(sk.Recipient) {
			return sk.Envelope
		}
	}
	return nil
}

// openContractKey opens instance id's k_c sealed to this pRuntime and
// checks it against the public key the chain published (checkContractKey).
func (r *Runtime) openContractKey(id crypto.ContractID, sealed, pub []byte) ([]byte, *crypto.HPKEKey, error) {
	kc, err := r.id.HPKE.Open(sealed, crypto.ContractKeyInfo(r.chainID, id, r.id.Public()))
	if err != nil {
		return nil, nil, fmt.Errorf("the contract key sealed to this worker does not open: %w", err)
	}
	in, err := checkContractKey(kc, pub)
	if err != nil {
		clear(kc)
		return nil, nil, err
	}
	return kc, in, nil
}

// checkContractKey returns k_c's input key if its public key is pub, the
// one the chain published.
func checkContractKey(kc, pub []byte) (*crypto.HPKEKey, error) {
	in, err := crypto.ContractInputKey(kc)
	if err != nil || !bytes.Equal(in.PublicKey(), pub) {
		return nil, errors.New("the contract key does not match the contract's published public key")
	}
	return in, nil
}

// onKeyed: a gatekeeper's copy of k_c reached miners. Every pRuntime
// learns the public key. A miner it names opens k_c, but only from a
// current gatekeeper and only if it matches the public key. The first
// key is input 0: its miners run init and go live. A miner keyed later
// (assigned by reassignment) recovers the state first.
func (r *Runtime) onKeyed(ev *chainpb.WorkerEvent, kd *chainpb.ContractKeyed, t time.Time) error {
	k := hexKey(kd.Contract)
	c := r.st.Contracts[k]
	if c == nil {
		return nil
	}
	if c.PublicKey == nil {
		c.KeyedHeight, c.KeyedIndex, c.Wrapped = ev.Height, ev.Index, kd.WrappedKey
	}
	c.PublicKey = kd.PublicKey
	if !c.Mine || r.id == nil || c.Live {
		return nil
	}
	sealed := r.sealedToMe(kd.Keys)
	id, _ := crypto.ContractIDFromBytes(kd.Contract)
	if sealed == nil {
		if kd.Initial && c.Recovery == nil {
			// Keyed without this miner: it will be keyed later and recover.
			c.Recovery = &recovery{}
		}
		return nil
	}
	if !r.isGatekeeper(kd.Gatekeeper) {
		r.log.Warn("refused a contract key from a worker that is not a current gatekeeper", "contract", id.String(), "sender", hexKey(kd.Gatekeeper))
		return nil
	}
	if kc, in, err := r.openContractKey(id, sealed, kd.PublicKey); err != nil {
		c.Broken = err.Error()
	} else {
		c.Key = kc
		if run := r.running[k]; run != nil {
			run.input = in
		}
	}
	if !kd.Initial || (r.running[k] == nil && c.Broken == "") {
		// Assigned after the deploy (or keyed before this worker kept the
		// code): recover the state, from input 0 if need be.
		if c.Recovery == nil {
			c.Recovery = &recovery{}
		}
		c.Recovery.Keyed = c.Key != nil
		r.log.Info("contract key received; recovering the contract's state", "contract", id.String())
		return nil
	}
	c.Live, c.Recovery = true, nil
	return r.runInput(r.running[k], c, ev, t)
}

// runInit runs input 0, the initialiser, with the deploy's arguments.
func (r *Runtime) runInit(run *running, c *contractState, ev *chainpb.WorkerEvent, kd *chainpb.ContractKeyed, t time.Time) error {
	id, _ := crypto.ContractIDFromBytes(kd.Contract)
	if c.Broken != "" || run == nil {
		return nil
	}
	deployer, _ := crypto.AddressFromBytes(c.Deployer)
	rc := &pruntimepb.CommandReceipt{}
	if err := r.execute(vm.EntryInit, run, c, ev, t, deployer.String(), kd.InitArgs, 0, rc); err != nil {
		return err
	}
	if !rc.Ok {
		c.Broken = "the contract's initialiser failed: " + rc.Error
		r.log.Warn("a contract's initialiser failed", "contract", id.String(), "err", rc.Error)
		return nil
	}
	r.log.Info("contract instantiated and initialised", "contract", id.String(), "gas", rc.GasUsed)
	return nil
}

// onReassigned: the instance's miners changed. Gatekeepers seal k_c to
// the added miners; an added miner starts a recovery; a removed one stops
// and erases the key and state.
func (r *Runtime) onReassigned(ra *chainpb.ContractReassigned) error {
	k := hexKey(ra.Contract)
	c := r.st.Contracts[k]
	if c == nil {
		return nil
	}
	c.Miners = ra.Miners
	id, _ := crypto.ContractIDFromBytes(ra.Contract)
	if err := r.sendContractKey(id, ra.Added); err != nil {
		return err
	}
	if r.id == nil {
		return nil
	}
	me := r.id.Public()
	switch {
	case inbox.IsMiner(ra.Removed, me):
		r.dropInstance(k, c)
		r.log.Info("this worker no longer runs the contract; erased its key and state", "contract", id.String(), "reason", ra.Reason)
	case inbox.IsMiner(ra.Added, me):
		c.Mine, c.Live, c.Recovery, c.Broken = true, false, &recovery{}, ""
		r.log.Info("assigned a contract; waiting for its key to recover it", "contract", id.String(), "reason", ra.Reason)
	}
	return nil
}

// dropInstance stops running an instance and erases its secrets.
func (r *Runtime) dropInstance(k string, c *contractState) {
	if run := r.running[k]; run != nil && run.session != nil {
		run.session.Close(context.Background())
	}
	delete(r.running, k)
	clear(c.Key)
	clear(c.NextKey)
	c.NextKey, c.Outgoing = nil, nil
	c.Mine, c.Live, c.Recovery, c.Key, c.State = false, false, nil, nil, nil
	c.Inputs, c.Sent, c.LastInput, c.Broken = 0, 0, 0, ""
}

// onCommand executes a command to an instance this pRuntime runs live, in
// block order.
func (r *Runtime) onCommand(ev *chainpb.WorkerEvent, cmd *chainpb.ContractCommand, t time.Time) error {
	k := hexKey(cmd.Contract)
	c := r.st.Contracts[k]
	if c == nil || !c.Mine || !c.Live {
		return nil
	}
	return r.runInput(r.running[k], c, ev, t)
}

// runInput executes one input of an instance (its init, a command or an
// accepted message) and counts it. Live execution and recovery both run
// inputs through here, so a replay does exactly what the first run did.
func (r *Runtime) runInput(run *running, c *contractState, ev *chainpb.WorkerEvent, t time.Time) error {
	c.Inputs, c.LastInput = c.Inputs+1, ev.Height
	switch k := ev.Kind.(type) {
	case *chainpb.WorkerEvent_ContractKeyed:
		return r.runInit(run, c, ev, k.ContractKeyed, t)
	case *chainpb.WorkerEvent_ContractCommand:
		return r.runCommand(run, c, ev, k.ContractCommand, t)
	case *chainpb.WorkerEvent_WorkerMessage:
		var wm chainpb.WorkerMessage
		if err := proto.Unmarshal(k.WorkerMessage.Payload, &wm); err != nil || wm.GetContractMessage() == nil {
			return fmt.Errorf("input %d is a worker message that carries no contract message", c.Inputs-1)
		}
		return r.runMessage(run, c, ev, wm.GetContractMessage(), t)
	}
	return fmt.Errorf("input %d is a %T event, not a contract input", c.Inputs-1, ev.Kind)
}

// runCommand executes a command and records its receipt for the sender. A
// command that does not open (tampered, sealed to another contract,
// replayed by anyone or in another transaction) is refused unexecuted.
func (r *Runtime) runCommand(run *running, c *contractState, ev *chainpb.WorkerEvent, cmd *chainpb.ContractCommand, t time.Time) error {
	sender, err := crypto.AddressFromBytes(cmd.Sender)
	if err != nil {
		return err
	}
	rc := &pruntimepb.CommandReceipt{Height: ev.Height, Index: ev.Index, Sender: cmd.Sender, Nonce: cmd.Nonce}
	defer r.receipts.put(hexKey(cmd.Contract), cmd.Sender, cmd.Nonce, rc)
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
	res, err := r.session(run, ev.Height).Execute(context.Background(), entry, vm.Env{
		Contract: run.id.String(), Caller: caller, Height: ev.Height, Time: t,
		Seed: crypto.ContractSeed(c.Key, ev.Height, ev.Index), Gas: gas, CheckSend: func(to string) error { return r.checkSend(to, ev) },
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
	if r.faults.diverge() {
		// Test-only fault hook (build tag phalafault): this miner's state
		// departs from what its inputs produce.
		run.store.Set([]byte("phala-fault/diverged"), binary.BigEndian.AppendUint64(nil, uint64(ev.Height)))
	}
	return r.sendMessages(run.id, c, res.Messages)
}

// session is the instance run executes block height's calls in: one per
// contract per block, a boundary every miner (and every replay) draws
// alike.
func (r *Runtime) session(run *running, height int64) *vm.Session {
	if run.session != nil && run.sessionHeight != height {
		run.session.Close(context.Background())
		run.session = nil
	}
	if run.session == nil {
		run.session, run.sessionHeight = r.vm.NewSession(run.code), height
	}
	return run.session
}

// endBlock ends block height's sessions and notes the checkpoints due at
// it (flushCheckpoints sends them at the end of the sync batch).
func (r *Runtime) endBlock(height int64) error {
	for _, run := range r.running {
		if run.session != nil {
			run.session.Close(context.Background())
			run.session = nil
		}
	}
	if height <= 0 {
		return nil
	}
	for k, run := range r.running {
		c := r.st.Contracts[k]
		switch {
		case c == nil:
		case run.rekey != 0:
			if err := r.noteRekey(run, c, height); err != nil {
				return err
			}
		case c.Rekeying:
			// No checkpoint under the old key while it rotates: the
			// rotation's checkpoint covers the same inputs, and one noted
			// later in a sync batch would replace it before it is sent.
		case c.Mine && c.Live && c.Key != nil && c.Interval != 0 && height%int64(c.Interval) == 0 && c.LastInput > height-int64(c.Interval):
			r.noteCheckpoint(run, c, height)
		}
	}
	return nil
}

// checkSend vets a message's receiver as the chain will: an instance keyed
// before ev, the event being executed. It looks at the receiver's place in
// the chain's order, not at what this pRuntime knows now, so a replay
// decides as the first execution did.
func (r *Runtime) checkSend(to string, ev *chainpb.WorkerEvent) error {
	id, err := crypto.ParseContractID(to)
	if err != nil {
		return err
	}
	c := r.st.Contracts[hexKey(id[:])]
	if c == nil || c.PublicKey == nil || c.KeyedHeight > ev.Height || (c.KeyedHeight == ev.Height && c.KeyedIndex >= ev.Index) {
		return fmt.Errorf("contract %s has no key (as of block %d)", to, ev.Height)
	}
	return nil
}

// sendMessages seals each message to its receiver's public key and sends
// it as this worker's signed message, numbered in the sending instance's
// own sequence (every miner and every replay numbers alike, so the chain
// takes each once).
func (r *Runtime) sendMessages(from crypto.ContractID, c *contractState, msgs []vm.Message) error {
	for _, m := range msgs {
		to, err := crypto.ParseContractID(m.To)
		if err != nil {
			return err // checkSend passed it
		}
		seq := c.Sent
		c.Sent++
		if seq < c.Accepted {
			continue // a replay's: the chain has it
		}
		o := outgoing{Seq: seq, To: to.Bytes(), Payload: m.Payload}
		c.Outgoing = append(c.Outgoing, o)
		if _, err := r.sendOutgoing(from, o); err != nil {
			return err
		}
	}
	return nil
}

// sendOutgoing seals a message to its receiver's current key and sends it
// as this worker's signed message. While the receiver's key rotates it
// waits, unsent (resendTo sends it when the rotation ends).
func (r *Runtime) sendOutgoing(from crypto.ContractID, o outgoing) (sent bool, err error) {
	rc := r.st.Contracts[hexKey(o.To)]
	if rc == nil || rc.Rekeying {
		return false, nil
	}
	to, _ := crypto.ContractIDFromBytes(o.To)
	env, err := crypto.Seal(rc.PublicKey, crypto.MessageInfo(r.chainID, from, to), o.Payload)
	if err != nil {
		return false, err
	}
	return true, r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractMessage{ContractMessage: &chainpb.ContractMessage{
		From: from.Bytes(), To: o.To, Envelope: env, GasLimit: MessageGas, Sequence: o.Seq, KeyEpoch: rc.KeyEpoch,
	}}})
}

// onContractMessage applies the chain's rule (inbox.AcceptMessage) to a
// message one instance sent another: every pRuntime counts what the chain
// accepts; the receiver's live miners execute it, with the sending
// instance as the caller.
func (r *Runtime) onContractMessage(ev *chainpb.WorkerEvent, worker []byte, m *chainpb.ContractMessage, t time.Time) error {
	from, to := r.st.Contracts[hexKey(m.From)], r.st.Contracts[hexKey(m.To)]
	var s *inbox.Sender
	if from != nil {
		s = &inbox.Sender{Miners: from.Miners, Sent: from.Accepted}
	}
	var rcv *inbox.Receiver
	if to != nil {
		rcv = &inbox.Receiver{Keyed: to.PublicKey != nil, Epoch: to.KeyEpoch, Rekeying: to.Rekeying}
	}
	switch inbox.AcceptMessage(s, rcv, worker, m) {
	case "":
	case inbox.NoteStaleKey:
		if r.isMe(worker) {
			// Sealed before the receiver's key rotated: seal it again.
			return r.resendOutgoing(hexKey(m.From), from)
		}
		return nil
	default:
		return nil
	}
	from.Accepted++
	for len(from.Outgoing) > 0 && from.Outgoing[0].Seq < from.Accepted {
		from.Outgoing = from.Outgoing[1:]
	}
	if !to.Mine || !to.Live {
		return nil
	}
	return r.runInput(r.running[hexKey(m.To)], to, ev, t)
}

// runMessage executes an accepted message. No receipt is kept: a contract
// cannot sign a query to read one. A failure is logged (without the
// payload) for the miner's operator.
func (r *Runtime) runMessage(run *running, to *contractState, ev *chainpb.WorkerEvent, m *chainpb.ContractMessage, t time.Time) error {
	fromID, _ := crypto.ContractIDFromBytes(m.From)
	toID, _ := crypto.ContractIDFromBytes(m.To)
	rc := &pruntimepb.CommandReceipt{}
	if err := r.deliver(run, to, ev, t, fromID.String(), m.Envelope, crypto.MessageInfo(r.chainID, fromID, toID), min(m.GasLimit, MessageGas), rc); err != nil {
		return err
	}
	if !rc.Ok {
		r.log.Info("a contract message failed", "from", fromID.String(), "to", toID.String(), "height", ev.Height, "err", rc.Error)
	}
	return nil
}

// receiptBook keeps the latest command receipts for their senders. Sync
// adds to it; queries read it; neither waits for the other's work.
type receiptBook struct {
	mu    sync.RWMutex
	m     map[string]*pruntimepb.CommandReceipt
	order []string
	// staged receipts become visible with the query view that reflects
	// them (publish): a client that sees a receipt reads its effect.
	staged []stagedReceipt
}

type stagedReceipt struct {
	key string
	rc  *pruntimepb.CommandReceipt
}

// maxReceipts bounds the receipts kept (the oldest go first).
const maxReceipts = 100_000

func receiptKey(contract string, sender []byte, nonce uint64) string {
	return fmt.Sprintf("%s/%x/%d", contract, sender, nonce)
}

func (b *receiptBook) put(contract string, sender []byte, nonce uint64, rc *pruntimepb.CommandReceipt) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.staged = append(b.staged, stagedReceipt{receiptKey(contract, sender, nonce), rc})
}

// publish makes the staged receipts visible; call it once the query view
// reflects their commands. discard drops them (the batch was not kept).
func (b *receiptBook) publish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*pruntimepb.CommandReceipt{}
	}
	for _, s := range b.staged {
		if _, ok := b.m[s.key]; !ok {
			b.order = append(b.order, s.key)
		}
		b.m[s.key] = s.rc
	}
	b.staged = b.staged[:0]
	for len(b.order) > maxReceipts {
		delete(b.m, b.order[0])
		b.order = b.order[1:]
	}
}

func (b *receiptBook) discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.staged = b.staged[:0]
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
	if cv.pending {
		ans.Error = cv.broken
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
