package chain

import (
	"context"
	"sync"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"

	"github.com/phala-go/phala/chain/bank"
)

// CheckTx and Query run concurrently with block execution, as they do under
// proxy.NewConsensusSyncLocalClientCreator. Run with -race (make test does).
func TestCheckTxAndQueryRunDuringBlocks(t *testing.T) {
	h := newHarness(t)
	const perSender = 40
	senders := []string{"alice", "bob"}
	var txs [][]byte
	for n := range uint64(perSender) {
		for _, s := range senders {
			txs = append(txs, h.sign(s, transfer("carol", bank.UnitsPerPHA), n))
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				a := addr(h.keys["carol"])
				res, err := h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryAccount, Data: a[:]})
				if err != nil || (res.Code != 0 && res.Codespace != QueryCodespace) {
					t.Errorf("query during blocks: %v %s", err, res.Log)
					return
				}
				// Proofs and past heights walk the tree rather than its index.
				info, _ := h.app.Info(context.Background(), &abci.InfoRequest{})
				for _, height := range []int64{0, info.LastBlockHeight - 1} {
					h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryStore, Data: bank.BalanceKey(addr(h.keys["alice"])), Height: height, Prove: true})
					h.app.Query(context.Background(), &abci.QueryRequest{Path: QueryAccount, Data: a[:], Height: height})
				}
			}
		}()
	}
	// Admit in order from one goroutine while another checks the same bytes
	// again; execute in blocks of 10 as they are admitted.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, tx := range txs[:20] {
			h.app.CheckTx(context.Background(), &abci.CheckTxRequest{Tx: tx, Type: abci.CHECK_TX_TYPE_CHECK})
		}
	}()
	for i := 0; i < len(txs); i += 10 {
		res := h.block(txs[i : i+10]...)
		for j, r := range res.TxResults {
			if r.Code != 0 {
				t.Fatalf("block tx %d: %s", i+j, r.Log)
			}
		}
	}
	close(stop)
	wg.Wait()
	if got, want := h.account("carol").Balance, uint64(2*perSender*bank.UnitsPerPHA); got != want {
		t.Fatalf("carol = %d, want %d", got, want)
	}
	assertSupply(t, h)
}
