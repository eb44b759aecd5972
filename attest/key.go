package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// keyFile is the JSON layout of a service key file. public_key is redundant
// (it follows from the seed) and lets LoadOrCreateKey detect damage.
type keyFile struct {
	Version   int    `json:"version"`
	Seed      string `json:"seed"`
	PublicKey string `json:"public_key"`
}

// LoadOrCreateKey returns the service signing key stored at path, creating
// a new one (file mode 0600, parent directories 0700) if the file does not
// exist. It refuses a damaged file, or one readable by group or others, and
// never overwrites an existing file.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	raw, err := readKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createKeyFile(path); err != nil {
			return nil, err
		}
		raw, err = readKeyFile(path)
	}
	if err != nil {
		return nil, err
	}
	key, err := parseKeyFile(raw)
	if err != nil {
		return nil, fmt.Errorf("attestation service key file %s is damaged: %w (restore it from a backup; a new key means every chain must be told to trust it)", path, err)
	}
	return key, nil
}

// ParsePublicKey parses an ed25519 public key written as 64 hex digits.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want %d bytes as %d hex digits", s, ed25519.PublicKeySize, 2*ed25519.PublicKeySize)
	}
	return b, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("attestation service key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("attestation service key file %s has mode %#o but holds a private key: run chmod 600 %s", path, perm, path)
	}
	return io.ReadAll(io.LimitReader(f, 1<<16))
}

func createKeyFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create directory for the attestation service key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	body, err := json.MarshalIndent(keyFile{
		Version:   1,
		Seed:      hex.EncodeToString(priv.Seed()),
		PublicKey: hex.EncodeToString(pub),
	}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".attestd-key-*.json") // mode 0600
	if err != nil {
		return fmt.Errorf("create attestation service key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(body, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write attestation service key file: %w", err)
	}
	// Link, unlike rename, never replaces a file another process created
	// in the meantime.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create attestation service key file %s: %w", path, err)
	}
	return nil
}

func parseKeyFile(raw []byte) (ed25519.PrivateKey, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f keyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a key file: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version %d, want 1", f.Version)
	}
	seed, err := hex.DecodeString(f.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		// The seed is secret: describe it without quoting it.
		return nil, fmt.Errorf("seed must be %d bytes as hex (%d characters found)", ed25519.SeedSize, len(f.Seed))
	}
	key := ed25519.NewKeyFromSeed(seed)
	if hex.EncodeToString(key.Public().(ed25519.PublicKey)) != strings.ToLower(f.PublicKey) {
		return nil, fmt.Errorf("public_key %q does not match the seed", f.PublicKey)
	}
	return key, nil
}
