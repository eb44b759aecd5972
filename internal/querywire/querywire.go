// Package querywire seals, signs, opens and verifies confidential contract
// queries (DESIGN.md section 7): the client half (NewRequest, Pending.Open)
// and the worker half (OpenRequest, Answer), so both ends share one
// definition of the wire format and of every check.
//
// A query is a ContractQuery signed by the user's ed25519 account key over
// crypto.QueryBytes, wrapped in a SignedQuery and sealed to the worker's
// identity HPKE key with crypto.QueryInfo(chain, worker signing key). The
// answer is a QueryAnswer signed by the worker's identity key over
// crypto.AnswerBytes, wrapped in a SignedAnswer and sealed to the query's
// fresh reply key with crypto.AnswerInfo(chain, query hash). The host in
// between can neither read nor alter either.
package querywire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/strictpb"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// MaxEnvelope is the largest sealed query or answer either side accepts.
const MaxEnvelope = 1 << 20

// NonceSize is the size of ContractQuery.nonce.
const NonceSize = 16

// ErrBadQuery is wrapped by every reason a worker refuses a query
// (OpenRequest), and by NewRequest's refusals of its arguments.
var ErrBadQuery = errors.New("invalid contract query")

// ErrForgedAnswer is wrapped by every reason a client refuses an answer
// (Pending.Open): it does not open, is not signed by the expected worker,
// or does not answer the query that was asked.
var ErrForgedAnswer = errors.New("query answer refused")

// ErrAnswerTooLarge is returned by Answer when the sealed answer would
// exceed MaxEnvelope (the client would refuse it).
var ErrAnswerTooLarge = errors.New("query answer too large")

var canonical = proto.MarshalOptions{Deterministic: true}

// Pending is a query on its way: the request to send and what is needed
// to open and check its answer.
type Pending struct {
	// Request is what to send to the worker.
	Request *pruntimepb.QueryRequest
	// Query is the query as signed (chain id, reply key and nonce filled).
	Query *pruntimepb.ContractQuery
	// ChainID is the chain the query is for.
	ChainID string
	// QueryHash is SHA-256 of the signed query bytes.
	QueryHash []byte
	// Worker is the signing key the answer must be signed with.
	Worker ed25519.PublicKey
	// Contract is the contract asked.
	Contract crypto.ContractID

	reply *crypto.HPKEKey
}

// NewRequest builds the request for q to worker (as registered on chain:
// its signing key and HPKE key), signed by user. It fills q's chain id,
// a fresh reply key and a random nonce in a copy; q is not changed.
func NewRequest(chainID string, worker *chainpb.Worker, user ed25519.PrivateKey, q *pruntimepb.ContractQuery) (*Pending, error) {
	if worker == nil {
		return nil, fmt.Errorf("%w: no worker given", ErrBadQuery)
	}
	return newRequest(rand.Reader, chainID, worker.SigningKey, worker.HpkeKey, user, q)
}

// newRequest is NewRequest with its randomness (reply key seed, nonce)
// drawn from random, so tests can make reproducible requests.
func newRequest(random io.Reader, chainID string, workerKey, workerHPKE []byte, user ed25519.PrivateKey, q *pruntimepb.ContractQuery) (*Pending, error) {
	switch {
	case q == nil:
		return nil, fmt.Errorf("%w: no query given", ErrBadQuery)
	case chainID == "":
		return nil, fmt.Errorf("%w: no chain id given", ErrBadQuery)
	case len(workerKey) != ed25519.PublicKeySize:
		return nil, fmt.Errorf("%w: worker signing key is %d bytes, want %d (use the worker's record from the chain)", ErrBadQuery, len(workerKey), ed25519.PublicKeySize)
	case len(user) != ed25519.PrivateKeySize:
		return nil, fmt.Errorf("%w: user key is %d bytes, want an ed25519 private key (%d)", ErrBadQuery, len(user), ed25519.PrivateKeySize)
	}
	if _, err := crypto.ParseHPKEPublicKey(workerHPKE); err != nil {
		return nil, fmt.Errorf("%w: worker's HPKE key: %v", ErrBadQuery, err)
	}
	contract, err := crypto.ContractIDFromBytes(q.Contract)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadQuery, err)
	}
	if _, ok := pruntimepb.ContractQuery_Kind_name[int32(q.Kind)]; !ok {
		return nil, fmt.Errorf("%w: unknown query kind %d", ErrBadQuery, q.Kind)
	}
	seed := make([]byte, crypto.SeedSize)
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return nil, fmt.Errorf("reply key: %w", err)
	}
	if _, err := io.ReadFull(random, nonce); err != nil {
		return nil, fmt.Errorf("query nonce: %w", err)
	}
	reply, err := crypto.NewHPKEKey(seed)
	if err != nil {
		return nil, fmt.Errorf("reply key: %w", err)
	}
	cq := proto.Clone(q).(*pruntimepb.ContractQuery)
	cq.ChainId, cq.ReplyKey, cq.Nonce = chainID, reply.PublicKey(), nonce
	raw, err := canonical.Marshal(cq)
	if err != nil {
		return nil, err
	}
	signed, err := canonical.Marshal(&pruntimepb.SignedQuery{
		Query:     raw,
		PublicKey: user.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(user, crypto.QueryBytes(raw)),
	})
	if err != nil {
		return nil, err
	}
	env, err := crypto.Seal(workerHPKE, crypto.QueryInfo(chainID, workerKey), signed)
	if err != nil {
		return nil, fmt.Errorf("seal the query to the worker: %w", err)
	}
	if len(env) > MaxEnvelope {
		return nil, fmt.Errorf("%w: sealed query is %d bytes, over the %d-byte limit (send a smaller payload)", ErrBadQuery, len(env), MaxEnvelope)
	}
	sum := sha256.Sum256(raw)
	return &Pending{
		Request:   &pruntimepb.QueryRequest{Envelope: env},
		Query:     cq,
		ChainID:   chainID,
		QueryHash: sum[:],
		Worker:    bytes.Clone(workerKey),
		Contract:  contract,
		reply:     reply,
	}, nil
}

// Open opens resp with the query's reply key and checks it: signed by the
// expected worker for this chain, answering this query about this
// contract. Every refusal wraps ErrForgedAnswer.
func (p *Pending) Open(resp *pruntimepb.QueryResponse) (*pruntimepb.QueryAnswer, error) {
	if resp == nil || len(resp.Envelope) == 0 {
		return nil, fmt.Errorf("%w: the response is empty", ErrForgedAnswer)
	}
	if len(resp.Envelope) > MaxEnvelope {
		return nil, fmt.Errorf("%w: sealed answer is %d bytes, over the %d-byte limit", ErrForgedAnswer, len(resp.Envelope), MaxEnvelope)
	}
	plain, err := p.reply.Open(resp.Envelope, crypto.AnswerInfo(p.ChainID, p.QueryHash))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open with this query's reply key (sealed for another query or chain, or altered on the way): %v", ErrForgedAnswer, err)
	}
	return p.check(plain)
}

// check verifies an opened SignedAnswer.
func (p *Pending) check(plain []byte) (*pruntimepb.QueryAnswer, error) {
	var sa pruntimepb.SignedAnswer
	if err := strictpb.Decode(plain, &sa); err != nil {
		return nil, fmt.Errorf("%w: signed answer does not decode: %v", ErrForgedAnswer, err)
	}
	if !bytes.Equal(sa.Worker, p.Worker) {
		return nil, fmt.Errorf("%w: signed by worker %X, the query was sent to worker %X", ErrForgedAnswer, clip(sa.Worker), []byte(p.Worker))
	}
	if len(sa.Signature) != ed25519.SignatureSize || !ed25519.Verify(p.Worker, crypto.AnswerBytes(p.ChainID, sa.Answer), sa.Signature) {
		return nil, fmt.Errorf("%w: the worker's signature does not verify", ErrForgedAnswer)
	}
	var ans pruntimepb.QueryAnswer
	if err := strictpb.Decode(sa.Answer, &ans); err != nil {
		return nil, fmt.Errorf("%w: answer does not decode: %v", ErrForgedAnswer, err)
	}
	if !bytes.Equal(ans.QueryHash, p.QueryHash) {
		return nil, fmt.Errorf("%w: it answers query %X, this query is %X", ErrForgedAnswer, clip(ans.QueryHash), p.QueryHash)
	}
	if !bytes.Equal(ans.Contract, p.Contract[:]) {
		return nil, fmt.Errorf("%w: it is about contract %X, the query asked contract %X", ErrForgedAnswer, clip(ans.Contract), p.Contract[:])
	}
	return &ans, nil
}

// Request is a query a worker opened and checked.
type Request struct {
	// Query is the decoded query.
	Query *pruntimepb.ContractQuery
	// Caller is the signer's account: who is asking.
	Caller crypto.Address
	// Contract is the contract asked.
	Contract crypto.ContractID
	// QueryHash is SHA-256 of the signed query bytes.
	QueryHash []byte
	// ReplyKey is the HPKE public key the answer is sealed to.
	ReplyKey []byte
}

// OpenRequest opens a query sealed to this worker (its signing key and
// HPKE key) for chainID and checks it: bounded size, the user's
// signature, the chain id, a contract id, a nonce, a known kind and a
// usable reply key. Every refusal wraps ErrBadQuery. req comes from
// anyone: nothing in it is trusted before this returns.
func OpenRequest(chainID string, workerSigningKey []byte, workerHPKE *crypto.HPKEKey, req *pruntimepb.QueryRequest) (*Request, error) {
	if req == nil || len(req.Envelope) == 0 {
		return nil, fmt.Errorf("%w: the request is empty", ErrBadQuery)
	}
	if workerHPKE == nil {
		return nil, errors.New("open query: no worker HPKE key given")
	}
	if len(req.Envelope) > MaxEnvelope {
		return nil, fmt.Errorf("%w: sealed query is %d bytes, over the %d-byte limit", ErrBadQuery, len(req.Envelope), MaxEnvelope)
	}
	plain, err := workerHPKE.Open(req.Envelope, crypto.QueryInfo(chainID, workerSigningKey))
	if err != nil {
		return nil, fmt.Errorf("%w: it does not open with this worker's key (sealed to another worker or chain, or altered): %v", ErrBadQuery, err)
	}
	return decodeRequest(chainID, plain)
}

// decodeRequest checks an opened SignedQuery.
func decodeRequest(chainID string, plain []byte) (*Request, error) {
	var sq pruntimepb.SignedQuery
	if err := strictpb.Decode(plain, &sq); err != nil {
		return nil, fmt.Errorf("%w: signed query does not decode: %v", ErrBadQuery, err)
	}
	if len(sq.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d (ed25519)", ErrBadQuery, len(sq.PublicKey), ed25519.PublicKeySize)
	}
	if len(sq.Signature) != ed25519.SignatureSize || !ed25519.Verify(sq.PublicKey, crypto.QueryBytes(sq.Query), sq.Signature) {
		return nil, fmt.Errorf("%w: the user's signature does not verify", ErrBadQuery)
	}
	var q pruntimepb.ContractQuery
	if err := strictpb.Decode(sq.Query, &q); err != nil {
		return nil, fmt.Errorf("%w: query does not decode: %v", ErrBadQuery, err)
	}
	if q.ChainId != chainID {
		return nil, fmt.Errorf("%w: it is for chain %q, this worker serves %q", ErrBadQuery, clip(q.ChainId), chainID)
	}
	contract, err := crypto.ContractIDFromBytes(q.Contract)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadQuery, err)
	}
	if _, ok := pruntimepb.ContractQuery_Kind_name[int32(q.Kind)]; !ok {
		return nil, fmt.Errorf("%w: unknown query kind %d", ErrBadQuery, q.Kind)
	}
	if len(q.Nonce) != NonceSize {
		return nil, fmt.Errorf("%w: nonce is %d bytes, want %d", ErrBadQuery, len(q.Nonce), NonceSize)
	}
	if _, err := crypto.ParseHPKEPublicKey(q.ReplyKey); err != nil {
		return nil, fmt.Errorf("%w: reply key: %v", ErrBadQuery, err)
	}
	sum := sha256.Sum256(sq.Query)
	return &Request{
		Query:     &q,
		Caller:    crypto.AddressFromPubKey(sq.PublicKey),
		Contract:  contract,
		QueryHash: sum[:],
		ReplyKey:  q.ReplyKey,
	}, nil
}

// Answer signs ans with the worker identity key sign and seals it to
// req's reply key. It fills ans's query hash and contract from req (in a
// copy; ans is not changed).
func Answer(chainID string, sign ed25519.PrivateKey, req *Request, ans *pruntimepb.QueryAnswer) (*pruntimepb.QueryResponse, error) {
	if len(sign) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("worker signing key is %d bytes, want %d", len(sign), ed25519.PrivateKeySize)
	}
	if req == nil || ans == nil {
		return nil, errors.New("answer: no request or no answer given")
	}
	a := proto.Clone(ans).(*pruntimepb.QueryAnswer)
	a.QueryHash, a.Contract = req.QueryHash, req.Contract.Bytes()
	raw, err := canonical.Marshal(a)
	if err != nil {
		return nil, err
	}
	signed, err := canonical.Marshal(&pruntimepb.SignedAnswer{
		Answer:    raw,
		Worker:    sign.Public().(ed25519.PublicKey),
		Signature: ed25519.Sign(sign, crypto.AnswerBytes(chainID, raw)),
	})
	if err != nil {
		return nil, err
	}
	env, err := crypto.Seal(req.ReplyKey, crypto.AnswerInfo(chainID, req.QueryHash), signed)
	if err != nil {
		return nil, fmt.Errorf("seal the answer: %w", err)
	}
	if len(env) > MaxEnvelope {
		return nil, fmt.Errorf("%w: sealed answer is %d bytes, over the %d-byte limit", ErrAnswerTooLarge, len(env), MaxEnvelope)
	}
	return &pruntimepb.QueryResponse{Envelope: env}, nil
}

// clip bounds untrusted bytes quoted in an error message.
func clip[T ~string | ~[]byte](v T) T {
	const max = 64
	if len(v) > max {
		return v[:max]
	}
	return v
}
