package detrand

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

func TestStream(t *testing.T) {
	whole := make([]byte, 100)
	New([]byte("s")).Read(whole)
	// The first block is SHA-256 of the tag, the seed and counter 0.
	first := sha256.Sum256(append([]byte("phala/contract-random/v1\x00s"), 0, 0, 0, 0, 0, 0, 0, 0))
	if !bytes.Equal(whole[:32], first[:]) {
		t.Fatal("the stream does not start with SHA-256(tag ‖ seed ‖ 0)")
	}
	// Reading in pieces gives the same bytes.
	r := New([]byte("s"))
	var pieces []byte
	for _, n := range []int{1, 31, 33, 35} {
		p := make([]byte, n)
		r.Read(p)
		pieces = append(pieces, p...)
	}
	if !bytes.Equal(pieces, whole) {
		t.Fatal("chunked reads differ from one read")
	}
	other := make([]byte, 100)
	New([]byte("t")).Read(other)
	if bytes.Equal(other, whole) {
		t.Fatal("two seeds gave the same stream")
	}
}
