package crypto

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
)

// Suite names an HPKE ciphersuite (RFC 9180 identifiers). Every public key
// and every envelope carries its suite, so the default can change without
// making old ciphertext unreadable.
type Suite struct {
	KEM, KDF, AEAD uint16
}

// DefaultSuite is hybrid post-quantum: ciphertext on a public chain must
// stay secret for decades. ML-KEM-768 + X25519, HKDF-SHA256, AES-256-GCM.
var DefaultSuite = Suite{
	KEM:  hpke.MLKEM768X25519().ID(),
	KDF:  hpke.HKDFSHA256().ID(),
	AEAD: hpke.AES256GCM().ID(),
}

func (s Suite) String() string {
	return fmt.Sprintf("kem=%#04x,kdf=%#04x,aead=%#04x", s.KEM, s.KDF, s.AEAD)
}

func (s Suite) parts() (hpke.KEM, hpke.KDF, hpke.AEAD, error) {
	kem, err := hpke.NewKEM(s.KEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: HPKE suite %s: %v", ErrEnvelope, s, err)
	}
	kdf, err := hpke.NewKDF(s.KDF)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: HPKE suite %s: %v", ErrEnvelope, s, err)
	}
	aead, err := hpke.NewAEAD(s.AEAD)
	if err != nil || s.AEAD == hpke.ExportOnly().ID() {
		return nil, nil, nil, fmt.Errorf("%w: HPKE suite %s: AEAD not usable for sealing", ErrEnvelope, s)
	}
	return kem, kdf, aead, nil
}

// ErrEnvelope is wrapped by every failure to parse or open a sealed
// envelope or an HPKE public key.
var ErrEnvelope = errors.New("invalid sealed envelope")

// SeedSize is the size of the secret an HPKEKey is derived from.
const SeedSize = 32

// HPKEKey is a worker's (or a contract's) decryption key. It is derived
// deterministically from a 32-byte seed, so sealing the seed is enough to
// persist it.
type HPKEKey struct {
	suite Suite
	priv  hpke.PrivateKey
	pub   []byte // encoded public key
}

// NewHPKEKey derives the DefaultSuite key pair of seed (SeedSize bytes of
// secret randomness or key material).
func NewHPKEKey(seed []byte) (*HPKEKey, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("HPKE key seed is %d bytes, want %d", len(seed), SeedSize)
	}
	s := DefaultSuite
	kem, _, _, err := s.parts()
	if err != nil {
		return nil, err
	}
	priv, err := kem.DeriveKeyPair(seed)
	if err != nil {
		return nil, fmt.Errorf("derive HPKE key: %w", err)
	}
	return &HPKEKey{suite: s, priv: priv, pub: encodePub(s.KEM, priv.PublicKey().Bytes())}, nil
}

// PublicKey is the encoded public key: the KEM identifier (2 bytes, big
// endian) followed by the KEM's serialised public key. The KDF and AEAD are
// chosen by the sender and named in each envelope.
func (k *HPKEKey) PublicKey() []byte { return append([]byte(nil), k.pub...) }

func encodePub(kem uint16, key []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, kem), key...)
}

// ParseHPKEPublicKey checks an encoded public key and returns its KEM.
func ParseHPKEPublicKey(b []byte) (hpke.PublicKey, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: HPKE public key is %d bytes", ErrEnvelope, len(b))
	}
	id := binary.BigEndian.Uint16(b)
	if id != DefaultSuite.KEM {
		return nil, fmt.Errorf("%w: HPKE public key uses KEM %#04x; this build accepts %#04x (ML-KEM-768+X25519)", ErrEnvelope, id, DefaultSuite.KEM)
	}
	kem, err := hpke.NewKEM(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrEnvelope, err)
	}
	pk, err := kem.NewPublicKey(b[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: HPKE public key: %v", ErrEnvelope, err)
	}
	return pk, nil
}

// Envelope layout: magic "PHE1", KEM, KDF, AEAD identifiers (2 bytes each,
// big endian), then HPKE's encapsulated key followed by the ciphertext.
var envelopeMagic = []byte("PHE1")

const envelopeHeader = 4 + 6

// Seal encrypts plaintext to the encoded public key pub with HPKE base mode.
// info binds the envelope to its purpose (and, for on-chain envelopes, the
// chain and the context); Open must be given the same info.
func Seal(pub, info, plaintext []byte) ([]byte, error) {
	pk, err := ParseHPKEPublicKey(pub)
	if err != nil {
		return nil, err
	}
	s := DefaultSuite
	_, kdf, aead, err := s.parts()
	if err != nil {
		return nil, err
	}
	ct, err := hpke.Seal(pk, kdf, aead, info, plaintext)
	if err != nil {
		return nil, fmt.Errorf("HPKE seal: %w", err)
	}
	out := make([]byte, 0, envelopeHeader+len(ct))
	out = append(out, envelopeMagic...)
	out = binary.BigEndian.AppendUint16(out, s.KEM)
	out = binary.BigEndian.AppendUint16(out, s.KDF)
	out = binary.BigEndian.AppendUint16(out, s.AEAD)
	return append(out, ct...), nil
}

// EnvelopeSuite reads the suite an envelope names without opening it.
func EnvelopeSuite(env []byte) (Suite, error) {
	if len(env) < envelopeHeader || string(env[:4]) != string(envelopeMagic) {
		return Suite{}, fmt.Errorf("%w: missing header (%d bytes)", ErrEnvelope, len(env))
	}
	return Suite{
		KEM:  binary.BigEndian.Uint16(env[4:]),
		KDF:  binary.BigEndian.Uint16(env[6:]),
		AEAD: binary.BigEndian.Uint16(env[8:]),
	}, nil
}

// Open decrypts an envelope sealed to k's public key with the same info. A
// changed byte, another recipient or another info fails with ErrEnvelope.
func (k *HPKEKey) Open(env, info []byte) ([]byte, error) {
	s, err := EnvelopeSuite(env)
	if err != nil {
		return nil, err
	}
	if s.KEM != k.suite.KEM {
		return nil, fmt.Errorf("%w: sealed with KEM %#04x, this key is %#04x", ErrEnvelope, s.KEM, k.suite.KEM)
	}
	_, kdf, aead, err := s.parts()
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(k.priv, kdf, aead, info, env[envelopeHeader:])
	if err != nil {
		return nil, fmt.Errorf("%w: cannot open (not sealed to this key, for this purpose, or altered): %v", ErrEnvelope, err)
	}
	return pt, nil
}
