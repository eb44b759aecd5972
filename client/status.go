package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/phala-go/phala/chain"
	"slices"
	"time"

	"github.com/phala-go/phala/chain/monitor"
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
	// Era is the current root key's era; absent before the launch.
	Era *EraStatus `json:"era,omitempty"`
	// Responsiveness is the last era's responsiveness judgement; absent
	// before the first era ends.
	Responsiveness *ResponsivenessStatus `json:"responsiveness,omitempty"`
	// Rewards is the last era's payout; absent before the first era ends.
	Rewards *chain.RewardsReport `json:"rewards,omitempty"`
}

// EraStatus is the current root key's era, its gatekeepers and the
// rotation in progress, if any.
type EraStatus struct {
	// Era is the era the root key was made for (0: the genesis key).
	Era           uint64          `json:"era"`
	Gatekeepers   []EraGatekeeper `json:"gatekeepers"`
	RootPublicKey string          `json:"root_public_key"`
	// Since is the block that made the key current (the launch or the
	// last Rotation Ready).
	Since int64 `json:"since_height"`
	// Rotations counts completed rotations, Expired the attempts that
	// missed their deadline.
	Rotations uint64          `json:"rotations"`
	Expired   uint64          `json:"expired_attempts"`
	Rotation  *RotationStatus `json:"rotation,omitempty"`
}

// EraGatekeeper is a gatekeeper holding a seat in the current era.
type EraGatekeeper struct {
	Worker  string `json:"worker"`
	Backing uint64 `json:"backing"`
}

// RotationStatus is a root key rotation in progress and how far it got.
type RotationStatus struct {
	Era      uint64 `json:"era"`
	Attempt  uint64 `json:"attempt"`
	Started  int64  `json:"started_height"`
	Deadline int64  `json:"deadline"`
	// The leaders: the outgoing one re-encrypts the state, the incoming
	// one distributes the new root key.
	OutgoingLeader string `json:"outgoing_leader"`
	IncomingLeader string `json:"incoming_leader"`
	// Each leader's share; SharesHeight is the block both were in by.
	OutgoingShared bool  `json:"outgoing_shared"`
	IncomingShared bool  `json:"incoming_shared"`
	SharesHeight   int64 `json:"shares_height,omitempty"`
	// KeyDistributed: the incoming leader sealed the new root key (whose
	// public key is RootPublicKey) to the incoming set at KeysHeight.
	KeyDistributed bool   `json:"key_distributed"`
	RootPublicKey  string `json:"root_public_key,omitempty"`
	KeysHeight     int64  `json:"keys_height,omitempty"`
	// The re-encrypted state: Parts is 0 until the first part names it.
	PartsReceived uint32 `json:"parts_received"`
	Parts         uint32 `json:"parts"`
	KeysReceived  uint64 `json:"keys_received"`
	KeysExpected  uint64 `json:"keys_expected"`
	StateHeight   int64  `json:"state_height,omitempty"`
	// Confirmations of the incoming gatekeepers; Incoming[i].Confirmed
	// tells which.
	Confirmations int                `json:"confirmations"`
	Incoming      []GatekeeperStatus `json:"incoming"`
}

// ResponsivenessStatus is an era's responsiveness judgement: a worker is
// unresponsive when its heartbeat count is below a quarter of its role's
// maximum.
type ResponsivenessStatus struct {
	Era uint64 `json:"era"`
	// Windows is how many heartbeat intervals the era had.
	Windows       int64 `json:"windows"`
	MaxGatekeeper int64 `json:"max_gatekeeper"`
	MaxMiner      int64 `json:"max_miner"`
	// Workers are the judged workers, gatekeepers first.
	Workers []HeartbeatStatus `json:"workers"`
}

// HeartbeatStatus is one judged worker's heartbeat count.
type HeartbeatStatus struct {
	Worker       string `json:"worker"`
	Role         string `json:"role"` // "gatekeeper" or "miner"
	Heartbeats   int64  `json:"heartbeats"`
	Unresponsive bool   `json:"unresponsive"`
	// Slashed is what was taken from an unresponsive worker, in uPHA.
	Slashed uint64 `json:"slashed,omitempty"`
}

// EraView is es as Status reports it; nil if es is.
func EraView(es *chainpb.EraState) *EraStatus {
	if es == nil {
		return nil
	}
	v := &EraStatus{Era: es.Era, Gatekeepers: []EraGatekeeper{}, RootPublicKey: hex.EncodeToString(es.RootPublicKey),
		Since: es.Since, Rotations: es.Rotations, Expired: es.Expired}
	for _, g := range es.Gatekeepers {
		v.Gatekeepers = append(v.Gatekeepers, EraGatekeeper{Worker: hex.EncodeToString(g.SigningKey), Backing: g.Backing})
	}
	if r := es.Rotation; r != nil {
		rs := &RotationStatus{Era: r.Era, Attempt: r.Attempt, Started: r.Started, Deadline: r.Deadline,
			OutgoingLeader: hex.EncodeToString(r.OutgoingLeader), IncomingLeader: hex.EncodeToString(r.IncomingLeader),
			OutgoingShared: r.OutgoingShared, IncomingShared: r.IncomingShared, SharesHeight: r.SharesHeight,
			KeyDistributed: r.KeysHeight != 0, KeysHeight: r.KeysHeight,
			PartsReceived: r.PartsReceived, Parts: r.Parts, KeysReceived: r.KeysReceived, KeysExpected: r.KeysExpected,
			StateHeight: r.StateHeight, Incoming: []GatekeeperStatus{}}
		if len(r.RootPublicKey) > 0 {
			rs.RootPublicKey = hex.EncodeToString(r.RootPublicKey)
		}
		for _, g := range r.Incoming {
			confirmed := slices.ContainsFunc(r.Confirmed, func(k []byte) bool { return bytes.Equal(k, g.SigningKey) })
			if confirmed {
				rs.Confirmations++
			}
			rs.Incoming = append(rs.Incoming, GatekeeperStatus{Worker: hex.EncodeToString(g.SigningKey), Backing: g.Backing, Confirmed: confirmed})
		}
		v.Rotation = rs
	}
	return v
}

// ResponsivenessView is r as Status reports it; nil if r is.
func ResponsivenessView(r *monitor.Report) *ResponsivenessStatus {
	if r == nil {
		return nil
	}
	v := &ResponsivenessStatus{Era: r.Era, Windows: r.Windows, MaxGatekeeper: r.MaxGatekeeper, MaxMiner: r.MaxMiner,
		Workers: make([]HeartbeatStatus, 0, len(r.Gatekeepers)+len(r.Miners))}
	add := func(role string, ws []string) {
		for _, w := range ws {
			slashed, late := r.Unresponsive[w]
			v.Workers = append(v.Workers, HeartbeatStatus{Worker: w, Role: role, Heartbeats: r.Counts[w], Unresponsive: late, Slashed: slashed})
		}
	}
	add("gatekeeper", r.Gatekeepers)
	add("miner", r.Miners)
	return v
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
		if err := c.eraStatus(ctx, out); err != nil {
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

func (c *Client) eraStatus(ctx context.Context, out *Status) error {
	es, err := c.Era(ctx)
	if err != nil {
		return err
	}
	out.Era = EraView(es)
	rep, err := c.Responsiveness(ctx)
	if err != nil {
		return err
	}
	out.Responsiveness = ResponsivenessView(rep)
	out.Rewards, err = c.Rewards(ctx)
	return err
}
