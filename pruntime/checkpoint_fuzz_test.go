package pruntime

import (
	"bytes"
	"testing"
)

// FuzzDecodeCheckpoint: a checkpoint's plaintext decodes strictly; what
// decodes encodes back to the same bytes.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(checkpointState{Inputs: 3, Sent: 1, Pairs: map[string][]byte{"a": []byte("1"), "bal/x": {0, 0, 9}}}))
	f.Add(encodeCheckpoint(checkpointState{Pairs: map[string][]byte{}}))
	f.Add([]byte(checkpointMagic + "\x01\x00\x02\x01a\x00\x01a\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		if again := encodeCheckpoint(st); !bytes.Equal(again, b) {
			t.Fatalf("decoded %x, re-encodes to %x", b, again)
		}
	})
}
