package inbox

import (
	"bytes"
	"testing"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// TestAcceptMessageHoldsForTheReceiversKey: a message is taken only when
// sealed to the receiver's current key and no rotation holds it; the
// refusals that keep the sequence open for a resend say so.
func TestAcceptMessageHoldsForTheReceiversKey(t *testing.T) {
	k, err := crypto.NewHPKEKey(bytes.Repeat([]byte{7}, crypto.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	env, err := crypto.Seal(k.PublicKey(), []byte("info"), []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	miner := bytes.Repeat([]byte{1}, 32)
	from := &Sender{Miners: [][]byte{miner}, Sent: 4}
	m := &chainpb.ContractMessage{Sequence: 4, Envelope: env, KeyEpoch: 2}
	for _, c := range []struct {
		name string
		to   *Receiver
		m    *chainpb.ContractMessage
		want string
	}{
		{"current key", &Receiver{Keyed: true, Epoch: 2}, m, ""},
		{"receiver rotating", &Receiver{Keyed: true, Epoch: 2, Rekeying: true}, m, NoteRekeying},
		{"retired key", &Receiver{Keyed: true, Epoch: 3}, m, NoteStaleKey},
		{"a key not yet made", &Receiver{Keyed: true, Epoch: 1}, m, NoteStaleKey},
		{"unknown receiver", nil, m, "unknown contract"},
		{"unkeyed receiver", &Receiver{}, m, "without a key"},
		{"duplicate before the key is looked at", &Receiver{Keyed: true, Epoch: 3}, &chainpb.ContractMessage{Sequence: 3, Envelope: env, KeyEpoch: 2}, "duplicate"},
	} {
		got := AcceptMessage(from, c.to, miner, c.m)
		if (c.want == "" && got != "") || (c.want != "" && !bytes.Contains([]byte(got), []byte(c.want))) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
