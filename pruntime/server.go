package pruntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/phala-go/phala/proto/pruntimepb"
	"github.com/phala-go/phala/pruntime/system"
)

// MaxMessageBytes bounds one API message (a SyncBlockchain batch).
const MaxMessageBytes = 64 << 20

// Listen opens the API's local socket. addr is "unix:///path/to.sock" (or
// a bare path) for a Unix socket, or "host:port" for TCP on loopback.
func Listen(addr string) (net.Listener, error) {
	if path, ok := unixPath(addr); ok {
		os.Remove(path) // a stale socket from a previous run
		return net.Listen("unix", path)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pRuntime API address %q: want unix:///path or host:port", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("pRuntime API address %q: serve the host on loopback or a Unix socket only", addr)
	}
	return net.Listen("tcp", addr)
}

func unixPath(addr string) (string, bool) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		return p, true
	}
	return addr, strings.HasPrefix(addr, "/")
}

// Serve serves r's API on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, r *Runtime) error {
	s := grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
	pruntimepb.RegisterPRuntimeServer(s, &server{r: r})
	go func() {
		<-ctx.Done()
		stopped := make(chan struct{})
		go func() { s.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.Stop()
		}
	}()
	err := s.Serve(ln)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

type server struct {
	pruntimepb.UnimplementedPRuntimeServer
	r *Runtime
}

func (s *server) InitRuntime(_ context.Context, req *pruntimepb.InitRuntimeRequest) (*pruntimepb.InfoResponse, error) {
	out, err := s.r.InitRuntime(req.Genesis)
	return out, grpcErr(err)
}

func (s *server) GetIdentity(context.Context, *pruntimepb.GetIdentityRequest) (*pruntimepb.Identity, error) {
	out, err := s.r.GetIdentity()
	return out, grpcErr(err)
}

func (s *server) GetRAQuote(_ context.Context, req *pruntimepb.GetRAQuoteRequest) (*pruntimepb.RAQuote, error) {
	out, err := s.r.GetRAQuote(req.Operator, req.Endpoint)
	return out, grpcErr(err)
}

func (s *server) Bootstrap(context.Context, *pruntimepb.BootstrapRequest) (*pruntimepb.BootstrapResponse, error) {
	out, err := s.r.Bootstrap()
	return out, grpcErr(err)
}

func (s *server) SyncBlockchain(_ context.Context, req *pruntimepb.SyncRequest) (*pruntimepb.SyncResponse, error) {
	out, err := s.r.SyncBlockchain(req.Blocks)
	if err != nil {
		return nil, grpcErr(err)
	}
	return out, nil
}

func (s *server) DumpSideEffects(context.Context, *pruntimepb.DumpSideEffectsRequest) (*pruntimepb.SideEffects, error) {
	out, err := s.r.DumpSideEffects()
	return out, grpcErr(err)
}

func (s *server) RenewIdentity(context.Context, *pruntimepb.RenewIdentityRequest) (*pruntimepb.Identity, error) {
	out, err := s.r.RenewIdentity()
	return out, grpcErr(err)
}

func (s *server) Query(ctx context.Context, req *pruntimepb.QueryRequest) (*pruntimepb.QueryResponse, error) {
	out, err := s.r.Query(ctx, req)
	return out, grpcErr(err)
}

func (s *server) RecoverContract(_ context.Context, req *pruntimepb.RecoverRequest) (*pruntimepb.RecoverResponse, error) {
	out, err := s.r.RecoverContract(req)
	return out, grpcErr(err)
}

func (s *server) Info(context.Context, *pruntimepb.InfoRequest) (*pruntimepb.InfoResponse, error) {
	return s.r.Info(), nil
}

func grpcErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotInitialized), errors.Is(err, ErrInitialized), errors.Is(err, ErrRetired):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, system.ErrSealed):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrRefusedBlock):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// Client is the host's connection to a pRuntime.
type Client struct {
	pruntimepb.PRuntimeClient
	conn *grpc.ClientConn
}

// Dial connects to a pRuntime's API at addr (see Listen).
func Dial(addr string) (*Client, error) {
	target := addr
	if p, ok := unixPath(addr); ok {
		target = "unix://" + p
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("pRuntime API %s: %w", addr, err)
	}
	return &Client{PRuntimeClient: pruntimepb.NewPRuntimeClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
