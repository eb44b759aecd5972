package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/pruntimepb"
)

// The query endpoint relays users' sealed, signed contract queries to
// pRuntime and pRuntime's sealed, signed answers back. The host cannot
// read either; it logs neither.
const (
	// QueryPath is where users POST a protobuf QueryRequest.
	QueryPath = "/v1/query"
	// HealthPath answers 200 while the endpoint is up.
	HealthPath = "/v1/health"
	// MaxQueryBody is the largest request body accepted (413 above).
	MaxQueryBody = 1 << 20
	// ProtobufType is the Content-Type of query requests and answers.
	ProtobufType = "application/x-protobuf"
)

const (
	// queryTimeout bounds one pRuntime Query call. Queries are answered
	// from the last executed state and never wait for sync.
	queryTimeout = 30 * time.Second
	// maxInFlight bounds the queries forwarded at once (and so the request
	// bodies held in memory); more wait for a slot.
	maxInFlight = 64
)

// QueryHandler serves POST /v1/query (body: a protobuf QueryRequest, at
// most MaxQueryBody bytes) by forwarding it to rt's Query, and GET
// /v1/health. A query pRuntime refuses as InvalidArgument is answered 400
// with pRuntime's reason as text; any other failure 502. log gets only
// failure codes, never a query or an answer.
func QueryHandler(rt pruntimepb.PRuntimeClient, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	slots := make(chan struct{}, maxInFlight)
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST "+QueryPath, func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxQueryBody {
			http.Error(w, fmt.Sprintf("query body is %d bytes, over the %d-byte limit", r.ContentLength, MaxQueryBody), http.StatusRequestEntityTooLarge)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			http.Error(w, "the worker is busy; try again later", http.StatusServiceUnavailable)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxQueryBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				http.Error(w, fmt.Sprintf("query body is over the %d-byte limit", MaxQueryBody), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read the query body", http.StatusBadRequest)
			return
		}
		var req pruntimepb.QueryRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, "the body is not a protobuf phala.pruntime.v1.QueryRequest", http.StatusBadRequest)
			return
		}
		resp, err := rt.Query(ctx, &req)
		if err != nil {
			st := status.Convert(err)
			if st.Code() == codes.InvalidArgument {
				http.Error(w, st.Message(), http.StatusBadRequest)
				return
			}
			log.Warn("pRuntime could not answer a query", "code", st.Code().String())
			http.Error(w, fmt.Sprintf("the worker's pRuntime could not answer the query (%s)", st.Code()), http.StatusBadGateway)
			return
		}
		out, err := proto.Marshal(resp)
		if err != nil {
			http.Error(w, "cannot encode pRuntime's answer", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", ProtobufType)
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.Write(out)
	})
	return mux
}

// checkQueryListen accepts only a loopback host:port: the endpoint is
// plain HTTP, meant for a local reverse proxy (or the user's own machine).
func checkQueryListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("host: QueryListen %q is not host:port (for example 127.0.0.1:8090): %v", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("host: QueryListen %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("host: QueryListen %q is not a loopback address; the query endpoint is plain HTTP, so listen on 127.0.0.1 or [::1] and put a TLS reverse proxy in front to serve users elsewhere", addr)
	}
	return nil
}

// serveQueries starts the query endpoint on cfg.QueryListen; stop shuts
// it down.
func (h *Host) serveQueries() (stop func(), err error) {
	ln, err := net.Listen("tcp", h.cfg.QueryListen)
	if err != nil {
		return nil, fmt.Errorf("query endpoint: listen on %s: %w", h.cfg.QueryListen, err)
	}
	srv := &http.Server{
		Handler:           QueryHandler(h.cfg.PRuntime, h.log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      queryTimeout + 15*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("query endpoint stopped", "err", err)
		}
	}()
	h.log.Info("serving contract queries", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}
