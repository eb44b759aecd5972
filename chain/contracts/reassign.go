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
	ReasonRequested   = "requested by the deployer"
	ReasonUnavailable = "its miner can no longer run contracts (retired, expired, renewed away or seated as a gatekeeper)"
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
	if c.Rekey != nil {
		// The new key would be sealed to the old miners only.
		if err := callOff(log, c, "the contract's miners changed"); err != nil {
			return err
		}
	}
	if len(removed) > 0 && c.PublicKey != nil {
		// A miner that left holds k_c: rotate it away (rekeyDue).
		c.KeySince = 0
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

// EndBlock reassigns the instances whose miners can no longer run
// contracts (Hooks.Miner refuses them: retired, expired, renewed away,
// seated as gatekeepers; the responsiveness monitoring will add workers it
// finds unresponsive), and gives an instance left without a miner the
// eligible worker running the fewest instances, the earliest registered
// on a tie. An instance with no eligible worker waits without a miner:
// its inputs queue in the inbox. It reads every instance once per block,
// and asks Hooks about each worker at most once.
//
// It then runs the contract key rotations (endRekeys).
func EndBlock(kv store.KV, log *mq.Log, h Hooks) error {
	all, err := List(kv)
	if err != nil {
		return err
	}
	p, err := LoadParams(kv)
	if err != nil {
		return err
	}
	rotating, err := h.Rotating()
	if err != nil {
		return err
	}
	able := map[string]bool{}
	canRun := func(w []byte) (bool, error) {
		if ok, seen := able[string(w)]; seen {
			return ok, nil
		}
		err := h.Miner(w)
		if err != nil && !errors.Is(err, ErrBadMiner) {
			return false, err // the state, not the miner, failed
		}
		able[string(w)] = err == nil
		return err == nil, nil
	}
	var load map[string]int // instances per miner, counted on first need
	var workers [][]byte
	for _, c := range all {
		var keep [][]byte
		for _, w := range c.Miners {
			ok, err := canRun(w)
			if err != nil {
				return err
			}
			if ok {
				keep = append(keep, w)
			}
		}
		if len(keep) > 0 && len(keep) == len(c.Miners) {
			if changed, err := endRekeys(log, c, p, rotating); err != nil {
				return err
			} else if changed {
				if err := put(kv, c); err != nil {
					return err
				}
			}
			continue
		}
		if len(keep) == 0 {
			if load == nil {
				load = map[string]int{}
				for _, o := range all {
					for _, w := range o.Miners {
						load[string(w)]++
					}
				}
				if workers, err = h.Workers(); err != nil {
					return err
				}
			}
			var best []byte
			for _, w := range workers {
				ok, err := canRun(w)
				if err != nil {
					return err
				}
				if ok && (best == nil || load[string(w)] < load[string(best)]) {
					best = w
				}
			}
			if best == nil && len(c.Miners) == 0 {
				continue // still no one to run it
			}
			if best != nil {
				keep = [][]byte{best}
				load[string(best)]++
			}
		}
		if err := reassign(kv, log, c, keep, ReasonUnavailable); err != nil {
			return err
		}
	}
	return nil
}
