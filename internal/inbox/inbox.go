// Package inbox holds the rules a contract's inputs obey, shared by the
// chain that orders them (chain/contracts) and the pRuntime that executes
// them: where the chain keeps a contract's record, inbox and checkpoint in
// its state, and which contract-to-contract messages it accepts. Both sides
// must decide alike, so they call the same code.
package inbox

import (
	"bytes"
	"encoding/binary"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

const (
	// ChunkBytes bounds one checkpoint chunk: a worker message's payload
	// is at most 64 KiB, and the chunk travels with its header.
	ChunkBytes = 60 << 10
	// MaxChunks bounds a checkpoint: 1,024 chunks, 60 MiB.
	MaxChunks = 1024
	// MaxEnvelopeBytes bounds a sealed command or message: a 64 KiB
	// contract input plus HPKE's overhead.
	MaxEnvelopeBytes = 64<<10 + 4<<10
	// MaxMiners bounds the miners (one, or redundant ones) of an instance.
	MaxMiners = 8
)

// RecordKey is where the chain keeps an instance's record (a Contract).
func RecordKey(id []byte) []byte { return append([]byte("contracts/c/"), id...) }

// CodeKey is where the chain keeps published code (gzip) by hash.
func CodeKey(hash []byte) []byte { return append([]byte("contracts/code/"), hash...) }

// InputKey is where the chain keeps input n of an instance (a
// ContractInput) until a stored checkpoint covers it.
func InputKey(id []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(append([]byte("contracts/in/"), id...), '/'), n)
}

// ChunkKey is where the chain keeps chunk i of an instance's stored
// checkpoint.
func ChunkKey(id []byte, i uint32) []byte {
	return binary.BigEndian.AppendUint32(append(append([]byte("contracts/ckpt/"), id...), '/'), i)
}

// ValidEnvelope reports whether env can be a sealed contract input: within
// the size bound and of the default HPKE suite.
func ValidEnvelope(env []byte) bool {
	if len(env) > MaxEnvelopeBytes {
		return false
	}
	s, err := crypto.EnvelopeSuite(env)
	return err == nil && s == crypto.DefaultSuite
}

// IsMiner reports whether w is one of miners.
func IsMiner(miners [][]byte, w []byte) bool {
	for _, m := range miners {
		if bytes.Equal(m, w) {
			return true
		}
	}
	return false
}

// Sender is what the rule needs of a message's sending instance.
type Sender struct {
	Miners [][]byte
	// Sent counts its messages accepted so far: the next must carry it.
	Sent uint64
}

// Receiver is what the rule needs of a message's receiving instance.
type Receiver struct {
	Keyed bool
	// Epoch is its key's (Contract.key_epoch); Rekeying: a key rotation
	// holds its inputs.
	Epoch    uint64
	Rekeying bool
}

// Notes of a message refused because of the receiver's key: not accepted,
// its sequence still open, so the sending contract's miners seal it again
// to the receiver's current key and resend it (pRuntime does).
const (
	NoteRekeying = "message to a contract whose key is rotating; the sending contract's miners send it again after"
	NoteStaleKey = "message sealed to the receiver's retired key; the sending contract's miners seal it again to the new key"
)

// AcceptMessage decides whether a contract-to-contract message, relayed as
// worker's signed message, is accepted as an input of its receiver: from
// a miner of the sending instance, the sender's next sequence (a copy a
// second miner or a re-execution produced is dropped), to a keyed
// instance whose inputs are not held, sealed to its current key, in a
// well-formed envelope. from is nil for an unknown sender, to for an
// unknown receiver. The empty note means accepted; otherwise it says why
// not.
func AcceptMessage(from *Sender, to *Receiver, worker []byte, m *chainpb.ContractMessage) (note string) {
	switch {
	case from == nil:
		return "message from an unknown contract"
	case !IsMiner(from.Miners, worker):
		return "message from a worker that is not a miner of the sending contract"
	case m.Sequence < from.Sent:
		return "duplicate message: this sequence of the sending contract was already accepted"
	case m.Sequence > from.Sent:
		return "message sequence skips ahead of the sending contract's next"
	case to == nil:
		return "message to an unknown contract"
	case !to.Keyed:
		return "message to a contract without a key"
	case !ValidEnvelope(m.Envelope):
		return "message with a malformed envelope"
	case to.Rekeying:
		return NoteRekeying
	case m.KeyEpoch != to.Epoch:
		return NoteStaleKey
	}
	return ""
}
