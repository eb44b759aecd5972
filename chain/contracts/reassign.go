package contracts

import (
	"bytes"
	"errors"
	"slices"

	"github.com/phala-go/phala/chain/mq"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/internal/inbox"
	"github.com/phala-go/phala/proto/chainpb"
)

// Reasons a contract's miners change, as ContractReassigned states them.
const (
	ReasonRequested    = "requested by the deployer"
	ReasonUnavailable  = "its miner can no longer run contracts (retired, expired, renewed away or seated as a gatekeeper)"
	ReasonUnresponsive = "its miner was found unresponsive"
)

// ValidateReassign checks a reassignment without reading state.
func ValidateReassign(m *chainpb.MsgReassignContract) error {
	if _, err := crypto.ContractIDFromBytes(m.Contract); err != nil {
		return ErrMalformed.Wrapf("reassign: %v", err)
	}
	return validateMiners(m.Miners)
}

// Reassign replaces an instance's miners at its deployer's request. Every
// new miner must be able to run contracts.
func Reassign(kv store.KV, log *mq.Log, signer crypto.Address, m *chainpb.MsgReassignContract, h Hooks) error {
	c, err := Get(kv, m.Contract)
	if err != nil {
		return err
	}
	if !bytes.Equal(c.Deployer, signer.Bytes()) {
		return ErrNotDeployer.Wrapf("contract %s was deployed by %s; only that account may reassign it", idString(c.Id), addrString(c.Deployer))
	}
	same := len(m.Miners) == len(c.Miners)
	for _, w := range m.Miners {
		same = same && inbox.IsMiner(c.Miners, w)
		if inbox.IsMiner(c.Miners, w) {
			continue // a current miner stays, whatever its state
		}
		if err := h.Miner(w); err != nil {
			return err
		}
	}
	if same {
		return ErrMalformed.Wrapf("contract %s already has exactly these miners", idString(c.Id))
	}
	return reassign(kv, log, c, m.Miners, ReasonRequested)
}

func addrString(b []byte) string {
	a, err := crypto.AddressFromBytes(b)
	if err != nil {
		return "?"
	}
	return a.String()
}

// reassign sets c's miners and announces the change: gatekeepers seal k_c
// to the added miners (once c has a key), removed ones stop.
func reassign(kv store.KV, log *mq.Log, c *chainpb.Contract, miners [][]byte, reason string) error {
	var added, removed [][]byte
	for _, w := range miners {
		if !inbox.IsMiner(c.Miners, w) {
			added = append(added, w)
		}
	}
	for _, w := range c.Miners {
		if !inbox.IsMiner(miners, w) {
			removed = append(removed, w)
			if err := dropPending(kv, c.Id, w); err != nil {
				return err
			}
		}
	}
	var awaiting [][]byte
	for _, w := range c.AwaitingKey {
		if inbox.IsMiner(miners, w) {
			awaiting = append(awaiting, w)
		}
	}
	c.Miners, c.AwaitingKey = slices.Clone(miners), append(awaiting, added...)
	if err := put(kv, c); err != nil {
		return err
	}
	return log.Append(&chainpb.WorkerEvent{Kind: &chainpb.WorkerEvent_ContractReassigned{ContractReassigned: &chainpb.ContractReassigned{
		Contract: c.Id, Miners: c.Miners, Added: added, Removed: removed, Reason: reason,
	}}})
}

// ReassignFrom moves every instance worker runs to another miner (for
// monitoring: an unresponsive miner loses its contracts). An instance
// with other miners left keeps those; one whose only miner it was gets
// the least loaded eligible worker, or waits with no miner (its inputs
// queue in the inbox) if there is none.
func ReassignFrom(kv store.KV, log *mq.Log, worker []byte, reason string, h Hooks) error {
	all, err := List(kv)
	if err != nil {
		return err
	}
	for _, c := range all {
		if inbox.IsMiner(c.Miners, worker) {
			if err := replace(kv, log, c, all, func(w []byte) bool { return bytes.Equal(w, worker) }, reason, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// EndBlock reassigns the instances whose miners can no longer run
// contracts (Hooks.Miner refuses them: retired, expired, renewed away,
// seated as gatekeepers), and gives an instance left without a miner the
// first eligible worker. It reads every instance once per block.
func EndBlock(kv store.KV, log *mq.Log, h Hooks) error {
	all, err := List(kv)
	if err != nil {
		return err
	}
	unable := map[string]bool{}
	for _, c := range all {
		for _, w := range c.Miners {
			if _, seen := unable[string(w)]; seen {
				continue
			}
			err := h.Miner(w)
			if err != nil && !errors.Is(err, ErrBadMiner) {
				return err // the state, not the miner, failed
			}
			unable[string(w)] = err != nil
		}
	}
	for _, c := range all {
		var gone func([]byte) bool
		if len(c.Miners) == 0 {
			gone = func([]byte) bool { return false }
		}
		for _, w := range c.Miners {
			if unable[string(w)] {
				gone = func(w []byte) bool { return unable[string(w)] }
				break
			}
		}
		if gone != nil {
			if err := replace(kv, log, c, all, gone, ReasonUnavailable, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// replace drops the miners of c that gone reports and, if none is left,
// picks the eligible worker running the fewest instances (all), the
// earliest registered on a tie.
func replace(kv store.KV, log *mq.Log, c *chainpb.Contract, all []*chainpb.Contract, gone func([]byte) bool, reason string, h Hooks) error {
	var keep [][]byte
	for _, w := range c.Miners {
		if !gone(w) {
			keep = append(keep, w)
		}
	}
	if len(keep) == 0 {
		cands, err := h.Workers()
		if err != nil {
			return err
		}
		load := map[string]int{}
		for _, o := range all {
			for _, w := range o.Miners {
				load[string(w)]++
			}
		}
		var best []byte
		for _, w := range cands {
			if gone(w) || h.Miner(w) != nil {
				continue
			}
			if best == nil || load[string(w)] < load[string(best)] {
				best = w
			}
		}
		if best != nil {
			keep = [][]byte{best}
		} else if len(c.Miners) == 0 {
			return nil // still no one to run it
		}
	}
	return reassign(kv, log, c, keep, reason)
}
