package querywire

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// The fixtures below come from fixed seeds, so every fuzz worker process
// holds the same keys and a seed sealed in one opens in another.

// FuzzOpenRequest feeds a worker what any user can send: a raw envelope,
// any plaintext sealed correctly (as decodeRequest sees it after HPKE),
// and any query bytes correctly signed and sealed.
func FuzzOpenRequest(f *testing.F) {
	fx := newFixture(f, 1)
	p := fx.pending(f, "fuzz-request", fx.query())
	plain, err := fx.hpke.Open(p.Request.Envelope, crypto.QueryInfo(testChain, fx.worker.SigningKey))
	if err != nil {
		f.Fatal(err)
	}
	var sq pruntimepb.SignedQuery
	if err := proto.Unmarshal(plain, &sq); err != nil {
		f.Fatal(err)
	}
	f.Add(p.Request.Envelope, plain, sq.Query)
	f.Add([]byte("PHE1"), []byte{}, []byte{})

	check := func(t *testing.T, req *Request, err error) {
		t.Helper()
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("refusal does not wrap ErrBadQuery: %v", err)
			}
			return
		}
		raw, merr := canonical.Marshal(req.Query)
		if merr != nil {
			t.Fatal(merr)
		}
		if sum := sha256.Sum256(raw); !bytes.Equal(sum[:], req.QueryHash) {
			t.Fatal("query hash is not of the query's canonical bytes")
		}
		if req.Query.ChainId != testChain || req.Contract != crypto.ContractID(req.Query.Contract) || len(req.Query.Nonce) != NonceSize {
			t.Fatalf("accepted an unchecked query: %v", req.Query)
		}
		if _, perr := crypto.ParseHPKEPublicKey(req.ReplyKey); perr != nil {
			t.Fatalf("accepted an unusable reply key: %v", perr)
		}
	}

	f.Fuzz(func(t *testing.T, env, plain, query []byte) {
		req, err := fx.open(&pruntimepb.QueryRequest{Envelope: env})
		check(t, req, err)

		req, err = decodeRequest(testChain, plain)
		check(t, req, err)

		signed, err := canonical.Marshal(&pruntimepb.SignedQuery{Query: query, PublicKey: fx.user.Public().(ed25519.PublicKey), Signature: ed25519.Sign(fx.user, crypto.QueryBytes(query))})
		if err != nil {
			t.Fatal(err)
		}
		req, err = decodeRequest(testChain, signed)
		check(t, req, err)
		if err == nil && req.Caller != crypto.AddressFromPubKey(fx.user.Public().(ed25519.PublicKey)) {
			t.Fatalf("caller %s is not the signer", req.Caller)
		}
	})
}

// FuzzPendingOpen feeds a client what a worker or its host can send: a
// raw response envelope, any plaintext sealed correctly to the reply key
// (as check sees it), and any answer bytes signed by the right worker.
func FuzzPendingOpen(f *testing.F) {
	fx := newFixture(f, 1)
	p := fx.pending(f, "fuzz-answer", fx.query())
	req, err := fx.open(p.Request)
	if err != nil {
		f.Fatal(err)
	}
	resp, err := Answer(testChain, fx.sign, req, &pruntimepb.QueryAnswer{Height: 5, StateRoot: []byte{1, 2}, Output: []byte("out"),
		Receipt: &pruntimepb.CommandReceipt{Ok: true, Events: [][]byte{{1}}}})
	if err != nil {
		f.Fatal(err)
	}
	plain, err := p.reply.Open(resp.Envelope, crypto.AnswerInfo(testChain, p.QueryHash))
	if err != nil {
		f.Fatal(err)
	}
	var sa pruntimepb.SignedAnswer
	if err := proto.Unmarshal(plain, &sa); err != nil {
		f.Fatal(err)
	}
	f.Add(resp.Envelope, plain, sa.Answer)
	f.Add([]byte("PHE1"), []byte{}, []byte{})

	check := func(t *testing.T, ans *pruntimepb.QueryAnswer, err error) {
		t.Helper()
		if err != nil {
			if !errors.Is(err, ErrForgedAnswer) {
				t.Fatalf("refusal does not wrap ErrForgedAnswer: %v", err)
			}
			return
		}
		if !bytes.Equal(ans.QueryHash, p.QueryHash) || !bytes.Equal(ans.Contract, p.Contract[:]) {
			t.Fatalf("accepted an answer to another query: %v", ans)
		}
	}

	f.Fuzz(func(t *testing.T, env, plain, answer []byte) {
		ans, err := p.Open(&pruntimepb.QueryResponse{Envelope: env})
		check(t, ans, err)

		ans, err = p.check(plain)
		check(t, ans, err)

		signed, err := canonical.Marshal(&pruntimepb.SignedAnswer{Answer: answer, Worker: fx.worker.SigningKey, Signature: ed25519.Sign(fx.sign, crypto.AnswerBytes(testChain, answer))})
		if err != nil {
			t.Fatal(err)
		}
		ans, err = p.check(signed)
		check(t, ans, err)
	})
}
