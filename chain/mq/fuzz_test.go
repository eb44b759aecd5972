package mq

import (
	"crypto/ed25519"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// FuzzValidateSigned: relayed worker messages come from anyone. Validation
// never panics, and accepts only what the sender's key signed.
func FuzzValidateSigned(f *testing.F) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	pub := key.Public().(ed25519.PublicKey)
	payload, _ := proto.Marshal(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: 1}}})
	good, _ := proto.Marshal(&chainpb.SignedMessage{Sender: pub, Sequence: 3, Payload: payload, Signature: ed25519.Sign(key, crypto.SignedMessageBytes("c", pub, 3, payload))})
	f.Add(good)
	f.Add(good[:50])
	f.Fuzz(func(t *testing.T, b []byte) {
		var m chainpb.SignedMessage
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		wm, err := ValidateSigned("c", &m)
		if err != nil {
			return
		}
		if wm == nil || !ed25519.Verify(m.Sender, crypto.SignedMessageBytes("c", m.Sender, m.Sequence, m.Payload), m.Signature) {
			t.Fatal("accepted a message its sender did not sign")
		}
		if m.Sequence != 3 || string(m.Payload) != string(payload) {
			t.Fatalf("forged message accepted: seq %d", m.Sequence)
		}
	})
}
