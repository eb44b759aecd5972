package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/pruntime/lightclient"
)

// Worker reads a registered worker by identity key; nil if none.
func (c *Client) Worker(ctx context.Context, key []byte) (*chainpb.Worker, error) {
	r, err := c.lookup(ctx, chain.QueryWorker, key, registry.ErrUnknownWorker)
	if r == nil {
		return nil, err
	}
	var w chainpb.Worker
	return &w, proto.Unmarshal(r.Value, &w)
}

// Workers lists every registered worker.
func (c *Client) Workers(ctx context.Context) ([]*chainpb.Worker, error) {
	r, err := c.query(ctx, chain.QueryWorkers, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var l chainpb.WorkerList
	return l.Workers, proto.Unmarshal(r.Value, &l)
}

// Launch reads the launch's progress; nil if the chain configures none.
func (c *Client) Launch(ctx context.Context) (*chainpb.LaunchState, error) {
	r, err := c.query(ctx, chain.QueryLaunch, nil, 0, false)
	if err != nil || len(r.Value) == 0 {
		return nil, err
	}
	var st chainpb.LaunchState
	return &st, proto.Unmarshal(r.Value, &st)
}

// Era reads the current root key's era, gatekeepers and any rotation in
// progress; nil before the launch.
func (c *Client) Era(ctx context.Context) (*chainpb.EraState, error) {
	r, err := c.query(ctx, chain.QueryEra, nil, 0, false)
	if err != nil || len(r.Value) == 0 {
		return nil, err
	}
	var es chainpb.EraState
	return &es, proto.Unmarshal(r.Value, &es)
}

// Responsiveness reads the last era's responsiveness report; nil before
// the first era ends.
func (c *Client) Responsiveness(ctx context.Context) (*monitor.Report, error) {
	r, err := c.query(ctx, chain.QueryMonitor, nil, 0, false)
	if err != nil || len(r.Value) == 0 {
		return nil, err
	}
	var rep monitor.Report
	return &rep, json.Unmarshal(r.Value, &rep)
}

// Rewards reads the last era's payout; nil before the first era ends.
func (c *Client) Rewards(ctx context.Context) (*chain.RewardsReport, error) {
	r, err := c.query(ctx, chain.QueryRewards, nil, 0, false)
	if err != nil || len(r.Value) == 0 {
		return nil, err
	}
	var rep chain.RewardsReport
	return &rep, json.Unmarshal(r.Value, &rep)
}

// NextSequence is the sequence the chain expects from a worker next.
func (c *Client) NextSequence(ctx context.Context, worker []byte) (uint64, error) {
	r, err := c.query(ctx, chain.QuerySequence, worker, 0, false)
	if err != nil {
		return 0, err
	}
	if len(r.Value) != 8 {
		return 0, fmt.Errorf("sequence query answered %d bytes", len(r.Value))
	}
	return binary.BigEndian.Uint64(r.Value), nil
}

// SelfStake is the operator's bond to a worker, in uPHA.
func (c *Client) SelfStake(ctx context.Context, worker []byte) (uint64, error) {
	r, err := c.query(ctx, chain.QueryStore, staking.SelfStakeKey(worker), 0, false)
	if err != nil || len(r.Value) == 0 {
		return 0, err
	}
	if len(r.Value) != 8 {
		return 0, fmt.Errorf("self stake record is %d bytes", len(r.Value))
	}
	return binary.BigEndian.Uint64(r.Value), nil
}

// ValidatorSet fetches block h's whole validator set, every page of it.
func (c *Client) ValidatorSet(ctx context.Context, h int64) (*types.ValidatorSet, error) {
	var vals []*types.Validator
	for page := 1; ; page++ {
		perPage := 100
		res, err := c.rpc.Validators(ctx, &h, &page, &perPage)
		if err != nil {
			return nil, fmt.Errorf("validators at %d: %w", h, unreachable(err))
		}
		vals = append(vals, res.Validators...)
		if len(vals) >= res.Total || len(res.Validators) == 0 {
			return types.NewValidatorSet(vals), nil
		}
	}
}

// SyncBlock fetches what a pRuntime needs to verify block h: its signed
// header, its validator set if withValidators, and block h-1's event log.
// Nothing here is trusted; pRuntime verifies it all.
func (c *Client) SyncBlock(ctx context.Context, h int64, withValidators bool) (lightclient.Block, error) {
	var b lightclient.Block
	cm, err := c.rpc.Commit(ctx, &h)
	if err != nil {
		return b, fmt.Errorf("commit %d: %w", h, unreachable(err))
	}
	b.SignedHeader = &cm.SignedHeader
	if withValidators {
		if b.Validators, err = c.ValidatorSet(ctx, h); err != nil {
			return b, err
		}
	}
	if h > 1 {
		if b.EventLog, err = c.EventLog(ctx, h-1); err != nil {
			return b, err
		}
	}
	return b, nil
}
