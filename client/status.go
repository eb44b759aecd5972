package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Validator is one member of the validator set.
type Validator struct {
	Address     string `json:"address"`
	VotingPower int64  `json:"voting_power"`
}

// Status is a node's view of the network.
type Status struct {
	ChainID     string      `json:"chain_id"`
	Height      int64       `json:"height"`
	AppHash     string      `json:"app_hash"`
	BlockTime   time.Time   `json:"block_time"`
	Phase       string      `json:"phase"`
	CatchingUp  bool        `json:"catching_up"`
	Moniker     string      `json:"moniker"`
	Validators  []Validator `json:"validators"`
	AppVersion  uint64      `json:"app_version"`
	NodeVersion string      `json:"node_version"`
}

// Status reports height, chain id, phase and validators.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	st, err := c.rpc.Status(ctx)
	if err != nil {
		return nil, unreachable(err)
	}
	info, err := c.rpc.ABCIInfo(ctx)
	if err != nil {
		return nil, unreachable(err)
	}
	var data struct {
		Phase string `json:"phase"`
	}
	_ = json.Unmarshal([]byte(info.Response.Data), &data)
	out := &Status{
		ChainID:     st.NodeInfo.Network,
		Height:      st.SyncInfo.LatestBlockHeight,
		AppHash:     fmt.Sprintf("%X", []byte(st.SyncInfo.LatestAppHash)),
		BlockTime:   st.SyncInfo.LatestBlockTime,
		Phase:       data.Phase,
		CatchingUp:  st.SyncInfo.CatchingUp,
		Moniker:     st.NodeInfo.Moniker,
		AppVersion:  info.Response.AppVersion,
		NodeVersion: st.NodeInfo.Version,
	}
	if out.Height > 0 {
		h := out.Height
		vals, err := c.rpc.Validators(ctx, &h, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("validators at %d: %w", h, err)
		}
		for _, v := range vals.Validators {
			out.Validators = append(out.Validators, Validator{Address: v.Address.String(), VotingPower: v.VotingPower})
		}
	}
	return out, nil
}
