package proof

import (
	"bytes"
	"testing"
	"time"
)

// TestGenesisHashValidatorOrder: the chain (InitChain's sorted set) and a
// pRuntime (the genesis file's order) must agree on the hash, and every
// field still matters.
func TestGenesisHashValidatorOrder(t *testing.T) {
	at := time.Unix(1_700_000_000, 5)
	v1 := GenesisValidator{KeyType: "ed25519", PubKey: bytes.Repeat([]byte{1}, 32), Power: 10}
	v2 := GenesisValidator{KeyType: "ed25519", PubKey: bytes.Repeat([]byte{2}, 32), Power: 20}
	h := GenesisHash("c", 1, at, []GenesisValidator{v1, v2}, []byte("{}"))
	if !bytes.Equal(h, GenesisHash("c", 1, at, []GenesisValidator{v2, v1}, []byte("{}"))) {
		t.Fatal("the hash depends on the validators' order")
	}
	v2b := v2
	v2b.Power = 21
	for name, other := range map[string][]byte{
		"chain id":  GenesisHash("d", 1, at, []GenesisValidator{v1, v2}, []byte("{}")),
		"height":    GenesisHash("c", 2, at, []GenesisValidator{v1, v2}, []byte("{}")),
		"time":      GenesisHash("c", 1, at.Add(1), []GenesisValidator{v1, v2}, []byte("{}")),
		"power":     GenesisHash("c", 1, at, []GenesisValidator{v1, v2b}, []byte("{}")),
		"validator": GenesisHash("c", 1, at, []GenesisValidator{v1}, []byte("{}")),
		"app state": GenesisHash("c", 1, at, []GenesisValidator{v1, v2}, []byte("{ }")),
	} {
		if bytes.Equal(h, other) {
			t.Errorf("changing the %s leaves the hash unchanged", name)
		}
	}
}
