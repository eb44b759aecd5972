package rewards

import (
	"math"
	"math/big"
	"math/bits"
)

// The inflation curve, Polkadot style (Substrate's pallet-staking-reward-curve),
// with x = staked/supply, I_0 = MinInflationPermille, x_ideal =
// IdealStakePermille, I_ideal = x_ideal × IdealReturnPermille and d =
// FalloffPermille:
//
//	x ≤ x_ideal:  I(x) = I_0 + (I_ideal − I_0) · x / x_ideal
//	x > x_ideal:  I(x) = I_0 + (I_ideal − I_0) · 2^((x_ideal − x) / d)
//
// In integers: x is taken to 10⁻¹⁸ (rateScale), the exponent e = (x −
// x_ideal)/d is split into its integer part k and its fraction f taken to
// 2⁻⁶⁴, and 2^−e = 2^−k · 2^−f where 2^−f is the product, over the set bits
// 2^−j of f, of the constants 2^(−2^−j) (pow2Frac, built from repeated
// integer square roots), all in 64-bit fixed point.
//
// Error bound: 2^−f is at most 2⁻⁵⁶ below its exact value (each of the 64
// table entries is less than 2 units of 2⁻⁶⁴ low, each of the at most 63
// truncated products loses less than 1 more, and factors below 1 do not
// amplify errors). Truncating x to 10⁻¹⁸ moves I by at most
// (I_ideal − I_0) · 10⁻¹⁵ (d ≥ 0.001) ≤ 10⁻⁶ ppb. So, with I* the exact real
// value, the result is floor of a number within 10⁻⁶ ppb of I*:
// I* − 1 − 10⁻⁶ < AnnualInflationPPB ≤ I* + 10⁻⁶, i.e. it is floor(I*) unless
// I* is within 10⁻⁶ ppb of an integer. When x and the exponent are exact in
// those scales (e.g. 40% of 10¹⁵ uPHA) the result is exactly floor(I*).

const (
	// rateScale is the fixed-point scale of the staking rate x.
	rateScale = 1_000_000_000_000_000_000
	// permilleToRate converts permille to rateScale.
	permilleToRate = rateScale / 1000
	// permilleSqToPPB converts a product of two permilles (10⁻⁶) to ppb.
	permilleSqToPPB = PPB / 1_000_000
)

// pow2Frac[j] is 2^(−2^−(j+1)) in units of 2⁻⁶⁴, rounded down: 2^(−1/2),
// 2^(−1/4), …, 2^(−2⁻⁶⁴). Each is the square root of the one before, taken
// with exact integer square roots in units of 2⁻¹²⁸ (each root loses less
// than one such unit and shrinks the error it inherits by a factor ≤ 1/√2, so
// it stays under 3.5 units), then truncated to 2⁻⁶⁴: every entry is below the
// exact value by less than 2 units of 2⁻⁶⁴ (tested).
var pow2Frac = func() (t [64]uint64) {
	r := new(big.Int).Lsh(big.NewInt(1), 127) // 1/2 in units of 2⁻¹²⁸
	for j := range t {
		r.Lsh(r, 128)
		r.Sqrt(r)
		t[j] = new(big.Int).Rsh(r, 64).Uint64()
	}
	return t
}()

// exp2Neg returns 2^(−f/2⁶⁴) in units of 2⁻⁶⁴, at most 2⁻⁵⁶ below the exact
// value. For f > 0 the result is in (1/2, 1) and fits; f = 0 (exactly 1,
// which does not) gives MaxUint64, and the caller avoids it.
func exp2Neg(f uint64) uint64 {
	acc := uint64(math.MaxUint64)
	one := true
	for j := range 64 {
		if f&(1<<(63-j)) == 0 {
			continue
		}
		if one {
			acc, one = pow2Frac[j], false
		} else {
			acc, _ = bits.Mul64(acc, pow2Frac[j])
		}
	}
	return acc
}

// curve is the curve's parameters in the scales used below, clamped into the
// ranges Validate admits so that even invalid parameters give a defined
// result without overflow or division by zero.
type curve struct {
	i0, iIdeal uint64 // ppb
	xIdeal     uint64 // rateScale, in [1e15, 1e18]
	falloff    uint64 // rateScale, in [1e15, 1e18]
}

func (p Params) curve() curve {
	clamp := func(v, lo, hi uint64) uint64 { return min(max(v, lo), hi) }
	stake := clamp(p.IdealStakePermille, 1, 1000)
	ret := clamp(p.IdealReturnPermille, 0, 1000)
	c := curve{
		iIdeal:  stake * ret * permilleSqToPPB,
		xIdeal:  stake * permilleToRate,
		falloff: clamp(p.FalloffPermille, 1, 1000) * permilleToRate,
	}
	c.i0 = min(clamp(p.MinInflationPermille, 0, 1000)*(PPB/1000), c.iIdeal)
	return c
}

// AnnualInflationPPB is the curve I(x) in parts per billion per year, for the
// staking rate x = staked/supply (staked above supply counts as supply; zero
// supply as x = 0). See the error bound above: within 1 ppb of the exact
// value. For parameters that fail Validate the result is defined but
// meaningless.
func AnnualInflationPPB(p Params, staked, supply uint64) uint64 {
	c := p.curve()
	var x uint64 // staked/supply in units of 1/rateScale
	if supply > 0 {
		staked = min(staked, supply)
		hi, lo := bits.Mul64(staked, rateScale)
		x, _ = bits.Div64(hi, lo, supply) // ≤ rateScale: hi < supply
	}
	delta := c.iIdeal - c.i0 // ≤ 10⁹
	if x <= c.xIdeal {
		hi, lo := bits.Mul64(delta, x)
		q, _ := bits.Div64(hi, lo, c.xIdeal) // ≤ delta: hi < xIdeal
		return c.i0 + q
	}
	k, rem := (x-c.xIdeal)/c.falloff, (x-c.xIdeal)%c.falloff
	if k >= 64 {
		return c.i0
	}
	if rem == 0 {
		return c.i0 + delta>>k
	}
	f, _ := bits.Div64(rem, 0, c.falloff) // rem/falloff in units of 2⁻⁶⁴: rem < falloff
	hi, _ := bits.Mul64(delta, exp2Neg(f))
	return c.i0 + hi>>k
}
