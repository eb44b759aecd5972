package staking

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"strings"
)

// MaxNominations is the most targets a Voter may name.
const MaxNominations = 16

var (
	// ErrNotEnoughCandidates: fewer candidates have a positive approval stake
	// than there are seats. Nothing is wrong with the input; the caller
	// retries once more stake is bonded.
	ErrNotEnoughCandidates = errors.New("staking: not enough electable candidates")
	// ErrInvalidElection: the input of an election is malformed (n <= 0, an
	// empty or duplicate ID, too many targets, stakes summing past 2^64-1).
	// The message names the offending value.
	ErrInvalidElection = errors.New("staking: invalid election input")
)

// Candidate is a worker standing for election with its operator's own bond.
type Candidate struct {
	// ID identifies the candidate; it is compared as raw bytes.
	ID string
	// SelfStake is the operator's own bond. It counts as a voter that backs
	// only this candidate.
	SelfStake uint64
}

// Voter (a nominator) backs up to MaxNominations candidates with its whole
// stake.
type Voter struct {
	ID    string
	Stake uint64
	// Targets name the candidates backed. Unknown names are ignored and a
	// name repeated counts once.
	Targets []string
}

// Winner is an elected candidate with its approval stake and the backing
// assigned to it after sequential Phragmen.
type Winner struct {
	ID string
	// Score is the candidate's approval stake: its self stake plus the whole
	// stake of every voter naming it (as the winners of Substrate's
	// seq_phragmen).
	Score uint64
	// Load is the Phragmen score at which the candidate was elected: the
	// load, in units of 1/stake, that every voter backing it carries from
	// then on. It never decreases along the election order. It is exact.
	Load *big.Rat
	// Backing is the part of its voters' stake assigned to this winner (see
	// SeqPhragmen); it never exceeds Score.
	Backing uint64
}

// voter is a voter as the election sees it.
type voter struct {
	stake   uint64
	targets []int // candidate indexes, distinct, ascending
	rounds  []int // rounds in which one of targets was elected, ascending
}

// SeqPhragmen elects n gatekeepers by sequential Phragmén, the method of
// Substrate's sp-npos-elections seq_phragmen, in exact arithmetic so that
// every machine computes the same result.
//
// Input rules:
//   - A candidate's self stake counts as a voter that backs only that
//     candidate.
//   - Targets naming unknown candidates are ignored, a target repeated counts
//     once, and voters with zero stake are ignored.
//   - A candidate's approval stake (Winner.Score) is the sum of the stakes of
//     the voters backing it. A candidate with zero approval cannot be
//     elected; if fewer than n candidates have positive approval the result
//     is an error wrapping ErrNotEnoughCandidates.
//   - n <= 0, an empty or duplicate candidate ID, an empty or duplicate voter
//     ID, a voter with more than MaxNominations targets, or stakes (self
//     stakes and voter stakes together) summing past 2^64-1 is an error
//     wrapping ErrInvalidElection that names the offending value.
//
// Election: every voter carries a load, initially 0. In each round, every
// candidate c not yet elected scores
//
//	score(c) = (1 + Σ_{v backs c} stake(v)·load(v)) / approval(c)
//
// and the lowest score wins, ties going to the candidate whose ID is
// smallest as bytes. Each voter backing the winner then takes the winner's
// score as its load; the increase is the load of that voter's edge to the
// winner. The result lists the n winners in election order.
//
// Backing: each voter's stake s is split over the winners it backs in
// proportion to its edge loads: a winner gets s·e/L, where e is the voter's
// edge load to it and L the voter's final load (the sum of its edge loads).
// Each share is rounded down and the units left over (fewer than the number
// of winners the voter backs) go one each to the shares with the largest
// fractional parts, ties going to the winner elected first (largest
// remainder). So the Backing of all winners sums exactly to the stake of the
// voters that back at least one winner.
//
// The result does not depend on the order of candidates, voters or targets.
func SeqPhragmen(n int, candidates []Candidate, voters []Voter) ([]Winner, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: %d seats to fill, want at least 1", ErrInvalidElection, n)
	}
	cands, index, err := sortCandidates(candidates)
	if err != nil {
		return nil, err
	}
	vs, err := buildVoters(cands, index, voters)
	if err != nil {
		return nil, err
	}

	nc := len(cands)
	approval := make([]uint64, nc)
	backers := make([][]int, nc) // voter indexes backing each candidate
	for vi, v := range vs {
		for _, c := range v.targets {
			approval[c] += v.stake // the total was checked not to overflow
			backers[c] = append(backers[c], vi)
		}
	}
	electable := 0
	for _, a := range approval {
		if a > 0 {
			electable++
		}
	}
	if electable < n {
		return nil, fmt.Errorf("%w: %d of %d candidates have a positive approval stake, %d seats to fill",
			ErrNotEnoughCandidates, electable, nc, n)
	}

	// Exact arithmetic on integers: every score of the election is a
	// fraction whose denominator divides q, the product of the approvals of
	// the winners so far. w[r] is the score of the winner of round r times
	// q; a voter's load is w[last round it backed a winner]/q (or 0). For a
	// candidate c not elected,
	//	m[c] = q·(1 + Σ_{v backs c} stake(v)·load(v)),
	// an integer, and score(c) = m[c] / (q·approval(c)). Comparing scores
	// within a round, q cancels.
	q := big.NewInt(1)
	w := make([]*big.Int, 0, n)
	m := make([]*big.Int, nc)
	for c, a := range approval {
		if a > 0 {
			m[c] = big.NewInt(1)
		}
	}
	last := make([]int, len(vs)) // last round the voter backed a winner, -1 for none
	for i := range last {
		last[i] = -1
	}
	elected := make([]bool, nc)
	winners := make([]Winner, 0, n)
	var lhs, rhs, x, delta big.Int
	for r := range n {
		best := -1
		for c := range nc {
			if m[c] == nil || elected[c] {
				continue
			}
			if best < 0 {
				best = c
				continue
			}
			// m[c]/approval[c] < m[best]/approval[best]; on a tie the
			// earlier (smaller) ID stays.
			lhs.Mul(m[c], x.SetUint64(approval[best]))
			rhs.Mul(m[best], x.SetUint64(approval[c]))
			if lhs.Cmp(&rhs) < 0 {
				best = c
			}
		}
		elected[best] = true
		a := new(big.Int).SetUint64(approval[best])
		q.Mul(q, a)
		for _, wk := range w {
			wk.Mul(wk, a)
		}
		score := m[best] // now the winner's score times the new q
		w = append(w, score)
		winners = append(winners, Winner{
			ID:    cands[best].ID,
			Score: approval[best],
			Load:  new(big.Rat).SetFrac(score, q),
		})
		final := r == n-1 // scores are not needed after the last round
		if !final {
			for c := range nc {
				if m[c] != nil && !elected[c] {
					m[c].Mul(m[c], a)
				}
			}
		}
		for _, vi := range backers[best] {
			v := &vs[vi]
			if !final {
				// The voter's load rises from w[last]/q to score/q.
				delta.Set(score)
				if last[vi] >= 0 {
					delta.Sub(&delta, w[last[vi]])
				}
				delta.Mul(&delta, x.SetUint64(v.stake))
				for _, c := range v.targets {
					if m[c] != nil && !elected[c] {
						m[c].Add(m[c], &delta)
					}
				}
			}
			last[vi] = r
			v.rounds = append(v.rounds, r)
		}
	}

	// Backing, with every w[r] over the final q. A voter backs at most
	// MaxNominations winners.
	rems := make([]big.Int, MaxNominations) // remainder of each share
	order := make([]int, 0, MaxNominations) // shares by decreasing remainder
	var num, quo, st big.Int
	for vi := range vs {
		v := &vs[vi]
		switch len(v.rounds) {
		case 0:
			continue
		case 1:
			winners[v.rounds[0]].Backing += v.stake
			continue
		}
		total := w[last[vi]] // the voter's load times q
		st.SetUint64(v.stake)
		left := v.stake
		order = order[:0]
		for j, r := range v.rounds {
			num.Set(w[r])
			if j > 0 {
				num.Sub(&num, w[v.rounds[j-1]])
			}
			num.Mul(&num, &st)
			quo.QuoRem(&num, total, &rems[j])
			part := quo.Uint64() // at most the stake
			winners[r].Backing += part
			left -= part
			order = append(order, j)
		}
		if left == 0 {
			continue
		}
		// rounds is ascending, so on equal remainders the smaller j is the
		// winner elected first.
		slices.SortFunc(order, func(a, b int) int {
			return cmp.Or(rems[b].Cmp(&rems[a]), cmp.Compare(a, b))
		})
		for _, j := range order[:left] { // left < len(order)
			winners[v.rounds[j]].Backing++
		}
	}
	return winners, nil
}

// sortCandidates validates the candidates and returns them sorted by ID with
// the index of each ID.
func sortCandidates(candidates []Candidate) ([]Candidate, map[string]int, error) {
	cands := slices.Clone(candidates)
	slices.SortFunc(cands, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
	index := make(map[string]int, len(cands))
	for i, c := range cands {
		if c.ID == "" {
			return nil, nil, fmt.Errorf("%w: empty candidate ID", ErrInvalidElection)
		}
		if i > 0 && cands[i-1].ID == c.ID {
			return nil, nil, fmt.Errorf("%w: duplicate candidate ID %q", ErrInvalidElection, c.ID)
		}
		index[c.ID] = i
	}
	return cands, index, nil
}

// buildVoters validates the voters and returns the election's voters: one
// per candidate with a self stake, in candidate order, then the nominators
// with a stake and a known target, by ID.
func buildVoters(cands []Candidate, index map[string]int, voters []Voter) ([]voter, error) {
	sorted := slices.Clone(voters)
	slices.SortFunc(sorted, func(a, b Voter) int { return strings.Compare(a.ID, b.ID) })
	var total uint64
	overflow := false
	add := func(stake uint64) {
		var carry uint64
		total, carry = bits.Add64(total, stake, 0)
		overflow = overflow || carry != 0
	}
	for _, c := range cands {
		add(c.SelfStake)
	}
	for i, v := range sorted {
		if v.ID == "" {
			return nil, fmt.Errorf("%w: empty voter ID", ErrInvalidElection)
		}
		if i > 0 && sorted[i-1].ID == v.ID {
			return nil, fmt.Errorf("%w: duplicate voter ID %q", ErrInvalidElection, v.ID)
		}
		if len(v.Targets) > MaxNominations {
			return nil, fmt.Errorf("%w: voter %q names %d targets, at most %d allowed",
				ErrInvalidElection, v.ID, len(v.Targets), MaxNominations)
		}
		add(v.Stake)
	}
	if overflow {
		return nil, fmt.Errorf("%w: stakes sum past 2^64-1", ErrInvalidElection)
	}

	vs := make([]voter, 0, len(cands)+len(sorted))
	for i, c := range cands {
		if c.SelfStake > 0 {
			vs = append(vs, voter{stake: c.SelfStake, targets: []int{i}})
		}
	}
	for _, v := range sorted {
		if v.Stake == 0 {
			continue
		}
		targets := make([]int, 0, len(v.Targets))
		for _, id := range v.Targets {
			if c, ok := index[id]; ok {
				targets = append(targets, c)
			}
		}
		if len(targets) == 0 {
			continue
		}
		slices.Sort(targets)
		vs = append(vs, voter{stake: v.Stake, targets: slices.Compact(targets)})
	}
	return vs, nil
}
