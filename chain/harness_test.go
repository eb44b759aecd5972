package chain

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"google.golang.org/protobuf/proto"

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
	h := &harness{t: t, dir: t.TempDir(), keys: map[string]ed25519.PrivateKey{}}
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
	b := &chainpb.TxBody{ChainId: testChainID, Nonce: nonce, Fee: 10_000}
	switch m := msg.(type) {
	case *chainpb.MsgTransfer:
		b.Msg = &chainpb.TxBody_Transfer{Transfer: m}
	case *chainpb.MsgPushMessage:
		b.Msg = &chainpb.TxBody_PushMessage{PushMessage: m}
	case nil:
	default:
		h.t.Fatalf("unknown msg %T", msg)
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

// block finalizes and commits a block of txs.
func (h *harness) block(txs ...[]byte) *abci.FinalizeBlockResponse {
	h.t.Helper()
	h.height++
	res, err := h.app.FinalizeBlock(context.Background(), &abci.FinalizeBlockRequest{Height: h.height, Txs: txs, Time: time.Unix(1_700_000_000+h.height, 0)})
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
