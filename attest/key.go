package attest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/phala-go/phala/internal/privfile"
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
	raw, err := privfile.LoadOrCreate(path, "attestation service key file", newKeyFile)
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

func newKeyFile() ([]byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	body, err := json.MarshalIndent(keyFile{
		Version:   1,
		Seed:      hex.EncodeToString(priv.Seed()),
		PublicKey: hex.EncodeToString(pub),
	}, "", "  ")
	return append(body, '\n'), err
}

func parseKeyFile(raw []byte) (ed25519.PrivateKey, error) {
	var f keyFile
	if err := privfile.DecodeJSON(raw, &f); err != nil {
		return nil, fmt.Errorf("not a key file: %v", err)
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
