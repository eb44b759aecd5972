package staking

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

// MaxUnbondings bounds one account's pending unbondings.
const MaxUnbondings = 32

// Unbonding is PHA on its way back to an account.
type Unbonding struct {
	// Release is the block at whose end it is paid back.
	Release int64 `json:"release"`
	// Worker is the worker it was bonded to (nil: a nomination); a slash
	// of that worker takes its share of it too.
	Worker []byte `json:"worker,omitempty"`
	Amount uint64 `json:"amount"`
}

func unbondingKey(a crypto.Address) []byte { return append([]byte("staking/unbonding/a/"), a[:]...) }
func releaseKey(h int64) []byte {
	return binary.BigEndian.AppendUint64([]byte("staking/unbonding/h/"), uint64(h))
}
func accountBondKey(a crypto.Address) []byte { return append([]byte("staking/a/"), a[:]...) }

// Unbondings lists an account's pending unbondings.
func Unbondings(r store.Reader, a crypto.Address) ([]Unbonding, error) {
	b, err := r.Get(unbondingKey(a))
	if err != nil || b == nil {
		return nil, err
	}
	var us []Unbonding
	if err := json.Unmarshal(b, &us); err != nil {
		return nil, fmt.Errorf("unbondings of %s are corrupt: %w", a, err)
	}
	return us, nil
}

func saveUnbondings(kv store.KV, a crypto.Address, us []Unbonding) error {
	if len(us) == 0 {
		return kv.Delete(unbondingKey(a))
	}
	return store.SetJSON(kv, unbondingKey(a), us)
}

// Bonded is everything account a has in the staking pool: its self stakes,
// its nomination and its pending unbondings.
func Bonded(r store.Reader, a crypto.Address) (uint64, error) {
	return store.Uint64(r, accountBondKey(a), "the bond total of "+a.String())
}

func addUint(kv store.KV, key []byte, delta int64) error {
	cur, err := store.Uint64(kv, key, "a bond total")
	if err != nil {
		return err
	}
	n := int64(cur) + delta
	if n < 0 {
		return fmt.Errorf("state value %q would go negative (%d%+d)", key, cur, delta)
	}
	if n == 0 {
		return kv.Delete(key)
	}
	return store.SetUint64(kv, key, uint64(n))
}

// ValidateUnbond checks a MsgUnbond without state.
func ValidateUnbond(m *chainpb.MsgUnbond) error {
	if len(m.Worker) != 0 && len(m.Worker) != 32 {
		return ErrMalformedTarget.Wrapf("worker must be empty (a nomination) or a 32-byte identity key, got %d bytes", len(m.Worker))
	}
	if m.Amount <= 0 {
		return ErrInvalidAmount.Wrapf("amount must be positive, got %d", m.Amount)
	}
	return nil
}

// UnbondHooks tell the staking module about workers.
type UnbondHooks struct {
	// Operator returns the account that operates worker (registered,
	// active or retired), or nil if there is no such worker.
	Operator func(worker []byte) ([]byte, error)
	// Gatekeeper reports whether worker holds or is about to take a
	// gatekeeper seat: it may not go below the candidate minimum.
	Gatekeeper func(worker []byte) (bool, error)
}

// Unbond moves amount of the signer's bond (self stake on m.Worker, or its
// nomination) to the unbonding queue; it is paid back at the end of block
// height + UnbondingBlocks.
func Unbond(kv store.KV, signer crypto.Address, height int64, m *chainpb.MsgUnbond, h UnbondHooks) error {
	p, err := LoadParams(kv)
	if err != nil {
		return err
	}
	amount := uint64(m.Amount)
	us, err := Unbondings(kv, signer)
	if err != nil {
		return err
	}
	if len(us) >= MaxUnbondings {
		return ErrUnbondingQueue.Wrapf("%s has %d unbondings pending; wait for the first to be paid back", signer, len(us))
	}
	if len(m.Worker) > 0 {
		op, err := h.Operator(m.Worker)
		if err != nil {
			return err
		}
		if op == nil || !bytes.Equal(op, signer[:]) {
			return ErrNotOperator.Wrapf("only the operator of worker %X may unbond from it", m.Worker)
		}
		s, err := SelfStake(kv, m.Worker)
		if err != nil {
			return err
		}
		if s < amount {
			return ErrNotBonded.Wrapf("worker %X has %d uPHA bonded; cannot unbond %d", m.Worker, s, amount)
		}
		if s-amount < p.MinCandidateStake {
			if gk, err := h.Gatekeeper(m.Worker); err != nil {
				return err
			} else if gk {
				return ErrSeatedUnbond.Wrapf("worker %X is a gatekeeper; keep at least %d uPHA bonded until it leaves the set", m.Worker, p.MinCandidateStake)
			}
		}
		if err := setSelfStake(kv, m.Worker, s-amount); err != nil {
			return err
		}
	} else {
		n, err := loadNomination(kv, signer)
		if err != nil {
			return err
		}
		if n == nil || n.Amount < amount {
			have := uint64(0)
			if n != nil {
				have = n.Amount
			}
			return ErrNotBonded.Wrapf("%s has %d uPHA nominated; cannot unbond %d", signer, have, amount)
		}
		n.Amount -= amount
		if err := store.SetJSON(kv, nominationKey(signer), n); err != nil {
			return err
		}
	}
	release := height + p.UnbondingBlocks
	us = append(us, Unbonding{Release: release, Worker: m.Worker, Amount: amount})
	if err := saveUnbondings(kv, signer, us); err != nil {
		return err
	}
	due, err := kv.Get(releaseKey(release))
	if err != nil {
		return err
	}
	for i := 0; i+crypto.AddressLen <= len(due); i += crypto.AddressLen {
		if bytes.Equal(due[i:i+crypto.AddressLen], signer[:]) {
			return nil
		}
	}
	return kv.Set(releaseKey(release), append(bytes.Clone(due), signer[:]...))
}

func setSelfStake(kv store.KV, worker []byte, s uint64) error {
	if s == 0 {
		return kv.Delete(SelfStakeKey(worker))
	}
	return store.SetUint64(kv, SelfStakeKey(worker), s)
}

// EndBlock pays back the unbondings due at height.
func EndBlock(kv store.KV, height int64) error {
	due, err := kv.Get(releaseKey(height))
	if err != nil || due == nil {
		return err
	}
	for i := 0; i+crypto.AddressLen <= len(due); i += crypto.AddressLen {
		a, _ := crypto.AddressFromBytes(due[i : i+crypto.AddressLen])
		us, err := Unbondings(kv, a)
		if err != nil {
			return err
		}
		var paid uint64
		keep := us[:0]
		for _, u := range us {
			if u.Release <= height {
				paid += u.Amount
			} else {
				keep = append(keep, u)
			}
		}
		if err := saveUnbondings(kv, a, keep); err != nil {
			return err
		}
		if err := unbond(kv, a, paid); err != nil {
			return err
		}
	}
	return kv.Delete(releaseKey(height))
}

func unbond(kv store.KV, to crypto.Address, amount uint64) error {
	if amount == 0 {
		return nil
	}
	if err := bank.Debit(kv, Pool, amount, "an unbonding"); err != nil {
		return fmt.Errorf("staking pool cannot pay back %d uPHA: %w", amount, err)
	}
	if err := addUint(kv, accountBondKey(to), -int64(amount)); err != nil {
		return err
	}
	return bank.Credit(kv, to, amount)
}

// Slash takes permille of worker's self stake and of its operator's
// unbondings from it, into the treasury, and returns the amount taken.
func Slash(kv store.KV, worker []byte, operator crypto.Address, permille uint64) (uint64, error) {
	if permille == 0 {
		return 0, nil
	}
	s, err := SelfStake(kv, worker)
	if err != nil {
		return 0, err
	}
	cut := s * permille / 1000
	if err := setSelfStake(kv, worker, s-cut); err != nil {
		return 0, err
	}
	us, err := Unbondings(kv, operator)
	if err != nil {
		return 0, err
	}
	for i := range us {
		if bytes.Equal(us[i].Worker, worker) {
			c := us[i].Amount * permille / 1000
			us[i].Amount -= c
			cut += c
		}
	}
	if err := saveUnbondings(kv, operator, us); err != nil {
		return 0, err
	}
	if cut == 0 {
		return 0, nil
	}
	if err := addUint(kv, accountBondKey(operator), -int64(cut)); err != nil {
		return 0, err
	}
	if err := bank.Debit(kv, Pool, cut, "a slash"); err != nil {
		return 0, err
	}
	return cut, bank.Credit(kv, bank.Treasury, cut)
}

// MinerBonded reports whether worker has the self stake a miner needs.
func MinerBonded(r store.Reader, worker []byte) (bool, error) {
	p, err := LoadParams(r)
	if err != nil {
		return false, err
	}
	if p.MinMinerStake == 0 {
		return true, nil
	}
	s, err := SelfStake(r, worker)
	return s >= p.MinMinerStake, err
}
