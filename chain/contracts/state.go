package contracts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
)

var paramsKey = []byte("contracts/params")

func contractKey(id []byte) []byte { return inbox.RecordKey(id) }
func codeKey(hash []byte) []byte   { return inbox.CodeKey(hash) }

// indexKey lists every instance id, in deployment order.
var indexKey = []byte("contracts/index")

// InitGenesis stores the parameters (at genesis, and when a param_change
// referendum for module "contracts" passes).
func InitGenesis(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "contract parameters")
}

// Get reads an instance; ErrUnknownContract if there is none.
func Get(r store.Reader, id []byte) (*chainpb.Contract, error) {
	b, err := r.Get(contractKey(id))
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, ErrUnknownContract.Wrapf("no contract %s; check the instance id `phala contract deploy` printed", idString(id))
	}
	var c chainpb.Contract
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("contract record %X: %w", id, err)
	}
	return &c, nil
}

// Code reads published code (gzip-compressed) by hash; nil if none.
func Code(r store.Reader, hash []byte) ([]byte, error) { return r.Get(codeKey(hash)) }

func put(kv store.KV, c *chainpb.Contract) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return err
	}
	return kv.Set(contractKey(c.Id), b)
}

func idString(b []byte) string {
	id, err := crypto.ContractIDFromBytes(b)
	if err != nil {
		return fmt.Sprintf("%X", b)
	}
	return id.String()
}

// validateMiners checks a list of miners without reading state.
func validateMiners(miners [][]byte) error {
	if len(miners) == 0 || len(miners) > MaxMiners {
		return ErrMalformed.Wrapf("an instance has 1 to %d miners, got %d", MaxMiners, len(miners))
	}
	for i, m := range miners {
		if len(m) != ed25519.PublicKeySize {
			return ErrMalformed.Wrapf("miner %d must be a worker's %d-byte identity key, got %d bytes", i, ed25519.PublicKeySize, len(m))
		}
		if inbox.IsMiner(miners[:i], m) {
			return ErrMalformed.Wrapf("miner %X is named twice", m)
		}
	}
	return nil
}

// ValidateDeploy checks a deployment without reading state.
func ValidateDeploy(m *chainpb.MsgDeployContract) error {
	if err := validateMiners(m.Miners); err != nil {
		return err
	}
	switch {
	case len(m.CodeGzip) == 0:
		return ErrMalformed.Wrapf("deploy has no code")
	case len(m.InitArgs) > MaxInitArgsBytes:
		return ErrMalformed.Wrapf("init arguments are %d bytes, limit %d", len(m.InitArgs), MaxInitArgsBytes)
	case len(m.InitArgs) > 0 && !json.Valid(m.InitArgs):
		return ErrMalformed.Wrapf("init arguments are not JSON")
	}
	return nil
}

// Gunzip decompresses contract code (wasmcode.Gunzip) with the module's
// error codes.
func Gunzip(gz []byte, limit int64) ([]byte, error) {
	code, err := wasmcode.Gunzip(gz, limit)
	switch {
	case errors.Is(err, wasmcode.ErrTooLarge):
		return nil, ErrCodeTooLarge.Wrapf("%v; build it with `phala contract build` (stripped) or shrink it", err)
	case err != nil:
		return nil, ErrMalformed.Wrapf("%v", err)
	}
	return code, nil
}

// Hooks are what the module needs of others.
type Hooks struct {
	// Launched reports whether gatekeepers hold the root key.
	Launched func() (bool, error)
	// Miner checks worker may run contracts (registered, active, not the
	// genesis worker, not a gatekeeper): an error wrapping ErrBadMiner if
	// it may not, another error if the state could not be read.
	Miner func(worker []byte) error
	// Gatekeeper reports whether worker holds a gatekeeper seat.
	Gatekeeper func(worker []byte) (bool, error)
	// Rotating reports whether a root key rotation pauses key traffic.
	Rotating func() (bool, error)
	// Workers lists registered workers in registration order, from which
	// a replacement miner is picked (Miner decides which may run).
	Workers func() ([][]byte, error)
}

// Deploy publishes the code and creates the instance deployer's
// transaction nonce names; the event it logs asks gatekeepers for k_c.
func Deploy(kv store.KV, log *mq.Log, deployer crypto.Address, nonce uint64, m *chainpb.MsgDeployContract, h Hooks) (crypto.ContractID, error) {
	var id crypto.ContractID
	p, err := LoadParams(kv)
	if err != nil {
		return id, err
	}
	if ok, err := h.Launched(); err != nil {
		return id, err
	} else if !ok {
		return id, ErrNotLaunched.Wrapf("wait until `phala status` shows the launched phase")
	}
	for _, w := range m.Miners {
		if err := h.Miner(w); err != nil {
			return id, err
		}
	}
	code, err := Gunzip(m.CodeGzip, p.MaxCodeBytes)
	if err != nil {
		return id, err
	}
	if err := pay(kv, deployer, p.DeployFee, "the deploy fee"); err != nil {
		return id, err
	}
	sum := sha256.Sum256(code)
	if have, err := Code(kv, sum[:]); err != nil {
		return id, err
	} else if have == nil {
		if err := kv.Set(codeKey(sum[:]), m.CodeGzip); err != nil {
			return id, err
		}
	}
	id = crypto.NewContractID(deployer, nonce)
	c := &chainpb.Contract{Id: id.Bytes(), CodeHash: sum[:], Deployer: deployer.Bytes(), Miners: m.Miners,
		DeployedHeight: log.Height(), CodeSize: uint64(len(code)), CheckpointInterval: p.interval(),
		AwaitingKey: m.Miners, InitArgs: m.InitArgs}
	if err := put(kv, c); err != nil {
		return id, err
	}
	idx, err := kv.Get(indexKey)
	if err != nil {
		return id, err
	}
	if err := kv.Set(indexKey, append(bytes.Clone(idx), c.Id...)); err != nil {
		return id, err
	}
	return id, log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractDeployed{ContractDeployed: &chainpb.ContractDeployed{
		Contract: c.Id, CodeHash: c.CodeHash, CodeGzip: m.CodeGzip, Miners: m.Miners, Deployer: c.Deployer, InitArgs: m.InitArgs,
		CheckpointInterval: c.CheckpointInterval,
	}}})
}

// ValidateCommand checks a command without reading state.
func ValidateCommand(m *chainpb.MsgContractCommand) error {
	if _, err := crypto.ContractIDFromBytes(m.Contract); err != nil {
		return ErrMalformed.Wrapf("command: %v", err)
	}
	if m.GasLimit == 0 {
		return ErrGasLimit.Wrapf("command gas limit is 0")
	}
	return validateEnvelope(m.Envelope)
}

func validateEnvelope(env []byte) error {
	if len(env) > MaxEnvelopeBytes {
		return ErrMalformed.Wrapf("sealed input is %d bytes, limit %d", len(env), MaxEnvelopeBytes)
	}
	if !inbox.ValidEnvelope(env) {
		return ErrMalformed.Wrapf("sealed input is not an envelope of suite %s; seal it with the contract's public key", crypto.DefaultSuite)
	}
	return nil
}

// enqueue makes the event just appended to log the instance's next input,
// kept in its inbox with the block time t. The caller stores c.
func enqueue(kv store.KV, log *mq.Log, c *chainpb.Contract, t time.Time) error {
	evs := log.Events()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&chainpb.ContractInput{TimeUnixNano: t.UnixNano(), Event: evs[len(evs)-1]})
	if err != nil {
		return err
	}
	if err := kv.Set(inbox.InputKey(c.Id, c.Inputs), b); err != nil {
		return err
	}
	c.Inputs++
	// Each of its miners has one more input to execute: the work the era's
	// miner rewards pay for.
	for _, m := range c.Miners {
		if err := addWork(kv, m, 1); err != nil {
			return err
		}
	}
	return nil
}

// pay moves a contract fee to the fee pool, which the era's rewards pay
// out to miners.
func pay(kv store.KV, from crypto.Address, amount uint64, what string) error {
	if err := bank.Debit(kv, from, amount, what); err != nil {
		return err
	}
	return bank.Credit(kv, bank.FeePool, amount)
}

func workKey(miner []byte) []byte { return append([]byte("contracts/work/"), miner...) }

func addWork(kv store.KV, miner []byte, n uint64) error {
	w, err := Work(kv, miner)
	if err != nil {
		return err
	}
	return store.SetUint64(kv, workKey(miner), w+n)
}

// Work is how many inputs were ordered to miner's contracts while it ran
// them, ever: the measure of its work.
func Work(r store.Reader, miner []byte) (uint64, error) {
	return store.Uint64(r, workKey(miner), fmt.Sprintf("the work of %X", miner))
}

// Command orders a sealed command: it charges the gas fee and logs the
// command for the miners and keeps it in the inbox (block time t) until a
// checkpoint covers it, so a miner that takes over later runs it too. The
// chain cannot open it. It is accepted while the instance has no working
// miner: it waits in the inbox.
func Command(kv store.KV, log *mq.Log, sender crypto.Address, nonce uint64, m *chainpb.MsgContractCommand, t time.Time) error {
	p, err := LoadParams(kv)
	if err != nil {
		return err
	}
	c, err := Get(kv, m.Contract)
	if err != nil {
		return err
	}
	if c.PublicKey == nil {
		return ErrNotKeyed.Wrapf("contract %s was deployed at block %d and the gatekeepers have not published its key yet; retry in a few blocks", idString(c.Id), c.DeployedHeight)
	}
	if c.Rekey != nil {
		return ErrRekeying.Wrapf("contract %s is rotating its key (until block %d at the latest); then read its public key again (a new one if the rotation completed) and send the command sealed to it", idString(c.Id), c.Rekey.Deadline)
	}
	if m.KeyEpoch != c.KeyEpoch {
		return ErrStaleKey.Wrapf("the command is sealed to key epoch %d; contract %s's current key is epoch %d: read its public key again and seal the command to it", m.KeyEpoch, idString(c.Id), c.KeyEpoch)
	}
	if m.GasLimit > p.MaxGas {
		return ErrGasLimit.Wrapf("gas limit %d is over the chain's %d", m.GasLimit, p.MaxGas)
	}
	if err := pay(kv, sender, p.GasFee(m.GasLimit), "the command's gas"); err != nil {
		return err
	}
	c.Commands++
	if err := log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractCommand{ContractCommand: &chainpb.ContractCommand{
		Contract: m.Contract, Sender: sender.Bytes(), Nonce: nonce, GasLimit: m.GasLimit, Envelope: m.Envelope,
	}}}); err != nil {
		return err
	}
	if err := enqueue(kv, log, c, t); err != nil {
		return err
	}
	return put(kv, c)
}

// HandleKey takes a gatekeeper's copy of k_c for the miners awaiting it.
// The first copy for an instance sets its public key and is its input 0
// (init); later copies key miners assigned later. A copy that keys no
// awaiting miner is ignored (note says why). t is the block time.
func HandleKey(kv store.KV, log *mq.Log, sender []byte, k *chainpb.ContractKey, t time.Time, h Hooks) (note string, err error) {
	if ok, err := h.Gatekeeper(sender); err != nil {
		return "", err
	} else if !ok {
		return "contract key from a worker that holds no gatekeeper seat", nil
	}
	if paused, err := h.Rotating(); err != nil {
		return "", err
	} else if paused {
		return "key traffic is paused for the root key rotation; the gatekeepers serve this key at Rotation Ready", nil
	}
	c, err := Get(kv, k.Contract)
	if errors.Is(err, ErrUnknownContract) {
		return "contract key for an unknown contract", nil
	} else if err != nil {
		return "", err
	}
	initial := c.PublicKey == nil
	if !initial && !bytes.Equal(c.PublicKey, k.PublicKey) {
		return "a later copy of the contract key names another public key; the first copy stands", nil
	}
	if _, err := crypto.ParseHPKEPublicKey(k.PublicKey); err != nil {
		return "contract key with an unusable public key", nil
	}
	if len(k.WrappedKey) == 0 || len(k.WrappedKey) > 256 || len(k.Sealed) > MaxMiners {
		return "contract key with a malformed wrapped key or too many sealed copies", nil
	}
	var keys []*chainpb.SealedKey
	var still [][]byte
	for _, w := range c.AwaitingKey {
		var found *chainpb.SealedKey
		for _, sk := range k.Sealed {
			if bytes.Equal(sk.Recipient, w) && len(sk.Envelope) > 0 && len(sk.Envelope) <= 4096 {
				found = sk
				break
			}
		}
		if found == nil {
			still = append(still, w)
			continue
		}
		keys = append(keys, found)
	}
	if len(keys) == 0 {
		return "duplicate contract key: no miner of the contract awaits one", nil
	}
	c.AwaitingKey = still
	if initial {
		c.PublicKey, c.WrappedKey, c.KeyedBy, c.KeyedHeight, c.KeySince = k.PublicKey, k.WrappedKey, sender, log.Height(), log.Height()
	}
	ev := &chainpb.ContractKeyed{Contract: c.Id, PublicKey: c.PublicKey, Keys: keys, Gatekeeper: sender, Initial: initial}
	if initial {
		ev.InitArgs, ev.WrappedKey = c.InitArgs, c.WrappedKey
	}
	if err := log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractKeyed{ContractKeyed: ev}}); err != nil {
		return "", err
	}
	if initial {
		if err := enqueue(kv, log, c, t); err != nil {
			return "", err
		}
	}
	return "", put(kv, c)
}

// HandleMessage decides whether a contract-to-contract message, already in
// the event log as its worker's signed message, is an input of its
// receiver (inbox.AcceptMessage; pRuntime applies the same rule): if so it
// is kept in the receiver's inbox and counted against the sender's
// sequence. note says why a message is not taken; empty means taken.
func HandleMessage(kv store.KV, log *mq.Log, worker []byte, m *chainpb.ContractMessage, t time.Time) (note string, err error) {
	from, err := Get(kv, m.From)
	if err != nil && !errors.Is(err, ErrUnknownContract) {
		return "", err
	}
	to, err := Get(kv, m.To)
	if err != nil && !errors.Is(err, ErrUnknownContract) {
		return "", err
	}
	var s *inbox.Sender
	if from != nil {
		s = &inbox.Sender{Miners: from.Miners, Sent: from.MessagesSent}
	}
	var rcv *inbox.Receiver
	if to != nil {
		rcv = &inbox.Receiver{Keyed: to.PublicKey != nil, Epoch: to.KeyEpoch, Rekeying: to.Rekey != nil}
	}
	if note := inbox.AcceptMessage(s, rcv, worker, m); note != "" {
		return note, nil
	}
	if bytes.Equal(from.Id, to.Id) {
		to = from
	}
	from.MessagesSent++
	if err := put(kv, from); err != nil {
		return "", err
	}
	if err := enqueue(kv, log, to, t); err != nil {
		return "", err
	}
	return "", put(kv, to)
}

// List returns every instance, in deployment order.
func List(r store.Reader) ([]*chainpb.Contract, error) {
	idx, err := r.Get(indexKey)
	if err != nil {
		return nil, err
	}
	out := make([]*chainpb.Contract, 0, len(idx)/crypto.AddressLen)
	for i := 0; i+crypto.AddressLen <= len(idx); i += crypto.AddressLen {
		c, err := Get(r, idx[i:i+crypto.AddressLen])
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Renew passes the instances a renewed worker runs to its successor: the
// successor's pRuntime is the same enclave, holding the same keys and
// state, and sends the instances' messages from now on. A key rotation in
// progress on one of them is called off (the next names the successor).
func Renew(kv store.KV, log *mq.Log, old, successor []byte) error {
	all, err := List(kv)
	if err != nil {
		return err
	}
	for _, c := range all {
		changed := false
		for _, l := range [][][]byte{c.Miners, c.AwaitingKey} {
			for i, w := range l {
				if bytes.Equal(w, old) {
					l[i], changed = successor, true
				}
			}
		}
		if changed {
			if err := dropPending(kv, c.Id, old); err != nil {
				return err
			}
			if c.Rekey != nil {
				// The rotation names, or seals the new key to, the old identity.
				if err := callOff(log, c, "a miner of the contract renewed its identity"); err != nil {
					return err
				}
			}
			if err := put(kv, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// KeyedContracts lists, in ascending id order, the instances whose k_c the
// chain keeps wrapped under the root key: the gatekeeper state a root key
// rotation re-encrypts.
func KeyedContracts(r store.Reader) ([][]byte, error) {
	all, err := List(r)
	if err != nil {
		return nil, err
	}
	var ids [][]byte
	for _, c := range all {
		if len(c.WrappedKey) > 0 {
			ids = append(ids, c.Id)
		}
	}
	slices.SortFunc(ids, bytes.Compare)
	return ids, nil
}

// SetWrappedKey replaces an instance's stored k_c with its re-encryption
// under a new root key.
func SetWrappedKey(kv store.KV, id, wrapped []byte) error {
	c, err := Get(kv, id)
	if err != nil {
		return err
	}
	c.WrappedKey = wrapped
	return put(kv, c)
}

// Awaiting lists the instances with miners a gatekeeper has not keyed yet,
// in deployment order.
func Awaiting(r store.Reader) ([]*chainpb.AwaitingKey, error) {
	all, err := List(r)
	if err != nil {
		return nil, err
	}
	var out []*chainpb.AwaitingKey
	for _, c := range all {
		if len(c.AwaitingKey) > 0 {
			out = append(out, &chainpb.AwaitingKey{Contract: c.Id, Miners: c.AwaitingKey})
		}
	}
	return out, nil
}
