package crypto

import "fmt"

// RootHPKEKey is the root key's encryption key pair, derived from k_r:
// anyone may seal to its public key (a miner rotating its contract's key
// seals the new k_c to it); only a pRuntime holding k_r opens.
func RootHPKEKey(rootKey []byte) (*HPKEKey, error) {
	return derivedHPKEKey(rootKey, "phala/root-key/encryption/v1")
}

const keyToRootLabel = "phala/contract/key-to-root/v1"

// SealContractKeyToRoot seals k_c to the root key's encryption public key
// (RootHPKEKey), bound to the chain and instance. The chain keeps it as
// the instance's wrapped key; UnwrapContractKey opens it.
func SealContractKeyToRoot(rootHPKE []byte, chainID string, id ContractID, kc []byte) ([]byte, error) {
	return Seal(rootHPKE, tagged(keyToRootLabel, chainID, id[:]), kc)
}

// KeyUnwrapper opens stored contract keys under one root key (see
// UnwrapContractKey). It derives the root encryption key (RootHPKEKey, an
// ML-KEM key generation as costly as the opening itself) once, when a key
// sealed to it first comes: use one for a run of keys, as a root key
// rotation's re-encryption does.
type KeyUnwrapper struct {
	root []byte
	enc  *HPKEKey
}

// NewKeyUnwrapper opens keys under rootKey (kept, not copied).
func NewKeyUnwrapper(rootKey []byte) *KeyUnwrapper { return &KeyUnwrapper{root: rootKey} }

// Unwrap opens a stored k_c in either form: WrapContractKey's (a
// gatekeeper's first key, or a root key rotation's re-encryption) or
// SealContractKeyToRoot's (a miner's rotated key).
func (u *KeyUnwrapper) Unwrap(chainID string, id ContractID, wrapped []byte) ([]byte, error) {
	if IsKeyWrap(wrapped) {
		return openGCM(u.root, keyWrapLabel, tagged(keyWrapLabel, chainID, id[:]), wrapped, "the wrapped contract key (under this root key)")
	}
	if u.enc == nil {
		k, err := RootHPKEKey(u.root)
		if err != nil {
			return nil, err
		}
		u.enc = k
	}
	kc, err := u.enc.Open(wrapped, tagged(keyToRootLabel, chainID, id[:]))
	if err != nil {
		return nil, fmt.Errorf("the contract key sealed to the root key: %w", err)
	}
	if len(kc) != ContractKeySize {
		return nil, fmt.Errorf("%w: the contract key sealed to the root key is %d bytes, want %d", ErrEnvelope, len(kc), ContractKeySize)
	}
	return kc, nil
}

// maxKeyWrapBytes tells the two forms of a wrapped key apart: an AES-GCM
// wrap of a 32-byte k_c is 60 bytes, an HPKE envelope over a thousand.
const maxKeyWrapBytes = 128

// IsKeyWrap reports whether wrapped is in WrapContractKey's form (not
// SealContractKeyToRoot's).
func IsKeyWrap(wrapped []byte) bool { return len(wrapped) <= maxKeyWrapBytes }
