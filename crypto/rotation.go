package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// RotationStateKeys is the most re-encrypted contract keys one
// RotationState part may carry (a part stays well under a worker
// message's 64 KiB).
const RotationStateKeys = 500

// RotationShareSize is the size of a leader's secret share and of its
// public salt in a root key rotation.
const RotationShareSize = 32

func eraAttempt(era, attempt uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, era), attempt)
}

// RotationShareInfo is the HPKE info of a rotation leader's share sealed
// to the other leader: it binds the share to the chain, era, attempt and
// both leaders, so it cannot be replayed into another rotation.
func RotationShareInfo(chainID string, era, attempt uint64, from, to []byte) []byte {
	return tagged("phala/root-key/rotation-share/v1", chainID, eraAttempt(era, attempt), from, to)
}

// RotationKeyInfo is the HPKE info of the new root key sealed by the
// incoming leader to a member of the incoming gatekeeper set.
func RotationKeyInfo(chainID string, era, attempt uint64, recipient []byte) []byte {
	return tagged("phala/root-key/rotation-key/v1", chainID, eraAttempt(era, attempt), recipient)
}

// RotationRootKey is k_r^(era): HKDF-SHA256 over both leaders' secret
// shares (outgoing first) with both public salts, bound to the chain, era
// and attempt. Each leader contributes half the secret input, so neither
// alone chooses the key.
func RotationRootKey(chainID string, era, attempt uint64, shareOut, shareIn, saltOut, saltIn []byte) ([]byte, error) {
	for _, b := range [][]byte{shareOut, shareIn, saltOut, saltIn} {
		if len(b) != RotationShareSize {
			return nil, fmt.Errorf("rotation shares and salts must be %d bytes, got %d", RotationShareSize, len(b))
		}
	}
	ikm := append(append([]byte(nil), shareOut...), shareIn...)
	salt := append(append([]byte(nil), saltOut...), saltIn...)
	return hkdf.Key(sha256.New, ikm, salt, string(tagged("phala/root-key/rotation/v1", chainID, eraAttempt(era, attempt))), 32)
}
