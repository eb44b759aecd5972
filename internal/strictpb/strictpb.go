// Package strictpb decodes untrusted protobuf bytes strictly: no field this
// build does not know (at any depth), and exactly one byte representation per
// message, so a hash or a signature over the bytes identifies the message.
package strictpb

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var canonical = proto.MarshalOptions{Deterministic: true}

// Decode unmarshals raw into m and accepts it only if no message inside it
// carries an unknown field and raw is exactly m's deterministic encoding:
// each field once, in field order, minimal varints, no zero-valued field.
func Decode(raw []byte, m proto.Message) error {
	if err := proto.Unmarshal(raw, m); err != nil {
		return err
	}
	if path, n, ok := UnknownField(m.ProtoReflect()); ok {
		return fmt.Errorf("%s has unknown field %d", path, n)
	}
	canon, err := canonical.Marshal(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(canon, raw) {
		return fmt.Errorf("not canonically encoded (each field once, in field order, no empty field)")
	}
	return nil
}

// UnknownField finds a field this build does not know anywhere inside m,
// naming the message that holds it.
func UnknownField(m protoreflect.Message) (path string, n protowire.Number, found bool) {
	if u := m.GetUnknown(); len(u) > 0 {
		n, _, _ := protowire.ConsumeTag(u)
		return string(m.Descriptor().Name()), n, true
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil || fd.IsMap():
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				path, n, found = UnknownField(l.Get(i).Message())
			}
		default:
			path, n, found = UnknownField(v.Message())
		}
		return !found
	})
	return path, n, found
}
