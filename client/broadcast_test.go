package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"

	"github.com/phala-go/phala/client"
)

// mempoolNode answers broadcast_tx_sync with offers[i] for the i-th offer
// (the last one repeats) and tx with "not found" until found is set.
type mempoolNode struct {
	mu     sync.Mutex
	offers []func() (*ctypes.ResultBroadcastTx, error)
	n      int
	found  *ctypes.ResultTx
}

func (m *mempoolNode) serve(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req rpctypes.RPCRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		var res any
		var err error
		switch req.Method {
		case "broadcast_tx_sync":
			res, err = m.offers[min(m.n, len(m.offers)-1)]()
			m.n++
		case "tx":
			if m.found == nil {
				err = errors.New("tx not found")
			} else {
				res = m.found
			}
		default:
			err = errors.New("unexpected method " + req.Method)
		}
		if err != nil {
			json.NewEncoder(w).Encode(rpctypes.RPCInternalError(req.ID, err))
			return
		}
		json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, res))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (m *mempoolNode) offered() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

var admitted = func() (*ctypes.ResultBroadcastTx, error) {
	return &ctypes.ResultBroadcastTx{Hash: bytes.Repeat([]byte{0xab}, 32)}, nil
}

// TestBroadcastAndWaitAnswersADroppedTransaction: a transaction the node
// admitted, then dropped on recheck, is offered again while the client
// waits; the node's refusal then is the answer, long before the timeout.
func TestBroadcastAndWaitAnswersADroppedTransaction(t *testing.T) {
	node := &mempoolNode{offers: []func() (*ctypes.ResultBroadcastTx, error){admitted, func() (*ctypes.ResultBroadcastTx, error) {
		return &ctypes.ResultBroadcastTx{Code: 10, Codespace: "contracts", Log: "contract key is rotating"}, nil
	}}}
	cl, err := client.New(node.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = cl.BroadcastAndWait(context.Background(), []byte("a command"), 20*time.Second)
	var te *client.TxError
	if !errors.As(err, &te) || te.Codespace != "contracts" || te.Code != 10 || !client.KeyRotated(err) {
		t.Fatalf("a dropped command: %v, want its refusal contracts/10", err)
	}
	if d := time.Since(start); d > 10*time.Second || node.offered() != 2 {
		t.Fatalf("answered after %s and %d offers, want the second offer's refusal", d, node.offered())
	}
}

// TestBroadcastAndWaitKeepsWaitingWhileTheNodeHoldsIt: a node that still
// holds the transaction says so to each new offer; the client waits for
// its block.
func TestBroadcastAndWaitKeepsWaitingWhileTheNodeHoldsIt(t *testing.T) {
	node := &mempoolNode{offers: []func() (*ctypes.ResultBroadcastTx, error){admitted, func() (*ctypes.ResultBroadcastTx, error) {
		return nil, mempool.ErrTxInCache
	}}}
	cl, err := client.New(node.serve(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(5 * time.Second)
		node.mu.Lock()
		node.found = &ctypes.ResultTx{Height: 7, TxResult: abci.ExecTxResult{}}
		node.mu.Unlock()
	}()
	res, err := cl.BroadcastAndWait(context.Background(), []byte("a command"), 20*time.Second)
	if err != nil || res.Height != 7 {
		t.Fatalf("a held transaction: %+v %v, want it in block 7", res, err)
	}
	if n := node.offered(); n < 2 {
		t.Fatalf("offered %d times in 5 s of waiting, want it offered again", n)
	}
}
