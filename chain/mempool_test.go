package chain

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/config"
	"github.com/cometbft/cometbft/mempool"
	"github.com/cometbft/cometbft/proxy"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// These tests run CometBFT's own mempool (the CListMempool a node uses)
// over the App, connected the way the node connects it
// (proxy.NewConsensusSyncLocalClientCreator), and commit blocks the way
// CometBFT's BlockExecutor does: FinalizeBlock, then with the mempool
// locked Commit and Update, which rechecks every transaction left in it.

// checkCall is one CheckTx the mempool's connection sent the app.
type checkCall struct {
	typ abci.CheckTxType
	tx  []byte
	res *abci.CheckTxResponse
}

// recordingApp is the App as the mempool connection sees it, with every
// CheckTx it answers recorded.
type recordingApp struct {
	*App
	mu    sync.Mutex
	calls []checkCall
}

func (r *recordingApp) CheckTx(ctx context.Context, req *abci.CheckTxRequest) (*abci.CheckTxResponse, error) {
	res, err := r.App.CheckTx(ctx, req)
	if err == nil {
		r.mu.Lock()
		r.calls = append(r.calls, checkCall{typ: req.Type, tx: req.Tx, res: res})
		r.mu.Unlock()
	}
	return res, err
}

// rechecks returns the recheck calls recorded since the last call, in order.
func (r *recordingApp) rechecks() []checkCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []checkCall
	for _, c := range r.calls {
		if c.typ == abci.CHECK_TX_TYPE_RECHECK {
			out = append(out, c)
		}
	}
	r.calls = nil
	return out
}

// mempoolFixture is an attestFixture with a registered worker (operated by
// bob, whose nonce 0 the registration used) and a CometBFT mempool.
type mempoolFixture struct {
	*attestFixture
	worker identity
	rec    *recordingApp
	mp     *mempool.CListMempool
}

func newMempoolFixture(t *testing.T, recheck bool) *mempoolFixture {
	t.Helper()
	f := &mempoolFixture{attestFixture: newAttestFixture(t), worker: newIdentity(t, 1)}
	f.block()
	info := f.info(f.worker, "bob", f.genHash)
	if r := f.block(f.sign("bob", &chainpb.MsgRegisterWorker{Info: info, Platform: "sim", Evidence: f.evidence(info)}, 0)).TxResults[0]; r.Code != 0 {
		t.Fatalf("register worker: %s", r.Log)
	}

	f.rec = &recordingApp{App: f.app}
	cli, err := proxy.NewConsensusSyncLocalClientCreator(f.rec).NewABCIMempoolClient()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Stop() })
	cfg := config.TestMempoolConfig()
	cfg.Recheck = recheck
	cfg.RecheckTimeout = 2 * time.Second // a local connection answers at once
	f.mp = mempool.NewCListMempool(cfg, proxy.NewAppConnMempool(cli, proxy.NopMetrics()), f.height)
	return f
}

// relay is a MsgSubmitMessage carrying the worker's message seq.
func relay(key ed25519.PrivateKey, seq uint64) *chainpb.MsgSubmitMessage {
	payload, err := proto.Marshal(&chainpb.WorkerMessage{Kind: &chainpb.WorkerMessage_Confirm{Confirm: &chainpb.GatekeeperConfirm{Round: seq}}})
	if err != nil {
		panic(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	return &chainpb.MsgSubmitMessage{Message: &chainpb.SignedMessage{Sender: pub, Sequence: seq, Payload: payload,
		Signature: ed25519.Sign(key, crypto.SignedMessageBytes(testChainID, pub, seq, payload))}}
}

// add offers raw to the mempool as a peer or /broadcast_tx would. It
// returns "" if the mempool took it, else the refusal as "codespace/code"
// (or the mempool's own error).
func (f *mempoolFixture) add(raw []byte) string {
	f.t.Helper()
	rr, err := f.mp.CheckTx(types.Tx(raw), "")
	if err != nil {
		return "mempool: " + err.Error()
	}
	res := rr.Response.GetCheckTx()
	var invalid mempool.ErrInvalidTx
	switch err := rr.Error(); {
	case err == nil && res.Code == 0:
		return ""
	case errors.As(err, &invalid):
		return fmt.Sprintf("%s/%d", invalid.Codespace, invalid.Code)
	default:
		f.t.Fatalf("CheckTx answered %s/%d %q but the mempool said %v", res.Codespace, res.Code, res.Log, err)
		return ""
	}
}

// commit executes a block of txs decided by the network (not necessarily
// from this mempool) and then commits it and updates the mempool exactly as
// CometBFT's BlockExecutor.Commit does.
func (f *mempoolFixture) commit(txs ...[]byte) *abci.FinalizeBlockResponse {
	f.t.Helper()
	f.height++
	f.last = time.Unix(1_700_000_000+f.height, 0)
	ctx := context.Background()
	res, err := f.app.FinalizeBlock(ctx, &abci.FinalizeBlockRequest{Height: f.height, Txs: txs, Time: f.last})
	if err != nil {
		f.t.Fatal(err)
	}
	f.mp.PreUpdate()
	f.mp.Lock()
	defer f.mp.Unlock()
	if err := f.mp.FlushAppConn(); err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.app.Commit(ctx, &abci.CommitRequest{}); err != nil {
		f.t.Fatal(err)
	}
	block := make(types.Txs, len(txs))
	for i, tx := range txs {
		block[i] = tx
	}
	if err := f.mp.Update(f.height, block, res.TxResults, nil, nil); err != nil {
		f.t.Fatal(err)
	}
	return res
}

func (f *mempoolFixture) holds(raw []byte) bool {
	if !f.mp.InMempool(types.Tx(raw).Key()) {
		return false
	}
	for _, tx := range f.mp.ReapMaxTxs(-1) {
		if string(tx) == string(raw) {
			return true
		}
	}
	f.t.Fatalf("tx %X is indexed in the mempool but not reaped", types.Tx(raw).Hash())
	return false
}

func code(r interface {
	GetCodespace() string
	GetCode() uint32
}) string {
	return fmt.Sprintf("%s/%d", r.GetCodespace(), r.GetCode())
}

func codes(calls []checkCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = code(c.res)
	}
	return out
}

// TestMempoolEvictsReplayedMessage: two relayers race to deliver the same
// signed message. This node's mempool holds bob's relay; the block the
// network decides carries alice's. On recheck bob's relay is a replay
// (mq/6) and CometBFT drops it; with recheck off it would stay and cost
// bob a fee and a block slot when proposed.
func TestMempoolEvictsReplayedMessage(t *testing.T) {
	for _, recheck := range []bool{true, false} {
		t.Run(fmt.Sprintf("recheck=%v", recheck), func(t *testing.T) {
			f := newMempoolFixture(t, recheck)
			m0 := relay(f.worker.sign, 0)
			viaBob := f.sign("bob", m0, 1)
			viaAlice := f.sign("alice", m0, 0)

			if got := f.add(viaBob); got != "" {
				t.Fatalf("bob's relay of message 0 refused: %s", got)
			}
			// The check state already delivers message 0, so this node
			// refuses the second relay at admission.
			if got := f.add(viaAlice); got != "mq/6" {
				t.Fatalf("a second relay of message 0 at admission: got %q, want mq/6", got)
			}
			if n := f.mp.Size(); n != 1 || !f.holds(viaBob) {
				t.Fatalf("mempool holds %d txs (bob's relay: %v), want just bob's relay", n, f.holds(viaBob))
			}
			f.rec.rechecks()

			// Another proposer's block delivers message 0 through alice.
			if r := f.commit(viaAlice).TxResults[0]; r.Code != 0 {
				t.Fatalf("alice's relay in the block: %s %s", code(r), r.Log)
			}
			if seq, err := mq.NextSequence(f.app.view, f.worker.pub()); err != nil || seq != 1 {
				t.Fatalf("next sequence %d %v, want 1", seq, err)
			}
			rechecks := f.rec.rechecks()

			if !recheck {
				// The contrast: nothing removes the replay.
				if len(rechecks) != 0 {
					t.Fatalf("%d rechecks with recheck off", len(rechecks))
				}
				if f.mp.Size() != 1 || !f.holds(viaBob) {
					t.Fatalf("with recheck off the replay left the mempool (size %d)", f.mp.Size())
				}
				// Proposed, it fails in the block and bob pays for it.
				before := f.account("bob").Balance
				if r := f.commit(f.mp.ReapMaxBytesMaxGas(-1, -1).ToSliceOfBytes()...).TxResults[0]; code(r) != "mq/6" {
					t.Fatalf("replay executed: got %s %s, want mq/6", code(r), r.Log)
				}
				if paid := before - f.account("bob").Balance; paid != uint64(f.fee) {
					t.Fatalf("bob paid %d for the replay, want the fee %d", paid, f.fee)
				}
				return
			}

			// Recheck asked the app about bob's relay and got mq/6 ...
			if len(rechecks) != 1 || string(rechecks[0].tx) != string(viaBob) || code(rechecks[0].res) != "mq/6" {
				t.Fatalf("rechecks answered %v, want one for bob's relay answering mq/6", codes(rechecks))
			}
			// ... so CometBFT evicted it.
			if n := f.mp.Size(); n != 0 || f.holds(viaBob) || len(f.mp.ReapMaxTxs(-1)) != 0 || f.mp.SizeBytes() != 0 {
				t.Fatalf("the replay is still in the mempool: size %d", n)
			}
			// It is out of the mempool's cache too: offered again, the app
			// judges it again, and refuses it.
			if got := f.add(viaBob); got != "mq/6" {
				t.Fatalf("bob's relay offered again: got %q, want mq/6", got)
			}
			// The evicted replay left nothing in the check state: bob's
			// nonce 1 is free and the worker's next message is welcome.
			next := f.sign("bob", relay(f.worker.sign, 1), 1)
			if got := f.add(next); got != "" {
				t.Fatalf("message 1 via bob's nonce 1 after the eviction: %s", got)
			}
			if r := f.commit(f.mp.ReapMaxBytesMaxGas(-1, -1).ToSliceOfBytes()...); len(r.TxResults) != 1 || r.TxResults[0].Code != 0 {
				t.Fatalf("next block: %v", r.TxResults)
			}
			if f.mp.Size() != 0 {
				t.Fatalf("mempool not empty after its txs were committed: %d", f.mp.Size())
			}
		})
	}
}

// TestMempoolEvictsOutOfOrderMessage: a message that skips ahead is refused
// at admission (mq/7). One that was in order when admitted, behind an
// earlier message the mempool then loses, is out of order on recheck and
// CometBFT drops it too.
func TestMempoolEvictsOutOfOrderMessage(t *testing.T) {
	for _, recheck := range []bool{true, false} {
		t.Run(fmt.Sprintf("recheck=%v", recheck), func(t *testing.T) {
			f := newMempoolFixture(t, recheck)
			if got := f.add(f.sign("alice", relay(f.worker.sign, 1), 0)); got != "mq/7" {
				t.Fatalf("message 1 before message 0: got %q, want mq/7", got)
			}
			if f.mp.Size() != 0 {
				t.Fatalf("mempool holds %d txs after a refusal", f.mp.Size())
			}

			// Message 0 via bob, message 1 via alice: in order, both admitted.
			m0 := f.sign("bob", relay(f.worker.sign, 0), 1)
			m1 := f.sign("alice", relay(f.worker.sign, 1), 0)
			for i, tx := range [][]byte{m0, m1} {
				if got := f.add(tx); got != "" {
					t.Fatalf("message %d: %s", i, got)
				}
			}
			if f.mp.Size() != 2 {
				t.Fatalf("mempool holds %d txs, want 2", f.mp.Size())
			}
			f.rec.rechecks()

			// The network's block spends bob's nonce 1 on something else
			// (bob's other wallet), so message 0 never arrives.
			if r := f.commit(f.sign("bob", transfer("alice", 1), 1)).TxResults[0]; r.Code != 0 {
				t.Fatalf("bob's transfer: %s %s", code(r), r.Log)
			}
			rechecks := f.rec.rechecks()
			if !recheck {
				if len(rechecks) != 0 || f.mp.Size() != 2 || !f.holds(m0) || !f.holds(m1) {
					t.Fatalf("with recheck off: %d rechecks, mempool size %d", len(rechecks), f.mp.Size())
				}
				return
			}
			got := codes(rechecks)
			if len(rechecks) != 2 || string(rechecks[0].tx) != string(m0) || string(rechecks[1].tx) != string(m1) ||
				got[0] != "tx/7" || got[1] != "mq/7" {
				t.Fatalf("rechecks answered %v, want [tx/7 mq/7] for message 0 then message 1", got)
			}
			if f.mp.Size() != 0 || f.holds(m0) || f.holds(m1) {
				t.Fatalf("mempool still holds %d txs", f.mp.Size())
			}
			if seq, err := mq.NextSequence(f.app.view, f.worker.pub()); err != nil || seq != 0 {
				t.Fatalf("next sequence %d %v, want 0", seq, err)
			}
		})
	}
}
