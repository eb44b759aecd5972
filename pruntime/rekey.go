package pruntime

import (
	"bytes"
	"crypto/rand"
	"fmt"

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
	c := r.st.Contracts[hexKey(e.Contract)]
	if c == nil {
		return nil
	}
	c.Rekeying = true
	if r.id == nil || !r.isMe(e.Miner) || !c.Mine || !c.Live || c.Key == nil || c.Broken != "" {
		return nil
	}
	if c.Inputs != e.Inputs {
		r.log.Warn("asked to rotate a contract key at another input than this miner's", "contract", hexKey(e.Contract), "chain", e.Inputs, "here", c.Inputs)
		return nil
	}
	// endBlock sends it, once the block is over.
	c.RekeyEpoch = e.Epoch
	return nil
}

// noteRekey makes the new k_c and notes the state after block height,
// sealed under it, as the checkpoint to send with it.
func (r *Runtime) noteRekey(run *running, c *contractState, height int64) error {
	epoch := c.RekeyEpoch
	c.RekeyEpoch = 0
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
		hk := r.st.WorkerKeys[hexKey(m)]
		if hk == nil {
			r.log.Warn("cannot rotate a contract key: a co-miner is unknown here", "contract", run.id.String(), "miner", hexKey(m))
			return nil
		}
		env, err := crypto.Seal(hk, crypto.ContractKeyInfo(r.chainID, run.id, m), kc)
		if err != nil {
			r.log.Warn("cannot seal a rotated contract key to a co-miner", "contract", run.id.String(), "err", err)
			return nil
		}
		rk.Sealed = append(rk.Sealed, &chainpb.SealedKey{Recipient: m, Envelope: env})
	}
	clear(c.NextKey)
	c.NextKey = kc
	run.due = &dueCheckpoint{height: height, state: checkpointState{Inputs: c.Inputs, Sent: c.Sent, Pairs: run.store.Pairs()},
		key: kc, epoch: epoch, rekey: rk}
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
	c.Rekeying, c.RekeyEpoch = false, 0
	next := c.NextKey
	c.NextKey = nil
	if e.Ok {
		c.KeyEpoch, c.PublicKey, c.Wrapped = e.Epoch, e.PublicKey, e.WrappedKey
		if err := r.switchKey(k, c, e, next); err != nil {
			return err
		}
	}
	clear(next)
	return r.resendAll()
}

// switchKey replaces a miner's k_c with the rotated one (its own, or the
// copy sealed to it) and erases the old one.
func (r *Runtime) switchKey(k string, c *contractState, e *chainpb.ContractRekeyed, mine []byte) error {
	if !c.Mine || r.id == nil {
		return nil
	}
	run := r.running[k]
	if run != nil {
		run.due = nil // sealed under the old key, and superseded
		run.dirty = true
	}
	id, _ := crypto.ContractIDFromBytes(e.Contract)
	var kc []byte
	if r.isMe(e.Miner) {
		kc = bytes.Clone(mine)
	} else {
		for _, sk := range e.Keys {
			if r.isMe(sk.Recipient) {
				var err error
				if kc, err = r.id.HPKE.Open(sk.Envelope, crypto.ContractKeyInfo(r.chainID, id, r.id.Public())); err != nil {
					kc = nil
				}
			}
		}
	}
	in, err := inputKeyFor(kc, e.PublicKey)
	old := c.Key
	c.Key = kc
	clear(old)
	if err != nil {
		c.Key = nil
		c.Broken = fmt.Sprintf("the rotated contract key did not reach this miner: %v", err)
		r.log.Warn("a rotated contract key did not reach this miner", "contract", id.String(), "err", err)
		return nil
	}
	if run != nil {
		run.input = in
	}
	r.log.Info("contract key rotated; the old key erased", "contract", id.String(), "epoch", e.Epoch)
	return nil
}

// inputKeyFor checks kc against the public key the chain published.
func inputKeyFor(kc, pub []byte) (*crypto.HPKEKey, error) {
	if kc == nil {
		return nil, fmt.Errorf("no copy of it opens here")
	}
	in, err := crypto.ContractInputKey(kc)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(in.PublicKey(), pub) {
		return nil, fmt.Errorf("it does not match the published public key")
	}
	return in, nil
}

// resendAll resends the messages the chain has not accepted from every
// instance this pRuntime runs live.
func (r *Runtime) resendAll() error {
	for k, c := range r.st.Contracts {
		if len(c.Outgoing) > 0 {
			if err := r.resendOutgoing(k, c); err != nil {
				return err
			}
		}
	}
	return nil
}

// resendOutgoing seals instance k's unaccepted messages again to their
// receivers' current keys and sends them, in sequence order.
func (r *Runtime) resendOutgoing(k string, c *contractState) error {
	if c == nil || !c.Mine || !c.Live {
		return nil
	}
	from := idOf(k)
	for _, o := range c.Outgoing {
		if rc := r.st.Contracts[hexKey(o.To)]; rc == nil || rc.Rekeying {
			return nil // the rest would skip ahead of it
		}
		if err := r.sendOutgoing(from, o); err != nil {
			return err
		}
	}
	return nil
}
