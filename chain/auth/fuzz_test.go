package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// FuzzDecode feeds arbitrary bytes to the transaction decoder, which sees
// every byte a peer or RPC client sends. It must never panic, must refuse
// with a registered code, and whatever it accepts must be self-consistent.
func FuzzDecode(f *testing.F) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	for _, body := range []*chainpb.TxBody{
		{ChainId: "c", Nonce: 1, Fee: 5, Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: make([]byte, 20), Amount: 3}}},
		{ChainId: "c", Memo: "m", Msg: &chainpb.TxBody_PushMessage{PushMessage: &chainpb.MsgPushMessage{Topic: "t", Payload: []byte("p")}}},
		{ChainId: "c"},
	} {
		raw, err := Sign(key, body)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, raw []byte) {
		tx, err := Decode(raw, 1<<20)
		if err != nil {
			var e *errs.Error
			if !errors.As(err, &e) || e.Codespace != Codespace {
				t.Fatalf("refusal without a registered code: %v", err)
			}
			return
		}
		if tx.Signer != crypto.AddressFromPubKey(tx.PubKey) {
			t.Fatal("signer does not match public key")
		}
		if tx.Body.Msg == nil || tx.Body.Fee < 0 || len(tx.Body.Memo) > MaxMemoBytes {
			t.Fatalf("accepted an invalid body: %v", tx.Body)
		}
		// Verification is total too: it may refuse, never panic; and a
		// signature made for another chain id never verifies.
		_ = tx.Verify("c")
		if tx.Body.ChainId != "c" && tx.Verify("c") == nil {
			t.Fatal("verified a transaction for another chain")
		}
	})
}
