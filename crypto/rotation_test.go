package crypto

import (
	"bytes"
	"testing"
)

func TestRotationRootKeyNeedsBothShares(t *testing.T) {
	s := func(b byte) []byte { return bytes.Repeat([]byte{b}, RotationShareSize) }
	k, err := RotationRootKey("c", 1, 1, s(1), s(2), s(3), s(4))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := RotationRootKey("c", 1, 1, s(1), s(2), s(3), s(4))
	if !bytes.Equal(k, again) {
		t.Fatal("the same inputs give another key")
	}
	for name, other := range map[string]func() ([]byte, error){
		"outgoing share": func() ([]byte, error) { return RotationRootKey("c", 1, 1, s(9), s(2), s(3), s(4)) },
		"incoming share": func() ([]byte, error) { return RotationRootKey("c", 1, 1, s(1), s(9), s(3), s(4)) },
		"salt":           func() ([]byte, error) { return RotationRootKey("c", 1, 1, s(1), s(2), s(3), s(9)) },
		"swapped":        func() ([]byte, error) { return RotationRootKey("c", 1, 1, s(2), s(1), s(3), s(4)) },
		"attempt":        func() ([]byte, error) { return RotationRootKey("c", 1, 2, s(1), s(2), s(3), s(4)) },
		"era":            func() ([]byte, error) { return RotationRootKey("c", 2, 1, s(1), s(2), s(3), s(4)) },
		"chain":          func() ([]byte, error) { return RotationRootKey("d", 1, 1, s(1), s(2), s(3), s(4)) },
	} {
		o, err := other()
		if err != nil || bytes.Equal(o, k) {
			t.Errorf("changing the %s gives the same key (err %v)", name, err)
		}
	}
	if _, err := RotationRootKey("c", 1, 1, s(1)[:31], s(2), s(3), s(4)); err == nil {
		t.Error("a short share was accepted")
	}
}
