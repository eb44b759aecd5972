package crypto

import (
	"crypto/ed25519"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"github.com/oasisprotocol/curve25519-voi/primitives/ed25519/extra/cache"
)

// verifyOptions selects exactly the validation rules of the standard
// library's crypto/ed25519 (cofactorless; canonical S and R; small-order and
// non-canonical A accepted). FuzzVerifyAgreesWithStdlib holds the two to the
// same verdict on every input.
var verifyOptions = &voi.Options{Verify: voi.VerifyOptionsStdLib}

// keyCache keeps decompressed public keys of recent signers; it is safe for
// concurrent use.
var keyCache = cache.NewVerifier(cache.NewLRUCache(8192))

// VerifySignature reports whether sig is pub's ed25519 signature of msg.
//
// The verdict is crypto/ed25519.Verify's; the computation is
// curve25519-voi's (the implementation CometBFT verifies consensus votes
// with), which precomputes more and caches decompressed keys: about twice
// as fast, and transaction signature checks bound the chain's throughput.
// See docs/decisions/signature-verification.md.
func VerifySignature(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return keyCache.VerifyWithOptions(voi.PublicKey(pub), msg, sig, verifyOptions)
}
