package auth

import (
	"encoding/binary"
	"fmt"

	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
)

// Nonce returns the account's next nonce and whether the account has ever
// sent a transaction.
func Nonce(r store.Reader, a crypto.Address) (uint64, bool, error) {
	v, err := r.Get(NonceKey(a))
	if err != nil {
		return 0, false, err
	}
	if v == nil {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("nonce record of %s is %d bytes, want 8", a, len(v))
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// CheckNonce refuses a nonce other than the account's next one.
func CheckNonce(next, got uint64) error {
	switch {
	case got < next:
		return ErrNonceReused.Wrapf("nonce %d was already used; the account's next nonce is %d", got, next)
	case got > next:
		return ErrNonceSkipped.Wrapf("nonce %d skips ahead; the account's next nonce is %d", got, next)
	}
	return nil
}

// SetNonce stores the account's next nonce.
func SetNonce(kv store.KV, a crypto.Address, next uint64) error {
	return kv.Set(NonceKey(a), encodeUint64(next))
}
