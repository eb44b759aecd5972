package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/wasmcode"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
)

// DefaultGas is the gas limit of a command when none is given.
const DefaultGas = 100_000_000

// DeployContract publishes wasm code (compressed here) for miner to run,
// with init arguments initArgs (JSON, public), and returns the new
// instance's id. The gatekeepers then key it; see WaitKeyed.
func (c *Client) DeployContract(ctx context.Context, key ed25519.PrivateKey, code, miner, initArgs []byte, opts SendOptions) (crypto.ContractID, *TxResult, error) {
	body := &chainpb.TxBody{Msg: &chainpb.TxBody_DeployContract{DeployContract: &chainpb.MsgDeployContract{
		CodeGzip: wasmcode.Gzip(code), Miner: miner, InitArgs: initArgs,
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
func (c *Client) CallContract(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, msg []byte, gas uint64, opts SendOptions) (nonce uint64, res *TxResult, err error) {
	raw, nonce, err := c.BuildCall(ctx, key, id, msg, gas, opts)
	if err != nil {
		return 0, nil, err
	}
	res, err = c.BroadcastAndWait(ctx, raw, opts.Timeout)
	return nonce, res, err
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
		Contract: id.Bytes(), Envelope: env, GasLimit: gas,
	}}}, opts)
	return raw, *opts.Nonce, err
}

// Miner finds the worker that runs contract id, as registered on chain.
func (c *Client) Miner(ctx context.Context, id crypto.ContractID) (*chainpb.Contract, *chainpb.Worker, error) {
	ct, err := c.Contract(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if ct == nil {
		return nil, nil, fmt.Errorf("no contract %s on this chain; check the id `phala contract deploy` printed", id)
	}
	w, err := c.Worker(ctx, ct.Miner)
	if err != nil {
		return nil, nil, err
	}
	if w == nil || w.Endpoint == "" {
		return nil, nil, fmt.Errorf("contract %s's miner %X has no registered endpoint to query", id, ct.Miner)
	}
	return ct, w, nil
}

// QueryContract sends q (its contract set to id) to the contract's miner,
// signed by key, and returns the verified answer. The answer is signed by
// the miner's identity as registered on chain.
func (c *Client) QueryContract(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, q *pruntimepb.ContractQuery) (*pruntimepb.QueryAnswer, error) {
	chainID, w, err := c.queryTarget(ctx, id)
	if err != nil {
		return nil, err
	}
	q.Contract = id.Bytes()
	return QueryWorker(ctx, w.Endpoint, chainID, w, key, q)
}

// queryTarget is the chain id and the miner's record a query to id needs.
func (c *Client) queryTarget(ctx context.Context, id crypto.ContractID) (string, *chainpb.Worker, error) {
	chainID, err := c.ChainID(ctx)
	if err != nil {
		return "", nil, err
	}
	_, w, err := c.Miner(ctx, id)
	return chainID, w, err
}

// WaitReceipt polls the miner for the receipt of key's command with nonce
// until it is executed or timeout passes.
func (c *Client) WaitReceipt(ctx context.Context, key ed25519.PrivateKey, id crypto.ContractID, nonce uint64, timeout time.Duration) (*pruntimepb.CommandReceipt, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	chainID, w, err := c.queryTarget(ctx, id)
	if err != nil {
		return nil, err
	}
	for {
		ans, err := QueryWorker(ctx, w.Endpoint, chainID, w, key, &pruntimepb.ContractQuery{Contract: id.Bytes(), Kind: pruntimepb.ContractQuery_RECEIPT, CommandNonce: nonce})
		if err == nil && ans.Receipt != nil {
			return ans.Receipt, nil
		}
		if err == nil {
			err = errors.New(ans.Error)
		} else if c2, w2, err2 := c.queryTarget(ctx, id); err2 == nil {
			chainID, w = c2, w2 // the miner may have renewed its identity
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no receipt for command %d after %s (is the miner syncing? `phala status`): %w", nonce, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
