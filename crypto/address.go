// Package crypto holds the thin layer the protocol puts over the standard
// library's primitives: account addresses, and (later) sealing envelopes and
// key derivation. It invents no primitive.
package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cosmos/btcutil/bech32"
)

// AddressLen is the length of an account address in bytes.
const AddressLen = 20

// AddressPrefix is the human-readable part of a bech32 account address.
const AddressPrefix = "phala"

// Address identifies an account: the first 20 bytes of SHA-256 of the
// account's ed25519 public key, or of a module name for module accounts.
// It is comparable, so it can key a map.
type Address [AddressLen]byte

// AddressFromPubKey derives the account address of an ed25519 public key.
func AddressFromPubKey(pub ed25519.PublicKey) Address {
	sum := sha256.Sum256(pub)
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// ModuleAddress derives the address of an account that no key controls,
// such as a genesis pool. Its preimage is domain-separated from public keys
// so no key pair can own it.
func ModuleAddress(name string) Address {
	sum := sha256.Sum256([]byte("phala/module/" + name))
	var a Address
	copy(a[:], sum[:AddressLen])
	return a
}

// AddressFromBytes converts raw bytes, such as a protobuf field, to an Address.
func AddressFromBytes(b []byte) (Address, error) {
	var a Address
	if len(b) != AddressLen {
		return a, fmt.Errorf("address must be %d bytes, got %d", AddressLen, len(b))
	}
	copy(a[:], b)
	return a, nil
}

// String returns the bech32 form, for example phala1q...
func (a Address) String() string { return encodeBech32(AddressPrefix, a[:]) }

// encodeBech32 is the bech32 form of a 20-byte id under prefix.
func encodeBech32(prefix string, b []byte) string {
	conv, err := bech32.ConvertBits(b, 8, 5, true)
	if err != nil {
		panic(err) // cannot happen for 20 bytes
	}
	s, err := bech32.Encode(prefix, conv)
	if err != nil {
		panic(err)
	}
	return s
}

// decodeBech32 parses a bech32 20-byte id that must carry prefix; what
// names the kind of id in errors.
func decodeBech32(prefix, what, s string) ([AddressLen]byte, error) {
	var a [AddressLen]byte
	hrp, data, err := bech32.Decode(s, 90)
	if err != nil {
		return a, fmt.Errorf("%w %q: %v", ErrBadAddress, s, err)
	}
	if hrp != prefix {
		return a, fmt.Errorf("%w %q: %s starts with %q1, not %q1", ErrBadAddress, s, what, prefix, hrp)
	}
	raw, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil {
		return a, fmt.Errorf("%w %q: %v", ErrBadAddress, s, err)
	}
	if len(raw) != AddressLen {
		return a, fmt.Errorf("%w %q: %d bytes, want %d", ErrBadAddress, s, len(raw), AddressLen)
	}
	copy(a[:], raw)
	return a, nil
}

// Bytes returns a copy of the address as a slice.
func (a Address) Bytes() []byte { return append([]byte(nil), a[:]...) }

// MarshalText implements encoding.TextMarshaler (bech32), so addresses read
// well in JSON.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Address) UnmarshalText(b []byte) error {
	p, err := ParseAddress(string(b))
	if err != nil {
		return err
	}
	*a = p
	return nil
}

// ErrBadAddress is wrapped by every ParseAddress failure.
var ErrBadAddress = errors.New("invalid address")

// ParseAddress parses a bech32 address with the phala prefix.
func ParseAddress(s string) (Address, error) {
	a, err := decodeBech32(AddressPrefix, "an account address", s)
	return Address(a), err
}
