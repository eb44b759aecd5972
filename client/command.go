package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// DefaultGas is the gas limit of a command when none is given.
const DefaultGas = 100_000_000

// DeployContract publishes wasm code (compressed here) for miners to run
// (one, or several redundant ones), with init arguments initArgs (JSON,
// public), and returns the new instance's id. The gatekeepers then key
// it; see WaitKeyed.
func (c *Client) DeployContract(ctx context.Context, key ed25519.PrivateKey, code []byte, miners [][]byte, initArgs []byte, opts SendOptions) (crypto.ContractID, *TxResult, error) {
	body := &chainpb.TxBody{Msg: &chainpb.TxBody_DeployContract{DeployContract: &chainpb.MsgDeployContract{
		CodeGzip: wasmcode.Gzip(code), Miners: miners, InitArgs: initArgs,
	}}}
	if opts.Timeout == 0 {
		opts.Timeout = time.Minute
	}
	res, err := c.Send(ctx, key, body, opts)
	if err != nil {
		return crypto.ContractID{}, nil, err
	}
	// Build set the nonce it signed with.
	return crypto.NewContractID(crypto.AddressFromPubKey(key.Public().(ed25519.PublicKey)), body.Nonce), res, nil
}

// WaitKeyed waits until the gatekeepers published the contract's key and
// returns its record.
func (c *Client) WaitKeyed(ctx context.Context, id crypto.ContractID, timeout time.Duration) (*chainpb.Contract, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ct, err := c.Contract(ctx, id)
		if err == nil && ct != nil && ct.PublicKey != nil {
			return ct, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("contract %s has no key after %s; check that the network launched and its gatekeepers run (`phala status`): %w", id, timeout, errors.Join(err, ctx.Err()))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// SealCommand seals msg to contract ct for sender's transaction with
// nonce: only ct's miner can open it, and only as that transaction.
func SealCommand(chainID string, ct *chainpb.Contract, sender crypto.Address, nonce uint64, msg []byte) ([]byte, error) {
	if ct.PublicKey == nil {
		return nil, errors.New("the contract has no public key yet; wait for the gatekeepers to key it")
	}
	id, err := crypto.ContractIDFromBytes(ct.Id)
	if err != nil {
		return nil, err
	}
	return crypto.Seal(ct.PublicKey, crypto.CommandInfo(chainID, id, sender, nonce), msg)
}

// CallContract sends msg (JSON) as a sealed command from key's account,
// with gas limit gas (0: DefaultGas), and waits for its block. The nonce
// names the command for its receipt (WaitReceipt).
//
// A command refused because the contract's key is rotating, or was
// rotated since its public key was read, is sealed again to the current
// key and sent again, for up to KeyRetryTime, unless opts names the nonce.
func (c *Client) CallContract(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, msg []byte, gas uint64, opts SendOptions) (nonce uint64, res *TxResult, err error) {
	deadline := time.Now().Add(KeyRetryTime)
	for {
		raw, n, err := c.BuildCall(ctx, key, id, msg, gas, opts)
		if err != nil {
			return 0, nil, err
		}
		res, err = c.BroadcastAndWait(ctx, raw, opts.Timeout)
		if opts.Nonce != nil || !KeyRotated(err) || time.Now().After(deadline) {
			return n, res, err
		}
		select {
		case <-ctx.Done():
			return n, res, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// KeyRetryTime bounds how long CallContract resends a command refused
// because of a contract key rotation (which holds commands for at most
// contracts.RekeyHoldBlocks blocks).
const KeyRetryTime = 30 * time.Second

// KeyRotated reports whether err refuses a command because the contract's
// key is rotating or was rotated since it was sealed: seal it again to
// the contract's current public key and resend it.
func KeyRotated(err error) bool {
	var te *TxError
	return errors.As(err, &te) && te.Codespace == contracts.Codespace &&
		(te.Code == contracts.ErrRekeying.Code || te.Code == contracts.ErrStaleKey.Code)
}

// BuildCall signs a sealed command transaction without sending it.
func (c *Client) BuildCall(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, msg []byte, gas uint64, opts SendOptions) ([]byte, uint64, error) {
	if gas == 0 {
		gas = DefaultGas
	}
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return nil, 0, err
	}
	ct, err := c.Contract(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if ct == nil {
		return nil, 0, fmt.Errorf("no contract %s on this chain; check the id `phala contract deploy` printed", id)
	}
	sender := crypto.AddressFromPubKey(key.Public().(ed25519.PublicKey))
	if opts.Nonce == nil {
		acc, err := c.Account(ctx, sender)
		if err != nil {
			return nil, 0, err
		}
		opts.Nonce = &acc.Nonce
	}
	env, err := SealCommand(chainID, ct, sender, *opts.Nonce, msg)
	if err != nil {
		return nil, 0, err
	}
	raw, err := c.Build(ctx, key, &chainpb.TxBody{Msg: &chainpb.TxBody_ContractCommand{ContractCommand: &chainpb.MsgContractCommand{
		Contract: id.Bytes(), Envelope: env, GasLimit: gas, KeyEpoch: ct.KeyEpoch,
	}}}, opts)
	return raw, *opts.Nonce, err
}

// ReassignContract asks the chain, as the instance's deployer, to give it
// these miners. Added miners take it over from its latest checkpoint.
func (c *Client) ReassignContract(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, miners [][]byte, opts SendOptions) (*TxResult, error) {
	return c.Send(ctx, key, &chainpb.TxBody{Msg: &chainpb.TxBody_ReassignContract{ReassignContract: &chainpb.MsgReassignContract{
		Contract: id.Bytes(), Miners: miners,
	}}}, opts)
}

// Miner finds a worker that runs contract id, as registered on chain: its
// first miner with an endpoint.
func (c *Client) Miner(ctx context.Context, id crypto.ContractID) (*chainpb.Contract, *chainpb.Worker, error) {
	return c.MinerAt(ctx, id, 0)
}

// MinerAt is like Miner, starting from the contract's miner i (modulo
// their number), so callers can move on from one that does not answer.
func (c *Client) MinerAt(ctx context.Context, id crypto.ContractID, i int) (*chainpb.Contract, *chainpb.Worker, error) {
	ct, err := c.Contract(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if ct == nil {
		return nil, nil, fmt.Errorf("no contract %s on this chain; check the id `phala contract deploy` printed", id)
	}
	if len(ct.Miners) == 0 {
		return nil, nil, fmt.Errorf("contract %s has no miner now; it waits for one (`phala contract reassign`)", id)
	}
	for j := range ct.Miners {
		m := ct.Miners[(i+j)%len(ct.Miners)]
		w, err := c.Worker(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		if w != nil && w.Endpoint != "" {
			return ct, w, nil
		}
	}
	return nil, nil, fmt.Errorf("no miner of contract %s has a registered endpoint to query", id)
}

// QueryContract sends q (its contract set to id) to the contract's miner,
// signed by key, and returns the verified answer. The answer is signed by
// the miner's identity as registered on chain.
func (c *Client) QueryContract(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, q *pruntimepb.ContractQuery) (*pruntimepb.QueryAnswer, error) {
	chainID, w, err := c.queryTarget(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	q.Contract = id.Bytes()
	return QueryWorker(ctx, w.Endpoint, chainID, w, key, q)
}

// queryTarget is the chain id and the record of miner i of id, the
// worker a query to id goes to.
func (c *Client) queryTarget(ctx context.Context, id crypto.ContractID, i int) (string, *chainpb.Worker, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return "", nil, err
	}
	_, w, err := c.MinerAt(ctx, id, i)
	return chainID, w, err
}

// WaitReceipt polls the contract's miners for the receipt of key's
// command with nonce until it is executed or timeout passes. It moves to
// the next miner after an error (one down, renewed or reassigned away).
func (c *Client) WaitReceipt(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, nonce uint64, timeout time.Duration) (*pruntimepb.CommandReceipt, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	next := 0
	chainID, w, err := c.queryTarget(ctx, id, next)
	for err != nil {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no miner of %s to ask for command %d's receipt: %w", id, nonce, err)
		case <-time.After(200 * time.Millisecond):
		}
		chainID, w, err = c.queryTarget(ctx, id, next)
	}
	for {
		ans, err := QueryWorker(ctx, w.Endpoint, chainID, w, key, &pruntimepb.ContractQuery{Contract: id.Bytes(), Kind: pruntimepb.ContractQuery_RECEIPT, CommandNonce: nonce})
		if err == nil && ans.Receipt != nil {
			return ans.Receipt, nil
		}
		if err == nil {
			err = errors.New(ans.Error)
		} else if c2, w2, err2 := c.queryTarget(ctx, id, next+1); err2 == nil {
			next++
			chainID, w = c2, w2
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no receipt for command %d after %s (is the miner syncing? `phala status`): %w", nonce, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
