package rewards

import (
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	upha   = 1_000_000            // uPHA per PHA
	supply = 1_000_000_000 * upha // genesis supply
	pool0  = supply / 1000 * 700  // genesis miner rewards pool
	hour   = time.Hour            // one era in the examples
	prec   = 320                  // bits of the big.Float references
	tiny   = 1e-6                 // documented slack of the curve, ppb
	maxU64 = uint64(math.MaxUint64)
	two63  = uint64(1) << 63
)

func TestDefaultParamsValid(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestValidateRejects(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Params)
		want string
	}{
		{func(p *Params) { p.IdealStakePermille = 0 }, "ideal_stake_permille must be in 1..1000, got 0"},
		{func(p *Params) { p.IdealStakePermille = 1001 }, "ideal_stake_permille"},
		{func(p *Params) { p.IdealReturnPermille = 0 }, "ideal_return_permille must be in 1..1000, got 0"},
		{func(p *Params) { p.IdealReturnPermille = math.MaxUint64 }, "ideal_return_permille"},
		{func(p *Params) { p.MinInflationPermille = 1001 }, "min_inflation_permille must be at most 1000"},
		{func(p *Params) { p.MinInflationPermille = 51 }, "min_inflation_permille 51 exceeds the inflation at the ideal rate (ideal_stake_permille 400 × ideal_return_permille 125 = 50.000 permille)"},
		{func(p *Params) { p.FalloffPermille = 0 }, "falloff_permille must be in 1..1000, got 0"},
		{func(p *Params) { p.FalloffPermille = 1001 }, "falloff_permille"},
		{func(p *Params) { p.MinerPoolPermillePerYear = 1001 }, "miner_pool_permille_per_year must be at most 1000, got 1001"},
	} {
		p := DefaultParams()
		c.mod(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", p, err, c.want)
		}
	}
	p := DefaultParams()
	p.MinInflationPermille = 50 // flat at the ideal: allowed
	p.MinerPoolPermillePerYear = 0
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

// ---- high-precision references ----

func bf() *big.Float { return new(big.Float).SetPrec(prec) }

// ln2 = Σ 1/(k·2^k).
var ln2 = func() *big.Float {
	s := bf()
	for k := 1; k <= prec+10; k++ {
		term := bf().SetMantExp(bf().Quo(bf().SetInt64(1), bf().SetInt64(int64(k))), -k)
		s.Add(s, term)
	}
	return s
}()

// refExp2Neg is 2^−e for e ≥ 0: 2^−k · exp(−frac·ln2) by Taylor series.
func refExp2Neg(e *big.Float) *big.Float {
	ki, _ := e.Int(nil)
	frac := bf().Sub(e, bf().SetInt(ki))
	t := bf().Mul(frac, ln2)
	sum, term := bf().SetInt64(1), bf().SetInt64(1)
	for n := int64(1); n < 120; n++ {
		term.Mul(term, t)
		term.Quo(term, bf().SetInt64(-n))
		sum.Add(sum, term)
	}
	return sum.SetMantExp(sum, -int(ki.Int64()))
}

// refInflation is the exact I(x) in ppb (to prec bits).
func refInflation(p Params, staked, supply uint64) *big.Float {
	i0 := new(big.Int).SetUint64(p.MinInflationPermille * 1_000_000)
	delta := new(big.Int).SetUint64(p.IdealStakePermille*p.IdealReturnPermille*1000 - p.MinInflationPermille*1_000_000)
	if supply == 0 {
		return bf().SetInt(i0)
	}
	staked = min(staked, supply)
	// x − x_ideal = (1000·staked − xid·supply) / (1000·supply)
	num := new(big.Int).Mul(big.NewInt(1000), new(big.Int).SetUint64(staked))
	num.Sub(num, new(big.Int).Mul(new(big.Int).SetUint64(p.IdealStakePermille), new(big.Int).SetUint64(supply)))
	if num.Sign() <= 0 {
		// I_0 + delta · 1000·staked / (xid·supply)
		r := new(big.Rat).SetFrac(new(big.Int).Mul(delta, new(big.Int).Mul(big.NewInt(1000), new(big.Int).SetUint64(staked))),
			new(big.Int).Mul(new(big.Int).SetUint64(p.IdealStakePermille), new(big.Int).SetUint64(supply)))
		v := bf().SetRat(r)
		return v.Add(v, bf().SetInt(i0))
	}
	// e = (x − x_ideal)/d = num / (d·supply)
	e := bf().SetRat(new(big.Rat).SetFrac(num, new(big.Int).Mul(new(big.Int).SetUint64(p.FalloffPermille), new(big.Int).SetUint64(supply))))
	v := refExp2Neg(e)
	v.Mul(v, bf().SetInt(delta))
	return v.Add(v, bf().SetInt(i0))
}

// checkBound asserts the documented bound I* − 1 − 10⁻⁶ < got ≤ I* + 10⁻⁶,
// and got = floor(I*) unless I* is within 10⁻⁶ of an integer.
func checkBound(t *testing.T, p Params, staked, supply uint64) {
	t.Helper()
	got := AnnualInflationPPB(p, staked, supply)
	ref := refInflation(p, staked, supply)
	g := bf().SetUint64(got)
	diff, _ := bf().Sub(g, ref).Float64() // got − I*
	if diff > tiny || diff <= -1-tiny {
		t.Fatalf("%+v staked %d supply %d: got %d ppb, exact %s: off by %g", p, staked, supply, got, ref.Text('f', 12), diff)
	}
	fl, _ := ref.Int(nil)
	frac, _ := bf().Sub(ref, bf().SetInt(fl)).Float64()
	if frac > tiny && frac < 1-tiny && fl.Uint64() != got {
		t.Fatalf("%+v staked %d supply %d: got %d ppb, want floor(%s)", p, staked, supply, got, ref.Text('f', 12))
	}
}

func randParams(r *rand.Rand) Params {
	p := Params{
		IdealStakePermille:       1 + r.Uint64N(1000),
		IdealReturnPermille:      1 + r.Uint64N(1000),
		FalloffPermille:          1 + r.Uint64N(1000),
		MinerPoolPermillePerYear: r.Uint64N(1001),
	}
	p.MinInflationPermille = r.Uint64N(p.IdealStakePermille*p.IdealReturnPermille/1000 + 1)
	if err := p.Validate(); err != nil {
		panic(err)
	}
	return p
}

// ---- the exponential ----

func TestPow2FracTable(t *testing.T) {
	exact := bf().SetFloat64(0.5)
	unit := bf().SetMantExp(bf().SetInt64(1), 64)
	for j, got := range pow2Frac {
		exact.Sqrt(exact) // 2^(−2^−(j+1))
		d := bf().Mul(exact, unit)
		d.Sub(d, bf().SetUint64(got))
		if f, _ := d.Float64(); f < 0 || f >= 2 {
			t.Errorf("pow2Frac[%d] = %d is %g units of 2⁻⁶⁴ below 2^(−2^−%d)", j, got, f, j+1)
		}
	}
}

func TestExp2Neg(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	unit := bf().SetMantExp(bf().SetInt64(1), 64)
	bound := math.Ldexp(1, -56)
	fs := []uint64{1, 2, 3, 1 << 63, 1<<63 + 1, 1<<63 - 1, maxU64, maxU64 - 1, 0x5555555555555555, 0xaaaaaaaaaaaaaaaa}
	for range 3000 {
		fs = append(fs, r.Uint64(), r.Uint64()>>r.UintN(64))
	}
	for _, f := range fs {
		if f == 0 {
			continue
		}
		got := exp2Neg(f)
		e := bf().Quo(bf().SetUint64(f), unit)
		exact := refExp2Neg(e)
		err, _ := bf().Sub(exact, bf().Quo(bf().SetUint64(got), unit)).Float64()
		if err < 0 || err > bound {
			t.Fatalf("exp2Neg(%#x) = %#x: %g below the exact value (bound 2⁻⁵⁶)", f, got, err)
		}
		// and against the float library, to its precision
		if fl := math.Exp2(-float64(f) / math.Exp2(64)); math.Abs(float64(got)/math.Exp2(64)-fl) > 1e-15 {
			t.Fatalf("exp2Neg(%#x) = %v, math.Exp2 %v", f, float64(got)/math.Exp2(64), fl)
		}
	}
	if exp2Neg(0) != maxU64 {
		t.Error("exp2Neg(0) should be MaxUint64")
	}
}

// ---- the curve ----

func TestCurveAgainstMathPow(t *testing.T) {
	p := DefaultParams()
	i0, iid, xid, d := 0.025, 0.05, 0.4, 0.05
	for i := 0; i <= 100_000; i++ {
		staked := supply / 100_000 * uint64(i)
		x := float64(staked) / supply
		var want float64
		if x <= xid {
			want = i0 + (iid-i0)*x/xid
		} else {
			want = i0 + (iid-i0)*math.Pow(2, (xid-x)/d)
		}
		want *= PPB
		got := float64(AnnualInflationPPB(p, staked, supply))
		if got > want+1e-5 || got <= want-1-1e-5 {
			t.Fatalf("x = %v: got %v ppb, math.Pow gives %v", x, got, want)
		}
	}
}

func TestCurveErrorBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	supplies := []uint64{1, 3, 1000, supply, supply + 12345, two63, two63 + 1, maxU64}
	for i := range 4000 {
		p := DefaultParams()
		if i%2 == 1 {
			p = randParams(r)
		}
		sup := supplies[r.IntN(len(supplies))]
		if i%3 == 0 {
			sup = 1 + r.Uint64N(maxU64)
		}
		staked := r.Uint64N(sup) + r.Uint64N(2) // sometimes = supply
		checkBound(t, p, staked, sup)
	}
	// the edges of each region
	for _, p := range []Params{DefaultParams(), {1, 1000, 0, 1, 0}, {1000, 1000, 1000, 1000, 1000}, {999, 7, 3, 1, 0}} {
		for _, sup := range supplies {
			for _, staked := range []uint64{0, 1, sup / 1000 * p.IdealStakePermille, sup/1000*p.IdealStakePermille + 1, sup - 1, sup} {
				checkBound(t, p, staked, sup)
			}
		}
	}
}

func TestCurveShape(t *testing.T) {
	p := DefaultParams()
	if got := AnnualInflationPPB(p, 0, supply); got != 25_000_000 {
		t.Errorf("I(0) = %d ppb, want I_0 = 25,000,000", got)
	}
	if got := AnnualInflationPPB(p, 0, 0); got != 25_000_000 {
		t.Errorf("I with zero supply = %d ppb, want I_0", got)
	}
	// exactly 40% staked (supply a multiple of 5): return 12.5% to 1 ppb
	for _, sup := range []uint64{supply, 5, 5 << 60, 1_234_567_891_010, maxU64} {
		staked := sup / 5 * 2
		i := AnnualInflationPPB(p, staked, sup)
		ret := new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(i), new(big.Int).SetUint64(sup)), new(big.Int).SetUint64(staked))
		if f, _ := ret.Float64(); math.Abs(f-125_000_000) > 1 {
			t.Errorf("supply %d: return at 40%% staked = %v ppb, want 125,000,000 (12.5%%) to 1 ppb", sup, f)
		}
	}
	// 40% not representable (supply 2^63): I within 1 ppb, so the return
	// within 1/0.4 ppb
	for _, sup := range []uint64{two63, 1_234_567_891_011} {
		staked := sup / 5 * 2
		i := AnnualInflationPPB(p, staked, sup)
		ret := new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(i), new(big.Int).SetUint64(sup)), new(big.Int).SetUint64(staked))
		if f, _ := ret.Float64(); math.Abs(f-125_000_000) > 2.5 {
			t.Errorf("supply %d: return at 40%% staked = %v ppb, want 125,000,000 to 2.5 ppb", sup, f)
		}
	}
	if got := AnnualInflationPPB(p, supply/10*4, supply); got != 50_000_000 {
		t.Errorf("I(40%%) = %d ppb, want exactly 50,000,000", got)
	}
	// continuity at x_ideal
	for _, sup := range []uint64{supply, two63, maxU64} {
		at := sup / 10 * 4
		lo, hi := AnnualInflationPPB(p, at-1, sup), AnnualInflationPPB(p, at+1, sup)
		if lo > 50_000_000 || hi > 50_000_000 || 50_000_000-lo > 1 || 50_000_000-hi > 1 {
			t.Errorf("supply %d: I jumps at x_ideal: %d, %d", sup, lo, hi)
		}
	}
	// far above the ideal the curve tends to I_0, never below
	if got := AnnualInflationPPB(Params{IdealStakePermille: 1, IdealReturnPermille: 1000, MinInflationPermille: 0, FalloffPermille: 1}, supply, supply); got != 0 {
		t.Errorf("I(100%%) with steep falloff = %d, want 0", got)
	}
}

// Over a grid: I rises to x_ideal and falls after; the return I(x)/x falls
// everywhere, strictly above x_ideal.
func TestCurveMonotone(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	params := []Params{DefaultParams()}
	for range 20 {
		params = append(params, randParams(r))
	}
	for pi, p := range params {
		for _, sup := range []uint64{supply, two63, maxU64} {
			const n = 5000
			var prevI, prevS uint64
			for i := 1; i <= n; i++ {
				staked := uint64(i) * (sup / n)
				I := AnnualInflationPPB(p, staked, sup)
				above := staked > sup/1000*p.IdealStakePermille
				if i > 1 {
					if !above && I < prevI {
						t.Fatalf("%+v supply %d: I falls below x_ideal at step %d: %d < %d", p, sup, i, I, prevI)
					}
					prevAbove := prevS > sup/1000*p.IdealStakePermille
					if prevAbove && I > prevI {
						t.Fatalf("%+v supply %d: I rises above x_ideal at step %d: %d > %d", p, sup, i, I, prevI)
					}
					// return(i) ≤ return(i−1) ⇔ I·prevS ≤ prevI·staked
					h1, l1 := bits.Mul64(I, prevS)
					h2, l2 := bits.Mul64(prevI, staked)
					c := uint128{h1, l1}.cmp(uint128{h2, l2})
					if prevAbove && c >= 0 {
						t.Fatalf("%+v supply %d: return does not fall above x_ideal at step %d", p, sup, i)
					}
					if pi == 0 && c > 0 {
						t.Fatalf("default curve: return rises at step %d", i)
					}
				}
				prevI, prevS = I, staked
			}
		}
	}
}

// ---- payouts ----

func TestNoOverflow(t *testing.T) {
	extreme := []Params{DefaultParams(), {1000, 1000, 1000, 1000, 1000}, {1, 1000, 0, 1, 1000}, {1000, 1000, 0, 1000, 1}}
	for _, p := range extreme {
		for _, sup := range []uint64{two63, maxU64} {
			for _, staked := range []uint64{sup, maxU64, sup / 2} {
				checkBound(t, p, staked, sup)
				for _, el := range []time.Duration{time.Nanosecond, hour, Year, math.MaxInt64} {
					got := StakingPayout(p, staked, sup, el)
					want := new(big.Int).Mul(new(big.Int).SetUint64(sup), new(big.Int).SetUint64(AnnualInflationPPB(p, staked, sup)))
					want.Mul(want, big.NewInt(int64(el)))
					want.Quo(want, new(big.Int).Mul(big.NewInt(PPB), big.NewInt(int64(Year))))
					if !want.IsUint64() {
						want.SetUint64(maxU64)
					}
					if got != want.Uint64() {
						t.Fatalf("StakingPayout(%+v, %d, %d, %v) = %d, want %s", p, staked, sup, el, got, want)
					}
				}
			}
		}
	}
	// default curve at 100% staked of 2^63: I = I_0 + 2.5% · 2^−12
	if got, want := AnnualInflationPPB(DefaultParams(), two63, two63), uint64(25_000_000+25_000_000>>12); got != want {
		t.Errorf("I(100%%) = %d, want %d", got, want)
	}
}

func TestStakingPayoutOneHour(t *testing.T) {
	p := DefaultParams()
	got := StakingPayout(p, supply/10*4, supply, hour)
	if want := uint64(supply / 20 / 8766); got != want { // floor(supply × 5% / 8766)
		t.Errorf("one hour at 40%% staked pays %d uPHA, want %d", got, want)
	}
	if f := float64(supply) * 0.05 / 8766; math.Abs(float64(got)-f) > 1 {
		t.Errorf("one hour at 40%% staked pays %d uPHA, float %v", got, f)
	}
	// a year of hourly eras mints 5% of the supply, less the rounding
	var sum uint64
	for range 8766 {
		sum += StakingPayout(p, supply/10*4, supply, hour)
	}
	if want := uint64(supply / 20); sum > want || want-sum > 8766 {
		t.Errorf("a year of hourly eras mints %d, want %d less at most 8766", sum, want)
	}
	for _, el := range []time.Duration{0, -hour, math.MinInt64} {
		if got := StakingPayout(p, supply/2, supply, el); got != 0 {
			t.Errorf("elapsed %v pays %d", el, got)
		}
	}
	if got := StakingPayout(p, 0, 0, hour); got != 0 {
		t.Errorf("zero supply pays %d", got)
	}
}

func TestMinerPayout(t *testing.T) {
	p := DefaultParams()
	if got, want := MinerPayout(p, pool0, hour), uint64(pool0/5/8766); got != want {
		t.Errorf("one hour of the genesis pool pays %d, want %d", got, want)
	}
	if got := MinerPayout(p, pool0, Year); got != pool0/5 {
		t.Errorf("a year in one era pays %d, want %d", got, pool0/5)
	}
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 20000 {
		p := Params{MinerPoolPermillePerYear: r.Uint64N(1001)}
		pool := r.Uint64()
		if i%4 == 0 {
			pool = maxU64 - r.Uint64N(3)
		}
		el := time.Duration(r.Int64())
		if i%2 == 0 {
			el = time.Duration(r.Int64N(int64(10 * Year)))
		}
		got := MinerPayout(p, pool, el)
		if got > pool {
			t.Fatalf("MinerPayout(%d permille, %d, %v) = %d exceeds the pool", p.MinerPoolPermillePerYear, pool, el, got)
		}
		want := new(big.Int).Mul(new(big.Int).SetUint64(pool), new(big.Int).SetUint64(p.MinerPoolPermillePerYear))
		want.Mul(want, big.NewInt(int64(el)))
		want.Quo(want, new(big.Int).Mul(big.NewInt(1000), big.NewInt(int64(Year))))
		if want.Cmp(new(big.Int).SetUint64(pool)) > 0 {
			want.SetUint64(pool)
		}
		if got != want.Uint64() {
			t.Fatalf("MinerPayout(%d permille, %d, %v) = %d, want %s", p.MinerPoolPermillePerYear, pool, el, got, want)
		}
	}
	if got := MinerPayout(Params{MinerPoolPermillePerYear: 1000}, pool0, 2*Year); got != pool0 {
		t.Errorf("two years at 100%%/year pays %d, want the whole pool", got)
	}
	if MinerPayout(p, pool0, -1) != 0 || MinerPayout(p, 0, Year) != 0 {
		t.Error("no payout for negative time or an empty pool")
	}
}

// ---- Split ----

// refSplit is an independent largest-remainder division with big.Rat.
func refSplit(total uint64, w []uint64) []uint64 {
	out := make([]uint64, len(w))
	sum := new(big.Int)
	for _, x := range w {
		sum.Add(sum, new(big.Int).SetUint64(x))
	}
	if sum.Sign() == 0 {
		return out
	}
	fr := make([]*big.Rat, len(w))
	left := new(big.Int).SetUint64(total)
	for i, x := range w {
		share := new(big.Rat).SetFrac(new(big.Int).Mul(new(big.Int).SetUint64(total), new(big.Int).SetUint64(x)), sum)
		fl := new(big.Int).Quo(share.Num(), share.Denom())
		out[i] = fl.Uint64()
		fr[i] = new(big.Rat).Sub(share, new(big.Rat).SetInt(fl))
		left.Sub(left, fl)
	}
	idx := make([]int, len(w))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return fr[b].Cmp(fr[a]) })
	for _, i := range idx[:left.Int64()] {
		out[i]++
	}
	return out
}

func checkSplit(t *testing.T, total uint64, w []uint64) {
	t.Helper()
	orig := slices.Clone(w)
	got := Split(total, w)
	if !slices.Equal(w, orig) {
		t.Fatalf("Split modified the weights")
	}
	if len(got) != len(w) {
		t.Fatalf("Split(%d, %v) has %d parts", total, w, len(got))
	}
	if again := Split(total, w); !slices.Equal(got, again) {
		t.Fatalf("Split(%d, %v) not deterministic: %v then %v", total, w, got, again)
	}
	if want := refSplit(total, w); !slices.Equal(got, want) {
		t.Fatalf("Split(%d, %v) = %v, reference %v", total, w, got, want)
	}
	sumW, sumP := new(big.Int), new(big.Int)
	for i := range w {
		sumW.Add(sumW, new(big.Int).SetUint64(w[i]))
		sumP.Add(sumP, new(big.Int).SetUint64(got[i]))
		if w[i] == 0 && got[i] != 0 {
			t.Fatalf("Split(%d, %v): zero weight %d gets %d", total, w, i, got[i])
		}
	}
	if sumW.Sign() == 0 {
		if sumP.Sign() != 0 {
			t.Fatalf("Split(%d, %v) = %v: all weights zero, want all parts zero", total, w, got)
		}
		return
	}
	if !sumP.IsUint64() || sumP.Uint64() != total {
		t.Fatalf("Split(%d, %v) = %v sums to %s", total, w, got, sumP)
	}
	for i := range w {
		// |part·Σw − total·w| < Σw
		d := new(big.Int).Mul(new(big.Int).SetUint64(got[i]), sumW)
		d.Sub(d, new(big.Int).Mul(new(big.Int).SetUint64(total), new(big.Int).SetUint64(w[i])))
		if d.Abs(d).Cmp(sumW) >= 0 {
			t.Fatalf("Split(%d, %v) = %v: part %d is 1 uPHA or more off its share", total, w, got, i)
		}
	}
}

func TestSplitExhaustive(t *testing.T) {
	// every weight vector of length ≤ 4 over 0..3, every total ≤ 13
	var rec func(w []uint64)
	rec = func(w []uint64) {
		for total := uint64(0); total <= 13; total++ {
			checkSplit(t, total, w)
		}
		if len(w) == 4 {
			return
		}
		for x := uint64(0); x <= 3; x++ {
			rec(append(w, x))
		}
	}
	rec(nil)
}

func TestSplitRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := range 20000 {
		n := r.IntN(12)
		w := make([]uint64, n)
		for j := range w {
			switch r.IntN(6) {
			case 0:
				w[j] = 0
			case 1:
				w[j] = maxU64 - r.Uint64N(5) // the sum overflows 64 bits
			case 2:
				w[j] = r.Uint64()
			default:
				w[j] = r.Uint64N(100)
			}
		}
		total := r.Uint64N(1000)
		switch i % 4 {
		case 1:
			total = r.Uint64()
		case 2:
			total = maxU64 - r.Uint64N(3)
		}
		checkSplit(t, total, w)
	}
	// ties go to the lowest index
	if got := Split(2, []uint64{1, 0, 1, 1}); !slices.Equal(got, []uint64{1, 0, 1, 0}) {
		t.Errorf("Split(2, [1 0 1 1]) = %v", got)
	}
	if got := Split(5, nil); len(got) != 0 {
		t.Errorf("Split(5, nil) = %v", got)
	}
	if got := Split(maxU64, []uint64{maxU64, maxU64, maxU64}); !slices.Equal(got, []uint64{maxU64 / 3, maxU64 / 3, maxU64 / 3}) {
		t.Errorf("Split(max, 3×max) = %v", got)
	}
}

// ---- docs/economics.md is generated from this code ----

func pct(ppb uint64) string { return fmt.Sprintf("%d.%07d%%", ppb/10_000_000, ppb%10_000_000) }

func curveTable() []string {
	p := DefaultParams()
	rows := []string{"| x (staked) | I(x) (inflation per year) | I(x)/x (return per year) |", "|---:|---:|---:|"}
	for _, xp := range []uint64{0, 10, 20, 30, 40, 50, 60, 80, 100} {
		i := AnnualInflationPPB(p, supply/100*xp, supply)
		ret := "—"
		if xp > 0 {
			ret = pct(i * 100 / xp)
		}
		rows = append(rows, fmt.Sprintf("| %d%% | %s | %s |", xp, pct(i), ret))
	}
	return rows
}

func thousands(v uint64) string {
	s := fmt.Sprint(v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func minerTable() []string {
	p := DefaultParams()
	rows := []string{"| after | paid out (PHA) | left in the pool (PHA) | left | e^(−0.2·t) |", "|---:|---:|---:|---:|---:|"}
	pool := uint64(pool0)
	years := []int{1, 2, 5, 10, 20, 30}
	for y, next := 1, 0; next < len(years); y++ {
		for range 8766 {
			pool -= MinerPayout(p, pool, hour)
		}
		if y == years[next] {
			next++
			unit := "years"
			if y == 1 {
				unit = "year"
			}
			rows = append(rows, fmt.Sprintf("| %d %s | %s | %s | %d.%02d%% | %.2f%% |", y, unit,
				thousands((pool0-pool)/upha), thousands(pool/upha), pool*100/pool0, pool*10000/pool0%100, 100*math.Exp(-0.2*float64(y))))
		}
	}
	return rows
}

func TestEconomicsDoc(t *testing.T) {
	doc, err := os.ReadFile("../../docs/economics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range [][]string{curveTable(), minerTable()} {
		for _, row := range table {
			if !strings.Contains(string(doc), row+"\n") {
				t.Errorf("docs/economics.md lacks the row %q; the table is:\n%s", row, strings.Join(table, "\n"))
				break
			}
		}
	}
}
