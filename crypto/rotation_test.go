package crypto

import (
	"bytes"
	"crypto/rand"
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

func TestContractKeySealedToRootOpensOnlyUnderThatRoot(t *testing.T) {
	root, other := make([]byte, 32), make([]byte, 32)
	rand.Read(root)
	rand.Read(other)
	rk, err := RootHPKEKey(root)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := RootHPKEKey(root)
	if !bytes.Equal(rk.PublicKey(), again.PublicKey()) {
		t.Fatal("the root encryption key is not deterministic")
	}
	id := NewContractID(Address{1}, 7)
	kc := make([]byte, ContractKeySize)
	rand.Read(kc)
	sealed, err := SealContractKeyToRoot(rk.PublicKey(), "chain", id, kc)
	if err != nil {
		t.Fatal(err)
	}
	if IsKeyWrap(sealed) {
		t.Fatal("a key sealed to the root is taken for an AES wrap")
	}
	got, err := UnwrapContractKey(root, "chain", id, sealed)
	if err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("unwrap: %x %v", got, err)
	}
	if _, err := UnwrapContractKey(other, "chain", id, sealed); err == nil {
		t.Fatal("opened under another root key")
	}
	if _, err := UnwrapContractKey(root, "chain", NewContractID(Address{1}, 8), sealed); err == nil {
		t.Fatal("opened as another contract's key")
	}
	if _, err := UnwrapContractKey(root, "other-chain", id, sealed); err == nil {
		t.Fatal("opened on another chain")
	}
	w, err := WrapContractKey(root, "chain", id, kc)
	if err != nil || !IsKeyWrap(w) {
		t.Fatalf("an AES wrap is not recognised: %d bytes, %v", len(w), err)
	}
	if got, err := UnwrapContractKey(root, "chain", id, w); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("AES unwrap: %v", err)
	}
}

// TestKeyUnwrapperDerivesTheRootEncryptionKeyOnce: a run of keys sealed to
// the root key (a rotation re-encrypting rotated contract keys) derives
// the root encryption key once, and only when one needs it; every key
// opens as UnwrapContractKey opens it.
func TestKeyUnwrapperDerivesTheRootEncryptionKeyOnce(t *testing.T) {
	root := make([]byte, 32)
	rand.Read(root)
	rk, err := RootHPKEKey(root)
	if err != nil {
		t.Fatal(err)
	}
	u := NewKeyUnwrapper(root)
	id := NewContractID(Address{1}, 1)
	kc := make([]byte, ContractKeySize)
	rand.Read(kc)
	w, _ := WrapContractKey(root, "chain", id, kc)
	if got, err := u.Unwrap("chain", id, w); err != nil || !bytes.Equal(got, kc) {
		t.Fatalf("AES unwrap: %v", err)
	}
	if u.enc != nil {
		t.Fatal("derived the root encryption key for an AES-wrapped key")
	}
	var first *HPKEKey
	for n := range uint64(3) {
		id := NewContractID(Address{2}, n)
		kc := make([]byte, ContractKeySize)
		rand.Read(kc)
		sealed, err := SealContractKeyToRoot(rk.PublicKey(), "chain", id, kc)
		if err != nil {
			t.Fatal(err)
		}
		got, err := u.Unwrap("chain", id, sealed)
		if err != nil || !bytes.Equal(got, kc) {
			t.Fatalf("key %d: %v", n, err)
		}
		if again, err := UnwrapContractKey(root, "chain", id, sealed); err != nil || !bytes.Equal(again, kc) {
			t.Fatalf("key %d through UnwrapContractKey: %v", n, err)
		}
		if first == nil {
			first = u.enc
		}
		if u.enc == nil || u.enc != first {
			t.Fatalf("key %d: the root encryption key was derived again", n)
		}
	}
}
