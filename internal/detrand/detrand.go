// Package detrand is a contract call's random stream: SHA-256 in counter
// mode over a domain tag and the call's seed. pRuntime's VM and the sdk's
// native runner use the same stream, so a contract tested natively sees the
// bytes it will see inside pRuntime.
package detrand

import (
	"crypto/sha256"
	"encoding/binary"
)

// Reader yields SHA-256("phala/contract-random/v1\0" ‖ seed ‖ n) for n = 0,
// 1, ... A Reader is not safe for concurrent use.
type Reader struct {
	prefix []byte
	n      uint64
	buf    []byte
}

// New returns the stream of seed.
func New(seed []byte) *Reader {
	return &Reader{prefix: append([]byte("phala/contract-random/v1\x00"), seed...)}
}

// Read fills p; it never fails.
func (r *Reader) Read(p []byte) (int, error) {
	for i := range p {
		if len(r.buf) == 0 {
			sum := sha256.Sum256(binary.BigEndian.AppendUint64(append([]byte(nil), r.prefix...), r.n))
			r.n++
			r.buf = sum[:]
		}
		p[i], r.buf = r.buf[0], r.buf[1:]
	}
	return len(p), nil
}
