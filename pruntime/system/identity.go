package system

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"

	"github.com/phala-go/phala/crypto"
)

// Identity is a worker's identity: an ed25519 signing key and an HPKE key,
// both derived from one secret seed generated inside pRuntime.
type Identity struct {
	Sign ed25519.PrivateKey
	HPKE *crypto.HPKEKey
}

// NewIdentity derives the identity of seed (32 bytes).
func NewIdentity(seed []byte) (*Identity, error) {
	if len(seed) != 32 {
		return nil, fmt.Errorf("identity seed is %d bytes, want 32", len(seed))
	}
	signSeed, err := hkdf.Key(sha256.New, seed, nil, "phala/worker/identity/sign/v1", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	hpkeSeed, err := hkdf.Key(sha256.New, seed, nil, "phala/worker/identity/hpke/v1", crypto.SeedSize)
	if err != nil {
		return nil, err
	}
	k, err := crypto.NewHPKEKey(hpkeSeed)
	if err != nil {
		return nil, err
	}
	return &Identity{Sign: ed25519.NewKeyFromSeed(signSeed), HPKE: k}, nil
}

// Public is the identity key.
func (id *Identity) Public() ed25519.PublicKey { return id.Sign.Public().(ed25519.PublicKey) }
