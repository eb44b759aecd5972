package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func testHPKEKey(t testing.TB, b byte) *HPKEKey {
	t.Helper()
	k, err := NewHPKEKey(bytes.Repeat([]byte{b}, SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestHPKERoundTrip(t *testing.T) {
	k := testHPKEKey(t, 1)
	env, err := Seal(k.PublicKey(), []byte("purpose"), []byte("the root key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := EnvelopeSuite(env)
	if err != nil || s != DefaultSuite {
		t.Fatalf("suite %v %v, want %v", s, err, DefaultSuite)
	}
	pt, err := k.Open(env, []byte("purpose"))
	if err != nil || string(pt) != "the root key" {
		t.Fatalf("open: %q %v", pt, err)
	}
	// The same seed derives the same key: sealing the seed persists the key.
	if again := testHPKEKey(t, 1); !bytes.Equal(again.PublicKey(), k.PublicKey()) {
		t.Fatal("same seed, different public key")
	}
}

func TestHPKERefusals(t *testing.T) {
	k, other := testHPKEKey(t, 1), testHPKEKey(t, 2)
	env, err := Seal(k.PublicKey(), []byte("a"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := func(i int) []byte { b := bytes.Clone(env); b[i] ^= 1; return b }
	cases := map[string]func() ([]byte, error){
		"other recipient": func() ([]byte, error) { return other.Open(env, []byte("a")) },
		"other info":      func() ([]byte, error) { return k.Open(env, []byte("b")) },
		"flipped enc":     func() ([]byte, error) { return k.Open(flipped(envelopeHeader+3), []byte("a")) },
		"flipped body":    func() ([]byte, error) { return k.Open(flipped(len(env)-1), []byte("a")) },
		"flipped suite":   func() ([]byte, error) { return k.Open(flipped(9), []byte("a")) },
		"bad magic":       func() ([]byte, error) { return k.Open(flipped(0), []byte("a")) },
		"truncated":       func() ([]byte, error) { return k.Open(env[:len(env)-1], []byte("a")) },
		"empty":           func() ([]byte, error) { return k.Open(nil, []byte("a")) },
		"header only":     func() ([]byte, error) { return k.Open(env[:envelopeHeader], []byte("a")) },
		"seal to bad key": func() ([]byte, error) { return Seal([]byte{0x64, 0x7a, 1, 2}, nil, []byte("x")) },
		"seal to no key":  func() ([]byte, error) { return Seal(nil, nil, []byte("x")) },
		"seal to x25519":  func() ([]byte, error) { return Seal(append([]byte{0, 0x20}, make([]byte, 32)...), nil, []byte("x")) },
	}
	for name, f := range cases {
		if pt, err := f(); err == nil || !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: got %q, %v; want ErrEnvelope", name, pt, err)
		}
	}
	if _, err := NewHPKEKey(make([]byte, 31)); err == nil {
		t.Error("31-byte seed accepted")
	}
}

func FuzzHPKEOpen(f *testing.F) {
	k := testHPKEKey(f, 7)
	env, err := Seal(k.PublicKey(), []byte("fuzz"), []byte("plaintext"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add(env[:envelopeHeader])
	f.Add([]byte("PHE1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := k.Open(b, []byte("fuzz"))
		if err == nil && !bytes.Equal(b, env) {
			// Only a genuine envelope opens; HPKE's AEAD forbids forgeries.
			t.Fatalf("forged envelope opened: %q", pt)
		}
		_, _ = ParseHPKEPublicKey(b)
	})
}

func BenchmarkHPKESeal(b *testing.B) {
	k := testHPKEKey(b, 3)
	msg := make([]byte, 32)
	rand.Read(msg)
	for b.Loop() {
		if _, err := Seal(k.PublicKey(), nil, msg); err != nil {
			b.Fatal(err)
		}
	}
}
