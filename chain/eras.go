package chain

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/contracts"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/chain/monitor"
	"github.com/phala-go/phala/chain/rewards"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/chain/store"
	"github.com/phala-go/phala/crypto"
)

// The era's rewards (docs/economics.md, "Who is paid"): staking inflation
// minted for the stake behind the responsive gatekeepers, and the miner
// pool's share plus the era's fees paid to responsive miners by work.

var (
	rewardsParamsKey = []byte("rewards/params")
	rewardsLastKey   = []byte("rewards/last") // JSON eraClock: the last payout
	rewardsReportKey = []byte("rewards/report")
)

func paidWorkKey(miner []byte) []byte { return append([]byte("rewards/paid/"), miner...) }

type eraClock struct {
	Time time.Time `json:"time"`
}

// RewardsReport is what an era paid, kept in state (/rewards/report).
type RewardsReport struct {
	Era     uint64        `json:"era"`
	Elapsed time.Duration `json:"elapsed"`
	// Staked is the election backing of the era's gatekeepers; Supply the
	// supply before minting; InflationPPB the curve's annual rate for them.
	Staked       uint64 `json:"staked"`
	Supply       uint64 `json:"supply"`
	InflationPPB uint64 `json:"inflation_ppb"`
	// Minted went to the stake behind responsive gatekeepers; TotalMinted
	// is all minted since genesis (the supply is the genesis supply plus
	// it).
	Minted      uint64 `json:"minted"`
	TotalMinted uint64 `json:"total_minted"`
	// MinerPool and Fees went to responsive miners by work.
	MinerPool uint64 `json:"miner_pool"`
	Fees      uint64 `json:"fees"`
	// Paid is each account's reward (bech32), Work each miner's work (hex).
	Paid map[string]uint64 `json:"paid"`
	Work map[string]uint64 `json:"work,omitempty"`
}

func initRewards(kv store.KV, p rewards.Params, genesisTime time.Time) error {
	if err := store.SetJSON(kv, rewardsParamsKey, p); err != nil {
		return err
	}
	return store.SetJSON(kv, rewardsLastKey, eraClock{Time: genesisTime})
}

func loadRewardsParams(r store.Reader) (rewards.Params, error) {
	return store.LoadJSON[rewards.Params](r, rewardsParamsKey, "rewards parameters")
}

// LastRewards is the latest era's payout; nil before the first.
func LastRewards(r store.Reader) (*RewardsReport, error) {
	b, err := r.Get(rewardsReportKey)
	if err != nil || b == nil {
		return nil, err
	}
	var rep RewardsReport
	return &rep, json.Unmarshal(b, &rep)
}

// payEra pays era's rewards at its last block, after the monitor judged
// it (judged: who was responsive).
func payEra(env execEnv, era uint64, judged *monitor.Report) (*RewardsReport, error) {
	kv := env.kv
	p, err := loadRewardsParams(kv)
	if err != nil {
		return nil, err
	}
	var last eraClock
	if b, err := kv.Get(rewardsLastKey); err != nil {
		return nil, err
	} else if b != nil {
		if err := json.Unmarshal(b, &last); err != nil {
			return nil, err
		}
	}
	if err := store.SetJSON(kv, rewardsLastKey, eraClock{Time: env.block.Time}); err != nil {
		return nil, err
	}
	rep := &RewardsReport{Era: era, Elapsed: env.block.Time.Sub(last.Time), Paid: map[string]uint64{}, Work: map[string]uint64{}}
	if rep.Supply, err = bank.Supply(kv); err != nil {
		return nil, err
	}
	late := func(w []byte) bool { _, l := judged.Unresponsive[hex.EncodeToString(w)]; return l }
	operator := func(w []byte) (crypto.Address, error) {
		op, ok, err := operatorOf(kv, w)
		if !ok && err == nil {
			err = errors.New("a rewarded worker has no record")
		}
		return op, err
	}

	// Staking inflation: the curve's rate for the stake behind this era's
	// gatekeepers, for the responsive ones in proportion to their backing.
	es, err := gatekeeper.Era(kv)
	if err != nil {
		return nil, err
	}
	var gks [][]byte
	var backing []uint64
	for _, g := range es.GetGatekeepers() {
		rep.Staked += g.Backing
		if !late(g.SigningKey) {
			gks, backing = append(gks, g.SigningKey), append(backing, g.Backing)
		}
	}
	rep.InflationPPB = rewards.AnnualInflationPPB(p, rep.Staked, rep.Supply)
	shares := rewards.Split(rewards.StakingPayout(p, rep.Staked, rep.Supply, rep.Elapsed), backing)
	for i, g := range gks {
		op, err := operator(g)
		if err != nil {
			return nil, err
		}
		backers, err := staking.Backers(kv, g, op)
		if err != nil {
			return nil, err
		}
		stakes := make([]uint64, len(backers))
		for j, b := range backers {
			stakes[j] = b.Stake
		}
		for j, amt := range rewards.Split(shares[i], stakes) {
			if amt == 0 {
				continue
			}
			if err := bank.Mint(kv, backers[j].Account, amt); err != nil {
				return nil, err
			}
			rep.Minted += amt
			rep.Paid[backers[j].Account.String()] += amt
		}
	}

	// Miners: the pool's share for the era and the fees, by work done (the
	// inputs ordered to their contracts since their last payout).
	var miners [][]byte
	var work []uint64
	for _, h := range judged.Miners {
		w, _ := hex.DecodeString(h)
		total, err := contracts.Work(kv, w)
		if err != nil {
			return nil, err
		}
		paid, err := store.Uint64(kv, paidWorkKey(w), "the paid work of "+h)
		if err != nil {
			return nil, err
		}
		if err := store.SetUint64(kv, paidWorkKey(w), total); err != nil {
			return nil, err
		}
		if done := total - paid; done > 0 && !late(w) {
			miners, work = append(miners, w), append(work, done)
			rep.Work[h] = done
		}
	}
	if len(miners) > 0 {
		pool, err := bank.Balance(kv, bank.MinerRewardsPool)
		if err != nil {
			return nil, err
		}
		if rep.Fees, err = bank.Balance(kv, bank.FeePool); err != nil {
			return nil, err
		}
		rep.MinerPool = rewards.MinerPayout(p, pool, rep.Elapsed)
		if err := bank.Debit(kv, bank.MinerRewardsPool, rep.MinerPool, "the era's miner rewards"); err != nil {
			return nil, err
		}
		if err := bank.Debit(kv, bank.FeePool, rep.Fees, "the era's fees"); err != nil {
			return nil, err
		}
		for i, amt := range rewards.Split(rep.MinerPool+rep.Fees, work) {
			op, err := operator(miners[i])
			if err != nil {
				return nil, err
			}
			if err := bank.Credit(kv, op, amt); err != nil {
				return nil, err
			}
			rep.Paid[op.String()] += amt
		}
	}
	prev, err := LastRewards(kv)
	if err != nil {
		return nil, err
	}
	rep.TotalMinted = prev.totalMinted() + rep.Minted
	return rep, store.SetJSON(kv, rewardsReportKey, rep)
}

func (r *RewardsReport) totalMinted() uint64 {
	if r == nil {
		return 0
	}
	return r.TotalMinted
}
