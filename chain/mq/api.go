// Package mq is the chain's message queue: the ordered worker event log each
// block carries. Accounts push ingress messages into it now; later modules
// append contract commands, registrations and key events the same way.
package mq

import (
	"encoding/binary"

	"github.com/phala-go/phala/chain/errs"
)

// Codespace of the errors below.
const Codespace = "mq"

// Stable rejection codes. Never renumber.
var (
	ErrInvalidTopic    = errs.Register(Codespace, 2, "invalid topic")
	ErrPayloadTooLarge = errs.Register(Codespace, 3, "payload too large")
	ErrMalformedSigned = errs.Register(Codespace, 4, "malformed signed message")
	ErrBadSignature    = errs.Register(Codespace, 5, "signed message signature verification failed")
	ErrSequenceReused  = errs.Register(Codespace, 6, "message already delivered")
	ErrSequenceSkipped = errs.Register(Codespace, 7, "message sequence skips ahead")
	ErrBadPayload      = errs.Register(Codespace, 8, "unknown or malformed worker message")
)

const (
	// MaxTopicBytes bounds a topic name.
	MaxTopicBytes = 64
	// MaxPayloadBytes bounds one pushed payload.
	MaxPayloadBytes = 64 << 10
)

// LogKey is where block height's event log is kept in the node's app
// database (outside the Merkle state: the app hash commits to it instead).
func LogKey(height int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("mq/log/"), uint64(height))
}
