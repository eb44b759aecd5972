package rewards

import (
	"encoding/binary"
	"math/big"
	"math/bits"
	"slices"
)

// Split divides total among weights exactly (largest remainder method): part
// i is floor(total × w_i / Σw), and the uPHA those floors leave over (fewer
// than the number of positive weights) go one each to the parts with the
// largest remainders, ties to the lowest index. So when any weight is
// positive the parts sum to total, each is within 1 uPHA of its exact
// proportional share (floor or ceiling), and zero weights get zero. When all
// weights are zero (or there are none) every part is zero and the caller
// keeps total. The weights may sum past 2⁶⁴. weights is not modified.
func Split(total uint64, weights []uint64) []uint64 {
	parts := make([]uint64, len(weights))
	var sumHi, sumLo uint64 // Σw as 128 bits
	for _, w := range weights {
		var carry uint64
		sumLo, carry = bits.Add64(sumLo, w, 0)
		sumHi += carry
	}
	if total == 0 || sumHi == 0 && sumLo == 0 {
		return parts
	}
	rems := make([]uint128, len(weights)) // total × w_i mod Σw
	var given uint64
	if sumHi == 0 {
		for i, w := range weights {
			hi, lo := bits.Mul64(total, w)
			// total × w / Σw ≤ total fits in 64 bits, so hi < Σw.
			q, r := bits.Div64(hi, lo, sumLo)
			parts[i], rems[i] = q, uint128{lo: r}
			given += q
		}
	} else {
		sum := new(big.Int).Lsh(new(big.Int).SetUint64(sumHi), 64)
		sum.Or(sum, new(big.Int).SetUint64(sumLo))
		var n, wb, q, r big.Int
		t := new(big.Int).SetUint64(total)
		var buf [16]byte
		for i, w := range weights {
			n.Mul(t, wb.SetUint64(w))
			q.QuoRem(&n, sum, &r)
			parts[i] = q.Uint64() // ≤ total
			r.FillBytes(buf[:])   // r < Σw < 2¹²⁸
			rems[i] = uint128{hi: binary.BigEndian.Uint64(buf[:8]), lo: binary.BigEndian.Uint64(buf[8:])}
			given += parts[i]
		}
	}
	left := total - given // Σ floors ≤ total
	if left == 0 {
		return parts
	}
	// Σ rems = left × Σw with every rem < Σw: more than left remainders are
	// positive, so only positive weights receive the extra uPHA.
	order := make([]int, 0, len(weights))
	for i, r := range rems {
		if r != (uint128{}) {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := rems[b].cmp(rems[a]); c != 0 {
			return c // larger remainder first
		}
		return a - b // then lower index
	})
	for _, i := range order[:left] {
		parts[i]++
	}
	return parts
}

type uint128 struct{ hi, lo uint64 }

func (x uint128) cmp(y uint128) int {
	switch {
	case x.hi != y.hi:
		if x.hi < y.hi {
			return -1
		}
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}
