package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is a Service listening on a TCP address.
type Server struct {
	svc       *Service
	ln        net.Listener
	srv       *http.Server
	done      chan struct{}
	serveErr  error
	closeOnce sync.Once
	closeErr  error
	stopCtx   func() bool
}

// DefaultAddr is where Start listens when given an empty address: loopback,
// on a port the system picks.
const DefaultAddr = "127.0.0.1:0"

// Start serves a Service for cfg on addr (host:port; empty means
// DefaultAddr) until ctx is done or Close is called. The devnet runs one in
// process on loopback; `phala attestd` runs one on its configured address.
func Start(ctx context.Context, addr string, cfg ServiceConfig) (*Server, error) {
	svc, err := NewService(cfg)
	if err != nil {
		return nil, err
	}
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("attestation service: listen on %s: %w", addr, err)
	}
	s := &Server{
		svc: svc,
		ln:  ln,
		srv: &http.Server{
			Handler:           svc,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.serveErr = err
		}
	}()
	s.stopCtx = context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// Addr is the address the server listens on, e.g. "127.0.0.1:26690".
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the base URL for a Client. A server listening on all interfaces is
// reached through loopback.
func (s *Server) URL() string {
	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return "http://" + s.Addr()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// PublicKey is the service key chains must trust.
func (s *Server) PublicKey() ed25519.PublicKey { return s.svc.PublicKey() }

// Done is closed when the server has stopped serving.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server, letting requests in flight finish for up to five
// seconds. It is safe to call more than once; every call returns the same
// result: the error that stopped the server, if it stopped on its own.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.stopCtx()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.srv.Shutdown(ctx)
		if err != nil {
			s.srv.Close()
		}
		<-s.done
		s.closeErr = errors.Join(s.serveErr, err)
	})
	return s.closeErr
}
