// Package auth is the transaction layer: the signed envelope, the signer's
// account nonce, and the fee. Every transaction passes through it before its
// message reaches a module.
package auth

import (
	"encoding/binary"
	"fmt"

	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
)

// Codespace of the errors below.
const Codespace = "tx"

// Stable rejection codes. Never renumber.
var (
	ErrMalformedTx    = errs.Register(Codespace, 2, "malformed transaction")
	ErrTxTooLarge     = errs.Register(Codespace, 3, "transaction too large")
	ErrBadPubKey      = errs.Register(Codespace, 4, "invalid public key")
	ErrBadSignature   = errs.Register(Codespace, 5, "signature verification failed")
	ErrWrongChainID   = errs.Register(Codespace, 6, "wrong chain id")
	ErrNonceReused    = errs.Register(Codespace, 7, "nonce already used")
	ErrNonceSkipped   = errs.Register(Codespace, 8, "nonce skips ahead")
	ErrUnknownMsg     = errs.Register(Codespace, 9, "unknown message type")
	ErrUnknownAccount = errs.Register(Codespace, 10, "unknown account")
	ErrFeeTooLow      = errs.Register(Codespace, 11, "fee too low")
	ErrInvalidFee     = errs.Register(Codespace, 12, "invalid fee")
	ErrMemoTooLong    = errs.Register(Codespace, 13, "memo too long")
)

// MaxMemoBytes bounds TxBody.memo.
const MaxMemoBytes = 256

// Params are the transaction layer's chain parameters.
type Params struct {
	// MaxTxBytes is the largest transaction CheckTx accepts.
	MaxTxBytes int `json:"max_tx_bytes"`
	// BaseFee is the minimum fee of any transaction, in uPHA.
	BaseFee int64 `json:"base_fee"`
	// FeePerByte is added to the minimum fee for each byte of the transaction.
	FeePerByte int64 `json:"fee_per_byte"`
}

// DefaultParams are the parameters a new genesis gets.
func DefaultParams() Params {
	return Params{MaxTxBytes: 1 << 20, BaseFee: 1_000, FeePerByte: 10}
}

// Parameter bounds: wide enough for any sane network, narrow enough that
// MinFee cannot overflow.
const (
	maxTxBytesLimit = 64 << 20
	maxFeeParam     = 1 << 40
)

// Validate checks the parameters' ranges.
func (p Params) Validate() error {
	if p.MaxTxBytes < 1024 || p.MaxTxBytes > maxTxBytesLimit {
		return fmt.Errorf("max_tx_bytes is %d; it must be between 1024 and %d", p.MaxTxBytes, maxTxBytesLimit)
	}
	if p.BaseFee < 0 || p.BaseFee > maxFeeParam || p.FeePerByte < 0 || p.FeePerByte > maxFeeParam {
		return fmt.Errorf("base_fee %d and fee_per_byte %d must be between 0 and %d", p.BaseFee, p.FeePerByte, int64(maxFeeParam))
	}
	return nil
}

// MinFee is the least fee a transaction of txBytes bytes must pay.
func (p Params) MinFee(txBytes int) int64 { return p.BaseFee + p.FeePerByte*int64(txBytes) }

// State keys owned by this module.
var (
	nonceKeyPrefix = []byte("auth/nonce/")
	// ParamsKey holds the JSON-encoded Params.
	ParamsKey = []byte("auth/params")
)

// NonceKey is where an account's next nonce is stored (8 bytes, big endian).
func NonceKey(a crypto.Address) []byte {
	return append(append(make([]byte, 0, len(nonceKeyPrefix)+crypto.AddressLen), nonceKeyPrefix...), a[:]...)
}

func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
