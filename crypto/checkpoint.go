package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// CheckpointAD is the associated data of a contract's state checkpoint: it
// binds the ciphertext to the chain, the instance, the block it was taken
// at, the inputs it covers and the state root it claims, so no checkpoint
// passes for another contract, another height or another root.
func CheckpointAD(chainID string, id ContractID, height int64, inputs uint64, root []byte) []byte {
	return tagged("phala/contract/checkpoint/v1", chainID, id[:],
		binary.BigEndian.AppendUint64(nil, uint64(height)), binary.BigEndian.AppendUint64(nil, inputs), root)
}

func checkpointAEAD(kc []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, kc, nil, "phala/contract/checkpoint-key/v1", 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// SealCheckpoint encrypts a contract's state under k_c (AES-256-GCM with a
// key derived from k_c, random nonce first) with ad (CheckpointAD).
func SealCheckpoint(kc, ad, state []byte) ([]byte, error) {
	aead, err := checkpointAEAD(kc)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(state)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, state, ad), nil
}

// OpenCheckpoint reverses SealCheckpoint; it fails (wrapping ErrEnvelope)
// for a checkpoint altered in any byte, of another contract or chain, or
// bound to another height, input count or state root.
func OpenCheckpoint(kc, ad, sealed []byte) ([]byte, error) {
	aead, err := checkpointAEAD(kc)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: checkpoint is %d bytes, too short", ErrEnvelope, len(sealed))
	}
	out, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint does not open with this contract's key for this height and state root", ErrEnvelope)
	}
	return out, nil
}
