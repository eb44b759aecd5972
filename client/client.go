// Package client talks to a Phala-Go chain node over CometBFT's RPC: it
// builds and signs transactions, waits for them to commit, and reads
// accounts, event logs and proofs. The CLI, the devnet and tests use it.
package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/cometbft/cometbft/mempool"
	rpcclient "github.com/cometbft/cometbft/rpc/client"
	rpchttp "github.com/cometbft/cometbft/rpc/client/http"
	ctypes "github.com/cometbft/cometbft/rpc/core/types"
	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/auth"
	"github.com/phala-go/phala/chain/errs"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proof"
	"github.com/phala-go/phala/proto/chainpb"
)

// Client is safe for concurrent use.
type Client struct {
	rpc rpcclient.Client

	mu      sync.Mutex
	chainID string
	params  *auth.Params
}

// New connects to a node's RPC address, e.g. http://127.0.0.1:26657 or
// tcp://127.0.0.1:26657.
func New(addr string) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	c, err := rpchttp.New(addr)
	if err != nil {
		return nil, fmt.Errorf("node address %q: %w", addr, err)
	}
	return &Client{rpc: c}, nil
}

// RPC exposes the underlying CometBFT client.
func (c *Client) RPC() rpcclient.Client { return c.rpc }

// TxError is a transaction the chain refused, with its stable code.
type TxError struct {
	Codespace string
	Code      uint32
	Log       string
	Hash      string
	Height    int64 // 0 if refused before a block
}

func (e *TxError) Error() string {
	where := "refused"
	if e.Height > 0 {
		where = fmt.Sprintf("failed in block %d", e.Height)
	}
	return fmt.Sprintf("transaction %s (%s/%d): %s", where, e.Codespace, e.Code, e.Log)
}

// Is lets errors.Is match a TxError against a registered chain error.
func (e *TxError) Is(target error) bool {
	var t *errs.Error
	return errors.As(target, &t) && t.Codespace == e.Codespace && t.Code == e.Code
}

// ChainID returns the node's chain id (cached).
func (c *Client) ChainID(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chainID != "" {
		return c.chainID, nil
	}
	st, err := c.rpc.Status(ctx)
	if err != nil {
		return "", unreachable(err)
	}
	c.chainID = st.NodeInfo.Network
	return c.chainID, nil
}

func unreachable(err error) error {
	return fmt.Errorf("cannot reach the node (is it running? check --node): %w", err)
}

// Params returns the chain's transaction parameters (cached).
func (c *Client) Params(ctx context.Context) (auth.Params, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.params != nil {
		return *c.params, nil
	}
	r, err := c.query(ctx, chain.QueryParams, nil, 0, false)
	if err != nil {
		return auth.Params{}, err
	}
	var p auth.Params
	if err := json.Unmarshal(r.Value, &p); err != nil {
		return p, fmt.Errorf("decode parameters: %w", err)
	}
	c.params = &p
	return p, nil
}

// query runs an ABCI query and turns a refusal into an error.
func (c *Client) query(ctx context.Context, path string, data []byte, height int64, prove bool) (*abci.QueryResponse, error) {
	res, err := c.rpc.ABCIQueryWithOptions(ctx, path, data, rpcclient.ABCIQueryOptions{Height: height, Prove: prove})
	if err != nil {
		return nil, unreachable(err)
	}
	r := res.Response
	if r.Code != 0 {
		return nil, fmt.Errorf("query %s refused (%s/%d): %s", path, r.Codespace, r.Code, r.Log)
	}
	return &r, nil
}

// lookup queries, at the latest block, a record that may not exist: the
// module's refusal unknown means there is none (nil, nil).
func (c *Client) lookup(ctx context.Context, path string, data []byte, unknown *errs.Error) (*abci.QueryResponse, error) {
	res, err := c.rpc.ABCIQuery(ctx, path, data)
	if err != nil {
		return nil, unreachable(err)
	}
	r := res.Response
	switch {
	case r.Codespace == unknown.Codespace && r.Code == unknown.Code:
		return nil, nil
	case r.Code != 0:
		return nil, fmt.Errorf("query %s refused (%s/%d): %s", path, r.Codespace, r.Code, r.Log)
	}
	return &r, nil
}

// Account reads an account's balance and next nonce at the latest block.
func (c *Client) Account(ctx context.Context, addr crypto.Address) (*chainpb.Account, error) {
	r, err := c.query(ctx, chain.QueryAccount, addr.Bytes(), 0, false)
	if err != nil {
		return nil, err
	}
	var a chainpb.Account
	if err := proto.Unmarshal(r.Value, &a); err != nil {
		return nil, fmt.Errorf("decode account: %w", err)
	}
	return &a, nil
}

// EventLog fetches block height's worker event log. It is unverified; check
// it with proof.VerifyEventLog against the header at height+1.
func (c *Client) EventLog(ctx context.Context, height int64) (*chainpb.EventLog, error) {
	r, err := c.query(ctx, chain.QueryEventLog, nil, height, false)
	if err != nil {
		return nil, err
	}
	var l chainpb.EventLog
	if err := proto.Unmarshal(r.Value, &l); err != nil {
		return nil, fmt.Errorf("decode event log: %w", err)
	}
	if l.Height != height {
		return nil, fmt.Errorf("asked for the event log of block %d, the node sent block %d's", height, l.Height)
	}
	return &l, nil
}

// StateProof fetches key's value after block height with its proof. It is
// unverified; check it with proof.VerifyState against the header at height+1.
func (c *Client) StateProof(ctx context.Context, key []byte, height int64) (*proof.StateProof, error) {
	r, err := c.query(ctx, chain.QueryStore, key, height, true)
	if err != nil {
		return nil, err
	}
	if height != 0 && r.Height != height {
		return nil, fmt.Errorf("asked for state at block %d, the node answered for block %d", height, r.Height)
	}
	var value []byte
	if len(r.Value) > 0 {
		value = r.Value
	}
	return proof.StateProofFromOps(r.Height, key, value, r.ProofOps)
}

// Header fetches the header at height (unverified).
func (c *Client) Header(ctx context.Context, height int64) (*types.Header, error) {
	res, err := c.rpc.Header(ctx, &height)
	if err != nil {
		return nil, fmt.Errorf("header %d: %w", height, err)
	}
	return res.Header, nil
}

// TxResult is a committed transaction.
type TxResult struct {
	Hash   string `json:"hash"`
	Height int64  `json:"height"`
	Code   uint32 `json:"code"`
	Log    string `json:"log,omitempty"`
}

// SendOptions adjusts Send. Zero values mean: the account's next nonce, the
// minimum fee, and wait up to 30 s for the block.
type SendOptions struct {
	Nonce   *uint64
	Fee     *int64
	Memo    string
	Timeout time.Duration
}

// Build signs a transaction carrying msg. With no fee given it pays exactly
// the minimum for the resulting size.
func (c *Client) Build(ctx context.Context, key ed25519.PrivateKey, body *chainpb.TxBody, opts SendOptions) ([]byte, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, err
	}
	body.ChainId, body.Memo = chainID, opts.Memo
	if opts.Nonce != nil {
		body.Nonce = *opts.Nonce
	} else {
		acc, err := c.Account(ctx, crypto.AddressFromPubKey(key.Public().(ed25519.PublicKey)))
		if err != nil {
			return nil, err
		}
		body.Nonce = acc.Nonce
	}
	if opts.Fee != nil {
		body.Fee = *opts.Fee
		return auth.Sign(key, body)
	}
	p, err := c.Params(ctx)
	if err != nil {
		return nil, err
	}
	// The fee's own encoding changes the size; settle in a few rounds.
	for range 4 {
		raw, err := auth.Sign(key, body)
		if err != nil {
			return nil, err
		}
		if min := p.MinFee(len(raw)); body.Fee < min {
			body.Fee = min
			continue
		}
		return raw, nil
	}
	return nil, errors.New("could not settle the fee for this transaction")
}

// Send builds, signs and broadcasts a transaction, then waits for its block.
// A refusal, in CheckTx or in the block, is a *TxError.
func (c *Client) Send(ctx context.Context, key ed25519.PrivateKey, body *chainpb.TxBody, opts SendOptions) (*TxResult, error) {
	raw, err := c.Build(ctx, key, body, opts)
	if err != nil {
		return nil, err
	}
	return c.BroadcastAndWait(ctx, raw, opts.Timeout)
}

// BroadcastAndWait submits raw and waits until it is in a block.
//
// A transaction the node admitted can still leave its mempool without a
// word: CometBFT checks every waiting transaction again after each block
// and drops those the new state refuses (a command to a contract whose key
// started rotating, a relay someone else delivered first). So while it
// waits, BroadcastAndWait offers raw again every reofferEvery: a node
// that still holds it says so, one that dropped it judges it afresh, and
// a refusal is returned as the answer instead of a timeout.
func (c *Client) BroadcastAndWait(ctx context.Context, raw []byte, timeout time.Duration) (*TxResult, error) {
	hash, err := c.offer(ctx, raw)
	if err != nil {
		return nil, err
	}
	return c.waitTx(ctx, hash, timeout, raw)
}

// reofferEvery is how long BroadcastAndWait waits for a block before it
// offers its transaction again.
const reofferEvery = 2 * time.Second

// offer submits raw to the node's mempool; a transaction the node already
// holds counts as submitted.
func (c *Client) offer(ctx context.Context, raw []byte) ([]byte, error) {
	res, err := c.rpc.BroadcastTxSync(ctx, raw)
	switch {
	case err != nil && strings.Contains(err.Error(), mempool.ErrTxInCache.Error()):
		return types.Tx(raw).Hash(), nil
	case err != nil:
		return nil, c.broadcastError(ctx, raw, err)
	case res.Code != 0:
		return nil, &TxError{Codespace: res.Codespace, Code: res.Code, Log: res.Log, Hash: res.Hash.String()}
	}
	return res.Hash, nil
}

// WaitTx waits until the transaction with hash is in a block (the node must
// index transactions, as devnets and localnets do). Zero timeout means 30 s.
func (c *Client) WaitTx(ctx context.Context, hash []byte, timeout time.Duration) (*TxResult, error) {
	return c.waitTx(ctx, hash, timeout, nil)
}

// waitTx is WaitTx that offers raw (when given) again every reofferEvery.
func (c *Client) waitTx(ctx context.Context, hash []byte, timeout time.Duration, raw []byte) (*TxResult, error) {
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	hexHash := fmt.Sprintf("%X", hash)
	deadline := time.Now().Add(timeout)
	reoffer := time.Now().Add(reofferEvery)
	for {
		if tr, err := c.rpc.Tx(ctx, hash, false); err == nil {
			return txResult(hexHash, tr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("transaction %s was accepted but not seen in a block within %s; query it later with /tx?hash=0x%s", hexHash, timeout, hexHash)
		}
		if raw != nil && time.Now().After(reoffer) {
			reoffer = time.Now().Add(reofferEvery)
			if _, err := c.offer(ctx, raw); err != nil {
				// Refused now: unless a block took it meanwhile (its nonce
				// is then used), the refusal is the answer.
				if tr, terr := c.rpc.Tx(ctx, hash, false); terr == nil {
					return txResult(hexHash, tr)
				}
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// txResult is a transaction found in a block; an error if it failed there.
func txResult(hexHash string, tr *ctypes.ResultTx) (*TxResult, error) {
	out := &TxResult{Hash: hexHash, Height: tr.Height, Code: tr.TxResult.Code, Log: tr.TxResult.Log}
	if tr.TxResult.Code != 0 {
		return out, &TxError{Codespace: tr.TxResult.Codespace, Code: tr.TxResult.Code, Log: tr.TxResult.Log, Hash: hexHash, Height: tr.Height}
	}
	return out, nil
}

// broadcastError turns CometBFT's report of a transaction that failed
// CheckTx into a *TxError with the app's code. In process the report is a
// typed error; over HTTP it is text, so the node is asked to check the
// transaction again (a refused transaction changes nothing) for the
// structured answer.
func (c *Client) broadcastError(ctx context.Context, raw []byte, err error) error {
	var inv mempool.ErrInvalidTx
	if errors.As(err, &inv) {
		return &TxError{Codespace: inv.Codespace, Code: inv.Code, Log: inv.Log, Hash: fmt.Sprintf("%X", inv.Hash)}
	}
	if !strings.Contains(err.Error(), "is invalid: code=") {
		return unreachable(err)
	}
	res, cerr := c.rpc.CheckTx(ctx, raw)
	if cerr != nil || res.Code == 0 {
		return fmt.Errorf("transaction refused: %w", err)
	}
	return &TxError{Codespace: res.Codespace, Code: res.Code, Log: res.Log, Hash: fmt.Sprintf("%X", types.Tx(raw).Hash())}
}

// Transfer sends amount uPHA from key's account to to.
func (c *Client) Transfer(ctx context.Context, key ed25519.PrivateKey, to crypto.Address, amount int64, opts SendOptions) (*TxResult, error) {
	return c.Send(ctx, key, &chainpb.TxBody{Msg: &chainpb.TxBody_Transfer{Transfer: &chainpb.MsgTransfer{To: to.Bytes(), Amount: amount}}}, opts)
}
