package chain

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

const testChainID = "phala-test"

// harness drives an App through ABCI directly, as CometBFT would.
type harness struct {
	t      *testing.T
	dir    string
	app    *App
	keys   map[string]ed25519.PrivateKey
	height int64
	last   time.Time
	fee    int64 // per transaction; default 10,000 uPHA
	gen    Genesis
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("test key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func addr(k ed25519.PrivateKey) crypto.Address {
	return crypto.AddressFromPubKey(k.Public().(ed25519.PublicKey))
}

func testGenesis(t testing.TB) Genesis {
	g, err := DefaultGenesis(
		bank.Grant{Name: "alice", Category: "developers_community", Address: addr(testKey("alice")), Amount: 1_000 * bank.UnitsPerPHA},
		bank.Grant{Name: "bob", Category: "developers_community", Address: addr(testKey("bob")), Amount: 1_000 * bank.UnitsPerPHA},
	)
	if err != nil {
		t.Fatal(err)
	}
	g.Auth.MaxTxBytes = 8 << 10
	return g
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), keys: map[string]ed25519.PrivateKey{}, fee: 10_000}
	for _, n := range []string{"alice", "bob", "carol"} {
		h.keys[n] = testKey(n)
	}
	h.gen = testGenesis(t)
	h.open()
	raw, err := jsonMarshal(h.gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.app.InitChain(context.Background(), &abci.InitChainRequest{ChainId: testChainID, AppStateBytes: raw, InitialHeight: 1}); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) open() {
	h.t.Helper()
	app, err := NewApp(Config{DataDir: h.dir})
	if err != nil {
		h.t.Fatal(err)
	}
	h.app = app
	h.t.Cleanup(func() { app.Close() })
}

// reopen closes the app and opens its data directory again, as after a restart.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.app.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

type txOpt func(*chainpb.TxBody)

func (h *harness) body(msg any, nonce uint64, opts ...txOpt) *chainpb.TxBody {
	b := &chainpb.TxBody{ChainId: testChainID, Nonce: nonce, Fee: h.fee}
	switch m := msg.(type) {
	case *chainpb.MsgTransfer:
		b.Msg = &chainpb.TxBody_Transfer{Transfer: m}
	case *chainpb.MsgPushMessage:
		b.Msg = &chainpb.TxBody_PushMessage{PushMessage: m}
	case nil:
	default:
		setMsg(h.t, b, msg.(proto.Message))
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

func (h *harness) sign(from string, msg any, nonce uint64, opts ...txOpt) []byte {
	h.t.Helper()
	raw, err := auth.Sign(h.keys[from], h.body(msg, nonce, opts...))
	if err != nil {
		h.t.Fatal(err)
	}
	return raw
}

func transfer(to string, amount int64) *chainpb.MsgTransfer {
	a := addr(testKey(to))
	return &chainpb.MsgTransfer{To: a[:], Amount: amount}
}

func (h *harness) checkTx(raw []byte) *abci.CheckTxResponse {
	h.t.Helper()
	res, err := h.app.CheckTx(context.Background(), &abci.CheckTxRequest{Tx: raw, Type: abci.CHECK_TX_TYPE_CHECK})
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

// blockHash is the hash the harness's block at height carries (it seeds
// the rotation leaders' draw).
func blockHash(height int64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "test block %d", height))
	return h[:]
}

// block finalizes and commits a block of txs, one second after the last.
func (h *harness) block(txs ...[]byte) *abci.FinalizeBlockResponse {
	h.t.Helper()
	return h.blockAt(time.Time{}, txs...)
}

// blockAt is block with a given block time (zero: one second after the last).
func (h *harness) blockAt(at time.Time, txs ...[]byte) *abci.FinalizeBlockResponse {
	h.t.Helper()
	h.height++
	if at.IsZero() {
		at = time.Unix(1_700_000_000+h.height, 0)
	}
	h.last = at
	res, err := h.app.FinalizeBlock(context.Background(), &abci.FinalizeBlockRequest{Height: h.height, Txs: txs, Time: at, Hash: blockHash(h.height)})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.app.Commit(context.Background(), &abci.CommitRequest{}); err != nil {
		h.t.Fatal(err)
	}
	return res
}

func (h *harness) account(name string) *chainpb.Account {
	h.t.Helper()
	a := addr(testKey(name))
	res, err := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryAccount, Data: a[:]})
	if err != nil || res.Code != 0 {
		h.t.Fatalf("query account %s: %v %s", name, err, res.Log)
	}
	var acc chainpb.Account
	if err := proto.Unmarshal(res.Value, &acc); err != nil {
		h.t.Fatal(err)
	}
	return &acc
}

// setMsg puts m in body's msg oneof, whichever field has m's type.
func setMsg(t testing.TB, body *chainpb.TxBody, m proto.Message) {
	t.Helper()
	fields := body.ProtoReflect().Descriptor().Oneofs().ByName("msg").Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Message().FullName() == m.ProtoReflect().Descriptor().FullName() {
			body.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(m.ProtoReflect()))
			return
		}
	}
	t.Fatalf("no TxBody field for %T", m)
}

// eventLog returns block height's worker events.
func (h *harness) eventLog(height int64) []*chainpb.WorkerEvent {
	h.t.Helper()
	res, err := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryEventLog, Height: height})
	if err != nil || res.Code != 0 {
		h.t.Fatalf("query event log %d: %v %s", height, err, res.Log)
	}
	var log chainpb.EventLog
	if err := proto.Unmarshal(res.Value, &log); err != nil {
		h.t.Fatal(err)
	}
	evs := make([]*chainpb.WorkerEvent, len(log.Events))
	for i, b := range log.Events {
		evs[i] = &chainpb.WorkerEvent{}
		if err := proto.Unmarshal(b, evs[i]); err != nil {
			h.t.Fatal(err)
		}
	}
	return evs
}
