package querywire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/detrand"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

const testChain = "phala-test"

// fixture is a worker, a user and a contract, all from fixed seeds.
type fixture struct {
	sign     ed25519.PrivateKey
	hpke     *crypto.HPKEKey
	worker   *chainpb.Worker
	user     ed25519.PrivateKey
	contract crypto.ContractID
}

func newFixture(tb testing.TB, seed byte) *fixture {
	tb.Helper()
	sign := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	hpke, err := crypto.NewHPKEKey(bytes.Repeat([]byte{seed + 1}, crypto.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	user := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed + 2}, ed25519.SeedSize))
	return &fixture{
		sign:     sign,
		hpke:     hpke,
		worker:   &chainpb.Worker{SigningKey: sign.Public().(ed25519.PublicKey), HpkeKey: hpke.PublicKey()},
		user:     user,
		contract: crypto.NewContractID(crypto.AddressFromPubKey(user.Public().(ed25519.PublicKey)), uint64(seed)),
	}
}

func (f *fixture) query() *pruntimepb.ContractQuery {
	return &pruntimepb.ContractQuery{Contract: f.contract.Bytes(), Kind: pruntimepb.ContractQuery_QUERY, Payload: []byte(`{"get":"balance"}`)}
}

func (f *fixture) open(req *pruntimepb.QueryRequest) (*Request, error) {
	return OpenRequest(testChain, f.worker.SigningKey, f.hpke, req)
}

// pending makes a reproducible request (its reply key and nonce from seed).
func (f *fixture) pending(tb testing.TB, seed string, q *pruntimepb.ContractQuery) *Pending {
	tb.Helper()
	p, err := newRequest(detrand.New([]byte(seed)), testChain, f.worker.SigningKey, f.worker.HpkeKey, f.user, q)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// sealQuery signs q's canonical bytes with signer, lets edit change the
// SignedQuery, and seals it to the fixture's worker for chain.
func (f *fixture) sealQuery(tb testing.TB, chain string, q *pruntimepb.ContractQuery, signer ed25519.PrivateKey, edit func(*pruntimepb.SignedQuery)) *pruntimepb.QueryRequest {
	tb.Helper()
	raw, err := canonical.Marshal(q)
	if err != nil {
		tb.Fatal(err)
	}
	sq := &pruntimepb.SignedQuery{Query: raw, PublicKey: signer.Public().(ed25519.PublicKey), Signature: ed25519.Sign(signer, crypto.QueryBytes(raw))}
	if edit != nil {
		edit(sq)
	}
	plain, err := canonical.Marshal(sq)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := crypto.Seal(f.worker.HpkeKey, crypto.QueryInfo(chain, f.worker.SigningKey), plain)
	if err != nil {
		tb.Fatal(err)
	}
	return &pruntimepb.QueryRequest{Envelope: env}
}

// validQuery is a well-formed query with every field set by hand.
func (f *fixture) validQuery(tb testing.TB) *pruntimepb.ContractQuery {
	tb.Helper()
	reply, err := crypto.NewHPKEKey(bytes.Repeat([]byte{9}, crypto.SeedSize))
	if err != nil {
		tb.Fatal(err)
	}
	q := f.query()
	q.ChainId, q.ReplyKey, q.Nonce = testChain, reply.PublicKey(), bytes.Repeat([]byte{7}, NonceSize)
	return q
}

// sealAnswer signs ans with signer (named as worker), lets edit change the
// SignedAnswer, and seals it to p's reply key for p's query.
func sealAnswer(tb testing.TB, p *Pending, signer ed25519.PrivateKey, ans *pruntimepb.QueryAnswer, edit func(*pruntimepb.SignedAnswer)) *pruntimepb.QueryResponse {
	tb.Helper()
	raw, err := canonical.Marshal(ans)
	if err != nil {
		tb.Fatal(err)
	}
	sa := &pruntimepb.SignedAnswer{Answer: raw, Worker: signer.Public().(ed25519.PublicKey), Signature: ed25519.Sign(signer, crypto.AnswerBytes(p.ChainID, raw))}
	if edit != nil {
		edit(sa)
	}
	plain, err := canonical.Marshal(sa)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := crypto.Seal(p.Query.ReplyKey, crypto.AnswerInfo(p.ChainID, p.QueryHash), plain)
	if err != nil {
		tb.Fatal(err)
	}
	return &pruntimepb.QueryResponse{Envelope: env}
}

func wantErr(t *testing.T, err, is error, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error wrapping %q mentioning %q", is, contains)
	}
	if !errors.Is(err, is) {
		t.Fatalf("error %q does not wrap %q", err, is)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not mention %q", err, contains)
	}
}

func TestRoundTrip(t *testing.T) {
	f := newFixture(t, 1)
	q := f.query()
	q.Kind, q.CommandNonce = pruntimepb.ContractQuery_RECEIPT, 42
	orig := proto.Clone(q)
	p, err := NewRequest(testChain, f.worker, f.user, q)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(q, orig) {
		t.Fatal("NewRequest changed the caller's query")
	}
	if p.Query.ChainId != testChain || len(p.Query.Nonce) != NonceSize || len(p.Query.ReplyKey) == 0 {
		t.Fatalf("query not filled: %v", p.Query)
	}
	req, err := f.open(p.Request)
	if err != nil {
		t.Fatal(err)
	}
	if want := crypto.AddressFromPubKey(f.user.Public().(ed25519.PublicKey)); req.Caller != want {
		t.Fatalf("caller %s, want %s", req.Caller, want)
	}
	if req.Contract != f.contract || !bytes.Equal(req.QueryHash, p.QueryHash) || !proto.Equal(req.Query, p.Query) {
		t.Fatalf("opened %v, sent %v", req, p)
	}
	if req.Query.Kind != pruntimepb.ContractQuery_RECEIPT || req.Query.CommandNonce != 42 {
		t.Fatalf("kind or command nonce lost: %v", req.Query)
	}

	ans := &pruntimepb.QueryAnswer{Height: 17, StateRoot: bytes.Repeat([]byte{3}, 32), Output: []byte("100"),
		Receipt: &pruntimepb.CommandReceipt{Height: 16, Nonce: 42, Ok: true, Events: [][]byte{[]byte("e")}}}
	origAns := proto.Clone(ans)
	resp, err := Answer(testChain, f.sign, req, ans)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(ans, origAns) {
		t.Fatal("Answer changed the caller's answer")
	}
	got, err := p.Open(resp)
	if err != nil {
		t.Fatal(err)
	}
	if got.Height != 17 || string(got.Output) != "100" || !got.Receipt.Ok || !bytes.Equal(got.Contract, f.contract[:]) || !bytes.Equal(got.QueryHash, p.QueryHash) {
		t.Fatalf("answer %v", got)
	}

	// Two requests for the same query differ (nonce, reply key).
	p2, err := NewRequest(testChain, f.worker, f.user, q)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p2.QueryHash, p.QueryHash) || bytes.Equal(p2.Query.ReplyKey, p.Query.ReplyKey) {
		t.Fatal("two requests share a query hash or a reply key")
	}
}

func TestNewRequestRefuses(t *testing.T) {
	f := newFixture(t, 1)
	bad := f.query()
	bad.Contract = []byte{1, 2, 3}
	for name, call := range map[string]func() (*Pending, error){
		"no worker": func() (*Pending, error) { return NewRequest(testChain, nil, f.user, f.query()) },
		"no query":  func() (*Pending, error) { return NewRequest(testChain, f.worker, f.user, nil) },
		"no chain":  func() (*Pending, error) { return NewRequest("", f.worker, f.user, f.query()) },
		"short worker key": func() (*Pending, error) {
			return NewRequest(testChain, &chainpb.Worker{SigningKey: []byte{1}, HpkeKey: f.worker.HpkeKey}, f.user, f.query())
		},
		"bad hpke key": func() (*Pending, error) {
			return NewRequest(testChain, &chainpb.Worker{SigningKey: f.worker.SigningKey, HpkeKey: []byte{1, 2, 3}}, f.user, f.query())
		},
		"bad user key": func() (*Pending, error) { return NewRequest(testChain, f.worker, f.user[:10], f.query()) },
		"bad contract": func() (*Pending, error) { return NewRequest(testChain, f.worker, f.user, bad) },
	} {
		if _, err := call(); !errors.Is(err, ErrBadQuery) {
			t.Errorf("%s: err %v, want ErrBadQuery", name, err)
		}
	}
}

func TestQueryToAnotherWorker(t *testing.T) {
	a, b := newFixture(t, 1), newFixture(t, 10)
	p, err := NewRequest(testChain, b.worker, a.user, a.query())
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.open(p.Request)
	wantErr(t, err, ErrBadQuery, "does not open")

	// Sealed to a's HPKE key but bound to b's signing key: still refused.
	mixed := &chainpb.Worker{SigningKey: b.worker.SigningKey, HpkeKey: a.worker.HpkeKey}
	p, err = NewRequest(testChain, mixed, a.user, a.query())
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.open(p.Request)
	wantErr(t, err, ErrBadQuery, "does not open")
}

func TestBadUserSignature(t *testing.T) {
	f := newFixture(t, 1)
	other := newFixture(t, 20).user
	for name, edit := range map[string]func(*pruntimepb.SignedQuery){
		"flipped bit":    func(sq *pruntimepb.SignedQuery) { sq.Signature[5] ^= 1 },
		"other signer":   func(sq *pruntimepb.SignedQuery) { sq.PublicKey = other.Public().(ed25519.PublicKey) },
		"short sig":      func(sq *pruntimepb.SignedQuery) { sq.Signature = sq.Signature[:63] },
		"changed query":  func(sq *pruntimepb.SignedQuery) { sq.Query = append(sq.Query, 0x38, 1) },
		"missing sig":    func(sq *pruntimepb.SignedQuery) { sq.Signature = nil },
		"short key":      func(sq *pruntimepb.SignedQuery) { sq.PublicKey = sq.PublicKey[:31] },
		"no key at all":  func(sq *pruntimepb.SignedQuery) { sq.PublicKey = nil },
		"sig of nothing": func(sq *pruntimepb.SignedQuery) { sq.Signature = ed25519.Sign(f.user, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.open(f.sealQuery(t, testChain, f.validQuery(t), f.user, edit))
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("err %v, want ErrBadQuery", err)
			}
		})
	}
	if _, err := f.open(f.sealQuery(t, testChain, f.validQuery(t), f.user, nil)); err != nil {
		t.Fatalf("the unedited query is refused: %v", err)
	}
}

func TestOtherChain(t *testing.T) {
	f := newFixture(t, 1)
	p, err := NewRequest("other-chain", f.worker, f.user, f.query())
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.open(p.Request)
	wantErr(t, err, ErrBadQuery, "does not open")

	// Sealed for this chain, but the signed query names another.
	q := f.validQuery(t)
	q.ChainId = "other-chain"
	_, err = f.open(f.sealQuery(t, testChain, q, f.user, nil))
	wantErr(t, err, ErrBadQuery, `chain "other-chain"`)
}

func TestQueryFieldsChecked(t *testing.T) {
	f := newFixture(t, 1)
	for name, tc := range map[string]struct {
		edit func(*pruntimepb.ContractQuery)
		want string
	}{
		"short contract":  {func(q *pruntimepb.ContractQuery) { q.Contract = q.Contract[:19] }, "contract id"},
		"no nonce":        {func(q *pruntimepb.ContractQuery) { q.Nonce = nil }, "nonce"},
		"long nonce":      {func(q *pruntimepb.ContractQuery) { q.Nonce = make([]byte, 17) }, "nonce"},
		"unknown kind":    {func(q *pruntimepb.ContractQuery) { q.Kind = 99 }, "kind"},
		"no reply key":    {func(q *pruntimepb.ContractQuery) { q.ReplyKey = nil }, "reply key"},
		"bad reply key":   {func(q *pruntimepb.ContractQuery) { q.ReplyKey[10] ^= 0xff; q.ReplyKey = q.ReplyKey[:40] }, "reply key"},
		"other reply KEM": {func(q *pruntimepb.ContractQuery) { q.ReplyKey[1] ^= 1 }, "reply key"},
	} {
		t.Run(name, func(t *testing.T) {
			q := f.validQuery(t)
			tc.edit(q)
			_, err := f.open(f.sealQuery(t, testChain, q, f.user, nil))
			wantErr(t, err, ErrBadQuery, tc.want)
		})
	}

	// A query not in its one canonical encoding is refused: the hash and
	// the signature must identify one message.
	raw, _ := canonical.Marshal(f.validQuery(t))
	dup := append(append([]byte(nil), raw...), 0x38, 0) // command_nonce = 0, encoded
	sq := &pruntimepb.SignedQuery{Query: dup, PublicKey: f.user.Public().(ed25519.PublicKey), Signature: ed25519.Sign(f.user, crypto.QueryBytes(dup))}
	plain, _ := canonical.Marshal(sq)
	env, _ := crypto.Seal(f.worker.HpkeKey, crypto.QueryInfo(testChain, f.worker.SigningKey), plain)
	_, err := f.open(&pruntimepb.QueryRequest{Envelope: env})
	wantErr(t, err, ErrBadQuery, "canonical")
}

func TestSizeLimits(t *testing.T) {
	f := newFixture(t, 1)
	big := &pruntimepb.QueryRequest{Envelope: make([]byte, MaxEnvelope+1)}
	_, err := f.open(big)
	wantErr(t, err, ErrBadQuery, "limit")
	_, err = f.open(&pruntimepb.QueryRequest{})
	wantErr(t, err, ErrBadQuery, "empty")
	_, err = f.open(nil)
	wantErr(t, err, ErrBadQuery, "empty")

	q := f.query()
	q.Payload = make([]byte, MaxEnvelope)
	_, err = NewRequest(testChain, f.worker, f.user, q)
	wantErr(t, err, ErrBadQuery, "limit")

	p := f.pending(t, "size", f.query())
	_, err = p.Open(&pruntimepb.QueryResponse{Envelope: make([]byte, MaxEnvelope+1)})
	wantErr(t, err, ErrForgedAnswer, "limit")
	_, err = p.Open(nil)
	wantErr(t, err, ErrForgedAnswer, "empty")

	req, err := f.open(p.Request)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Answer(testChain, f.sign, req, &pruntimepb.QueryAnswer{Output: make([]byte, MaxEnvelope)})
	if !errors.Is(err, ErrAnswerTooLarge) {
		t.Fatalf("oversized answer: %v", err)
	}
}

func TestAnswerFromAnotherWorker(t *testing.T) {
	f, other := newFixture(t, 1), newFixture(t, 30)
	p := f.pending(t, "a", f.query())
	req, err := f.open(p.Request)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Answer(testChain, other.sign, req, &pruntimepb.QueryAnswer{Output: []byte("lie")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Open(resp)
	wantErr(t, err, ErrForgedAnswer, "signed by worker")

	// Naming the expected worker does not help without its key.
	ans := &pruntimepb.QueryAnswer{QueryHash: p.QueryHash, Contract: f.contract.Bytes(), Output: []byte("lie")}
	resp = sealAnswer(t, p, other.sign, ans, func(sa *pruntimepb.SignedAnswer) { sa.Worker = f.worker.SigningKey })
	_, err = p.Open(resp)
	wantErr(t, err, ErrForgedAnswer, "signature does not verify")

	// Signed by the right worker, but for another chain.
	raw, _ := canonical.Marshal(ans)
	resp = sealAnswer(t, p, f.sign, ans, func(sa *pruntimepb.SignedAnswer) {
		sa.Signature = ed25519.Sign(f.sign, crypto.AnswerBytes("other-chain", raw))
	})
	_, err = p.Open(resp)
	wantErr(t, err, ErrForgedAnswer, "signature does not verify")

	// The same, untouched, is accepted.
	if _, err := p.Open(sealAnswer(t, p, f.sign, ans, nil)); err != nil {
		t.Fatal(err)
	}
}

func TestAnswerForAnotherQuery(t *testing.T) {
	f := newFixture(t, 1)
	p1, p2 := f.pending(t, "one", f.query()), f.pending(t, "two", f.query())
	req2, err := f.open(p2.Request)
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := Answer(testChain, f.sign, req2, &pruntimepb.QueryAnswer{Output: []byte("for two")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p1.Open(resp2)
	wantErr(t, err, ErrForgedAnswer, "does not open")

	// Sealed to p1's reply key, signed by the worker, but answering p2.
	ans := &pruntimepb.QueryAnswer{QueryHash: p2.QueryHash, Contract: f.contract.Bytes(), Output: []byte("for two")}
	_, err = p1.Open(sealAnswer(t, p1, f.sign, ans, nil))
	wantErr(t, err, ErrForgedAnswer, "answers query")

	// Missing query hash.
	ans.QueryHash = nil
	_, err = p1.Open(sealAnswer(t, p1, f.sign, ans, nil))
	wantErr(t, err, ErrForgedAnswer, "answers query")
}

func TestAnswerForAnotherContract(t *testing.T) {
	f := newFixture(t, 1)
	p := f.pending(t, "c", f.query())
	otherContract := crypto.NewContractID(crypto.Address{1}, 1)
	ans := &pruntimepb.QueryAnswer{QueryHash: p.QueryHash, Contract: otherContract.Bytes(), Output: []byte("x")}
	_, err := p.Open(sealAnswer(t, p, f.sign, ans, nil))
	wantErr(t, err, ErrForgedAnswer, "contract")

	// A worker answering through Answer fills the contract from the
	// request it opened, so a request relabelled on the worker side is
	// caught too.
	req, err := f.open(p.Request)
	if err != nil {
		t.Fatal(err)
	}
	req.Contract = otherContract
	resp, err := Answer(testChain, f.sign, req, &pruntimepb.QueryAnswer{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Open(resp)
	wantErr(t, err, ErrForgedAnswer, "contract")
}

func TestTamperedEnvelopes(t *testing.T) {
	f := newFixture(t, 1)
	p := f.pending(t, "tamper", f.query())
	env := p.Request.Envelope
	for _, i := range []int{0, 4, 9, 10, 100, len(env) / 2, len(env) - 1} {
		bad := bytes.Clone(env)
		bad[i] ^= 0x40
		if _, err := f.open(&pruntimepb.QueryRequest{Envelope: bad}); !errors.Is(err, ErrBadQuery) {
			t.Fatalf("request byte %d flipped: err %v", i, err)
		}
	}
	if _, err := f.open(&pruntimepb.QueryRequest{Envelope: env[:len(env)-1]}); !errors.Is(err, ErrBadQuery) {
		t.Fatalf("truncated request: err %v", err)
	}

	req, err := f.open(p.Request)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := Answer(testChain, f.sign, req, &pruntimepb.QueryAnswer{Output: []byte("ok")})
	if err != nil {
		t.Fatal(err)
	}
	renv := resp.Envelope
	for _, i := range []int{0, 4, 9, 10, 100, len(renv) / 2, len(renv) - 1} {
		bad := bytes.Clone(renv)
		bad[i] ^= 0x40
		if _, err := p.Open(&pruntimepb.QueryResponse{Envelope: bad}); !errors.Is(err, ErrForgedAnswer) {
			t.Fatalf("response byte %d flipped: err %v", i, err)
		}
	}
	if _, err := p.Open(&pruntimepb.QueryResponse{Envelope: append(bytes.Clone(renv), 0)}); !errors.Is(err, ErrForgedAnswer) {
		t.Fatalf("extended response: err %v", err)
	}
	if _, err := p.Open(resp); err != nil {
		t.Fatalf("the untouched response: %v", err)
	}
}

func TestQueryHashIsOfSignedBytes(t *testing.T) {
	f := newFixture(t, 1)
	p := f.pending(t, "hash", f.query())
	raw, err := canonical.Marshal(p.Query)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); !bytes.Equal(sum[:], p.QueryHash) {
		t.Fatal("query hash is not SHA-256 of the query bytes")
	}
}
