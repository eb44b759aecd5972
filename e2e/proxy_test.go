package e2e

import (
	"context"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime"
)

// pruntimeProxy stands between a host and its pRuntime on the pRuntime's
// socket path, as an untrusted host (or anything on its machine) can: it
// forwards every call and, while tamper is set, flips a byte of the
// checkpoint a RecoverContract call carries. It records what pRuntime
// answered to RecoverContract.
type pruntimeProxy struct {
	pruntimepb.UnimplementedPRuntimeServer
	up     *pruntime.Client
	tamper atomic.Bool
	srv    *grpc.Server

	mu       sync.Mutex
	refused  []string // pRuntime's errors to tampered (or any) recoveries
	done     bool     // a RecoverContract call answered done
	infoSeen bool
}

// startProxy moves the pRuntime socket at path aside and serves the proxy
// on path. Hosts that dial path afterwards go through it.
func startProxy(t *testing.T, path string) *pruntimeProxy {
	t.Helper()
	real := path + ".real"
	if err := os.Rename(path, real); err != nil {
		t.Fatal(err)
	}
	up, err := pruntime.Dial("unix://" + real)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	p := &pruntimeProxy{up: up, srv: grpc.NewServer(grpc.MaxRecvMsgSize(pruntime.MaxMessageBytes), grpc.MaxSendMsgSize(pruntime.MaxMessageBytes))}
	pruntimepb.RegisterPRuntimeServer(p.srv, p)
	go p.srv.Serve(ln)
	t.Cleanup(func() { p.srv.Stop(); up.Close() })
	return p
}

func (p *pruntimeProxy) state() (refused []string, done, info bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.refused...), p.done, p.infoSeen
}

func (p *pruntimeProxy) RecoverContract(ctx context.Context, req *pruntimepb.RecoverRequest) (*pruntimepb.RecoverResponse, error) {
	if p.tamper.Load() && len(req.Checkpoint) > 0 {
		req = proto.Clone(req).(*pruntimepb.RecoverRequest)
		v := req.Checkpoint[len(req.Checkpoint)-1].Value
		v[len(v)/2] ^= 0x40
	}
	resp, err := p.up.RecoverContract(ctx, req)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.refused = append(p.refused, err.Error())
	} else if resp.Done {
		p.done = true
	}
	return resp, err
}

func (p *pruntimeProxy) Info(ctx context.Context, req *pruntimepb.InfoRequest) (*pruntimepb.InfoResponse, error) {
	p.mu.Lock()
	p.infoSeen = true
	p.mu.Unlock()
	return p.up.Info(ctx, req)
}

func (p *pruntimeProxy) InitRuntime(ctx context.Context, req *pruntimepb.InitRuntimeRequest) (*pruntimepb.InfoResponse, error) {
	return p.up.InitRuntime(ctx, req)
}

func (p *pruntimeProxy) GetIdentity(ctx context.Context, req *pruntimepb.GetIdentityRequest) (*pruntimepb.Identity, error) {
	return p.up.GetIdentity(ctx, req)
}

func (p *pruntimeProxy) GetRAQuote(ctx context.Context, req *pruntimepb.GetRAQuoteRequest) (*pruntimepb.RAQuote, error) {
	return p.up.GetRAQuote(ctx, req)
}

func (p *pruntimeProxy) Bootstrap(ctx context.Context, req *pruntimepb.BootstrapRequest) (*pruntimepb.BootstrapResponse, error) {
	return p.up.Bootstrap(ctx, req)
}

func (p *pruntimeProxy) SyncBlockchain(ctx context.Context, req *pruntimepb.SyncRequest) (*pruntimepb.SyncResponse, error) {
	return p.up.SyncBlockchain(ctx, req)
}

func (p *pruntimeProxy) DumpSideEffects(ctx context.Context, req *pruntimepb.DumpSideEffectsRequest) (*pruntimepb.SideEffects, error) {
	return p.up.DumpSideEffects(ctx, req)
}

func (p *pruntimeProxy) RenewIdentity(ctx context.Context, req *pruntimepb.RenewIdentityRequest) (*pruntimepb.Identity, error) {
	return p.up.RenewIdentity(ctx, req)
}

func (p *pruntimeProxy) Query(ctx context.Context, req *pruntimepb.QueryRequest) (*pruntimepb.QueryResponse, error) {
	return p.up.Query(ctx, req)
}
