package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckpointSealBindsEverything(t *testing.T) {
	kc := bytes.Repeat([]byte{7}, ContractKeySize)
	id := NewContractID(Address{1}, 3)
	root := bytes.Repeat([]byte{9}, 32)
	ad := CheckpointAD("c", id, 40, 12, root)
	state := []byte("the contract's state")
	sealed, err := SealCheckpoint(kc, ad, state)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, state) {
		t.Fatal("the sealed checkpoint holds the state in the clear")
	}
	if got, err := OpenCheckpoint(kc, ad, sealed); err != nil || !bytes.Equal(got, state) {
		t.Fatalf("open: %q, %v", got, err)
	}
	otherRoot := bytes.Repeat([]byte{8}, 32)
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct{ kc, ad, sealed []byte }{
		"another key":      {bytes.Repeat([]byte{6}, 32), ad, sealed},
		"another chain":    {kc, CheckpointAD("d", id, 40, 12, root), sealed},
		"another contract": {kc, CheckpointAD("c", NewContractID(Address{1}, 4), 40, 12, root), sealed},
		"another height":   {kc, CheckpointAD("c", id, 41, 12, root), sealed},
		"another inputs":   {kc, CheckpointAD("c", id, 40, 13, root), sealed},
		"another root":     {kc, CheckpointAD("c", id, 40, 12, otherRoot), sealed},
		"a flipped bit":    {kc, ad, tampered},
		"truncated":        {kc, ad, sealed[:20]},
	} {
		if _, err := OpenCheckpoint(c.kc, c.ad, c.sealed); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: opened (err %v)", name, err)
		}
	}
}
