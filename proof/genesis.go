package proof

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// GenesisValidator is a validator of the genesis document as the genesis
// hash sees it.
type GenesisValidator struct {
	KeyType string
	PubKey  []byte
	Power   int64
}

// GenesisHash identifies a chain by its genesis: chain id, initial height,
// genesis time, validators and the application's genesis state (the exact
// app_state bytes). The chain computes it from InitChain, a pRuntime from the
// genesis document it was initialised with; a worker's registration commits
// to it, so a pRuntime fed another chain's genesis cannot register here.
func GenesisHash(chainID string, initialHeight int64, genesisTime time.Time, vals []GenesisValidator, appState []byte) []byte {
	var b []byte
	b = append(b, "phala/genesis/v1\x00"...)
	b = appendBytes(b, []byte(chainID))
	b = binary.BigEndian.AppendUint64(b, uint64(initialHeight))
	b = binary.BigEndian.AppendUint64(b, uint64(genesisTime.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(genesisTime.Nanosecond()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	vals = slices.SortedFunc(slices.Values(vals), func(x, y GenesisValidator) int {
		return cmp.Or(cmp.Compare(x.KeyType, y.KeyType), bytes.Compare(x.PubKey, y.PubKey))
	})
	for _, v := range vals {
		b = appendBytes(b, []byte(v.KeyType))
		b = appendBytes(b, v.PubKey)
		b = binary.BigEndian.AppendUint64(b, uint64(v.Power))
	}
	app := sha256.Sum256(appState)
	b = append(b, app[:]...)
	sum := sha256.Sum256(b)
	return sum[:]
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}
