package registry

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// FuzzDecodeWorkerInfo: registration info comes from anyone. Decoding never
// panics, and what it accepts has the sizes the registry relies on.
func FuzzDecodeWorkerInfo(f *testing.F) {
	k, _ := crypto.NewHPKEKey(bytes.Repeat([]byte{1}, 32))
	good, _ := proto.Marshal(&chainpb.WorkerInfo{SigningKey: bytes.Repeat([]byte{7}, 32), HpkeKey: k.PublicKey(), Operator: make([]byte, 20), GenesisHash: make([]byte, 32), Endpoint: "x"})
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := DecodeWorkerInfo(b)
		if err != nil {
			return
		}
		if len(info.SigningKey) != 32 || len(info.Operator) != 20 || len(info.GenesisHash) != 32 || len(info.Endpoint) > MaxEndpointBytes {
			t.Fatalf("accepted malformed info %+v", info)
		}
		if _, err := crypto.ParseHPKEPublicKey(info.HpkeKey); err != nil {
			t.Fatalf("accepted a bad HPKE key: %v", err)
		}
	})
}
