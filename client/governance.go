package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/governance"
	"github.com/phala-go/phala/chain/registry"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// Proposals lists the referenda, newest first, without their ballots.
func (c *Client) Proposals(ctx context.Context) ([]chain.ProposalRecord, error) {
	r, err := c.query(ctx, chain.QueryProposals, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var ps []chain.ProposalRecord
	if err := json.Unmarshal(r.Value, &ps); err != nil {
		return nil, fmt.Errorf("decode proposals: %w", err)
	}
	return ps, nil
}

// Proposal reads referendum id with its ballots; nil if there is none.
func (c *Client) Proposal(ctx context.Context, id uint64) (*chain.ProposalRecord, error) {
	r, err := c.lookup(ctx, fmt.Sprintf("%s/%d", chain.QueryProposal, id), nil, governance.ErrUnknownProposal)
	if r == nil {
		return nil, err
	}
	var p chain.ProposalRecord
	if err := json.Unmarshal(r.Value, &p); err != nil {
		return nil, fmt.Errorf("decode proposal %d: %w", id, err)
	}
	return &p, nil
}

// GovernanceParams reads the referenda's parameters.
func (c *Client) GovernanceParams(ctx context.Context) (governance.Params, error) {
	var p governance.Params
	r, err := c.query(ctx, chain.QueryGovernanceParams, nil, 0, false)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(r.Value, &p); err != nil {
		return p, fmt.Errorf("decode governance parameters: %w", err)
	}
	return p, nil
}

// ModuleParams reads a module's parameters as JSON: the whole object a
// param_change proposal for it carries.
func (c *Client) ModuleParams(ctx context.Context, module string) (json.RawMessage, error) {
	r, err := c.query(ctx, chain.QueryGovernanceParams+"/"+module, nil, 0, false)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(r.Value), nil
}

// FrozenPlatforms lists the TEE platforms a referendum froze.
func (c *Client) FrozenPlatforms(ctx context.Context) ([]registry.Frozen, error) {
	r, err := c.query(ctx, chain.QueryFrozen, nil, 0, false)
	if err != nil {
		return nil, err
	}
	var fs []registry.Frozen
	if err := json.Unmarshal(r.Value, &fs); err != nil {
		return nil, fmt.Errorf("decode frozen platforms: %w", err)
	}
	return fs, nil
}

// SubmitProposal opens a referendum on action with a deposit (uPHA) and
// returns the new proposal's id with the transaction.
func (c *Client) SubmitProposal(ctx context.Context, key ed25519.PrivateKey, title string, deposit int64, action *chainpb.ProposalAction, opts SendOptions) (uint64, *TxResult, error) {
	res, err := c.Send(ctx, key, &chainpb.TxBody{Msg: &chainpb.TxBody_SubmitProposal{SubmitProposal: &chainpb.MsgSubmitProposal{Title: title, Deposit: deposit, Action: action}}}, opts)
	if err != nil {
		return 0, res, err
	}
	id, err := c.SubmittedProposal(ctx, key, res.Height)
	return id, res, err
}

// SubmittedProposal finds the id of the proposal key's account submitted
// in block height (the newest, if it submitted several).
func (c *Client) SubmittedProposal(ctx context.Context, key ed25519.PrivateKey, height int64) (uint64, error) {
	ps, err := c.Proposals(ctx)
	if err != nil {
		return 0, err
	}
	proposer := crypto.AddressFromPubKey(key.Public().(ed25519.PublicKey)).String()
	for _, p := range ps {
		if p.Proposer == proposer && p.Submitted == height {
			return p.ID, nil
		}
	}
	return 0, fmt.Errorf("no proposal by %s submitted in block %d; list them with `phala gov show`", proposer, height)
}

// Vote casts (or replaces) key's vote on proposal id.
func (c *Client) Vote(ctx context.Context, key ed25519.PrivateKey, id uint64, option chainpb.VoteOption, opts SendOptions) (*TxResult, error) {
	return c.Send(ctx, key, &chainpb.TxBody{Msg: &chainpb.TxBody_Vote{Vote: &chainpb.MsgVote{Proposal: id, Option: option}}}, opts)
}
