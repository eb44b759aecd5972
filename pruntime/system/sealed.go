// Package system is pRuntime's trusted core below the API: the sealed store
// that persists its secrets across restarts, and the worker identity.
package system

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrSealed is wrapped when a sealed file cannot be opened: it was altered,
// truncated, or sealed by another pRuntime build or another CPU. Such a file
// is never used; the operator restores it or starts a fresh worker.
var ErrSealed = errors.New("sealed state cannot be opened")

var sealMagic = []byte("PRTSEAL1")

// SealedFile is a file whose contents are encrypted and authenticated with
// the platform's sealing key (AES-256-GCM). The sealing key belongs to this
// CPU and this pRuntime build, so the host can read nothing and change
// nothing undetected. (It can replay an older file: without a hardware
// monotonic counter, rollback is not detected; see docs/pruntime.md.)
type SealedFile struct {
	path string
	aead cipher.AEAD
	aad  []byte
}

// NewSealedFile seals to path with key (32 bytes). label binds the file to
// its purpose.
func NewSealedFile(path string, key []byte, label string) (*SealedFile, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("sealing key is %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &SealedFile{path: path, aead: aead, aad: append(append([]byte(nil), sealMagic...), label...)}, nil
}

// Path is the file's location.
func (s *SealedFile) Path() string { return s.path }

// Load returns the plaintext, or nil with no error if the file does not
// exist. A file that fails authentication wraps ErrSealed.
func (s *SealedFile) Load() ([]byte, error) {
	raw, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sealed state: %w", err)
	}
	return s.Open(raw)
}

// Open decrypts sealed bytes.
func (s *SealedFile) Open(raw []byte) ([]byte, error) {
	n := len(sealMagic) + s.aead.NonceSize()
	if len(raw) < n+s.aead.Overhead() || string(raw[:len(sealMagic)]) != string(sealMagic) {
		return nil, fmt.Errorf("%w: %s is not a sealed file (%d bytes); restore it from a backup or start a new worker", ErrSealed, s.path, len(raw))
	}
	pt, err := s.aead.Open(nil, raw[len(sealMagic):n], raw[n:], s.aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s fails authentication: it was altered, or sealed by another pRuntime build or CPU; refusing to use it", ErrSealed, s.path)
	}
	return pt, nil
}

// Seal encrypts plaintext into the file format.
func (s *SealedFile) Seal(plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := append(append([]byte(nil), sealMagic...), nonce...)
	return s.aead.Seal(out, nonce, plaintext, s.aad)
}

// Store seals plaintext and replaces the file atomically (write, sync,
// rename, sync the directory), so a crash leaves the old or the new state.
func (s *SealedFile) Store(plaintext []byte) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".sealed-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(s.Seal(plaintext)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
