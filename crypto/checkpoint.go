package crypto

import "encoding/binary"

// CheckpointAD is the associated data of a contract's state checkpoint: it
// binds the ciphertext to the chain, the instance, the block it was taken
// at, the inputs it covers and the state root it claims, so no checkpoint
// passes for another contract, another height or another root.
func CheckpointAD(chainID string, id ContractID, height int64, inputs uint64, root []byte) []byte {
	return tagged("phala/contract/checkpoint/v1", chainID, id[:],
		binary.BigEndian.AppendUint64(nil, uint64(height)), binary.BigEndian.AppendUint64(nil, inputs), root)
}

const checkpointKeyLabel = "phala/contract/checkpoint-key/v1"

// SealCheckpoint encrypts a contract's state under k_c (AES-256-GCM with a
// key derived from k_c, random nonce first) with ad (CheckpointAD).
func SealCheckpoint(kc, ad, state []byte) ([]byte, error) {
	return sealGCM(kc, checkpointKeyLabel, ad, state)
}

// OpenCheckpoint reverses SealCheckpoint; it fails (wrapping ErrEnvelope)
// for a checkpoint altered in any byte, of another contract or chain, or
// bound to another height, input count or state root.
func OpenCheckpoint(kc, ad, sealed []byte) ([]byte, error) {
	return openGCM(kc, checkpointKeyLabel, ad, sealed, "the checkpoint (with this contract's key, height and state root)")
}
