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

// ContractPrefix is the human-readable part of a contract instance id, so
// an id never reads like an account a key controls.
const ContractPrefix = "phalac"

// ContractID identifies a contract instance: the first 20 bytes of SHA-256
// of a domain tag, the deployer and the deploying transaction's nonce.
type ContractID [AddressLen]byte

// NewContractID is the id of the instance deployer creates with nonce.
func NewContractID(deployer Address, nonce uint64) ContractID {
	h := sha256.New()
	h.Write([]byte("phala/contract/id/v1\x00"))
	h.Write(deployer[:])
	h.Write(binary.BigEndian.AppendUint64(nil, nonce))
	var id ContractID
	copy(id[:], h.Sum(nil))
	return id
}

// ContractIDFromBytes converts a protobuf field to a ContractID.
func ContractIDFromBytes(b []byte) (ContractID, error) {
	var id ContractID
	if len(b) != AddressLen {
		return id, fmt.Errorf("contract id must be %d bytes, got %d", AddressLen, len(b))
	}
	copy(id[:], b)
	return id, nil
}

// String is the bech32 form, phalac1...
func (id ContractID) String() string { return encodeBech32(ContractPrefix, id[:]) }

// Bytes returns a copy of the id as a slice.
func (id ContractID) Bytes() []byte { return append([]byte(nil), id[:]...) }

// MarshalText implements encoding.TextMarshaler (bech32).
func (id ContractID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// ParseContractID parses a phalac1... instance id.
func ParseContractID(s string) (ContractID, error) {
	id, err := decodeBech32(ContractPrefix, "a contract id", s)
	return ContractID(id), err
}

func tagged(tag, chainID string, parts ...[]byte) []byte {
	b := append([]byte(tag), 0)
	b = binary.AppendUvarint(b, uint64(len(chainID)))
	b = append(b, chainID...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

// ContractKeySize is the size of a contract key k_c.
const ContractKeySize = 32

// DeriveContractKey is k_c: every gatekeeper derives the same key from the
// root key and the instance id, so any of them can serve it.
func DeriveContractKey(rootKey []byte, chainID string, id ContractID) []byte {
	k, err := hkdf.Key(sha256.New, rootKey, nil, string(tagged("phala/contract/key/v1", chainID, id[:])), ContractKeySize)
	if err != nil {
		panic(err)
	}
	return k
}

// ContractInputKey is the contract's HPKE key pair, derived from k_c.
// Users seal commands to its public key, so any miner holding k_c (a
// replacement included) can read them.
func ContractInputKey(kc []byte) (*HPKEKey, error) {
	return derivedHPKEKey(kc, "phala/contract/input-key/v1")
}

// derivedHPKEKey is the HPKE key pair HKDF derives from secret for label.
func derivedHPKEKey(secret []byte, label string) (*HPKEKey, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, label, SeedSize)
	if err != nil {
		return nil, err
	}
	return NewHPKEKey(seed)
}

// ContractSeed is the randomness seed of a contract call: from k_c, the
// block height and the call's index in the block's event log. Identical on
// every miner, unpredictable to anyone without k_c.
func ContractSeed(kc []byte, height int64, index uint32) []byte {
	info := binary.BigEndian.AppendUint64([]byte("phala/contract/random/v1\x00"), uint64(height))
	info = binary.BigEndian.AppendUint32(info, index)
	s, err := hkdf.Key(sha256.New, kc, nil, string(info), 32)
	if err != nil {
		panic(err)
	}
	return s
}

// derivedGCM is AES-256-GCM under the key HKDF derives from secret for
// label.
func derivedGCM(secret []byte, label string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// sealGCM encrypts plain under a key derived from secret for label, with
// a random nonce first.
func sealGCM(secret []byte, label string, ad, plain []byte) ([]byte, error) {
	aead, err := derivedGCM(secret, label)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, ad), nil
}

// openGCM reverses sealGCM; what names the sealed thing in errors.
func openGCM(secret []byte, label string, ad, sealed []byte, what string) ([]byte, error) {
	aead, err := derivedGCM(secret, label)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: %s is %d bytes, too short", ErrEnvelope, what, len(sealed))
	}
	out, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s does not open", ErrEnvelope, what)
	}
	return out, nil
}

const keyWrapLabel = "phala/contract/key-wrap/v1"

// WrapContractKey encrypts k_c under the root key (AES-256-GCM, random
// nonce first), bound to the chain and instance, for the chain to keep.
func WrapContractKey(rootKey []byte, chainID string, id ContractID, kc []byte) ([]byte, error) {
	return sealGCM(rootKey, keyWrapLabel, tagged(keyWrapLabel, chainID, id[:]), kc)
}

// UnwrapContractKey opens one stored k_c (KeyUnwrapper.Unwrap).
func UnwrapContractKey(rootKey []byte, chainID string, id ContractID, wrapped []byte) ([]byte, error) {
	return NewKeyUnwrapper(rootKey).Unwrap(chainID, id, wrapped)
}

// ContractKeyInfo is the HPKE info of k_c sealed by a gatekeeper to the
// instance's miner.
func ContractKeyInfo(chainID string, id ContractID, miner []byte) []byte {
	return tagged("phala/contract/key-to-miner/v1", chainID, id[:], miner)
}

// CommandInfo is the HPKE info of a command envelope: it binds the
// envelope to the chain, the contract, the signing account and its
// transaction nonce, so a copy resent by anyone (or again) does not open.
func CommandInfo(chainID string, id ContractID, sender Address, nonce uint64) []byte {
	return tagged("phala/contract/command/v1", chainID, id[:], sender[:], binary.BigEndian.AppendUint64(nil, nonce))
}

// MessageInfo is the HPKE info of a contract-to-contract message.
func MessageInfo(chainID string, from, to ContractID) []byte {
	return tagged("phala/contract/message/v1", chainID, from[:], to[:])
}

// QueryInfo is the HPKE info of a query sealed to worker's identity key.
func QueryInfo(chainID string, worker []byte) []byte {
	return tagged("phala/contract/query/v1", chainID, worker)
}

// QueryBytes is what a user signs for a query.
func QueryBytes(query []byte) []byte {
	return append([]byte("phala/contract/query-signature/v1\x00"), query...)
}

// AnswerInfo is the HPKE info of an answer sealed back to the user: it
// binds the answer to the query it answers.
func AnswerInfo(chainID string, queryHash []byte) []byte {
	return tagged("phala/contract/answer/v1", chainID, queryHash)
}

// AnswerBytes is what a worker signs for a query answer.
func AnswerBytes(chainID string, answer []byte) []byte {
	return tagged("phala/contract/answer-signature/v1", chainID, answer)
}
