package mq

import (
	"crypto/ed25519"
	"fmt"

	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/chainpb"
)

func sequenceKey(sender []byte) []byte { return append([]byte("mq/seq/"), sender...) }

// NextSequence is the sequence the sender's next message must carry.
func NextSequence(r store.Reader, sender []byte) (uint64, error) {
	return store.Uint64(r, sequenceKey(sender), fmt.Sprintf("the sequence record of %X", sender))
}

// ValidateSigned checks a signed message without state: its shape, its
// signature under its sender key, and that its payload is a WorkerMessage
// this chain knows. It returns the decoded payload.
func ValidateSigned(chainID string, m *chainpb.SignedMessage) (*chainpb.WorkerMessage, error) {
	if m == nil {
		return nil, ErrMalformedSigned.Wrapf("no message")
	}
	if len(m.Sender) != ed25519.PublicKeySize {
		return nil, ErrMalformedSigned.Wrapf("sender must be a %d-byte key, got %d bytes", ed25519.PublicKeySize, len(m.Sender))
	}
	if len(m.Payload) > MaxPayloadBytes {
		return nil, ErrPayloadTooLarge.Wrapf("%d bytes, limit is %d", len(m.Payload), MaxPayloadBytes)
	}
	if len(m.Signature) != ed25519.SignatureSize {
		return nil, ErrMalformedSigned.Wrapf("signature must be %d bytes, got %d", ed25519.SignatureSize, len(m.Signature))
	}
	if !crypto.VerifySignature(m.Sender, crypto.SignedMessageBytes(chainID, m.Sender, m.Sequence, m.Payload), m.Signature) {
		return nil, ErrBadSignature.Wrapf("message %d of worker %X", m.Sequence, m.Sender)
	}
	return DecodeWorkerMessage(m.Payload)
}

// DecodeWorkerMessage decodes a signed message's payload strictly.
func DecodeWorkerMessage(b []byte) (*chainpb.WorkerMessage, error) {
	var wm chainpb.WorkerMessage
	if err := strictpb.Decode(b, &wm); err != nil {
		return nil, ErrBadPayload.Wrapf("%v", err)
	}
	if wm.Kind == nil {
		return nil, ErrBadPayload.Wrapf("the payload is no worker message this chain knows; upgrade the node")
	}
	return &wm, nil
}

// Deliver accepts a validated signed message whose sender is an active
// worker (the caller checked): its sequence must be the sender's next. The
// message goes into the event log for every pRuntime to see.
func Deliver(kv store.KV, l *Log, m *chainpb.SignedMessage) error {
	next, err := NextSequence(kv, m.Sender)
	if err != nil {
		return err
	}
	switch {
	case m.Sequence < next:
		return ErrSequenceReused.Wrapf("worker %X sent message %d; the next is %d", m.Sender, m.Sequence, next)
	case m.Sequence > next:
		return ErrSequenceSkipped.Wrapf("worker %X sent message %d; the next is %d (send the earlier ones first)", m.Sender, m.Sequence, next)
	}
	if err := store.SetUint64(kv, sequenceKey(m.Sender), next+1); err != nil {
		return err
	}
	return l.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_WorkerMessage{WorkerMessage: m}})
}
