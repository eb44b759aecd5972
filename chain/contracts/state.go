package contracts

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
)

var paramsKey = []byte("contracts/params")

func contractKey(id []byte) []byte { return append([]byte("contracts/c/"), id...) }
func codeKey(hash []byte) []byte   { return append([]byte("contracts/code/"), hash...) }

// indexKey lists every instance id, in deployment order.
var indexKey = []byte("contracts/index")

// InitGenesis stores the parameters.
func InitGenesis(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return kv.Set(paramsKey, b)
}

// LoadParams reads the parameters.
func LoadParams(r store.Reader) (Params, error) {
	var p Params
	b, err := r.Get(paramsKey)
	if err != nil || b == nil {
		return p, errors.Join(err, errors.New("state has no contract parameters"))
	}
	return p, json.Unmarshal(b, &p)
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

// ValidateDeploy checks a deployment without reading state.
func ValidateDeploy(m *chainpb.MsgDeployContract) error {
	switch {
	case len(m.CodeGzip) == 0:
		return ErrMalformed.Wrapf("deploy has no code")
	case len(m.Miner) != ed25519.PublicKeySize:
		return ErrMalformed.Wrapf("miner must be a worker's %d-byte identity key, got %d bytes", ed25519.PublicKeySize, len(m.Miner))
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
	// genesis worker, not a gatekeeper).
	Miner func(worker []byte) error
	// Gatekeeper reports whether worker holds a gatekeeper seat.
	Gatekeeper func(worker []byte) (bool, error)
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
	if err := h.Miner(m.Miner); err != nil {
		return id, err
	}
	code, err := Gunzip(m.CodeGzip, p.MaxCodeBytes)
	if err != nil {
		return id, err
	}
	if err := bank.Debit(kv, deployer, p.DeployFee, "the deploy fee"); err != nil {
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
	c := &chainpb.Contract{Id: id.Bytes(), CodeHash: sum[:], Deployer: deployer.Bytes(), Miner: m.Miner,
		DeployedHeight: log.Height(), CodeSize: uint64(len(code))}
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
		Contract: c.Id, CodeHash: c.CodeHash, CodeGzip: m.CodeGzip, Miner: m.Miner, Deployer: c.Deployer, InitArgs: m.InitArgs,
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
	if s, err := crypto.EnvelopeSuite(env); err != nil || s != crypto.DefaultSuite {
		return ErrMalformed.Wrapf("sealed input is not an envelope of suite %s; seal it with the contract's public key", crypto.DefaultSuite)
	}
	return nil
}

// Command orders a sealed command: it charges the gas fee and logs the
// command for the miner. The chain cannot open it.
func Command(kv store.KV, log *mq.Log, sender crypto.Address, nonce uint64, m *chainpb.MsgContractCommand) error {
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
	if m.GasLimit > p.MaxGas {
		return ErrGasLimit.Wrapf("gas limit %d is over the chain's %d", m.GasLimit, p.MaxGas)
	}
	if err := bank.Debit(kv, sender, p.GasFee(m.GasLimit), "the command's gas"); err != nil {
		return err
	}
	c.Commands++
	if err := put(kv, c); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractCommand{ContractCommand: &chainpb.ContractCommand{
		Contract: m.Contract, Sender: sender.Bytes(), Nonce: nonce, GasLimit: m.GasLimit, Envelope: m.Envelope,
	}}})
}

// HandleKey takes a gatekeeper's copy of k_c: the first copy for an
// instance wins and is logged for its miner; later ones are ignored (note
// says why).
func HandleKey(kv store.KV, log *mq.Log, sender []byte, k *chainpb.ContractKey, h Hooks) (note string, err error) {
	if ok, err := h.Gatekeeper(sender); err != nil {
		return "", err
	} else if !ok {
		return "contract key from a worker that holds no gatekeeper seat", nil
	}
	c, err := Get(kv, k.Contract)
	if errors.Is(err, ErrUnknownContract) {
		return "contract key for an unknown contract", nil
	} else if err != nil {
		return "", err
	}
	if c.PublicKey != nil {
		if !bytes.Equal(c.PublicKey, k.PublicKey) {
			return "a later copy of the contract key names another public key; the first copy stands", nil
		}
		return "duplicate contract key; the first copy won", nil
	}
	if _, err := crypto.ParseHPKEPublicKey(k.PublicKey); err != nil {
		return "contract key with an unusable public key", nil
	}
	if len(k.WrappedKey) == 0 || len(k.WrappedKey) > 256 || len(k.SealedKey) == 0 || len(k.SealedKey) > 4096 {
		return "contract key with a malformed wrapped or sealed key", nil
	}
	c.PublicKey, c.WrappedKey, c.KeyedBy, c.KeyedHeight = k.PublicKey, k.WrappedKey, sender, log.Height()
	if err := put(kv, c); err != nil {
		return "", err
	}
	return "", log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractKeyed{ContractKeyed: &chainpb.ContractKeyed{
		Contract: c.Id, PublicKey: c.PublicKey, Miner: c.Miner, SealedKey: k.SealedKey, Gatekeeper: sender,
	}}})
}

// CheckMessage decides whether a contract-to-contract message, already in
// the event log as its worker's signed message, is for the receiver's
// miner to execute: the sender must be the sending contract's miner and
// the receiver must be keyed. pRuntime applies the same rule (note is why
// not; empty means deliver).
func CheckMessage(r store.Reader, sender []byte, m *chainpb.ContractMessage) (note string, err error) {
	from, err := Get(r, m.From)
	if errors.Is(err, ErrUnknownContract) {
		return "message from an unknown contract", nil
	} else if err != nil {
		return "", err
	}
	if !bytes.Equal(from.Miner, sender) {
		return "message from a worker that is not the sending contract's miner", nil
	}
	to, err := Get(r, m.To)
	if errors.Is(err, ErrUnknownContract) {
		return "message to an unknown contract", nil
	} else if err != nil {
		return "", err
	}
	if to.PublicKey == nil {
		return "message to a contract without a key", nil
	}
	if validateEnvelope(m.Envelope) != nil {
		return "message with a malformed envelope", nil
	}
	return "", nil
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
// state, and sends the instances' messages from now on.
func Renew(kv store.KV, old, successor []byte) error {
	all, err := List(kv)
	if err != nil {
		return err
	}
	for _, c := range all {
		if bytes.Equal(c.Miner, old) {
			c.Miner = successor
			if err := put(kv, c); err != nil {
				return err
			}
		}
	}
	return nil
}
