package chain

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"strings"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	cmttypes "github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
)

// signRawBody signs body bytes as given, so tests can send bodies the
// encoder would never produce.
func signRawBody(key ed25519.PrivateKey, chainID string, body []byte) []byte {
	raw, _ := proto.Marshal(&chainpb.Tx{Body: body, PubKey: key.Public().(ed25519.PublicKey), Signature: ed25519.Sign(key, auth.SignBytes(chainID, body))})
	return raw
}

type badTx struct {
	name string
	tx   func(h *harness) []byte
	want *errs.Error
	log  string // a fragment the message must contain
}

func badInputs() []badTx {
	return []badTx{
		{"malformed bytes", func(*harness) []byte { return []byte{0xff, 0xff, 0x01} }, auth.ErrMalformedTx, "envelope"},
		{"empty tx", func(*harness) []byte { return nil }, auth.ErrBadPubKey, "public key must be 32 bytes"},
		{"bad signature", func(h *harness) []byte {
			raw := h.sign("alice", transfer("bob", 5), 1)
			var env chainpb.Tx
			proto.Unmarshal(raw, &env)
			env.Signature[0] ^= 1
			out, _ := proto.Marshal(&env)
			return out
		}, auth.ErrBadSignature, "does not match signer"},
		{"signature by another key", func(h *harness) []byte {
			raw := h.sign("alice", transfer("bob", 5), 1)
			var env chainpb.Tx
			proto.Unmarshal(raw, &env)
			env.PubKey = h.keys["bob"].Public().(ed25519.PublicKey)
			out, _ := proto.Marshal(&env)
			return out
		}, auth.ErrBadSignature, "does not match signer"},
		{"short public key", func(h *harness) []byte {
			raw := h.sign("alice", transfer("bob", 5), 1)
			var env chainpb.Tx
			proto.Unmarshal(raw, &env)
			env.PubKey = env.PubKey[:31]
			out, _ := proto.Marshal(&env)
			return out
		}, auth.ErrBadPubKey, "got 31"},
		{"wrong chain id", func(h *harness) []byte {
			return h.sign("alice", transfer("bob", 5), 1, func(b *chainpb.TxBody) { b.ChainId = "other-chain" })
		}, auth.ErrWrongChainID, `"other-chain"`},
		{"reused nonce", func(h *harness) []byte { return h.sign("alice", transfer("bob", 5), 0) }, auth.ErrNonceReused, "nonce 0 was already used; the account's next nonce is 1"},
		{"skipped nonce", func(h *harness) []byte { return h.sign("alice", transfer("bob", 5), 3) }, auth.ErrNonceSkipped, "nonce 3 skips ahead; the account's next nonce is 1"},
		{"unknown message type", func(h *harness) []byte {
			body, _ := proto.Marshal(&chainpb.TxBody{ChainId: testChainID, Nonce: 1, Fee: 10_000})
			body = protowire.AppendTag(body, 99, protowire.BytesType)
			body = protowire.AppendBytes(body, []byte("future message"))
			return signRawBody(h.keys["alice"], testChainID, body)
		}, auth.ErrUnknownMsg, "message field 99"},
		{"no message", func(h *harness) []byte { return h.sign("alice", nil, 1) }, auth.ErrUnknownMsg, "no message"},
		{"unknown envelope field", func(h *harness) []byte {
			return protowire.AppendBytes(protowire.AppendTag(h.sign("alice", transfer("bob", 5), 1), 7, protowire.BytesType), []byte("x"))
		}, auth.ErrMalformedTx, "unknown field 7"},
		{"non-canonical envelope", func(h *harness) []byte {
			var env chainpb.Tx
			proto.Unmarshal(h.sign("alice", transfer("bob", 5), 1), &env)
			// Same fields, signature first: still decodes, same signature.
			b := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), env.Signature)
			b = protowire.AppendBytes(protowire.AppendTag(b, 2, protowire.BytesType), env.PubKey)
			return protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), env.Body)
		}, auth.ErrMalformedTx, "not canonically encoded"},
		{"unknown field inside the message", func(h *harness) []byte {
			m := transfer("bob", 5)
			m.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 1))
			return h.sign("alice", m, 1)
		}, auth.ErrMalformedTx, "MsgTransfer has unknown field 9"},
		{"small-order public key", func(h *harness) []byte {
			// With the identity point as key, R = identity and S = 0 verify
			// for any message under the standard library's rules.
			identity := make([]byte, 32)
			identity[0] = 1
			body, _ := proto.Marshal(h.body(transfer("bob", 5), 0))
			raw, _ := proto.Marshal(&chainpb.Tx{Body: body, PubKey: identity, Signature: append(append([]byte(nil), identity...), make([]byte, 32)...)})
			return raw
		}, auth.ErrBadPubKey, "small-order point"},
		{"oversize tx", func(h *harness) []byte {
			return h.sign("alice", &chainpb.MsgPushMessage{Topic: "t", Payload: make([]byte, 9000)}, 1)
		}, auth.ErrTxTooLarge, "limit is 8192"},
		{"insufficient funds", func(h *harness) []byte { return h.sign("alice", transfer("bob", 2_000*bank.UnitsPerPHA), 1) }, bank.ErrInsufficientFunds, "transfer needs 2000 PHA"},
		{"insufficient funds for fee", func(h *harness) []byte {
			return h.sign("alice", transfer("bob", 1), 1, func(b *chainpb.TxBody) { b.Fee = 5_000 * bank.UnitsPerPHA })
		}, bank.ErrInsufficientFunds, "the fee needs"},
		{"zero amount", func(h *harness) []byte { return h.sign("alice", transfer("bob", 0), 1) }, bank.ErrInvalidAmount, "got 0"},
		{"negative amount", func(h *harness) []byte { return h.sign("alice", transfer("bob", -7), 1) }, bank.ErrInvalidAmount, "got -7"},
		{"bad recipient", func(h *harness) []byte {
			return h.sign("alice", &chainpb.MsgTransfer{To: []byte{1, 2, 3}, Amount: 5}, 1)
		}, bank.ErrInvalidRecipient, "got 3"},
		{"unknown account", func(h *harness) []byte { return h.sign("carol", transfer("bob", 5), 0) }, auth.ErrUnknownAccount, "never held PHA"},
		{"fee too low", func(h *harness) []byte {
			return h.sign("alice", transfer("bob", 5), 1, func(b *chainpb.TxBody) { b.Fee = 10 })
		}, auth.ErrFeeTooLow, "needs at least"},
		{"negative fee", func(h *harness) []byte {
			return h.sign("alice", transfer("bob", 5), 1, func(b *chainpb.TxBody) { b.Fee = -1 })
		}, auth.ErrInvalidFee, "got -1"},
		{"memo too long", func(h *harness) []byte {
			return h.sign("alice", transfer("bob", 5), 1, func(b *chainpb.TxBody) { b.Memo = strings.Repeat("m", 300) })
		}, auth.ErrMemoTooLong, "300 bytes"},
		{"bad topic", func(h *harness) []byte {
			return h.sign("alice", &chainpb.MsgPushMessage{Topic: "has space"}, 1)
		}, mq.ErrInvalidTopic, "byte 3"},
		{"empty topic", func(h *harness) []byte { return h.sign("alice", &chainpb.MsgPushMessage{}, 1) }, mq.ErrInvalidTopic, "got 0"},
	}
}

// withOneCommittedTransfer leaves alice at nonce 1 so nonce cases have a past.
func withOneCommittedTransfer(t *testing.T) *harness {
	h := newHarness(t)
	res := h.block(h.sign("alice", transfer("bob", 1), 0))
	if c := res.TxResults[0].Code; c != 0 {
		t.Fatalf("setup transfer failed: %s", res.TxResults[0].Log)
	}
	return h
}

func TestCheckTxRejectsBadInput(t *testing.T) {
	h := withOneCommittedTransfer(t)
	aliceBefore, bobBefore := h.account("alice"), h.account("bob")
	for _, c := range badInputs() {
		t.Run(c.name, func(t *testing.T) {
			res := h.checkTx(c.tx(h))
			if res.Codespace != c.want.Codespace || res.Code != c.want.Code {
				t.Fatalf("got %s/%d %q, want %s/%d (%s)", res.Codespace, res.Code, res.Log, c.want.Codespace, c.want.Code, c.want.Desc)
			}
			if !strings.HasPrefix(res.Log, c.want.Desc) || !strings.Contains(res.Log, c.log) {
				t.Fatalf("log %q should start with %q and name %q", res.Log, c.want.Desc, c.log)
			}
		})
	}
	// Nothing was admitted: the next nonce is still 1 in the check state,
	// and committed state is as before.
	if res := h.checkTx(h.sign("alice", transfer("bob", 5), 1)); res.Code != 0 {
		t.Fatalf("a valid transaction after the rejected ones failed: %s", res.Log)
	}
	if a, b := h.account("alice"), h.account("bob"); !proto.Equal(a, aliceBefore) || !proto.Equal(b, bobBefore) {
		t.Fatalf("rejected transactions changed state: alice %v -> %v, bob %v -> %v", aliceBefore, a, bobBefore, b)
	}
}

func TestBlockWithBadTxsChangesNothing(t *testing.T) {
	h := withOneCommittedTransfer(t)
	before := h.block() // an empty block: its app hash is the reference
	var txs [][]byte
	for _, c := range badInputs() {
		if c.want == bank.ErrInsufficientFunds && strings.Contains(c.log, "transfer") {
			continue // a failing message is charged its fee (TestFailedMessagePaysFee)
		}
		txs = append(txs, c.tx(h))
	}
	res := h.block(txs...)
	for i, r := range res.TxResults {
		if r.Code == 0 {
			t.Errorf("bad tx %d was accepted in the block", i)
		}
	}
	if !bytes.Equal(res.AppHash, before.AppHash) {
		t.Fatalf("a block of refused transactions changed the app hash")
	}
}

func TestTransferMovesFundsAndChargesFee(t *testing.T) {
	h := newHarness(t)
	const amount = 7 * bank.UnitsPerPHA
	raw := h.sign("alice", transfer("bob", amount), 0, func(b *chainpb.TxBody) { b.Fee = 12_345 })
	res := h.block(raw)
	if r := res.TxResults[0]; r.Code != 0 {
		t.Fatalf("transfer failed: %s", r.Log)
	}
	alice, bob := h.account("alice"), h.account("bob")
	if want := uint64(1_000*bank.UnitsPerPHA - amount - 12_345); alice.Balance != want || alice.Nonce != 1 {
		t.Fatalf("alice = %d nonce %d, want %d nonce 1", alice.Balance, alice.Nonce, want)
	}
	if want := uint64(1_000*bank.UnitsPerPHA + amount); bob.Balance != want || bob.Nonce != 0 {
		t.Fatalf("bob = %d nonce %d, want %d", bob.Balance, bob.Nonce, want)
	}
	assertSupply(t, h)
}

func TestFailedMessagePaysFee(t *testing.T) {
	h := newHarness(t)
	// Both pass CheckTx one by one against committed state; in the block the
	// second overdraws, so it fails after its fee and nonce are charged.
	res := h.block(
		h.sign("alice", transfer("bob", 600*bank.UnitsPerPHA), 0),
		h.sign("alice", transfer("bob", 600*bank.UnitsPerPHA), 1),
	)
	if res.TxResults[0].Code != 0 || res.TxResults[1].Code != bank.ErrInsufficientFunds.Code {
		t.Fatalf("results %d %q / %d %q", res.TxResults[0].Code, res.TxResults[0].Log, res.TxResults[1].Code, res.TxResults[1].Log)
	}
	alice := h.account("alice")
	if want := uint64(400*bank.UnitsPerPHA - 2*10_000); alice.Balance != want || alice.Nonce != 2 {
		t.Fatalf("alice = %d nonce %d, want %d nonce 2", alice.Balance, alice.Nonce, want)
	}
	assertSupply(t, h)
}

func TestCheckTxAdmitsSequentialNoncesOnce(t *testing.T) {
	h := newHarness(t)
	var txs [][]byte
	for n := range uint64(5) {
		raw := h.sign("alice", transfer("bob", 100*bank.UnitsPerPHA), n)
		if res := h.checkTx(raw); res.Code != 0 {
			t.Fatalf("nonce %d: %s", n, res.Log)
		}
		txs = append(txs, raw)
	}
	// The same bytes again (e.g. /check_tx, then broadcast) pass without
	// being applied twice: the sixth 100 PHA still fits, the 11th would not.
	if res := h.checkTx(txs[4]); res.Code != 0 {
		t.Fatalf("re-check of an admitted tx: %s", res.Log)
	}
	if res := h.checkTx(h.sign("alice", transfer("bob", 100*bank.UnitsPerPHA), 5)); res.Code != 0 {
		t.Fatalf("nonce 5: %s", res.Log)
	}
	// Funds are tracked across pending txs: 600 PHA are committed to bob.
	if res := h.checkTx(h.sign("alice", transfer("bob", 500*bank.UnitsPerPHA), 6)); res.Code != bank.ErrInsufficientFunds.Code {
		t.Fatalf("overdraft across pending txs: got %d %s", res.Code, res.Log)
	}
	h.block(txs...)
	// Commit resets the check state to committed state: nonce 5 is next again.
	if res := h.checkTx(h.sign("alice", transfer("bob", 1), 5)); res.Code != 0 {
		t.Fatalf("after commit: %s", res.Log)
	}
}

func TestEventLogIsCommittedInAppHash(t *testing.T) {
	h := newHarness(t)
	h.block()
	res := h.block(
		h.sign("alice", &chainpb.MsgPushMessage{Topic: "a", Payload: []byte("one")}, 0),
		h.sign("bob", transfer("alice", 1), 0),
		h.sign("alice", &chainpb.MsgPushMessage{Topic: "a", Payload: []byte("two")}, 1),
		h.sign("alice", &chainpb.MsgPushMessage{Topic: "b!", Payload: nil}, 1), // reused nonce: no event
	)
	q, _ := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryEventLog, Height: h.height})
	if q.Code != 0 {
		t.Fatal(q.Log)
	}
	var log chainpb.EventLog
	if err := proto.Unmarshal(q.Value, &log); err != nil {
		t.Fatal(err)
	}
	hdr := &cmttypes.Header{Height: h.height + 1, AppHash: res.AppHash}
	evs, err := proof.VerifyEventLog(hdr, &log)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || string(evs[0].GetIngress().Payload) != "one" || string(evs[1].GetIngress().Payload) != "two" || evs[1].Index != 1 {
		t.Fatalf("events = %v", evs)
	}
	a := addr(h.keys["alice"])
	if !bytes.Equal(evs[0].GetIngress().Sender, a[:]) {
		t.Fatalf("sender %X, want alice", evs[0].GetIngress().Sender)
	}
}

func TestRestartResumesFromDisk(t *testing.T) {
	h := newHarness(t)
	var last *abci.FinalizeBlockResponse
	for n := range uint64(3) {
		last = h.block(h.sign("alice", transfer("bob", bank.UnitsPerPHA), n))
	}
	alice := h.account("alice")
	h.reopen()
	info, err := h.app.Info(context.Background(), &abci.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// CometBFT replays only blocks after LastBlockHeight, so reporting 3 here
	// is what "resumes, does not replay from genesis" means.
	if info.LastBlockHeight != 3 || !bytes.Equal(info.LastBlockAppHash, last.AppHash) {
		t.Fatalf("after reopen: height %d hash %X, want 3 %X", info.LastBlockHeight, info.LastBlockAppHash, last.AppHash)
	}
	if got := h.account("alice"); !proto.Equal(got, alice) {
		t.Fatalf("alice after restart %v, want %v", got, alice)
	}
	if !strings.Contains(info.Data, `"phase":"pre-launch"`) {
		t.Fatalf("info data %q lacks the phase", info.Data)
	}
	if r := h.block(h.sign("alice", transfer("bob", 1), 3)); r.TxResults[0].Code != 0 {
		t.Fatalf("after restart: %s", r.TxResults[0].Log)
	}
}

func TestIdenticalBlocksGiveIdenticalAppHashes(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	for n := range uint64(4) {
		txs := [][]byte{
			a.sign("alice", transfer("carol", int64(n+1)*bank.UnitsPerPHA), n),
			a.sign("bob", &chainpb.MsgPushMessage{Topic: "t", Payload: []byte{byte(n)}}, n),
		}
		ra, rb := a.block(txs...), b.block(txs...)
		if !bytes.Equal(ra.AppHash, rb.AppHash) {
			t.Fatalf("block %d: app hashes differ", n+1)
		}
	}
}

// assertSupply sums every balance the harness can reach.
func assertSupply(t *testing.T, h *harness) {
	t.Helper()
	var sum uint64
	for _, acc := range h.gen.Bank.Accounts {
		if acc.Name == "alice" || acc.Name == "bob" {
			continue
		}
		res, _ := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryAccount, Data: acc.Address[:]})
		var a chainpb.Account
		proto.Unmarshal(res.Value, &a)
		sum += a.Balance
	}
	for _, n := range []string{"alice", "bob", "carol"} {
		sum += h.account(n).Balance
	}
	res, _ := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryAccount, Data: bank.FeePool[:]})
	var fp chainpb.Account
	proto.Unmarshal(res.Value, &fp)
	sum += fp.Balance
	if sum != bank.TotalSupply {
		t.Fatalf("balances sum to %d, supply is %d", sum, bank.TotalSupply)
	}
}

func TestProcessProposalRejectsInvalidTransactions(t *testing.T) {
	h := newHarness(t)
	good := h.sign("alice", transfer("bob", 1), 0)
	ok, err := h.app.ProcessProposal(context.Background(), &abci.ProcessProposalRequest{Height: 1, Txs: [][]byte{good}})
	if err != nil || ok.Status != abci.PROCESS_PROPOSAL_STATUS_ACCEPT {
		t.Fatalf("valid proposal: %v %v", ok.Status, err)
	}
	for _, c := range badInputs() {
		if c.want.Codespace != auth.Codespace || c.want == auth.ErrNonceReused || c.want == auth.ErrNonceSkipped || c.want == auth.ErrUnknownAccount {
			continue // stateful refusals are left to block execution
		}
		res, err := h.app.ProcessProposal(context.Background(), &abci.ProcessProposalRequest{Height: 1, Txs: [][]byte{good, c.tx(h)}})
		if err != nil || res.Status != abci.PROCESS_PROPOSAL_STATUS_REJECT {
			t.Errorf("%s: proposal status %v %v, want reject", c.name, res.Status, err)
		}
	}
}

func TestRefusedTransactionsAreNotCached(t *testing.T) {
	h := newHarness(t)
	raw := h.sign("carol", transfer("bob", 5), 0) // carol holds nothing
	if res := h.checkTx(raw); res.Code != auth.ErrUnknownAccount.Code {
		t.Fatalf("got %d %s", res.Code, res.Log)
	}
	if h.app.txs.get(sha256.Sum256(raw)) != nil {
		t.Fatal("a refused transaction was cached")
	}
	good := h.sign("alice", transfer("bob", 5), 0)
	h.checkTx(good)
	if h.app.txs.get(sha256.Sum256(good)) == nil {
		t.Fatal("an admitted transaction should be cached")
	}
}

func TestRestartRefusesDamagedState(t *testing.T) {
	h := newHarness(t)
	h.block(h.sign("alice", &chainpb.MsgPushMessage{Topic: "t", Payload: []byte("x")}, 0))
	h.block()
	// Damage the recorded event log root of the last block.
	if err := h.app.meta.SetSync(logRootKey(h.height), make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	h.app.Close()
	app, err := NewApp(Config{DataDir: h.dir})
	if err == nil {
		app.Close()
		t.Fatal("opened damaged state")
	}
	if !strings.Contains(err.Error(), "data directory is damaged") {
		t.Fatalf("error %q does not say what is wrong", err)
	}
}
