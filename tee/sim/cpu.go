package sim

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/phala-go/phala/internal/privfile"
)

// CPUFile is the name of the file, inside the directory given to OpenCPU,
// that holds a simulated CPU's secrets.
const CPUFile = "cpu.json"

// CPU is a simulated CPU: an ed25519 key that signs quotes (what a real CPU's
// provisioned attestation key does) and a separate 32-byte secret from which
// sealing keys are derived (what a real CPU's fused root seal key does). The
// two are independent, so publishing quotes reveals nothing about sealing.
// A CPU is immutable and safe for concurrent use.
type CPU struct {
	key    ed25519.PrivateKey
	secret [32]byte
}

// cpuFile is CPUFile's JSON layout. public_key is redundant (it follows from
// the seed) and lets OpenCPU detect a damaged file.
type cpuFile struct {
	Version       int    `json:"version"`
	QuoteKeySeed  string `json:"quote_key_seed"`
	PublicKey     string `json:"public_key"`
	SealingSecret string `json:"sealing_secret"`
}

// OpenCPU loads the simulated CPU stored in dir/cpu.json, creating dir (mode
// 0700) and a fresh CPU (file mode 0600) if there is none. Two processes
// opening the same new directory at once end up with the same CPU. It
// refuses a file that is damaged, or readable by group or others, with an
// error that says what to do; it never overwrites an existing file.
func OpenCPU(dir string) (*CPU, error) {
	path := filepath.Join(dir, CPUFile)
	raw, err := privfile.LoadOrCreate(path, "simulated CPU file", newCPUFile)
	if err != nil {
		return nil, err
	}
	cpu, err := parseCPUFile(raw)
	if err != nil {
		return nil, fmt.Errorf("simulated CPU file %s is damaged: %w (restore it from a backup, or delete it to create a new CPU, which the attestation service must then be told about)", path, err)
	}
	return cpu, nil
}

// PublicKey is the CPU's quote-signing key: what an attestation service
// lists among the CPUs it knows, and what identifies the CPU in reports.
func (c *CPU) PublicKey() ed25519.PublicKey {
	return bytes.Clone(c.key.Public().(ed25519.PublicKey))
}

// newCPUFile is a fresh CPU's file contents.
func newCPUFile() ([]byte, error) {
	var seed, secret [32]byte
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand.Reader, secret[:]); err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed[:])
	body, err := json.MarshalIndent(cpuFile{
		Version:       1,
		QuoteKeySeed:  hex.EncodeToString(seed[:]),
		PublicKey:     hex.EncodeToString(key.Public().(ed25519.PublicKey)),
		SealingSecret: hex.EncodeToString(secret[:]),
	}, "", "  ")
	return append(body, '\n'), err
}

// parseCPUFile decodes CPUFile's contents strictly.
func parseCPUFile(raw []byte) (*CPU, error) {
	var f cpuFile
	if err := privfile.DecodeJSON(raw, &f); err != nil {
		return nil, fmt.Errorf("not a CPU file: %v", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version %d, want 1", f.Version)
	}
	seed, err := hex32("quote_key_seed", f.QuoteKeySeed)
	if err != nil {
		return nil, err
	}
	secret, err := hex32("sealing_secret", f.SealingSecret)
	if err != nil {
		return nil, err
	}
	pub, err := hex32("public_key", f.PublicKey)
	if err != nil {
		return nil, err
	}
	key := ed25519.NewKeyFromSeed(seed[:])
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pub[:]) {
		return nil, fmt.Errorf("public_key %x does not match quote_key_seed", pub)
	}
	return &CPU{key: key, secret: secret}, nil
}

// hex32 decodes a 32-byte hex field. Its error never quotes the value, which
// may be secret.
func hex32(field, s string) ([32]byte, error) {
	var out [32]byte
	b, err := hex.DecodeString(s)
	if err != nil {
		return out, fmt.Errorf("%s is not hex (%d characters)", field, len(s))
	}
	if len(b) != 32 {
		return out, fmt.Errorf("%s must be 32 bytes (64 hex digits), got %d bytes", field, len(b))
	}
	copy(out[:], b)
	return out, nil
}
