package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
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
	// Launch and Workers are absent on a chain that configures no launch.
	Launch  *LaunchStatus  `json:"launch,omitempty"`
	Workers []WorkerStatus `json:"workers,omitempty"`
	// Discrepancies are the newest redundant-miner discrepancies the
	// chain recorded, oldest first.
	Discrepancies []DiscrepancyStatus `json:"discrepancies,omitempty"`
}

// DiscrepancyStatus is a redundant miner's checkpoint whose state root
// differed from the one the chain stored for the same height.
type DiscrepancyStatus struct {
	Contract string `json:"contract"`
	Height   int64  `json:"height"`
	// Miner sent the differing checkpoint; StateRoot is its root.
	Miner     string `json:"miner"`
	StateRoot string `json:"state_root"`
	// StoredRoot is the stored checkpoint's root, sent by StoredBy.
	StoredRoot string `json:"stored_root"`
	StoredBy   string `json:"stored_by"`
	// Recorded is the block that recorded it.
	Recorded int64 `json:"recorded_height,omitempty"`
}

// DiscrepancyView is d as Status reports it.
func DiscrepancyView(d *chainpb.Discrepancy) DiscrepancyStatus {
	id, _ := crypto.ContractIDFromBytes(d.Contract)
	return DiscrepancyStatus{Contract: id.String(), Height: d.Height, Miner: hex.EncodeToString(d.Miner),
		StateRoot: hex.EncodeToString(d.StateRoot), StoredRoot: hex.EncodeToString(d.StoredRoot),
		StoredBy: hex.EncodeToString(d.StoredBy), Recorded: d.RecordedHeight}
}

// LaunchStatus is the gatekeeper election's state.
type LaunchStatus struct {
	Round       uint64             `json:"round"`
	Deadline    int64              `json:"deadline,omitempty"`
	HandedOver  bool               `json:"handed_over"`
	Gatekeepers []GatekeeperStatus `json:"gatekeepers"`
}

// GatekeeperStatus is one elected gatekeeper.
type GatekeeperStatus struct {
	Worker    string `json:"worker"`
	Backing   uint64 `json:"backing"`
	Confirmed bool   `json:"confirmed"`
}

// WorkerStatus is one registered worker.
type WorkerStatus struct {
	Worker      string     `json:"worker"`
	Operator    string     `json:"operator,omitempty"`
	Platform    string     `json:"platform"`
	Measurement string     `json:"measurement,omitempty"`
	Endpoint    string     `json:"endpoint,omitempty"`
	Registered  int64      `json:"registered_height"`
	Expires     *time.Time `json:"expires,omitempty"`
	Genesis     bool       `json:"genesis,omitempty"`
	Retired     bool       `json:"retired,omitempty"`
	// RenewedBy is the successor identity of a renewed worker.
	RenewedBy string `json:"renewed_by,omitempty"`
	// Renews is the predecessor this identity succeeded.
	Renews string `json:"renews,omitempty"`
	// Discrepancies counts the discrepancy records (of those in
	// Status.Discrepancies) naming this worker as the miner.
	Discrepancies int `json:"discrepancies,omitempty"`
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
		if err := c.workerStatus(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *Client) workerStatus(ctx context.Context, out *Status) error {
	st, err := c.Launch(ctx)
	if err != nil || st == nil {
		return err
	}
	ls := &LaunchStatus{Round: st.Round, Deadline: st.Deadline, HandedOver: st.HandedOver}
	for _, g := range st.Elected {
		confirmed := slices.ContainsFunc(st.Confirmed, func(k []byte) bool { return bytes.Equal(k, g.SigningKey) })
		ls.Gatekeepers = append(ls.Gatekeepers, GatekeeperStatus{Worker: hex.EncodeToString(g.SigningKey), Backing: g.Backing, Confirmed: confirmed})
	}
	out.Launch = ls
	ws, err := c.Workers(ctx)
	if err != nil {
		return err
	}
	for _, w := range ws {
		s := WorkerStatus{Worker: hex.EncodeToString(w.SigningKey), Platform: w.Platform, Measurement: hex.EncodeToString(w.Measurement),
			Endpoint: w.Endpoint, Registered: w.RegisteredHeight, Genesis: w.Genesis, Retired: w.Retired}
		if len(w.Successor) > 0 {
			s.RenewedBy = hex.EncodeToString(w.Successor)
		}
		if len(w.Predecessor) > 0 {
			s.Renews = hex.EncodeToString(w.Predecessor)
		}
		if a, err := crypto.AddressFromBytes(w.Operator); err == nil {
			s.Operator = a.String()
		}
		if w.ExpiresAt != 0 {
			t := time.Unix(w.ExpiresAt, 0).UTC()
			s.Expires = &t
		}
		out.Workers = append(out.Workers, s)
	}
	ds, err := c.Discrepancies(ctx)
	if err != nil {
		return err
	}
	perMiner := make(map[string]int)
	for _, d := range ds {
		v := DiscrepancyView(d)
		perMiner[v.Miner]++
		out.Discrepancies = append(out.Discrepancies, v)
	}
	for i := range out.Workers {
		out.Workers[i].Discrepancies = perMiner[out.Workers[i].Worker]
	}
	return nil
}
