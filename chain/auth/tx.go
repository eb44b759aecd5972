package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/chainpb"
)

// signDomain separates transaction signatures from every other signature a
// key might make.
const signDomain = "phala/tx/v1\x00"

// SignBytes is what a transaction's signer signs: a domain tag, the
// length-prefixed chain id, and the body bytes as transmitted.
func SignBytes(chainID string, body []byte) []byte {
	b := make([]byte, 0, len(signDomain)+protowire.SizeBytes(len(chainID))+len(body))
	b = append(b, signDomain...)
	b = protowire.AppendString(b, chainID)
	return append(b, body...)
}

// Tx is a decoded transaction. Decode checks its shape; Verify checks the
// chain id and signature.
type Tx struct {
	Size      int      // bytes of the encoded transaction, for the fee floor
	Hash      [32]byte // SHA-256 of the encoded transaction, as CometBFT names it
	BodyBytes []byte
	Body      *chainpb.TxBody
	PubKey    ed25519.PublicKey
	Signature []byte
	Signer    crypto.Address
}

// Decode parses raw into a Tx and checks everything that needs no state and
// no signature: size, field shapes, a known message, a sane fee and memo.
func Decode(raw []byte, maxBytes int) (*Tx, error) {
	return DecodeHashed(raw, sha256.Sum256(raw), maxBytes)
}

// DecodeHashed is Decode for a caller that already has SHA-256(raw).
func DecodeHashed(raw []byte, hash [32]byte, maxBytes int) (*Tx, error) {
	if len(raw) > maxBytes {
		return nil, ErrTxTooLarge.Wrapf("%d bytes, limit is %d", len(raw), maxBytes)
	}
	var env chainpb.Tx
	if err := proto.Unmarshal(raw, &env); err != nil {
		return nil, ErrMalformedTx.Wrapf("envelope: %v", err)
	}
	if u := env.ProtoReflect().GetUnknown(); len(u) > 0 {
		return nil, ErrMalformedTx.Wrapf("envelope has unknown field %d", firstFieldNum(u))
	}
	// The signature covers the body, not the envelope: only one encoding of
	// the envelope is accepted, so nobody can relay a signed transaction
	// under a different hash.
	if canon, err := canonical.Marshal(&env); err != nil || !bytes.Equal(canon, raw) {
		return nil, ErrMalformedTx.Wrapf("envelope is not canonically encoded (each field once, in field order, no empty field)")
	}
	if len(env.PubKey) != ed25519.PublicKeySize {
		return nil, ErrBadPubKey.Wrapf("ed25519 public key must be %d bytes, got %d", ed25519.PublicKeySize, len(env.PubKey))
	}
	if crypto.IsSmallOrderKey(env.PubKey) {
		return nil, ErrBadPubKey.Wrapf("%x is a small-order point: signatures for it can be made without a private key", env.PubKey)
	}
	if len(env.Signature) != ed25519.SignatureSize {
		return nil, ErrBadSignature.Wrapf("signature must be %d bytes, got %d", ed25519.SignatureSize, len(env.Signature))
	}
	var body chainpb.TxBody
	if err := proto.Unmarshal(env.Body, &body); err != nil {
		return nil, ErrMalformedTx.Wrapf("body: %v", err)
	}
	if u := body.ProtoReflect().GetUnknown(); len(u) > 0 {
		if n := firstFieldNum(u); n >= 10 {
			return nil, ErrUnknownMsg.Wrapf("message field %d is not known to this chain", n)
		}
		return nil, ErrMalformedTx.Wrapf("body has unknown field %d", firstFieldNum(u))
	}
	if body.Msg == nil {
		return nil, ErrUnknownMsg.Wrapf("the transaction carries no message")
	}
	// The body's own unknown fields were refused above; look inside its
	// message, the only message-typed field it has.
	bm := body.ProtoReflect()
	if path, n, ok := strictpb.UnknownField(bm.Get(bm.WhichOneof(msgOneof)).Message()); ok {
		return nil, ErrMalformedTx.Wrapf("%s has unknown field %d", path, n)
	}
	if body.Fee < 0 {
		return nil, ErrInvalidFee.Wrapf("fee must not be negative, got %d", body.Fee)
	}
	if len(body.Memo) > MaxMemoBytes {
		return nil, ErrMemoTooLong.Wrapf("%d bytes, limit is %d", len(body.Memo), MaxMemoBytes)
	}
	pub := ed25519.PublicKey(env.PubKey)
	return &Tx{
		Size:      len(raw),
		Hash:      hash,
		BodyBytes: env.Body,
		Body:      &body,
		PubKey:    pub,
		Signature: env.Signature,
		Signer:    crypto.AddressFromPubKey(pub),
	}, nil
}

var (
	canonical = proto.MarshalOptions{Deterministic: true}
	msgOneof  = (&chainpb.TxBody{}).ProtoReflect().Descriptor().Oneofs().ByName("msg")
)

// firstFieldNum reports the field number of the first unknown field.
func firstFieldNum(unknown []byte) protowire.Number {
	n, _, _ := protowire.ConsumeTag(unknown)
	return n
}

// Verify checks that the transaction is for chainID and that its signature
// is valid. It is pure and safe to call concurrently.
func (tx *Tx) Verify(chainID string) error {
	if tx.Body.ChainId != chainID {
		return ErrWrongChainID.Wrapf("transaction is for %q, this chain is %q", tx.Body.ChainId, chainID)
	}
	if !crypto.VerifySignature(tx.PubKey, SignBytes(chainID, tx.BodyBytes), tx.Signature) {
		return ErrBadSignature.Wrapf("signature does not match signer %s", tx.Signer)
	}
	return nil
}

// MsgName names the transaction's message for logs and events.
// It is the message's field name in TxBody (transfer, push_message, ...).
func (tx *Tx) MsgName() string {
	m := tx.Body.ProtoReflect()
	if fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("msg")); fd != nil {
		return string(fd.Name())
	}
	return "unknown"
}

// Sign encodes and signs body with key, producing transaction bytes.
func Sign(key ed25519.PrivateKey, body *chainpb.TxBody) ([]byte, error) {
	bodyBytes, err := canonical.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode transaction body: %w", err)
	}
	env := &chainpb.Tx{
		Body:      bodyBytes,
		PubKey:    key.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(key, SignBytes(body.ChainId, bodyBytes)),
	}
	return canonical.Marshal(env)
}
