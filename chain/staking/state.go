package staking

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proto/chainpb"
)

var (
	paramsKey     = []byte("staking/params")
	candidatesKey = []byte("staking/candidates") // concatenated worker keys, first bond order
	nominatorsKey = []byte("staking/nominators") // concatenated addresses, first nomination order
)

func SelfStakeKey(worker []byte) []byte     { return append([]byte("staking/c/"), worker...) }
func nominationKey(a crypto.Address) []byte { return append([]byte("staking/n/"), a[:]...) }

// nomination is a nominator's bond and the candidates it backs.
type nomination struct {
	Amount  uint64   `json:"amount"`
	Targets [][]byte `json:"targets"`
}

// InitGenesis writes the parameters.
func InitGenesis(kv store.KV, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return store.SetJSON(kv, paramsKey, p)
}

// LoadParams reads the staking parameters.
func LoadParams(r store.Reader) (Params, error) {
	return store.LoadJSON[Params](r, paramsKey, "staking parameters")
}

// WorkerOperator tells the staking module who operates a registered, active
// worker (nil if none); the app wires it to the registry.
type WorkerOperator func(worker []byte) ([]byte, error)

// ValidateStake checks a MsgStake without state.
func ValidateStake(m *chainpb.MsgStake) error {
	if len(m.Worker) != ed25519.PublicKeySize {
		return ErrMalformedTarget.Wrapf("worker must be a %d-byte identity key, got %d bytes", ed25519.PublicKeySize, len(m.Worker))
	}
	if m.Amount <= 0 {
		return ErrInvalidAmount.Wrapf("amount must be positive, got %d", m.Amount)
	}
	return nil
}

// ValidateNominate checks a MsgNominate without state.
func ValidateNominate(m *chainpb.MsgNominate) error {
	if len(m.Targets) == 0 || len(m.Targets) > MaxNominations {
		return ErrTooManyTargets.Wrapf("name 1 to %d candidates, got %d", MaxNominations, len(m.Targets))
	}
	for i, t := range m.Targets {
		if len(t) != ed25519.PublicKeySize {
			return ErrMalformedTarget.Wrapf("target %d must be a %d-byte identity key, got %d bytes", i, ed25519.PublicKeySize, len(t))
		}
	}
	if m.Amount < 0 {
		return ErrInvalidAmount.Wrapf("amount must not be negative, got %d", m.Amount)
	}
	return nil
}

// Stake bonds the signer's PHA to its worker.
func Stake(kv store.KV, signer crypto.Address, m *chainpb.MsgStake, operator WorkerOperator) error {
	op, err := operator(m.Worker)
	if err != nil {
		return err
	}
	if op == nil {
		return ErrNotCandidate.Wrapf("worker %X is not a registered, active worker", m.Worker)
	}
	if !bytes.Equal(op, signer[:]) {
		return ErrNotOperator.Wrapf("only the operator of worker %X may bond to it", m.Worker)
	}
	if err := bond(kv, signer, uint64(m.Amount)); err != nil {
		return err
	}
	cur, err := SelfStake(kv, m.Worker)
	if err != nil {
		return err
	}
	if cur == 0 {
		idx, err := kv.Get(candidatesKey)
		if err != nil {
			return err
		}
		if err := kv.Set(candidatesKey, append(bytes.Clone(idx), m.Worker...)); err != nil {
			return err
		}
	}
	return store.SetUint64(kv, SelfStakeKey(m.Worker), cur+uint64(m.Amount))
}

// Nominate bonds more of the signer's PHA (amount may be 0) and sets the
// candidates its whole nomination backs. Targets must be registered workers.
func Nominate(kv store.KV, signer crypto.Address, m *chainpb.MsgNominate, operator WorkerOperator) error {
	for _, t := range m.Targets {
		op, err := operator(t)
		if err != nil {
			return err
		}
		if op == nil {
			return ErrNotCandidate.Wrapf("target %X is not a registered, active worker", t)
		}
	}
	n, err := loadNomination(kv, signer)
	if err != nil {
		return err
	}
	if n == nil {
		if m.Amount == 0 {
			return ErrInvalidAmount.Wrapf("a first nomination must bond a positive amount")
		}
		idx, err := kv.Get(nominatorsKey)
		if err != nil {
			return err
		}
		if err := kv.Set(nominatorsKey, append(bytes.Clone(idx), signer[:]...)); err != nil {
			return err
		}
		n = &nomination{}
	}
	if err := bond(kv, signer, uint64(m.Amount)); err != nil {
		return err
	}
	n.Amount += uint64(m.Amount)
	n.Targets = m.Targets
	return store.SetJSON(kv, nominationKey(signer), n)
}

func bond(kv store.KV, from crypto.Address, amount uint64) error {
	if amount == 0 {
		return nil
	}
	if err := bank.Debit(kv, from, amount, "the bond"); err != nil {
		return err
	}
	if err := addUint(kv, accountBondKey(from), int64(amount)); err != nil {
		return err
	}
	return bank.Credit(kv, Pool, amount)
}

func loadNomination(r store.Reader, a crypto.Address) (*nomination, error) {
	b, err := r.Get(nominationKey(a))
	if err != nil || b == nil {
		return nil, err
	}
	var n nomination
	if err := json.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("nomination of %s is corrupt: %w", a, err)
	}
	return &n, nil
}

// SelfStake is the operator's bond to a worker.
func SelfStake(r store.Reader, worker []byte) (uint64, error) {
	return store.Uint64(r, SelfStakeKey(worker), fmt.Sprintf("the self stake of %X", worker))
}

// Elect runs sequential Phragmen over the bonded candidates that eligible
// accepts and have at least the minimum self stake, with every nomination.
// Candidate and winner IDs are the workers' identity keys as strings.
func Elect(r store.Reader, seats int, eligible func(worker []byte) (bool, error)) ([]Winner, error) {
	p, err := LoadParams(r)
	if err != nil {
		return nil, err
	}
	idx, err := r.Get(candidatesKey)
	if err != nil {
		return nil, err
	}
	var cands []Candidate
	for i := 0; i+ed25519.PublicKeySize <= len(idx); i += ed25519.PublicKeySize {
		w := idx[i : i+ed25519.PublicKeySize]
		s, err := SelfStake(r, w)
		if err != nil {
			return nil, err
		}
		if s < p.MinCandidateStake {
			continue
		}
		ok, err := eligible(w)
		if err != nil {
			return nil, err
		}
		if ok {
			cands = append(cands, Candidate{ID: string(w), SelfStake: s})
		}
	}
	var voters []Voter
	err = eachNomination(r, func(a crypto.Address, n *nomination) error {
		if n.Amount == 0 {
			return nil
		}
		v := Voter{ID: "n/" + string(a[:]), Stake: n.Amount}
		for _, t := range n.Targets {
			v.Targets = append(v.Targets, string(t))
		}
		voters = append(voters, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return SeqPhragmen(seats, cands, voters)
}

// Renew moves everything staked on worker old to its successor identity:
// the operator's bond, the candidacy (keeping its place in bond order) and
// every nomination naming it. Nothing is unbonded.
func Renew(kv store.KV, old, successor []byte) error {
	s, err := SelfStake(kv, old)
	if err != nil {
		return err
	}
	if s > 0 {
		if err := store.SetUint64(kv, SelfStakeKey(successor), s); err != nil {
			return err
		}
		if err := kv.Delete(SelfStakeKey(old)); err != nil {
			return err
		}
		idx, err := kv.Get(candidatesKey)
		if err != nil {
			return err
		}
		idx = bytes.Clone(idx)
		for i := 0; i+ed25519.PublicKeySize <= len(idx); i += ed25519.PublicKeySize {
			if bytes.Equal(idx[i:i+ed25519.PublicKeySize], old) {
				copy(idx[i:], successor)
			}
		}
		if err := kv.Set(candidatesKey, idx); err != nil {
			return err
		}
	}
	return eachNomination(kv, func(a crypto.Address, n *nomination) error {
		changed := false
		for j, t := range n.Targets {
			if bytes.Equal(t, old) {
				n.Targets[j], changed = successor, true
			}
		}
		if !changed {
			return nil
		}
		return store.SetJSON(kv, nominationKey(a), n)
	})
}

// eachNomination calls fn with every nomination, in first-nomination
// order.
func eachNomination(r store.Reader, fn func(a crypto.Address, n *nomination) error) error {
	idx, err := r.Get(nominatorsKey)
	if err != nil {
		return err
	}
	for i := 0; i+crypto.AddressLen <= len(idx); i += crypto.AddressLen {
		a, _ := crypto.AddressFromBytes(idx[i : i+crypto.AddressLen])
		n, err := loadNomination(r, a)
		if err != nil {
			return err
		}
		if n == nil {
			continue
		}
		if err := fn(a, n); err != nil {
			return err
		}
	}
	return nil
}

// Backer is an account's stake behind a candidate.
type Backer struct {
	Account crypto.Address
	Stake   uint64
}

// Backers lists the stake behind worker: its operator's self stake first,
// then each nomination naming it, split evenly over the nomination's
// targets (the remainder stays with the first target), in nomination
// order.
func Backers(r store.Reader, worker []byte, operator crypto.Address) ([]Backer, error) {
	s, err := SelfStake(r, worker)
	if err != nil {
		return nil, err
	}
	out := []Backer{{Account: operator, Stake: s}}
	err = eachNomination(r, func(a crypto.Address, n *nomination) error {
		j := slices.IndexFunc(n.Targets, func(t []byte) bool { return bytes.Equal(t, worker) })
		if n.Amount == 0 || j < 0 {
			return nil
		}
		share := n.Amount / uint64(len(n.Targets))
		if j == 0 {
			share += n.Amount % uint64(len(n.Targets))
		}
		out = append(out, Backer{Account: a, Stake: share})
		return nil
	})
	return out, err
}
