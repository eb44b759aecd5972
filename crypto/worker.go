package crypto

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
)

// ReportDataSize is the size of a TEE quote's report data.
const ReportDataSize = 64

// WorkerReportData is the report data a worker's attestation commits to:
// SHA-512 of a domain tag and the exact serialized WorkerInfo (its identity
// keys, operator, chain genesis hash and endpoint). The chain recomputes it
// from the bytes it is given, so a report cannot be reused for other keys,
// another operator or another chain.
func WorkerReportData(info []byte) [ReportDataSize]byte {
	h := sha512.New()
	h.Write([]byte("phala/registry/worker/v1\x00"))
	h.Write(info)
	var out [ReportDataSize]byte
	h.Sum(out[:0])
	return out
}

// SignedMessageBytes is what a worker signs for an mq SignedMessage. The
// chain id keeps a message from being replayed on another network.
func SignedMessageBytes(chainID string, sender []byte, sequence uint64, payload []byte) []byte {
	b := make([]byte, 0, 32+len(chainID)+len(sender)+8+len(payload))
	b = append(b, "phala/mq/signed/v1\x00"...)
	b = binary.AppendUvarint(b, uint64(len(chainID)))
	b = append(b, chainID...)
	b = append(b, sender...)
	b = binary.BigEndian.AppendUint64(b, sequence)
	return append(b, payload...)
}

// RootPublicKey is the public identity of a root key: an ed25519 key
// derived from it. Gatekeepers name it to show which root key they hold
// without revealing it.
func RootPublicKey(rootKey []byte) ed25519.PublicKey {
	seed, err := hkdf.Key(sha256.New, rootKey, nil, "phala/root-key/identity/v1", ed25519.SeedSize)
	if err != nil {
		panic(err) // only for lengths HKDF-SHA256 cannot produce
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
}

// RenewalBytes is what a worker's previous identity signs to name its
// successor: a domain tag and the successor's exact serialized WorkerInfo
// (which names the predecessor and commits to the chain), so the signature
// hands over to these keys on this chain only.
func RenewalBytes(info []byte) []byte {
	return append([]byte("phala/registry/renewal/v1\x00"), info...)
}
