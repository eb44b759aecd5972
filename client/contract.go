package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/querywire"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// Contract reads a contract instance's record; nil if there is none.
func (c *Client) Contract(ctx context.Context, id crypto.ContractID) (*chainpb.Contract, error) {
	r, err := c.lookup(ctx, chain.QueryContract, id.Bytes(), contracts.ErrUnknownContract)
	if r == nil {
		return nil, err
	}
	var ct chainpb.Contract
	if err := proto.Unmarshal(r.Value, &ct); err != nil {
		return nil, fmt.Errorf("decode contract: %w", err)
	}
	return &ct, nil
}

// Contracts lists every contract instance.
func (c *Client) Contracts(ctx context.Context) ([]*chainpb.Contract, error) {
	r, err := c.query(ctx, chain.QueryContracts, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var l chainpb.ContractList
	if err := proto.Unmarshal(r.Value, &l); err != nil {
		return nil, fmt.Errorf("decode contract list: %w", err)
	}
	return l.Contracts, nil
}

// Discrepancies lists the newest redundant-miner discrepancy records the
// chain keeps (at most contracts.MaxDiscrepancies), oldest first: a
// miner's checkpoint whose state root differed from the one stored for the
// same height.
func (c *Client) Discrepancies(ctx context.Context) ([]*chainpb.Discrepancy, error) {
	r, err := c.query(ctx, chain.QueryDiscrepancies, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var l chainpb.DiscrepancyList
	if err := proto.Unmarshal(r.Value, &l); err != nil {
		return nil, fmt.Errorf("decode discrepancy list: %w", err)
	}
	return l.Discrepancies, nil
}

// ErrForgedAnswer is wrapped when QueryWorker refuses a worker's answer:
// it does not open, is not signed by the worker, or answers another query.
var ErrForgedAnswer = querywire.ErrForgedAnswer

// QueryTimeout bounds one QueryWorker round trip (less if ctx ends first).
const QueryTimeout = 30 * time.Second

// maxAnswer is the most of a worker's HTTP answer read.
const maxAnswer = querywire.MaxEnvelope + 64

// queryHTTP is shared so connections to a worker are reused.
var queryHTTP = &http.Client{
	Timeout: QueryTimeout,
	// A worker's endpoint answers itself; never follow it elsewhere.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// QueryWorker sends q, signed by user and sealed to worker (its record
// from the chain), to the worker's query endpoint (e.g.
// http://127.0.0.1:8090) and returns the answer once it opens with this
// query's reply key, is signed by worker's identity key for chainID, and
// answers this very query about q's contract. The host relaying it reads
// and changes nothing unnoticed. An answer's Error is the contract's or
// pRuntime's reason it could not answer; check it.
func QueryWorker(ctx context.Context, endpoint string, chainID string, worker *chainpb.Worker, user ed25519.PrivateKey, q *pruntimepb.ContractQuery) (*pruntimepb.QueryAnswer, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("worker endpoint %q is not an http(s) URL such as http://127.0.0.1:8090", endpoint)
	}
	p, err := querywire.NewRequest(chainID, worker, user, q)
	if err != nil {
		return nil, err
	}
	body, err := proto.Marshal(p.Request)
	if err != nil {
		return nil, err
	}
	target := strings.TrimSuffix(endpoint, "/") + "/v1/query"
	ctx, cancel := context.WithTimeout(ctx, QueryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("worker endpoint %q: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Accept", "application/x-protobuf")
	res, err := queryHTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the worker at %s (is its host running with a query endpoint? is the endpoint on chain current?): %w", endpoint, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("read the worker's answer from %s: %w", endpoint, err)
	}
	switch {
	case res.StatusCode == http.StatusOK:
	case res.StatusCode == http.StatusBadRequest:
		return nil, fmt.Errorf("the worker at %s refused the query: %s", endpoint, printable(raw))
	case res.StatusCode == http.StatusRequestEntityTooLarge:
		return nil, fmt.Errorf("the worker at %s refused the query as too large; send a smaller payload", endpoint)
	case res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusServiceUnavailable:
		return nil, fmt.Errorf("the worker at %s cannot answer now (HTTP %d: %s); try again later", endpoint, res.StatusCode, printable(raw))
	default:
		return nil, fmt.Errorf("the worker endpoint %s answered HTTP %d (%s); check that it is a Phala worker's query endpoint", endpoint, res.StatusCode, printable(raw))
	}
	if len(raw) > maxAnswer {
		return nil, fmt.Errorf("%w: the worker at %s sent more than %d bytes", querywire.ErrForgedAnswer, endpoint, maxAnswer)
	}
	var resp pruntimepb.QueryResponse
	if err := proto.Unmarshal(raw, &resp); err != nil {
		return nil, fmt.Errorf("%w: the worker at %s did not send a protobuf QueryResponse: %v", querywire.ErrForgedAnswer, endpoint, err)
	}
	ans, err := p.Open(&resp)
	if err != nil {
		return nil, fmt.Errorf("answer from %s: %w (do not trust it; the host or the worker may be misbehaving)", endpoint, err)
	}
	return ans, nil
}

// printable is an untrusted text body cut short and stripped of control
// characters, safe to put in an error message.
func printable(b []byte) string {
	const max = 512
	s := strings.ToValidUTF8(string(b[:min(len(b), max)]), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(b) > max {
		s += "..."
	}
	if s == "" {
		return "no reason given"
	}
	return s
}
