package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	"github.com/cometbft/cometbft/p2p"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/proto/chainpb"
)

// serveRPC answers the CometBFT RPC calls the CLI makes, for a test's
// fake chain: status names network; abci_query asks query; a broadcast
// goes to broadcast, whose non-nil answer refuses it (else it is taken,
// and tx finds it in block 42). Every call runs under mu.
func serveRPC(t *testing.T, network string, mu *sync.Mutex, query func(path string, data []byte) abci.QueryResponse,
	broadcast func(tx []byte) *ctypes.ResultBroadcastTx) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req rpctypes.RPCRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<22)).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var res any
		switch req.Method {
		case "status":
			res = &ctypes.ResultStatus{NodeInfo: p2p.DefaultNodeInfo{Network: network}}
		case "abci_query":
			var params struct {
				Path string            `json:"path"`
				Data cmtbytes.HexBytes `json:"data"`
			}
			json.Unmarshal(req.Params, &params)
			res = &ctypes.ResultABCIQuery{Response: query(params.Path, params.Data)}
		case "broadcast_tx_sync":
			var params struct {
				Tx []byte `json:"tx"`
			}
			json.Unmarshal(req.Params, &params)
			if refused := broadcast(params.Tx); refused != nil {
				res = refused
			} else {
				res = &ctypes.ResultBroadcastTx{Hash: bytes.Repeat([]byte{0xcd}, 32)}
			}
		case "tx":
			res = &ctypes.ResultTx{Hash: bytes.Repeat([]byte{0xcd}, 32), Height: 42}
		default:
			http.Error(w, "unexpected method "+req.Method, http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, res))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// workerQuery answers a fake chain's worker query for identity key from
// workers (keyed by the key's bytes).
func workerQuery(workers map[string]*chainpb.Worker, key []byte) abci.QueryResponse {
	w := workers[string(key)]
	if w == nil {
		return abci.QueryResponse{Codespace: registry.Codespace, Code: registry.ErrUnknownWorker.Code, Log: "unknown worker"}
	}
	v, _ := proto.Marshal(w)
	return abci.QueryResponse{Value: v}
}

// runCLI runs the phala CLI with HOME home against the node at node and
// returns what it printed.
func runCLI(t *testing.T, home, node string, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	root.SetArgs(append(args, "--home", home, "--node", node))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}
