package mq

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// Log accumulates one block's worker events in execution order. It is used
// by the consensus goroutine only.
type Log struct {
	height int64
	events [][]byte
}

// NewLog starts the log of block height.
func NewLog(height int64) *Log { return &Log{height: height} }

// Height is the block the log belongs to.
func (l *Log) Height() int64 { return l.height }

// Len is the number of events so far.
func (l *Log) Len() int { return len(l.events) }

// Truncate drops events appended after the log had n, so a failed
// transaction leaves no event behind.
func (l *Log) Truncate(n int) { l.events = l.events[:n] }

// Events returns the canonical encodings, in order. The slice is shared.
func (l *Log) Events() [][]byte { return l.events }

// Append stamps ev with the block height and its index and appends its
// canonical encoding.
func (l *Log) Append(ev *chainpb.WorkerEvent) error {
	ev.Height = l.height
	ev.Index = uint32(len(l.events))
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode worker event: %w", err)
	}
	l.events = append(l.events, b)
	return nil
}

// ValidatePush checks a MsgPushMessage without reading state.
func ValidatePush(m *chainpb.MsgPushMessage) error {
	if len(m.Topic) == 0 || len(m.Topic) > MaxTopicBytes {
		return ErrInvalidTopic.Wrapf("topic must be 1 to %d bytes, got %d", MaxTopicBytes, len(m.Topic))
	}
	for i := 0; i < len(m.Topic); i++ {
		if c := m.Topic[i]; c < 0x21 || c > 0x7e {
			return ErrInvalidTopic.Wrapf("topic byte %d is %#x; use printable ASCII without spaces", i, c)
		}
	}
	if len(m.Payload) > MaxPayloadBytes {
		return ErrPayloadTooLarge.Wrapf("%d bytes, limit is %d", len(m.Payload), MaxPayloadBytes)
	}
	return nil
}

// Push appends a validated ingress message from sender to the log.
func Push(l *Log, sender crypto.Address, m *chainpb.MsgPushMessage) error {
	return l.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_Ingress{Ingress: &chainpb.IngressMessage{
		Sender:  sender.Bytes(),
		Topic:   m.Topic,
		Payload: m.Payload,
	}}})
}
