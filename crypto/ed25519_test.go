package crypto

import (
	"crypto/ed25519"
	"encoding/hex"
	"math/big"
	"testing"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// edgeCases are inputs where ed25519 implementations are known to disagree
// (see "Taming the many EdDSAs"): small-order and non-canonical keys and R,
// and S out of range.
func edgeCases() [][3][]byte {
	seed := make([]byte, 32)
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	msg := []byte("phala")
	sig := ed25519.Sign(priv, msg)

	// S + L: same point equation, non-canonical scalar.
	l, _ := new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)
	s := new(big.Int).SetBytes(reverse(sig[32:]))
	s.Add(s, l)
	sPlusL := append(append([]byte(nil), sig[:32]...), reverse(pad32(s.Bytes()))...)

	identity := mustHex("0100000000000000000000000000000000000000000000000000000000000000")
	// y = p + 1: a non-canonical encoding of the point with y = 1.
	nonCanonicalIdentity := mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	zeroS := make([]byte, 32)
	// A small-order key with R = identity and S = 0 satisfies the
	// cofactorless equation for every message.
	smallOrderSig := append(append([]byte(nil), identity...), zeroS...)
	nonCanonicalRSig := append(append([]byte(nil), nonCanonicalIdentity...), zeroS...)
	// An order-8 point.
	order8 := mustHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")

	return [][3][]byte{
		{pub, msg, sig},
		{pub, []byte("other"), sig},
		{pub, msg, sPlusL},
		{identity, msg, smallOrderSig},
		{nonCanonicalIdentity, msg, smallOrderSig},
		{identity, msg, nonCanonicalRSig},
		{order8, msg, smallOrderSig},
		{order8, msg, append(append([]byte(nil), order8...), zeroS...)},
	}
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func pad32(b []byte) []byte {
	return append(make([]byte, 32-len(b)), b...)
}

func TestVerifySignatureAgreesWithStdlibOnEdgeCases(t *testing.T) {
	accepted := 0
	for i, c := range edgeCases() {
		want := ed25519.Verify(c[0], c[1], c[2])
		if got := VerifySignature(c[0], c[1], c[2]); got != want {
			t.Errorf("case %d: VerifySignature = %v, crypto/ed25519 = %v", i, got, want)
		}
		if want {
			accepted++
		}
	}
	// The set must exercise both verdicts, or it proves nothing.
	if accepted < 2 || accepted == len(edgeCases()) {
		t.Fatalf("edge cases accepted %d of %d", accepted, len(edgeCases()))
	}
}

// FuzzVerifyAgreesWithStdlib: for every (key, message, signature), the fast
// verifier's verdict is crypto/ed25519's.
func FuzzVerifyAgreesWithStdlib(f *testing.F) {
	for _, c := range edgeCases() {
		f.Add(c[0], c[1], c[2])
	}
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		if len(pub) != ed25519.PublicKeySize {
			if VerifySignature(pub, msg, sig) {
				t.Fatal("accepted a key of the wrong size")
			}
			return
		}
		if got, want := VerifySignature(pub, msg, sig), ed25519.Verify(pub, msg, sig); got != want {
			t.Fatalf("VerifySignature = %v, crypto/ed25519 = %v", got, want)
		}
	})
}

func TestSmallOrderKeys(t *testing.T) {
	// Eight torsion points; their canonical encodings at least, plus the
	// non-canonical ones that decode.
	if n := len(smallOrderKeys); n < 8 {
		t.Fatalf("%d small-order encodings, want at least 8", n)
	}
	identity := mustHex("0100000000000000000000000000000000000000000000000000000000000000")
	nonCanonicalIdentity := mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	order8 := mustHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
	for _, k := range [][]byte{identity, nonCanonicalIdentity, order8} {
		if !IsSmallOrderKey(k) {
			t.Errorf("%x not flagged", k)
		}
	}
	// And a small-order key really can be "signed" for without a secret:
	// the reason such keys are refused.
	forged := append(append([]byte(nil), identity...), make([]byte, 32)...)
	if !ed25519.Verify(identity, []byte("any message"), forged) {
		t.Fatal("expected the forged signature to verify under crypto/ed25519")
	}
	pub, _, _ := ed25519.GenerateKey(nil)
	if IsSmallOrderKey(pub) {
		t.Fatal("a random key flagged as small order")
	}
}
