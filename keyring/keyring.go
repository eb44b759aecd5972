// Package keyring stores users' account keys (ed25519) as files in a
// directory, one per name.
//
// Keys are kept unencrypted with file mode 0600, like the Cosmos SDK's
// "test" keyring: fit for devnets and scripts on a machine you control. See
// docs/decisions/keyring.md.
package keyring

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/phala-go/phala/crypto"
)

// Key is a named account key.
type Key struct {
	Name    string
	Address crypto.Address
	PubKey  ed25519.PublicKey
	priv    ed25519.PrivateKey
}

// PrivateKey returns the signing key.
func (k Key) PrivateKey() ed25519.PrivateKey { return k.priv }

// Keyring is a directory of key files.
type Keyring struct{ dir string }

// ErrNotFound is returned for a name the keyring does not hold.
var ErrNotFound = errors.New("key not found")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Open opens the keyring in dir, creating the directory if needed.
func Open(dir string) (*Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keyring %s: %w", dir, err)
	}
	return &Keyring{dir: dir}, nil
}

// Dir is the keyring's directory.
func (k *Keyring) Dir() string { return k.dir }

type keyFile struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Address string `json:"address"`
	PubKey  string `json:"pub_key"`
	Seed    string `json:"seed"`
}

func (k *Keyring) path(name string) string { return filepath.Join(k.dir, name+".json") }

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("key name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Add creates a new random key under name. It refuses to replace a key.
func (k *Keyring) Add(name string) (Key, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return Key{}, err
	}
	return k.Import(name, seed)
}

// Import stores the key with the given 32-byte ed25519 seed under name.
func (k *Keyring) Import(name string, seed []byte) (Key, error) {
	if err := checkName(name); err != nil {
		return Key{}, err
	}
	if len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("seed must be %d bytes, got %d", ed25519.SeedSize, len(seed))
	}
	priv := ed25519.NewKeyFromSeed(seed)
	key := keyFromPriv(name, priv)
	b, _ := json.MarshalIndent(keyFile{
		Name: name, Type: "ed25519", Address: key.Address.String(),
		PubKey: hex.EncodeToString(key.PubKey), Seed: hex.EncodeToString(seed),
	}, "", "  ")
	f, err := os.OpenFile(k.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return Key{}, fmt.Errorf("key %q already exists in %s; choose another name", name, k.dir)
	}
	if err != nil {
		return Key{}, err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return Key{}, err
	}
	return key, f.Close()
}

func keyFromPriv(name string, priv ed25519.PrivateKey) Key {
	pub := priv.Public().(ed25519.PublicKey)
	return Key{Name: name, Address: crypto.AddressFromPubKey(pub), PubKey: pub, priv: priv}
}

// Get loads the key named name.
func (k *Keyring) Get(name string) (Key, error) {
	if err := checkName(name); err != nil {
		return Key{}, err
	}
	b, err := os.ReadFile(k.path(name))
	if errors.Is(err, os.ErrNotExist) {
		return Key{}, fmt.Errorf("%w: %q is not in %s (see `phala keys list`)", ErrNotFound, name, k.dir)
	}
	if err != nil {
		return Key{}, err
	}
	var kf keyFile
	if err := json.Unmarshal(b, &kf); err != nil {
		return Key{}, fmt.Errorf("key file %s is corrupt: %w", k.path(name), err)
	}
	seed, err := hex.DecodeString(kf.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		return Key{}, fmt.Errorf("key file %s has a bad seed", k.path(name))
	}
	return keyFromPriv(name, ed25519.NewKeyFromSeed(seed)), nil
}

// List returns every key, sorted by name.
func (k *Keyring) List() ([]Key, error) {
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return nil, err
	}
	var keys []Key
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		key, err := k.Get(name)
		if err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, nil
}
