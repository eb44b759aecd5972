package system

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSealedFile(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{1}, 32)
	s, err := NewSealedFile(filepath.Join(dir, "state"), key, "test")
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.Load(); pt != nil || err != nil {
		t.Fatalf("missing file: %q %v", pt, err)
	}
	if err := s.Store([]byte("secret state")); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(s.Path())
	if bytes.Contains(raw, []byte("secret")) {
		t.Fatal("plaintext on disk")
	}
	if pt, err := s.Load(); err != nil || string(pt) != "secret state" {
		t.Fatalf("load: %q %v", pt, err)
	}
	// Another key (another build or CPU), another label, any flipped byte,
	// truncation: refused, never used.
	other, _ := NewSealedFile(s.Path(), bytes.Repeat([]byte{2}, 32), "test")
	label, _ := NewSealedFile(s.Path(), key, "other")
	for name, f := range map[string]func() ([]byte, error){
		"other key":   other.Load,
		"other label": label.Load,
		"truncated":   func() ([]byte, error) { return s.Open(raw[:len(raw)-1]) },
		"empty":       func() ([]byte, error) { return s.Open(nil) },
	} {
		if pt, err := f(); !errors.Is(err, ErrSealed) || pt != nil {
			t.Errorf("%s: %q %v", name, pt, err)
		}
	}
	for i := range raw {
		b := bytes.Clone(raw)
		b[i] ^= 0x40
		if pt, err := s.Open(b); !errors.Is(err, ErrSealed) {
			t.Fatalf("flipped byte %d accepted: %q", i, pt)
		}
	}
}

func FuzzSealedOpen(f *testing.F) {
	s, _ := NewSealedFile("x", bytes.Repeat([]byte{1}, 32), "fuzz")
	good := s.Seal([]byte("state"))
	f.Add(good)
	f.Add(good[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		if pt, err := s.Open(b); err == nil && !bytes.Equal(b, good) && string(pt) != "state" {
			t.Fatalf("forged sealed file opened: %q", pt)
		}
	})
}

func TestIdentityDeterministic(t *testing.T) {
	a, err := NewIdentity(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewIdentity(bytes.Repeat([]byte{3}, 32))
	c, _ := NewIdentity(bytes.Repeat([]byte{4}, 32))
	if !bytes.Equal(a.Public(), b.Public()) || !bytes.Equal(a.HPKE.PublicKey(), b.HPKE.PublicKey()) {
		t.Fatal("same seed, different identity")
	}
	if bytes.Equal(a.Public(), c.Public()) {
		t.Fatal("different seeds, same identity")
	}
}
