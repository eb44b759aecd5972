package contracts

import (
	"bytes"
	"slices"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
)

// Contract key rotation. A contract's key k_c is rotated by one of its
// miners, so that a key leaked later does not open the inputs sealed
// before (forward secrecy of inputs):
//
//  1. At the end of a block where the key is due (Params.KeyRotationBlocks
//     old, or a miner left the contract), the chain holds the contract's
//     inputs (commands are refused with ErrRekeying, messages are not
//     accepted and their senders' miners resend them) and names a miner
//     (ContractRekeyDue).
//  2. That miner makes a new k_c, seals the state after every input so
//     far under it, and sends it as a checkpoint whose first chunk carries
//     the new public key, the key sealed to the root key's encryption key
//     (for the chain to keep) and sealed to each other miner.
//  3. When its last chunk lands, the checkpoint is stored and the key
//     replaces the old one together (ContractRekeyed): the checkpoint
//     covers every input sealed to the old key, so no one needs it any
//     more, and the miners erase it. Inputs resume under the new key.
//
// If the checkpoint does not land within RekeyHoldBlocks, or a root key
// rotation starts, or the miners change (a reassignment, a miner's identity
// renewal), the rotation is called off: the old key stays and inputs
// resume under it.
//
// No contract key rotation runs during a root key rotation: one starts
// only outside it, and the block's end that starts a root key rotation
// (gatekeeper.EndBlock, which runs before contracts.EndBlock) calls every
// contract key rotation off (endRekeys). So the wrapped key a rotation
// stores is never one the root key rotation has already re-encrypted.

// checkRekey checks a key rotation checkpoint p against the rotation in
// progress, on its first chunk and again when its last lands (the
// rotation may have been called off, or another begun, meanwhile).
// Nothing it checks changes while one rotation runs (its inputs are held;
// a change of miners calls it off), so a misfit keeps no chunk.
func checkRekey(c *chainpb.Contract, p *chainpb.Checkpoint) string {
	rk := p.Rekey
	switch {
	case c.Rekey == nil:
		return "key rotation checkpoint for a contract whose key is not rotating"
	case rk.Epoch != c.Rekey.Epoch || p.KeyEpoch != c.Rekey.Epoch:
		return "key rotation checkpoint for another key epoch"
	case !bytes.Equal(p.Miner, c.Rekey.Miner):
		return "key rotation checkpoint from a miner not named to rotate the key"
	case p.Inputs != c.Inputs:
		return "key rotation checkpoint does not cover every input sealed to the old key"
	case p.Height < c.Rekey.Started:
		// Taken for an earlier rotation to the same epoch, called off.
		return "key rotation checkpoint taken before the rotation started"
	}
	if _, err := crypto.ParseHPKEPublicKey(rk.PublicKey); err != nil {
		return "key rotation with an unusable public key"
	}
	if len(rk.WrappedKey) > maxKeyBytes || crypto.IsKeyWrap(rk.WrappedKey) || !inbox.ValidEnvelope(rk.WrappedKey) {
		return "key rotation without the new key sealed to the root key"
	}
	if slices.ContainsFunc(rk.Sealed, func(sk *chainpb.SealedKey) bool { return len(sk.Envelope) == 0 || len(sk.Envelope) > maxKeyBytes }) {
		return "key rotation with a malformed sealed copy"
	}
	others := slices.DeleteFunc(slices.Clone(c.Miners), func(m []byte) bool { return bytes.Equal(m, p.Miner) })
	if !sameSealed(rk.Sealed, others) {
		return "key rotation must seal the new key to exactly the contract's other miners"
	}
	return ""
}

// maxKeyBytes bounds a sealed key in a key rotation.
const maxKeyBytes = 4096

// sameSealed: keys are sealed to exactly the workers ws, once each.
func sameSealed(keys []*chainpb.SealedKey, ws [][]byte) bool {
	if len(keys) != len(ws) {
		return false
	}
	for i, k := range keys {
		seen := func(o *chainpb.SealedKey) bool { return bytes.Equal(o.Recipient, k.Recipient) }
		if !inbox.IsMiner(ws, k.Recipient) || slices.ContainsFunc(keys[:i], seen) {
			return false
		}
	}
	return true
}

// rekeyed makes the new key current (its checkpoint is stored) and
// announces it. The caller checked it with checkRekey.
func rekeyed(kv store.KV, log *mq.Log, c *chainpb.Contract, rk *chainpb.ContractRekey) error {
	miner := c.Rekey.Miner
	c.KeyEpoch, c.PublicKey, c.WrappedKey, c.KeySince = rk.Epoch, rk.PublicKey, rk.WrappedKey, log.Height()
	c.Rekey, c.RekeyAfter = nil, 0
	if err := put(kv, c); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractRekeyed{ContractRekeyed: &chainpb.ContractRekeyed{
		Contract: c.Id, Epoch: rk.Epoch, Ok: true, PublicKey: rk.PublicKey, Miner: miner, Keys: rk.Sealed, WrappedKey: rk.WrappedKey,
	}}})
}

// callOff ends c's key rotation without a new key; the next may start
// after a back-off. The caller stores c.
func callOff(log *mq.Log, c *chainpb.Contract, reason string) error {
	rk := c.Rekey
	c.Rekey, c.RekeyAfter = nil, log.Height()+rekeyBackoff
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractRekeyed{ContractRekeyed: &chainpb.ContractRekeyed{
		Contract: c.Id, Epoch: rk.Epoch, Miner: rk.Miner, Reason: reason,
	}}})
}

// rekeyDue reports whether c's key rotation should start at height.
func rekeyDue(c *chainpb.Contract, p Params, height int64) bool {
	switch {
	case p.KeyRotationBlocks == 0 || c.PublicKey == nil || c.Rekey != nil || len(c.Miners) == 0 || len(c.AwaitingKey) > 0:
		return false
	case height < c.RekeyAfter:
		return false
	case c.KeySince == 0:
		// A miner left: rotate as soon as a remaining miner shows it runs
		// the contract (a checkpoint), so the rotation does not hold the
		// inputs of a contract its new miner is still recovering.
		return checkpointer(c) != nil
	}
	return height-c.KeySince >= int64(p.KeyRotationBlocks)
}

// checkpointer is a current miner whose checkpoint (or acknowledgement)
// is the stored one: one that runs the contract live. nil if none.
func checkpointer(c *chainpb.Contract) []byte {
	cp := c.Checkpoint
	if cp == nil {
		return nil
	}
	for _, w := range append([][]byte{cp.Miner}, cp.Acks...) {
		if inbox.IsMiner(c.Miners, w) {
			return w
		}
	}
	return nil
}

// endRekeys runs at the end of each block for c: it calls a rotation off
// at its deadline or when a root key rotation starts, and starts one that
// is due. changed reports whether c must be stored.
func endRekeys(log *mq.Log, c *chainpb.Contract, p Params, rotating bool) (changed bool, err error) {
	height := log.Height()
	switch {
	case c.Rekey != nil && rotating:
		return true, callOff(log, c, "a root key rotation started")
	case c.Rekey != nil && height >= c.Rekey.Deadline:
		return true, callOff(log, c, "the miner's checkpoint under the new key did not land in time")
	case rotating || !rekeyDue(c, p, height):
		return false, nil
	}
	// The miner to rotate it: the one that checkpointed last, which runs
	// it; after a rotation that was called off, one of them in turn, so a
	// miner that does not answer is passed over.
	miner := checkpointer(c)
	if miner == nil || c.RekeyAfter > 0 {
		miner = c.Miners[(c.KeyEpoch+uint64(c.RekeyAfter))%uint64(len(c.Miners))]
	}
	c.Rekey = &chainpb.Rekey{Epoch: c.KeyEpoch + 1, Miner: miner, Inputs: c.Inputs, Started: height, Deadline: height + RekeyHoldBlocks}
	return true, log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractRekeyDue{ContractRekeyDue: &chainpb.ContractRekeyDue{
		Contract: c.Id, Epoch: c.Rekey.Epoch, Miner: miner, Inputs: c.Inputs, Deadline: c.Rekey.Deadline,
	}}})
}
