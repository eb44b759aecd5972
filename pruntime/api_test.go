package pruntime_test

import (
	"context"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
	"github.com/phala-go/phala/tee/sim"
)

const genesisA = `{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"a","initial_height":"1","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"mV8U0C1M1Xp6D2E4gVNR2wA0U6gmxuWbEFIWnkv4ni0="},"power":"10","name":"v"}],"app_hash":"","app_state":{}}`
const genesisB = `{"genesis_time":"2026-01-01T00:00:00Z","chain_id":"b","initial_height":"1","validators":[{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"mV8U0C1M1Xp6D2E4gVNR2wA0U6gmxuWbEFIWnkv4ni0="},"power":"10","name":"v"}],"app_state":{}}`

// TestAPIOverSocket drives pRuntime through its gRPC API on a Unix socket,
// as a host does, including the refusals a confused or hostile host meets.
func TestAPIOverSocket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cpu, _ := sim.OpenCPU(t.TempDir())
	rt, err := pruntime.New(pruntime.Config{Platform: sim.New(cpu, sim.Measure([]byte("b"))), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "p.sock")
	ln, err := pruntime.Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	go pruntime.Serve(ctx, ln, rt)
	c, err := pruntime.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	code := func(err error) codes.Code { return status.Code(err) }

	if _, err := c.GetRAQuote(ctx, &pruntimepb.GetRAQuoteRequest{Operator: make([]byte, 20)}); code(err) != codes.FailedPrecondition {
		t.Fatalf("quote before init: %v", err)
	}
	if _, err := c.SyncBlockchain(ctx, &pruntimepb.SyncRequest{}); code(err) != codes.FailedPrecondition {
		t.Fatalf("sync before init: %v", err)
	}
	if _, err := c.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: []byte("{not json")}); code(err) != codes.InvalidArgument {
		t.Fatalf("bad genesis: %v", err)
	}
	in, err := c.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: []byte(genesisA)})
	if err != nil || in.ChainId != "a" || !in.Initialized || len(in.GenesisHash) != 32 {
		t.Fatalf("init: %v %v", in, err)
	}
	if _, err := c.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: []byte(genesisA)}); err != nil {
		t.Fatalf("same genesis again: %v", err)
	}
	if _, err := c.InitRuntime(ctx, &pruntimepb.InitRuntimeRequest{Genesis: []byte(genesisB)}); code(err) != codes.FailedPrecondition {
		t.Fatalf("another genesis: %v", err)
	}
	if _, err := c.Bootstrap(ctx, &pruntimepb.BootstrapRequest{}); code(err) != codes.InvalidArgument {
		t.Fatalf("bootstrap after init: %v", err)
	}
	if _, err := c.GetRAQuote(ctx, &pruntimepb.GetRAQuoteRequest{Operator: []byte{1}}); code(err) != codes.InvalidArgument {
		t.Fatalf("short operator: %v", err)
	}
	q, err := c.GetRAQuote(ctx, &pruntimepb.GetRAQuoteRequest{Operator: make([]byte, 20), Endpoint: "e"})
	if err != nil || q.Platform != "sim" || len(q.Quote) == 0 {
		t.Fatalf("quote: %v %v", q, err)
	}
	// The quote verifies and commits to the info it came with.
	vq, err := sim.VerifyQuote(q.Quote)
	if err != nil || vq.ReportData != crypto.WorkerReportData(q.Info) {
		t.Fatalf("quote does not commit to its info: %v", err)
	}
	id, err := c.GetIdentity(ctx, &pruntimepb.GetIdentityRequest{})
	if err != nil || len(id.SigningKey) != 32 {
		t.Fatalf("identity: %v %v", id, err)
	}
	if _, err := pruntime.Listen("10.0.0.1:9"); err == nil {
		t.Fatal("pRuntime listened off loopback")
	}
}
