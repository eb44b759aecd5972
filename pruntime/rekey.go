package pruntime

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// Contract key rotation, a miner's side (the protocol is in
// chain/contracts/rekey.go). The named miner makes the new k_c at the end
// of the block that started the rotation, when it has executed every
// input, and sends the state sealed under it with the key; every miner
// switches to the new key and erases the old one when the chain stores
// that checkpoint.

// onRekeyDue: the chain holds the instance's inputs for a key rotation.
func (r *Runtime) onRekeyDue(e *chainpb.ContractRekeyDue) error {
	k := hexKey(e.Contract)
	c := r.st.Contracts[k]
	if c == nil {
		return nil
	}
	c.Rekeying = true
	run := r.running[k]
	if run == nil || !r.isMe(e.Miner) || !c.Mine || !c.Live || c.Key == nil || c.Broken != "" {
		return nil
	}
	if c.Inputs != e.Inputs {
		r.log.Warn("asked to rotate a contract key at another input than this miner's", "contract", k, "chain", e.Inputs, "here", c.Inputs)
		return nil
	}
	// endBlock notes it, once the block is over.
	run.rekey = e.Epoch
	return nil
}

// noteRekey makes the new k_c and notes the state after block height,
// sealed under it, as the checkpoint to send with it.
func (r *Runtime) noteRekey(run *running, c *contractState, height int64) error {
	epoch := run.rekey
	run.rekey = 0
	if r.st.RootHPKE == nil {
		r.log.Warn("cannot rotate a contract key: the root key's encryption key is unknown here", "contract", run.id.String())
		return nil
	}
	kc := make([]byte, crypto.ContractKeySize)
	rand.Read(kc)
	in, err := crypto.ContractInputKey(kc)
	if err != nil {
		return err
	}
	wrapped, err := crypto.SealContractKeyToRoot(r.st.RootHPKE, r.chainID, run.id, kc)
	if err != nil {
		r.log.Warn("cannot seal a rotated contract key to the root key", "contract", run.id.String(), "err", err)
		return nil
	}
	rk := &chainpb.ContractRekey{Epoch: epoch, PublicKey: in.PublicKey(), WrappedKey: wrapped}
	for _, m := range c.Miners {
		if r.isMe(m) {
			continue
		}
		sk, err := r.sealKeyTo(run.id, m, kc)
		if err != nil {
			// The chain takes the key only sealed to every other miner.
			r.log.Warn("cannot rotate a contract key: not sealing it to a co-miner", "contract", run.id.String(), "miner", hexKey(m), "err", err)
			return nil
		}
		rk.Sealed = append(rk.Sealed, sk)
	}
	clear(c.NextKey)
	c.NextKey = kc
	run.due = &dueCheckpoint{height: height, state: checkpointOf(run, c), key: kc, epoch: epoch, rekey: rk}
	r.log.Info("rotating a contract key", "contract", run.id.String(), "epoch", epoch, "height", height)
	return nil
}

// onRekeyed: the rotation ended. On success every miner switches to the
// new key and erases the old one; either way inputs resume, and messages
// held back by the rotation are sent.
func (r *Runtime) onRekeyed(e *chainpb.ContractRekeyed) error {
	k := hexKey(e.Contract)
	c := r.st.Contracts[k]
	if c == nil {
		return nil
	}
	c.Rekeying = false
	next := c.NextKey
	c.NextKey = nil
	if e.Ok {
		c.KeyEpoch, c.PublicKey, c.Wrapped = e.Epoch, e.PublicKey, e.WrappedKey
		r.switchKey(k, c, e, next)
	}
	clear(next)
	return r.resendTo(e.Contract)
}

// switchKey replaces a miner's k_c with the rotated one (its own, or the
// copy sealed to it) and erases the old one. A miner still taking the
// instance over switches too: the checkpoint it recovers from is now the
// rotation's, sealed under the new key.
func (r *Runtime) switchKey(k string, c *contractState, e *chainpb.ContractRekeyed, mine []byte) {
	if !c.Mine || r.id == nil {
		return
	}
	run := r.running[k]
	if run != nil {
		run.due = nil // sealed under the old key, and superseded
		run.dirty = true
	}
	id, _ := crypto.ContractIDFromBytes(e.Contract)
	var kc []byte
	var in *crypto.HPKEKey
	var err error
	switch sealed := r.sealedToMe(e.Keys); {
	case r.isMe(e.Miner):
		kc = bytes.Clone(mine)
		if in, err = checkContractKey(kc, e.PublicKey); err != nil {
			clear(kc)
			kc = nil
		}
	case sealed == nil:
		err = errors.New("no copy of it was sealed to this miner")
	default:
		kc, in, err = r.openContractKey(id, sealed, e.PublicKey)
	}
	clear(c.Key)
	c.Key = kc
	if err != nil {
		c.Broken = fmt.Sprintf("the rotated contract key did not reach this miner: %v", err)
		r.log.Warn("a rotated contract key did not reach this miner", "contract", id.String(), "err", err)
		return
	}
	if run != nil {
		run.input = in
	}
	r.log.Info("contract key rotated; the old key erased", "contract", id.String(), "epoch", e.Epoch)
}

// resendTo resends the messages the chain has not accepted from every
// instance this pRuntime runs that has one to instance to, whose key
// rotation just ended: the chain refused them (or the rest behind them)
// while it ran, or they waited for it.
func (r *Runtime) resendTo(to []byte) error {
	for k := range r.running {
		c := r.st.Contracts[k]
		if slices.ContainsFunc(c.Outgoing, func(o outgoing) bool { return bytes.Equal(o.To, to) }) {
			if err := r.resendOutgoing(k, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// resendOutgoing seals instance k's unaccepted messages again to their
// receivers' current keys and sends them, in sequence order, up to the
// first whose receiver's key is rotating (the rest would skip ahead of
// it).
func (r *Runtime) resendOutgoing(k string, c *contractState) error {
	if c == nil || !c.Mine {
		return nil
	}
	from := idOf(k)
	for _, o := range c.Outgoing {
		if sent, err := r.sendOutgoing(from, o); err != nil || !sent {
			return err
		}
	}
	return nil
}
