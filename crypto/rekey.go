package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// RootHPKEKey is the root key's encryption key pair, derived from k_r:
// anyone may seal to its public key (a miner rotating its contract's key
// seals the new k_c to it); only a pRuntime holding k_r opens.
func RootHPKEKey(rootKey []byte) (*HPKEKey, error) {
	seed, err := hkdf.Key(sha256.New, rootKey, nil, "phala/root-key/encryption/v1", SeedSize)
	if err != nil {
		return nil, err
	}
	return NewHPKEKey(seed)
}

const keyToRootLabel = "phala/contract/key-to-root/v1"

// SealContractKeyToRoot seals k_c to the root key's encryption public key
// (RootHPKEKey), bound to the chain and instance. The chain keeps it as
// the instance's wrapped key; UnwrapContractKey opens it.
func SealContractKeyToRoot(rootHPKE []byte, chainID string, id ContractID, kc []byte) ([]byte, error) {
	return Seal(rootHPKE, tagged(keyToRootLabel, chainID, id[:]), kc)
}

// maxKeyWrapBytes tells the two forms of a wrapped key apart: an AES-GCM
// wrap of a 32-byte k_c is 60 bytes, an HPKE envelope over a thousand.
const maxKeyWrapBytes = 128

// IsKeyWrap reports whether wrapped is in WrapContractKey's form (not
// SealContractKeyToRoot's).
func IsKeyWrap(wrapped []byte) bool { return len(wrapped) <= maxKeyWrapBytes }
