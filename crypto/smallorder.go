package crypto

import (
	"math/big"

	"github.com/oasisprotocol/curve25519-voi/curve"
)

// smallOrderKeys holds every 32-byte encoding of a point of small order
// (the eight-torsion subgroup). For such a public key a signature that
// verifies under the standard library's rules can be made without the
// private key, so nobody controls its account: transactions signed with one
// are refused (see auth.Decode). The set is derived, not typed in: each
// torsion point's canonical encoding, with the x sign bit flipped, and with
// y + p where that still fits, kept when it decodes to a small-order point.
var smallOrderKeys = func() map[[32]byte]bool {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	limit := new(big.Int).Lsh(big.NewInt(1), 255)
	set := map[[32]byte]bool{}
	consider := func(enc [32]byte) {
		var cy curve.CompressedEdwardsY
		if _, err := cy.SetBytes(enc[:]); err != nil {
			return
		}
		var pt curve.EdwardsPoint
		if _, err := pt.SetCompressedY(&cy); err != nil || !pt.IsSmallOrder() {
			return
		}
		set[enc] = true
	}
	for i := range curve.EIGHT_TORSION {
		var cy curve.CompressedEdwardsY
		cy.SetEdwardsPoint(curve.EIGHT_TORSION[i])
		var enc [32]byte
		copy(enc[:], cy[:])
		for _, sign := range []byte{0, 0x80} {
			e := enc
			e[31] = e[31]&0x7f | sign
			consider(e)
			// y + p, if it still fits in 255 bits: a non-canonical y.
			yb := make([]byte, 32)
			for j := range 32 {
				yb[31-j] = enc[j]
			}
			yb[0] &= 0x7f
			y := new(big.Int).SetBytes(yb)
			if y2 := new(big.Int).Add(y, p); y2.Cmp(limit) < 0 {
				be := y2.FillBytes(make([]byte, 32))
				var nc [32]byte
				for j := range 32 {
					nc[j] = be[31-j]
				}
				nc[31] |= sign
				consider(nc)
			}
		}
	}
	return set
}()

// IsSmallOrderKey reports whether pub encodes a point of small order.
func IsSmallOrderKey(pub []byte) bool {
	if len(pub) != 32 {
		return false
	}
	return smallOrderKeys[[32]byte(pub)]
}
