package pruntime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/pruntime/vm"
)

// A checkpoint's plaintext: the instance's place in its inputs and
// messages, its store, pairs sorted by key, and (when there are any) the
// messages it sent that the chain had not accepted, in sequence order:
//
//	"phala-ckpt/1" | uvarint inputs | uvarint sent | uvarint n |
//	n × (uvarint len | key | uvarint len | value) |
//	[uvarint m > 0 | m × (uvarint seq | uvarint len | to | uvarint len | payload)]
//
// A miner that recovers from it sends those messages (the chain may have
// refused them while their receiver's key rotated, and the inputs that
// produced them are gone from the inbox).
//
// It is sealed under k_c (crypto.SealCheckpoint) bound to the height, the
// inputs and the store's root, so what opens is what the miner wrote.
const checkpointMagic = "phala-ckpt/1"

// maxCheckpointBytes bounds a checkpoint (inbox.MaxChunks chunks).
const maxCheckpointBytes = inbox.MaxChunks * inbox.ChunkBytes

type checkpointState struct {
	Inputs, Sent uint64
	Pairs        map[string][]byte
	Outgoing     []outgoing
}

func encodeCheckpoint(s checkpointState) []byte {
	keys := make([]string, 0, len(s.Pairs))
	size := len(checkpointMagic) + 30
	for k, v := range s.Pairs {
		keys = append(keys, k)
		size += len(k) + len(v) + 10
	}
	slices.Sort(keys)
	b := make([]byte, 0, size)
	b = append(b, checkpointMagic...)
	b = binary.AppendUvarint(b, s.Inputs)
	b = binary.AppendUvarint(b, s.Sent)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		v := s.Pairs[k]
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	if len(s.Outgoing) > 0 {
		b = binary.AppendUvarint(b, uint64(len(s.Outgoing)))
		for _, o := range s.Outgoing {
			b = binary.AppendUvarint(b, o.Seq)
			b = binary.AppendUvarint(b, uint64(len(o.To)))
			b = append(b, o.To...)
			b = binary.AppendUvarint(b, uint64(len(o.Payload)))
			b = append(b, o.Payload...)
		}
	}
	return b
}

var errCheckpoint = errors.New("malformed checkpoint")

// decodeCheckpoint reverses encodeCheckpoint strictly: keys in increasing
// order, no trailing bytes.
func decodeCheckpoint(b []byte) (checkpointState, error) {
	var s checkpointState
	if len(b) < len(checkpointMagic) || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return s, fmt.Errorf("%w: no %q header", errCheckpoint, checkpointMagic)
	}
	b = b[len(checkpointMagic):]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 || n != len(binary.AppendUvarint(nil, v)) { // canonical only
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	bytesOf := func() ([]byte, bool) {
		l, ok := next()
		if !ok || l > uint64(len(b)) {
			return nil, false
		}
		v := b[:l:l]
		b = b[l:]
		return v, true
	}
	var ok bool
	var n uint64
	if s.Inputs, ok = next(); !ok {
		return s, fmt.Errorf("%w: inputs", errCheckpoint)
	}
	if s.Sent, ok = next(); !ok {
		return s, fmt.Errorf("%w: sent", errCheckpoint)
	}
	if n, ok = next(); !ok || n > uint64(len(b))/2 {
		return s, fmt.Errorf("%w: pair count", errCheckpoint)
	}
	s.Pairs = make(map[string][]byte, n)
	var last []byte
	for i := range n {
		k, ok := bytesOf()
		if !ok {
			return s, fmt.Errorf("%w: key %d", errCheckpoint, i)
		}
		if i > 0 && string(k) <= string(last) {
			return s, fmt.Errorf("%w: keys out of order at %d", errCheckpoint, i)
		}
		v, ok := bytesOf()
		if !ok {
			return s, fmt.Errorf("%w: value %d", errCheckpoint, i)
		}
		s.Pairs[string(k)], last = v, k
	}
	if len(b) > 0 {
		if n, ok = next(); !ok || n == 0 || n > uint64(len(b))/3 {
			return s, fmt.Errorf("%w: message count", errCheckpoint)
		}
		s.Outgoing = make([]outgoing, n)
		for i := range s.Outgoing {
			o := &s.Outgoing[i]
			if o.Seq, ok = next(); !ok || o.Seq >= s.Sent || (i > 0 && o.Seq <= s.Outgoing[i-1].Seq) {
				return s, fmt.Errorf("%w: message %d's sequence", errCheckpoint, i)
			}
			if o.To, ok = bytesOf(); !ok || len(o.To) != crypto.AddressLen {
				return s, fmt.Errorf("%w: message %d's receiver", errCheckpoint, i)
			}
			if o.Payload, ok = bytesOf(); !ok {
				return s, fmt.Errorf("%w: message %d's payload", errCheckpoint, i)
			}
		}
	}
	if len(b) != 0 {
		return s, fmt.Errorf("%w: %d trailing bytes", errCheckpoint, len(b))
	}
	return s, nil
}

// dueCheckpoint is an instance's state as it stood at a checkpoint height
// (its pairs shared, not copied: the store replaces values, never edits
// them), kept until the end of the sync batch.
type dueCheckpoint struct {
	height int64
	state  checkpointState
	// key and epoch: the k_c it is sealed under. rekey (a key rotation)
	// makes it carry that key as the new one.
	key   []byte
	epoch uint64
	rekey *chainpb.ContractRekey
}

// checkpointOf is an instance's state as a checkpoint holds it.
func checkpointOf(run *running, c *contractState) checkpointState {
	return checkpointState{Inputs: c.Inputs, Sent: c.Sent, Pairs: run.store.Pairs(), Outgoing: slices.Clone(c.Outgoing)}
}

// noteCheckpoint records the instance's state after block height as due.
// A later due checkpoint in the same sync batch replaces it: a miner
// catching up sends one checkpoint per batch, not one per boundary it
// crosses (older ones would be superseded before they land).
func (r *Runtime) noteCheckpoint(run *running, c *contractState, height int64) {
	run.due = &dueCheckpoint{height: height, state: checkpointOf(run, c), key: c.Key, epoch: c.KeyEpoch}
}

// flushCheckpoints seals and sends the checkpoints noted in this batch.
func (r *Runtime) flushCheckpoints() error {
	for k, run := range r.running {
		if run.due == nil {
			continue
		}
		d := run.due
		run.due = nil
		if c := r.st.Contracts[k]; c != nil && d.key != nil && c.Mine {
			if err := r.sendCheckpoint(run.id, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// sendCheckpoint seals an instance's state after block d.height and sends
// it in chunks as this worker's messages.
func (r *Runtime) sendCheckpoint(id crypto.ContractID, d *dueCheckpoint) error {
	height, root := d.height, vm.NewMemStoreFrom(d.state.Pairs).Root()
	plain := encodeCheckpoint(d.state)
	sealed, err := crypto.SealCheckpoint(d.key, crypto.CheckpointAD(r.chainID, id, height, d.state.Inputs, root[:]), plain)
	if err != nil {
		return err
	}
	if len(sealed) > maxCheckpointBytes {
		r.log.Warn("a contract's state is too large to checkpoint on chain", "contract", id.String(), "bytes", len(sealed))
		return nil
	}
	chunks := uint32((len(sealed) + inbox.ChunkBytes - 1) / inbox.ChunkBytes)
	for i := range chunks {
		data := sealed[int(i)*inbox.ChunkBytes : min(len(sealed), int(i+1)*inbox.ChunkBytes)]
		cp := &chainpb.ContractCheckpoint{
			Contract: id.Bytes(), Height: height, Inputs: d.state.Inputs, StateRoot: root[:],
			Index: i, Chunks: chunks, Size: uint64(len(sealed)), Data: data, KeyEpoch: d.epoch,
		}
		if i == 0 {
			cp.Rekey = d.rekey
		}
		if err := r.send(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_ContractCheckpoint{ContractCheckpoint: cp}}); err != nil {
			return err
		}
	}
	r.log.Info("checkpointed a contract", "contract", id.String(), "height", height, "inputs", d.state.Inputs, "bytes", len(sealed), "chunks", chunks)
	return nil
}
