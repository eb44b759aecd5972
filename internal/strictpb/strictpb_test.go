package strictpb

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/chainpb"
)

func TestDecode(t *testing.T) {
	ho := &chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Handover{Handover: &chainpb.RootKeyHandover{Round: 1,
		Keys: []*chainpb.SealedKey{{Recipient: []byte{1}}, {Recipient: []byte{2}}}}}}
	good, _ := canonical.Marshal(ho)
	var m chainpb.WorkerMessage
	if err := Decode(good, &m); err != nil {
		t.Fatal(err)
	}
	// An unknown field inside the second element of a repeated field.
	bad := proto.Clone(ho).(*chainpb.WorkerMessage)
	k := bad.GetHandover().Keys[1]
	k.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	raw, _ := canonical.Marshal(bad)
	if err := Decode(raw, &chainpb.WorkerMessage{}); err == nil || !strings.Contains(err.Error(), "SealedKey has unknown field 99") {
		t.Fatalf("nested unknown field: %v", err)
	}
	// A field repeated (the last one wins) is another encoding of the
	// same message: refused.
	var r chainpb.RootKeyHandover
	hb, _ := canonical.Marshal(ho.GetHandover())
	if err := Decode(append(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), hb...), &r); err == nil {
		t.Fatal("non-canonical encoding accepted")
	}
}
