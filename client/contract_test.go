package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	rpctypes "github.com/cometbft/cometbft/rpc/jsonrpc/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/host"
	"github.com/phala-go/phala/internal/querywire"
	"github.com/phala-go/phala/internal/testutil"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

const testChain = "phala-query-test"

// testRuntime is a pRuntime that answers queries only: it opens them with
// querywire's worker half and echoes the payload.
type testRuntime struct {
	pruntimepb.UnimplementedPRuntimeServer
	id   ed25519.PrivateKey
	hpke *crypto.HPKEKey

	mu     sync.Mutex
	signer ed25519.PrivateKey // signs answers; id unless a test swaps it
	down   bool               // answer Unavailable
}

func (r *testRuntime) Query(_ context.Context, req *pruntimepb.QueryRequest) (*pruntimepb.QueryResponse, error) {
	r.mu.Lock()
	signer, down := r.signer, r.down
	r.mu.Unlock()
	if down {
		return nil, status.Error(codes.Unavailable, "pRuntime is restarting")
	}
	q, err := querywire.OpenRequest(testChain, r.id.Public().(ed25519.PublicKey), r.hpke, req)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return querywire.Answer(testChain, signer, q, &pruntimepb.QueryAnswer{
		Height: 7, StateRoot: bytes.Repeat([]byte{0xab}, 32),
		Output: append([]byte("echo:"), q.Query.Payload...),
	})
}

func (r *testRuntime) set(signer ed25519.PrivateKey, down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signer, r.down = signer, down
}

type queryEnv struct {
	rt       *testRuntime
	worker   *chainpb.Worker
	endpoint string
	user     ed25519.PrivateKey
	contract crypto.ContractID
}

// startQueryEnv runs the test pRuntime over gRPC on loopback and a host
// serving its query endpoint in front of it, both stopped at cleanup.
func startQueryEnv(t *testing.T) *queryEnv {
	t.Helper()
	_, id, _ := ed25519.GenerateKey(rand.Reader)
	seed := make([]byte, crypto.SeedSize)
	rand.Read(seed)
	hk, err := crypto.NewHPKEKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	rt := &testRuntime{id: id, hpke: hk, signer: id}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pruntimepb.RegisterPRuntimeServer(srv, rt)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	// No node runs here: the host's relay steps fail and retry, which
	// does not concern the query endpoint.
	node, err := client.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePorts(t, 1))
	h, err := host.New(host.Config{PRuntime: pruntimepb.NewPRuntimeClient(conn), Chain: node, Operator: op, Genesis: []byte("{}"), QueryListen: addr, Poll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("host: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("host did not stop within 10 s")
		}
	})

	endpoint := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(endpoint + host.HealthPath)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("host stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("query endpoint not healthy within 10 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	_, user, _ := ed25519.GenerateKey(rand.Reader)
	return &queryEnv{
		rt:       rt,
		worker:   &chainpb.Worker{SigningKey: id.Public().(ed25519.PublicKey), HpkeKey: hk.PublicKey(), Endpoint: endpoint},
		endpoint: endpoint,
		user:     user,
		contract: crypto.NewContractID(crypto.Address{7}, 3),
	}
}

func (e *queryEnv) query(ctx context.Context, chainID string, payload string) (*pruntimepb.QueryAnswer, error) {
	return client.QueryWorker(ctx, e.endpoint, chainID, e.worker, e.user,
		&pruntimepb.ContractQuery{Contract: e.contract.Bytes(), Payload: []byte(payload)})
}

func TestQueryWorker(t *testing.T) {
	e := startQueryEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("round trip", func(t *testing.T) {
		ans, err := e.query(ctx, testChain, `{"get":"balance"}`)
		if err != nil {
			t.Fatal(err)
		}
		if string(ans.Output) != `echo:{"get":"balance"}` || ans.Height != 7 || !bytes.Equal(ans.Contract, e.contract[:]) || ans.Error != "" {
			t.Fatalf("answer %v", ans)
		}
		// A trailing slash on the endpoint is fine.
		if _, err := client.QueryWorker(ctx, e.endpoint+"/", testChain, e.worker, e.user, &pruntimepb.ContractQuery{Contract: e.contract.Bytes()}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("answer signed by another worker key", func(t *testing.T) {
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		e.rt.set(other, false)
		defer e.rt.set(e.rt.id, false)
		_, err := e.query(ctx, testChain, "x")
		if !errors.Is(err, client.ErrForgedAnswer) || !strings.Contains(err.Error(), "signed by worker") {
			t.Fatalf("err %v, want a refused answer naming the signer", err)
		}
		t.Log(err)
	})

	t.Run("worker refuses the query: 400", func(t *testing.T) {
		// Sealed for another chain: the worker cannot open it.
		_, err := e.query(ctx, "other-chain", "x")
		if err == nil || !strings.Contains(err.Error(), "refused the query") || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("err %v, want the worker's refusal", err)
		}
		t.Log(err)
	})

	t.Run("pRuntime down: 502", func(t *testing.T) {
		e.rt.set(e.rt.id, true)
		defer e.rt.set(e.rt.id, false)
		_, err := e.query(ctx, testChain, "x")
		if err == nil || !strings.Contains(err.Error(), "cannot answer now") || !strings.Contains(err.Error(), "502") {
			t.Fatalf("err %v, want a 502 to retry", err)
		}
		t.Log(err)
	})

	t.Run("queried the wrong worker", func(t *testing.T) {
		// The chain's record names another worker than the one serving.
		_, other, _ := ed25519.GenerateKey(rand.Reader)
		w := proto.Clone(e.worker).(*chainpb.Worker)
		w.SigningKey = other.Public().(ed25519.PublicKey)
		_, err := client.QueryWorker(ctx, e.endpoint, testChain, w, e.user, &pruntimepb.ContractQuery{Contract: e.contract.Bytes()})
		if err == nil || !strings.Contains(err.Error(), "refused the query") {
			t.Fatalf("err %v", err)
		}
	})

	t.Run("http status codes", func(t *testing.T) {
		post := func(body []byte) (int, string) {
			t.Helper()
			res, err := http.Post(e.endpoint+host.QueryPath, host.ProtobufType, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<21))
			return res.StatusCode, string(b)
		}
		if code, _ := post(make([]byte, host.MaxQueryBody+1)); code != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: %d", code)
		}
		if code, _ := post([]byte{0xff, 0xff}); code != http.StatusBadRequest {
			t.Errorf("not protobuf: %d", code)
		}
		if code, msg := post(nil); code != http.StatusBadRequest || !strings.Contains(msg, "empty") {
			t.Errorf("empty query: %d %q", code, msg)
		}
		res, err := http.Get(e.endpoint + host.QueryPath)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET %s: %d", host.QueryPath, res.StatusCode)
		}

		p, err := querywire.NewRequest(testChain, e.worker, e.user, &pruntimepb.ContractQuery{Contract: e.contract.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := proto.Marshal(p.Request)
		res, err = http.Post(e.endpoint+host.QueryPath, host.ProtobufType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != host.ProtobufType {
			t.Fatalf("valid query: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
	})

	t.Run("bad endpoints", func(t *testing.T) {
		for _, ep := range []string{"127.0.0.1:8090", "ftp://x", ""} {
			if _, err := client.QueryWorker(ctx, ep, testChain, e.worker, e.user, &pruntimepb.ContractQuery{Contract: e.contract.Bytes()}); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
				t.Errorf("%q: %v", ep, err)
			}
		}
		closed := fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePorts(t, 1))
		if _, err := client.QueryWorker(ctx, closed, testChain, e.worker, e.user, &pruntimepb.ContractQuery{Contract: e.contract.Bytes()}); err == nil || !strings.Contains(err.Error(), "cannot reach the worker") {
			t.Errorf("closed port: %v", err)
		}
	})
}

func TestQueryWorkerRefusesForgedHTTPAnswers(t *testing.T) {
	// A host that answers on its own, without the pRuntime.
	var reply func(w http.ResponseWriter)
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		reply(w)
	}))
	defer srv.Close()
	set := func(f func(w http.ResponseWriter)) { mu.Lock(); reply = f; mu.Unlock() }

	_, id, _ := ed25519.GenerateKey(rand.Reader)
	seed := make([]byte, crypto.SeedSize)
	rand.Read(seed)
	hk, _ := crypto.NewHPKEKey(seed)
	worker := &chainpb.Worker{SigningKey: id.Public().(ed25519.PublicKey), HpkeKey: hk.PublicKey()}
	_, user, _ := ed25519.GenerateKey(rand.Reader)
	q := &pruntimepb.ContractQuery{Contract: crypto.NewContractID(crypto.Address{1}, 1).Bytes()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for name, f := range map[string]func(w http.ResponseWriter){
		"garbage": func(w http.ResponseWriter) { w.Write([]byte{0xff, 0x01}) },
		"empty":   func(w http.ResponseWriter) {},
		"huge":    func(w http.ResponseWriter) { w.Write(make([]byte, 2<<20)) },
		"envelope": func(w http.ResponseWriter) {
			b, _ := proto.Marshal(&pruntimepb.QueryResponse{Envelope: []byte("PHE1 not sealed")})
			w.Write(b)
		},
	} {
		set(f)
		_, err := client.QueryWorker(ctx, srv.URL, testChain, worker, user, q)
		if !errors.Is(err, client.ErrForgedAnswer) {
			t.Errorf("%s: err %v, want ErrForgedAnswer", name, err)
		}
	}
	set(func(w http.ResponseWriter) { http.Error(w, "nope\x1b[31m", http.StatusTeapot) })
	if _, err := client.QueryWorker(ctx, srv.URL, testChain, worker, user, q); err == nil || !strings.Contains(err.Error(), "HTTP 418") || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("teapot: %v", err)
	}
}

func TestHostQueryListenMustBeLoopback(t *testing.T) {
	node, _ := client.New("http://127.0.0.1:1")
	_, op, _ := ed25519.GenerateKey(rand.Reader)
	cfg := host.Config{PRuntime: pruntimepb.NewPRuntimeClient(nil), Chain: node, Operator: op, Genesis: []byte("{}")}
	for _, addr := range []string{"0.0.0.0:8090", ":8090", "192.168.1.10:8090", "[::]:8090", "example.com:8090", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"} {
		cfg.QueryListen = addr
		if _, err := host.New(cfg); err == nil || !strings.Contains(err.Error(), "QueryListen") {
			t.Errorf("%q: %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8090", "[::1]:8090", "localhost:0", "127.0.0.2:1", ""} {
		cfg.QueryListen = addr
		if _, err := host.New(cfg); err != nil {
			t.Errorf("%q: %v", addr, err)
		}
	}
}

// fakeNode answers abci_query like a node would, from a table of path ->
// response.
func fakeNode(t *testing.T, answer func(path string, data []byte) abci.QueryResponse) *client.Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req rpctypes.RPCRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil || req.Method != "abci_query" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		var params struct {
			Path string            `json:"path"`
			Data cmtbytes.HexBytes `json:"data"`
		}
		if err := json.Unmarshal(req.Params, &params); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(rpctypes.NewRPCSuccessResponse(req.ID, &ctypes.ResultABCIQuery{Response: answer(params.Path, params.Data)}))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestContractQueries(t *testing.T) {
	known := crypto.NewContractID(crypto.Address{1}, 1)
	rec := &chainpb.Contract{Id: known.Bytes(), Miners: [][]byte{{9}, {10}}, DeployedHeight: 4}
	c := fakeNode(t, func(path string, data []byte) abci.QueryResponse {
		switch {
		case path == chain.QueryContract && bytes.Equal(data, known[:]):
			v, _ := proto.Marshal(rec)
			return abci.QueryResponse{Value: v}
		case path == chain.QueryContract && len(data) == crypto.AddressLen:
			return abci.QueryResponse{Codespace: contracts.Codespace, Code: contracts.ErrUnknownContract.Code, Log: "unknown contract"}
		case path == chain.QueryContract:
			return abci.QueryResponse{Codespace: contracts.Codespace, Code: contracts.ErrMalformed.Code, Log: "malformed"}
		case path == chain.QueryContracts:
			v, _ := proto.Marshal(&chainpb.ContractList{Contracts: []*chainpb.Contract{rec, {Id: []byte{2}}}})
			return abci.QueryResponse{Value: v}
		}
		return abci.QueryResponse{Codespace: "query", Code: 1, Log: "unknown path"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := c.Contract(ctx, known)
	if err != nil || !proto.Equal(got, rec) {
		t.Fatalf("known contract: %v %v", got, err)
	}
	got, err = c.Contract(ctx, crypto.NewContractID(crypto.Address{1}, 2))
	if err != nil || got != nil {
		t.Fatalf("unknown contract: %v %v, want nil, nil", got, err)
	}
	list, err := c.Contracts(ctx)
	if err != nil || len(list) != 2 || !proto.Equal(list[0], rec) {
		t.Fatalf("list: %v %v", list, err)
	}
}

func TestDiscrepancies(t *testing.T) {
	id := crypto.NewContractID(crypto.Address{1}, 1)
	ds := []*chainpb.Discrepancy{
		{Contract: id.Bytes(), Height: 10, Miner: []byte{0xb1}, StateRoot: []byte{1}, StoredRoot: []byte{2}, StoredBy: []byte{0xa1}, RecordedHeight: 12},
		{Contract: id.Bytes(), Height: 20, Miner: []byte{0xb2}, StateRoot: []byte{3}, StoredRoot: []byte{4}, StoredBy: []byte{0xa1}, RecordedHeight: 21},
	}
	var fail atomic.Bool
	c := fakeNode(t, func(path string, data []byte) abci.QueryResponse {
		switch {
		case path == chain.QueryDiscrepancies && fail.Load():
			return abci.QueryResponse{Codespace: "query", Code: 2, Log: "unknown query path"}
		case path == chain.QueryDiscrepancies && len(data) == 0:
			v, _ := proto.Marshal(&chainpb.DiscrepancyList{Discrepancies: ds})
			return abci.QueryResponse{Value: v}
		}
		return abci.QueryResponse{Codespace: "query", Code: 1, Log: "unknown path"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	got, err := c.Discrepancies(ctx)
	if err != nil || len(got) != len(ds) {
		t.Fatalf("discrepancies: %v %v", got, err)
	}
	for i := range ds {
		if !proto.Equal(got[i], ds[i]) {
			t.Errorf("record %d: %v, want %v", i, got[i], ds[i])
		}
	}
	v := client.DiscrepancyView(ds[0])
	if v.Contract != id.String() || v.Height != 10 || v.Miner != "b1" || v.StateRoot != "01" || v.StoredRoot != "02" || v.StoredBy != "a1" || v.Recorded != 12 {
		t.Errorf("view %+v", v)
	}

	fail.Store(true)
	if _, err := c.Discrepancies(ctx); err == nil || !strings.Contains(err.Error(), chain.QueryDiscrepancies) || !strings.Contains(err.Error(), "query/2") {
		t.Fatalf("refused query: %v", err)
	}
}
