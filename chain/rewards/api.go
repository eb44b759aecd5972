// Package rewards computes the per-era payouts of PHA: the inflation minted
// for stakers on a Polkadot-style curve of the staking rate (curve.go), the
// share of the miner rewards pool paid out per era, and the exact division of
// an amount among weights (split.go). It is pure integer arithmetic with no
// state: every function is deterministic, never overflows and never panics,
// so it can run in consensus. docs/economics.md states the model.
package rewards

import (
	"fmt"
	"math"
	"math/big"
	"time"
)

// Year is the length of the year the annual rates refer to: 365.25 days.
const Year = 8766 * time.Hour

// PPB is the scale of AnnualInflationPPB: parts per billion (10⁹ = 100%).
const PPB = 1_000_000_000

// Params are the rewards module's chain parameters. Rates are in permille
// (1000 = 100%).
type Params struct {
	// IdealStakePermille is x_ideal, the staking rate (staked / supply) at
	// which inflation peaks and stakers get IdealReturnPermille.
	IdealStakePermille uint64 `json:"ideal_stake_permille"`
	// IdealReturnPermille is the annual return of staked PHA at x_ideal; the
	// inflation there is x_ideal × IdealReturnPermille.
	IdealReturnPermille uint64 `json:"ideal_return_permille"`
	// MinInflationPermille is I_0, the annual inflation at 0% staked and the
	// floor the curve falls back to far above x_ideal.
	MinInflationPermille uint64 `json:"min_inflation_permille"`
	// FalloffPermille is d: above x_ideal the inflation in excess of I_0
	// halves for every d of further staking rate.
	FalloffPermille uint64 `json:"falloff_permille"`
	// MinerPoolPermillePerYear is the share of the miner rewards pool paid
	// out per year, pro rata per era (a geometric decay of the pool).
	MinerPoolPermillePerYear uint64 `json:"miner_pool_permille_per_year"`
}

// DefaultParams: ideal 40% staked with a 12.5% return (5% inflation), 2.5%
// inflation at 0% staked, falloff 5%, 20% of the miner pool per year.
func DefaultParams() Params {
	return Params{
		IdealStakePermille:       400,
		IdealReturnPermille:      125,
		MinInflationPermille:     25,
		FalloffPermille:          50,
		MinerPoolPermillePerYear: 200,
	}
}

// Validate checks the parameters.
func (p Params) Validate() error {
	if p.IdealStakePermille == 0 || p.IdealStakePermille > 1000 {
		return fmt.Errorf("rewards ideal_stake_permille must be in 1..1000, got %d", p.IdealStakePermille)
	}
	if p.IdealReturnPermille == 0 || p.IdealReturnPermille > 1000 {
		return fmt.Errorf("rewards ideal_return_permille must be in 1..1000, got %d", p.IdealReturnPermille)
	}
	if p.MinInflationPermille > 1000 {
		return fmt.Errorf("rewards min_inflation_permille must be at most 1000, got %d", p.MinInflationPermille)
	}
	if ideal := p.IdealStakePermille * p.IdealReturnPermille; p.MinInflationPermille*1000 > ideal {
		return fmt.Errorf("rewards min_inflation_permille %d exceeds the inflation at the ideal rate (ideal_stake_permille %d × ideal_return_permille %d = %d.%03d permille)",
			p.MinInflationPermille, p.IdealStakePermille, p.IdealReturnPermille, ideal/1000, ideal%1000)
	}
	if p.FalloffPermille == 0 || p.FalloffPermille > 1000 {
		return fmt.Errorf("rewards falloff_permille must be in 1..1000, got %d", p.FalloffPermille)
	}
	if p.MinerPoolPermillePerYear > 1000 {
		return fmt.Errorf("rewards miner_pool_permille_per_year must be at most 1000, got %d", p.MinerPoolPermillePerYear)
	}
	return nil
}

// StakingPayout is the uPHA minted for stakers for an era that lasted elapsed
// (block time): floor(supply × I(x) × elapsed / Year) with I(x) =
// AnnualInflationPPB(p, staked, supply) / 10⁹. Because I(x) is taken to the
// ppb, the payout is at most supply × 10⁻⁹ × elapsed/Year + 1 uPHA below the
// exact value (1 PHA a year at 10⁹ PHA supply). Zero for elapsed ≤ 0; it
// saturates at MaxUint64, which needs absurd inputs (centuries at 100%).
func StakingPayout(p Params, staked, supply uint64, elapsed time.Duration) uint64 {
	if elapsed <= 0 || supply == 0 {
		return 0
	}
	return perYear(supply, AnnualInflationPPB(p, staked, supply), PPB, elapsed)
}

// MinerPayout is what the miner rewards pool pays for an era that lasted
// elapsed: floor(pool × MinerPoolPermillePerYear/1000 × elapsed/Year), never
// more than pool. Applied era after era it shrinks the pool geometrically
// (by e^(−rate) a year): it never quite runs dry, and stops paying once
// pool × rate × elapsed/Year < 1 uPHA. Zero for elapsed ≤ 0.
func MinerPayout(p Params, pool uint64, elapsed time.Duration) uint64 {
	if elapsed <= 0 || pool == 0 {
		return 0
	}
	return min(pool, perYear(pool, p.MinerPoolPermillePerYear, 1000, elapsed))
}

// perYear is floor(amount × rate/scale × elapsed/Year), saturating.
func perYear(amount, rate, scale uint64, elapsed time.Duration) uint64 {
	n := new(big.Int).SetUint64(amount)
	n.Mul(n, new(big.Int).SetUint64(rate))
	n.Mul(n, big.NewInt(int64(elapsed)))
	d := new(big.Int).SetUint64(scale)
	d.Mul(d, big.NewInt(int64(Year)))
	n.Quo(n, d)
	if !n.IsUint64() {
		return math.MaxUint64
	}
	return n.Uint64()
}
