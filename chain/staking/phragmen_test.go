package staking

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"math/bits"
	"slices"
	"strings"
	"testing"
)

// got is a Winner with its load as a string, comparable with ==.
type got struct {
	ID      string
	Score   uint64
	Load    string // big.Rat.RatString
	Backing uint64
}

func flatten(ws []Winner) []got {
	out := make([]got, len(ws))
	for i, w := range ws {
		out[i] = got{w.ID, w.Score, w.Load.RatString(), w.Backing}
	}
	return out
}

// TestSeqPhragmenHandWorked checks small elections worked out by hand. In the
// comments, "score" is (1 + Σ stake·load)/approval and loads are per voter.
func TestSeqPhragmenHandWorked(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		candidates []Candidate
		voters     []Voter
		want       []got
	}{
		{
			// Substrate sp-npos-elections tests.rs, phragmen_poc_works.
			// Approval: 1 = 10+20 = 30, 2 = 10+30 = 40, 3 = 20+30 = 50.
			// Round 0: scores 1/30, 1/40, 1/50: 3 wins at 1/50;
			//   loads v20 = v30 = 1/50.
			// Round 1: 1 = (1 + 20/50)/30 = 7/150, 2 = (1 + 30/50)/40 = 1/25:
			//   2 wins at 1/25; loads v10 = v30 = 1/25.
			// Backing: v10 → 2: 10. v20 → 3: 20. v30 edges 3: 1/50,
			//   2: 1/25 - 1/50 = 1/50, so 15 and 15.
			//   2 = 10+15 = 25, 3 = 20+15 = 35 (Substrate: (2, 25), (3, 35)).
			name:       "substrate npos phragmen_poc_works",
			n:          2,
			candidates: []Candidate{{"1", 0}, {"2", 0}, {"3", 0}},
			voters: []Voter{
				{"10", 10, []string{"1", "2"}},
				{"20", 20, []string{"1", "3"}},
				{"30", 30, []string{"2", "3"}},
			},
			want: []got{{"3", 50, "1/50", 35}, {"2", 40, "1/25", 25}},
		},
		{
			// Substrate staking tests.rs, phragmen_poc_works (the example of
			// the Phragmén reference implementation): validators 10, 20,
			// 30, 40 bond 1000 each; nominators 2 and 4 bond 500.
			// Approval: 10 = 20 = 1000+500+500 = 2000, 30 = 40 = 1500.
			// Round 0: 10 and 20 tie at 1/2000; "10" < "20" wins.
			//   Loads self10 = n2 = n4 = 1/2000.
			// Round 1: 20 = (1 + 500/2000 + 500/2000)/2000 = 3/4000,
			//   30 = 40 = (1 + 500/2000)/1500 = 1/1200: 20 wins at 3/4000.
			// Backing: n2 edges 10: 1/2000, 20: 3/4000 - 1/2000 = 1/4000;
			//   500·2/3 = 333.33 → 333, 500·1/3 = 166.67 → 166, one unit
			//   left goes to the larger fraction (20). Same for n4.
			//   10 = 1000+333+333 = 1666, 20 = 1000+167+167 = 1334
			//   (reference, in floats: 1666.67 and 1333.33).
			name: "substrate staking phragmen_poc_works",
			n:    2,
			candidates: []Candidate{
				{"10", 1000}, {"20", 1000}, {"30", 1000}, {"40", 1000},
			},
			voters: []Voter{
				{"2", 500, []string{"10", "20", "30"}},
				{"4", 500, []string{"10", "20", "40"}},
			},
			want: []got{{"10", 2000, "1/2000", 1666}, {"20", 2000, "3/4000", 1334}},
		},
		{
			// Approval A = 30+30 = 60, B = 20+30+10 = 60, C = 10+15 = 25.
			// Round 0: A, B tie at 1/60, "A" wins; loads selfA = n1 = 1/60.
			// Round 1: B = (1 + 30/60)/60 = 1/40, C = 1/25: B wins at 1/40;
			//   loads n1 = selfB = n2 = 1/40.
			// Round 2: C = (1 + 10/40)/25 = 1/20.
			// Backing: n1 edges A 1/60, B 1/120: 20 and 10.
			//   n2 edges B 1/40, C 1/40: 5 and 5.
			//   A = 30+20 = 50, B = 10+20+5 = 35, C = 5+15 = 20.
			name:       "three rounds with self stakes",
			n:          3,
			candidates: []Candidate{{"A", 30}, {"B", 20}, {"C", 0}},
			voters: []Voter{
				{"n1", 30, []string{"A", "B"}},
				{"n2", 10, []string{"B", "C"}},
				{"n3", 15, []string{"C"}},
			},
			want: []got{{"A", 60, "1/60", 50}, {"B", 60, "1/40", 35}, {"C", 25, "1/20", 20}},
		},
		{
			// Two factions: 600 backs a1..a3, 400 backs b1..b3.
			// Round 0: a1 at 1/600. Round 1: a2 = 2/600 = 1/300,
			// b1 = 1/400: b1. Round 2: a2 = 1/300, b2 = (1 + 1)/400 = 1/200:
			// a2. A splits over a1 (1/600) and a2 (1/600): 300 each.
			name:       "proportional factions",
			n:          3,
			candidates: []Candidate{{"a1", 0}, {"a2", 0}, {"a3", 0}, {"b1", 0}, {"b2", 0}, {"b3", 0}},
			voters: []Voter{
				{"A", 600, []string{"a1", "a2", "a3"}},
				{"B", 400, []string{"b1", "b2", "b3"}},
			},
			want: []got{{"a1", 600, "1/600", 300}, {"b1", 400, "1/400", 400}, {"a2", 600, "1/300", 300}},
		},
		{
			// The leftover unit goes to the larger fraction even when that
			// is the later winner. x = 10+10 = 20, y = 10.
			// Round 0: x at 1/20. Round 1: y = (1 + 10/20)/10 = 3/20.
			// v edges x 1/20, y 2/20: 10/3 = 3.33 → 3, 20/3 = 6.67 → 6+1.
			name:       "remainder to largest fraction",
			n:          2,
			candidates: []Candidate{{"x", 10}, {"y", 0}},
			voters:     []Voter{{"v", 10, []string{"y", "x"}}},
			want:       []got{{"x", 20, "1/20", 13}, {"y", 10, "3/20", 7}},
		},
		{
			// phragmen_poc_works with v30 bonding 31: approval 1 = 30,
			// 2 = 41, 3 = 51. Round 0: 3 at 1/51. Round 1:
			// 1 = (1 + 20/51)/30 = 71/1530, 2 = (1 + 31/51)/41 = 2/51: 2.
			// v30 edges 3: 1/51, 2: 1/51: 15.5 each; the tie on the
			// fraction goes to the earlier winner 3 (16), 2 gets 15.
			name:       "remainder tie to earlier winner",
			n:          2,
			candidates: []Candidate{{"1", 0}, {"2", 0}, {"3", 0}},
			voters: []Voter{
				{"10", 10, []string{"1", "2"}},
				{"20", 20, []string{"1", "3"}},
				{"30", 31, []string{"2", "3"}},
			},
			want: []got{{"3", 51, "1/51", 36}, {"2", 41, "2/51", 25}},
		},
		{
			// Equal approval: the smaller ID as bytes wins ("Z" is 0x5a,
			// "a" is 0x61). Then a at 1/5: nobody's load is shared.
			name:       "tie broken by ID bytes",
			n:          2,
			candidates: []Candidate{{"a", 5}, {"Z", 5}},
			want:       []got{{"Z", 5, "1/5", 5}, {"a", 5, "1/5", 5}},
		},
		{
			// v1's duplicate and unknown targets leave a single edge to a
			// (approval 10, not 20); v2 has no stake so c has no approval.
			name:       "ignored targets and voters",
			n:          2,
			candidates: []Candidate{{"a", 0}, {"b", 0}, {"c", 0}},
			voters: []Voter{
				{"v1", 10, []string{"a", "a", "ghost"}},
				{"v2", 0, []string{"c"}},
				{"v3", 6, []string{"b", "c", "nobody"}},
				{"v4", 5, []string{"ghost"}},
			},
			// a at 1/10. b = 1/6 (v3 shares no load), c = 1/6: "b" wins.
			// v3 splits over b only: 6.
			want: []got{{"a", 10, "1/10", 10}, {"b", 6, "1/6", 6}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := SeqPhragmen(tt.n, tt.candidates, tt.voters)
			if err != nil {
				t.Fatal(err)
			}
			if g := flatten(ws); !slices.Equal(g, tt.want) {
				t.Errorf("got  %v\nwant %v", g, tt.want)
			}
			ref := refSeqPhragmen(tt.n, tt.candidates, tt.voters)
			if g, r := flatten(ws), flatten(ref); !slices.Equal(g, r) {
				t.Errorf("reference disagrees:\ngot %v\nref %v", g, r)
			}
		})
	}
}

// TestSeqPhragmenDiffersFromTopN: a 40% minority wins one of three seats,
// which picking the top three by approval stake would deny it.
func TestSeqPhragmenDiffersFromTopN(t *testing.T) {
	candidates := []Candidate{{"a1", 1}, {"a2", 1}, {"a3", 1}, {"b1", 1}, {"b2", 1}, {"b3", 1}}
	voters := []Voter{
		{"A", 599, []string{"a1", "a2", "a3"}},
		{"B", 399, []string{"b1", "b2", "b3"}},
	}
	// Top three by approval: a1, a2, a3 (600 each; b* have 400).
	approval := approvals(candidates, voters)
	ids := slices.Collect(maps.Keys(approval))
	slices.SortFunc(ids, func(x, y string) int {
		return cmp.Or(cmp.Compare(approval[y], approval[x]), cmp.Compare(x, y))
	})
	if topN := ids[:3]; !slices.Equal(topN, []string{"a1", "a2", "a3"}) {
		t.Fatalf("top three by approval %v", topN)
	}

	ws, err := SeqPhragmen(3, candidates, voters)
	if err != nil {
		t.Fatal(err)
	}
	// Round 0: a1 at 1/600 (ties with a2, a3 by ID); A's load 1/600.
	// Round 1: a2 = (1 + 599/600)/600 = 1199/360000 ≈ 0.00333,
	//   b1 = 1/400 = 0.0025: b1.
	// Round 2: a2 = 1199/360000, b2 = (1 + 399/400)/400 = 799/160000 ≈ 0.005: a2.
	// A's edges: a1 1/600 = 600/360000, a2 599/360000, so its 599 splits
	// 599·600/1199 = 299.75 and 599·599/1199 = 299.25: 299+1 and 299.
	want := []got{
		{"a1", 600, "1/600", 1 + 300},
		{"b1", 400, "1/400", 1 + 399},
		{"a2", 600, "1199/360000", 1 + 299},
	}
	if g := flatten(ws); !slices.Equal(g, want) {
		t.Fatalf("got  %v\nwant %v", g, want)
	}
}

func TestSeqPhragmenErrors(t *testing.T) {
	ok := []Candidate{{"a", 1}, {"b", 1}}
	tests := []struct {
		name       string
		n          int
		candidates []Candidate
		voters     []Voter
		sentinel   error
		mention    string
	}{
		{"zero seats", 0, ok, nil, ErrInvalidElection, "0 seats"},
		{"negative seats", -3, ok, nil, ErrInvalidElection, "-3 seats"},
		{"empty candidate ID", 1, []Candidate{{"a", 1}, {"", 1}}, nil, ErrInvalidElection, "empty candidate ID"},
		{"duplicate candidate ID", 1, []Candidate{{"w1", 1}, {"w2", 1}, {"w1", 2}}, nil, ErrInvalidElection, `"w1"`},
		{"empty voter ID", 1, ok, []Voter{{"", 1, []string{"a"}}}, ErrInvalidElection, "empty voter ID"},
		{"duplicate voter ID", 1, ok, []Voter{{"n1", 1, nil}, {"n7", 1, nil}, {"n7", 0, nil}}, ErrInvalidElection, `"n7"`},
		{"too many targets", 1, ok, []Voter{{"greedy", 1, make([]string, MaxNominations+1)}}, ErrInvalidElection, `"greedy"`},
		{"stake overflow", 1, []Candidate{{"a", 1 << 63}, {"b", 1}}, []Voter{{"n", 1 << 63, []string{"zzz"}}}, ErrInvalidElection, "2^64"},
		{"no candidates", 1, nil, nil, ErrNotEnoughCandidates, "0 of 0"},
		{"more seats than candidates", 3, ok, nil, ErrNotEnoughCandidates, "2 of 2"},
		{"zero approval not electable", 2, []Candidate{{"a", 1}, {"b", 0}}, []Voter{{"n", 0, []string{"b"}}}, ErrNotEnoughCandidates, "1 of 2"},
		{"only unknown targets", 2, []Candidate{{"a", 1}, {"b", 0}}, []Voter{{"n", 5, []string{"c"}}}, ErrNotEnoughCandidates, "1 of 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := SeqPhragmen(tt.n, tt.candidates, tt.voters)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("err = %v, want %v", err, tt.sentinel)
			}
			if ws != nil {
				t.Errorf("winners %v returned with an error", ws)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("err %q does not mention %q", err, tt.mention)
			}
		})
	}
	// Exactly enough: the zero-approval candidate is still not needed.
	if _, err := SeqPhragmen(1, []Candidate{{"a", 1}, {"b", 0}}, nil); err != nil {
		t.Errorf("one electable candidate for one seat: %v", err)
	}
	// A total of exactly 2^64-1 is fine.
	ws, err := SeqPhragmen(1, []Candidate{{"a", 1<<63 - 1}}, []Voter{{"n", 1 << 63, []string{"a"}}})
	if err != nil || ws[0].Score != 1<<64-1 || ws[0].Backing != 1<<64-1 {
		t.Errorf("max total stake: %v %v", ws, err)
	}
}

func TestSeqPhragmenDoesNotModifyInput(t *testing.T) {
	candidates := []Candidate{{"b", 1}, {"a", 2}}
	voters := []Voter{{"y", 3, []string{"b", "a", "b"}}, {"x", 1, []string{"a"}}}
	c0, v0 := fmt.Sprint(candidates), fmt.Sprint(voters)
	if _, err := SeqPhragmen(2, candidates, voters); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(candidates) != c0 || fmt.Sprint(voters) != v0 {
		t.Errorf("input modified: %v %v", candidates, voters)
	}
}

// TestSeqPhragmenOrderIndependence shuffles candidates, voters and targets.
func TestSeqPhragmenOrderIndependence(t *testing.T) {
	rng := &splitmix{state: 1}
	for i := range 30 {
		// Small stakes make ties common.
		n, cands, voters := genInstance(rng, 1+rng.intn(6), 4+rng.intn(20), 5+rng.intn(60), uint64(1+rng.intn(9)), 0)
		want, werr := SeqPhragmen(n, cands, voters)
		for range 10 {
			c2, v2 := shuffled(rng, cands, voters)
			ws, err := SeqPhragmen(n, c2, v2)
			if fmt.Sprint(err) != fmt.Sprint(werr) {
				t.Fatalf("instance %d: err %v after shuffle, %v before", i, err, werr)
			}
			if g, w := flatten(ws), flatten(want); !slices.Equal(g, w) {
				t.Fatalf("instance %d: after shuffle\n%v\nbefore\n%v", i, g, w)
			}
		}
	}
}

// TestSeqPhragmenMatchesReference compares with a plain big.Rat transcription
// of Substrate's loop, on random instances, some with stakes near 2^64.
func TestSeqPhragmenMatchesReference(t *testing.T) {
	rng := &splitmix{state: 2}
	elected := 0
	for i := range 200 {
		// Up to 16 candidates and 50 voters: 66·8·2^52 < 2^64.
		shift := []uint{0, 0, 20, 52}[i%4]
		maxStake := uint64(1 + rng.intn(1000))
		if shift == 52 {
			maxStake = uint64(1 + rng.intn(8))
		}
		n, cands, voters := genInstance(rng, 1+rng.intn(8), 2+rng.intn(16), rng.intn(50), maxStake, shift)
		ws, err := SeqPhragmen(n, cands, voters)
		ref := refSeqPhragmen(n, cands, voters)
		if ref == nil {
			if !errors.Is(err, ErrNotEnoughCandidates) {
				t.Fatalf("instance %d: reference finds too few candidates, got %v", i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		elected++
		if g, r := flatten(ws), flatten(ref); !slices.Equal(g, r) {
			t.Fatalf("instance %d:\ngot %v\nref %v", i, g, r)
		}
		checkInvariants(t, n, cands, voters, ws)
	}
	if elected < 100 {
		t.Errorf("only %d of 200 instances elected", elected)
	}
}

// TestSeqPhragmenConservation: the backing is exactly the stake of the voters
// backing a winner, and no winner is backed beyond its approval.
func TestSeqPhragmenConservation(t *testing.T) {
	rng := &splitmix{state: 3}
	for range 50 {
		n, cands, voters := genInstance(rng, 5, 30, 200, 1_000_000_007, 0)
		ws, err := SeqPhragmen(n, cands, voters)
		if err != nil {
			t.Fatal(err)
		}
		var sum, want uint64
		for _, w := range ws {
			sum += w.Backing
		}
		want = backedStake(cands, voters, ws)
		if sum != want || sum == 0 {
			t.Fatalf("backing sums to %d, voters backing a winner stake %d", sum, want)
		}
		checkInvariants(t, n, cands, voters, ws)
	}
}

// TestSeqPhragmenGolden pins the result of a fixed instance, so a change of
// arithmetic or of a tie rule on any machine shows up.
func TestSeqPhragmenGolden(t *testing.T) {
	n, cands, voters := benchInstance()
	n = 8
	ws, err := SeqPhragmen(n, cands, voters)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := SeqPhragmen(n, cands, voters)
	if !slices.Equal(flatten(ws), flatten(again)) {
		t.Fatal("two runs differ")
	}
	h := sha256.New()
	for _, w := range flatten(ws) {
		fmt.Fprintf(h, "%s %d %s %d\n", w.ID, w.Score, w.Load, w.Backing)
	}
	const want = "a660ace76b0cc727606d1b2bcd892f476d912036f9b8d0c03150b4644036ee9f"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		for _, w := range flatten(ws) {
			t.Log(w)
		}
		t.Errorf("digest %s, want %s", got, want)
	}
}

// checkInvariants verifies what holds for every successful election.
func checkInvariants(t testing.TB, n int, cands []Candidate, voters []Voter, ws []Winner) {
	t.Helper()
	if len(ws) != n {
		t.Fatalf("%d winners for %d seats", len(ws), n)
	}
	approval := approvals(cands, voters)
	seen := map[string]bool{}
	var sum uint64
	for i, w := range ws {
		if seen[w.ID] {
			t.Fatalf("%q elected twice", w.ID)
		}
		seen[w.ID] = true
		a, ok := approval[w.ID]
		if !ok || a == 0 || w.Score != a {
			t.Fatalf("winner %q score %d, approval %d (candidate %v)", w.ID, w.Score, a, ok)
		}
		if w.Backing > w.Score {
			t.Fatalf("winner %q backing %d > approval %d", w.ID, w.Backing, w.Score)
		}
		if w.Load.Sign() <= 0 || (i > 0 && w.Load.Cmp(ws[i-1].Load) < 0) {
			t.Fatalf("loads not positive and non-decreasing: %v", flatten(ws))
		}
		var c uint64
		sum, c = bits.Add64(sum, w.Backing, 0)
		if c != 0 {
			t.Fatal("backing overflows")
		}
	}
	if want := backedStake(cands, voters, ws); sum != want {
		t.Fatalf("backing sums to %d, voters backing a winner stake %d", sum, want)
	}
}

// approvals recomputes approval stakes from the rules.
func approvals(cands []Candidate, voters []Voter) map[string]uint64 {
	a := map[string]uint64{}
	for _, c := range cands {
		a[c.ID] += c.SelfStake
	}
	for _, v := range voters {
		seen := map[string]bool{}
		for _, id := range v.Targets {
			if _, ok := a[id]; ok && !seen[id] {
				seen[id] = true
				a[id] += v.Stake
			}
		}
	}
	return a
}

// backedStake is the stake of the voters (self stakes included) that back
// at least one winner.
func backedStake(cands []Candidate, voters []Voter, ws []Winner) uint64 {
	won := map[string]bool{}
	for _, w := range ws {
		won[w.ID] = true
	}
	var s uint64
	for _, c := range cands {
		if won[c.ID] {
			s += c.SelfStake
		}
	}
	for _, v := range voters {
		if slices.ContainsFunc(v.Targets, func(id string) bool { return won[id] }) {
			s += v.Stake
		}
	}
	return s
}

// refSeqPhragmen transcribes Substrate's seq_phragmen loop over big.Rat,
// edge by edge, for valid input. It returns nil when too few candidates have
// approval.
func refSeqPhragmen(n int, cands []Candidate, voters []Voter) []Winner {
	type edge struct {
		cand string
		load *big.Rat // nil until the candidate is elected
		rnd  int
	}
	type rvoter struct {
		stake uint64
		load  *big.Rat
		edges []*edge
	}
	known := map[string]bool{}
	for _, c := range cands {
		known[c.ID] = true
	}
	var vs []*rvoter
	for _, c := range cands {
		if c.SelfStake > 0 {
			vs = append(vs, &rvoter{c.SelfStake, new(big.Rat), []*edge{{cand: c.ID}}})
		}
	}
	for _, v := range voters {
		if v.Stake == 0 {
			continue
		}
		rv := &rvoter{stake: v.Stake, load: new(big.Rat)}
		seen := map[string]bool{}
		for _, id := range v.Targets {
			if known[id] && !seen[id] {
				seen[id] = true
				rv.edges = append(rv.edges, &edge{cand: id})
			}
		}
		vs = append(vs, rv)
	}
	approval := approvals(cands, voters)
	ids := make([]string, 0, len(cands))
	for _, c := range cands {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	elected := map[string]bool{}
	var ws []Winner
	for r := range n {
		best, bestScore := "", (*big.Rat)(nil)
		for _, id := range ids {
			if elected[id] || approval[id] == 0 {
				continue
			}
			ap := new(big.Rat).SetUint64(approval[id])
			score := new(big.Rat).Inv(ap)
			for _, v := range vs {
				for _, e := range v.edges {
					if e.cand == id {
						t := new(big.Rat).Mul(v.load, new(big.Rat).SetUint64(v.stake))
						score.Add(score, t.Quo(t, ap))
					}
				}
			}
			if best == "" || score.Cmp(bestScore) < 0 || (score.Cmp(bestScore) == 0 && id < best) {
				best, bestScore = id, score
			}
		}
		if best == "" {
			return nil
		}
		elected[best] = true
		ws = append(ws, Winner{ID: best, Score: approval[best], Load: bestScore})
		for _, v := range vs {
			for _, e := range v.edges {
				if e.cand == best {
					e.load = new(big.Rat).Sub(bestScore, v.load)
					e.rnd = r
					v.load = bestScore
				}
			}
		}
	}
	pos := map[string]int{}
	for i, w := range ws {
		pos[w.ID] = i
	}
	for _, v := range vs {
		if v.load.Sign() == 0 {
			continue // backs no winner
		}
		type part struct {
			rnd  int
			frac *big.Rat
		}
		var parts []part
		left := v.stake
		for _, e := range v.edges {
			if e.load == nil {
				continue
			}
			share := new(big.Rat).Mul(new(big.Rat).SetUint64(v.stake), e.load)
			share.Quo(share, v.load)
			floor := new(big.Int).Quo(share.Num(), share.Denom())
			ws[pos[e.cand]].Backing += floor.Uint64()
			left -= floor.Uint64()
			parts = append(parts, part{e.rnd, new(big.Rat).Sub(share, new(big.Rat).SetInt(floor))})
		}
		slices.SortFunc(parts, func(a, b part) int {
			if c := b.frac.Cmp(a.frac); c != 0 {
				return c
			}
			return cmp.Compare(a.rnd, b.rnd)
		})
		for i := range left {
			ws[parts[i].rnd].Backing++
		}
	}
	return ws
}

// splitmix is splitmix64, a fixed generator so the tests see the same
// instances on every Go version and machine.
type splitmix struct{ state uint64 }

func (s *splitmix) next() uint64 {
	s.state += 0x9e3779b97f4a7c15
	z := s.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (s *splitmix) intn(n int) int { return int(s.next() % uint64(n)) }

// genInstance builds a valid election: nc candidates (IDs "c0", "c1", …,
// so byte order differs from numeric order), nv voters with up to
// MaxNominations targets including unknown and repeated names, stakes in
// [0, maxStake) shifted left by shift, some of them zero.
func genInstance(rng *splitmix, n, nc, nv int, maxStake uint64, shift uint) (int, []Candidate, []Voter) {
	stake := func() uint64 {
		if rng.intn(5) == 0 {
			return 0
		}
		return (rng.next() % maxStake) << shift
	}
	cands := make([]Candidate, nc)
	for i := range cands {
		cands[i] = Candidate{fmt.Sprintf("c%d", i), stake()}
	}
	voters := make([]Voter, nv)
	for i := range voters {
		targets := make([]string, rng.intn(MaxNominations+1))
		for j := range targets {
			if rng.intn(10) == 0 {
				targets[j] = fmt.Sprintf("gone%d", rng.intn(3))
			} else {
				targets[j] = fmt.Sprintf("c%d", rng.intn(nc))
			}
		}
		voters[i] = Voter{fmt.Sprintf("v%d", i), stake(), targets}
	}
	return n, cands, voters
}

func shuffled(rng *splitmix, cands []Candidate, voters []Voter) ([]Candidate, []Voter) {
	c := slices.Clone(cands)
	v := slices.Clone(voters)
	for i := len(c) - 1; i > 0; i-- {
		j := rng.intn(i + 1)
		c[i], c[j] = c[j], c[i]
	}
	for i := len(v) - 1; i > 0; i-- {
		j := rng.intn(i + 1)
		v[i], v[j] = v[j], v[i]
	}
	for i := range v {
		ts := slices.Clone(v[i].Targets)
		for k := len(ts) - 1; k > 0; k-- {
			j := rng.intn(k + 1)
			ts[k], ts[j] = ts[j], ts[k]
		}
		v[i].Targets = ts
	}
	return c, v
}

// benchInstance: 100 candidates, 1000 voters naming 16 distinct candidates
// each, 20 seats; stakes up to a million PHA in uPHA.
func benchInstance() (int, []Candidate, []Voter) {
	rng := &splitmix{state: 42}
	const maxStake = 1_000_000 * 1_000_000
	cands := make([]Candidate, 100)
	for i := range cands {
		cands[i] = Candidate{fmt.Sprintf("worker-%03d", i), 1 + rng.next()%maxStake}
	}
	voters := make([]Voter, 1000)
	for i := range voters {
		targets := make([]string, 0, MaxNominations)
		for len(targets) < MaxNominations {
			id := cands[rng.intn(len(cands))].ID
			if !slices.Contains(targets, id) {
				targets = append(targets, id)
			}
		}
		voters[i] = Voter{fmt.Sprintf("nominator-%04d", i), 1 + rng.next()%maxStake, targets}
	}
	return 20, cands, voters
}

func BenchmarkSeqPhragmen(b *testing.B) {
	n, cands, voters := benchInstance()
	for b.Loop() {
		if _, err := SeqPhragmen(n, cands, voters); err != nil {
			b.Fatal(err)
		}
	}
}

// fuzzReader hands out input bytes, then zeros.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	x := r.b[0]
	r.b = r.b[1:]
	return x
}

// FuzzSeqPhragmen builds elections from bytes: candidate IDs are single
// arbitrary bytes, stakes a byte shifted by 0, 8, 32 or 56 bits (so the
// total may overflow), targets known, repeated or unknown.
func FuzzSeqPhragmen(f *testing.F) {
	f.Add([]byte{})
	// n = 2 (byte 3); candidates "1", "2", "3" with no self stake; voters
	// 10 → {1, 2}, 20 → {1, 3}, 30 → {2, 3}: phragmen_poc_works.
	f.Add([]byte{3, 3, '1', 0, 0, '2', 0, 0, '3', 0, 0, 3, 2, 0, 1, 10, 0, 2, 0, 2, 20, 0, 2, 1, 2, 30, 0})
	// n = 2; a..d bond 4<<8; two voters of 2<<8 naming three each.
	f.Add([]byte{3, 4, 'a', 4, 1, 'b', 4, 1, 'c', 4, 1, 'd', 4, 1, 2, 3, 0, 1, 2, 2, 1, 3, 0, 1, 3, 2, 1})
	// Unknown (8) and repeated targets, a zero-stake voter, n = 3.
	f.Add([]byte{4, 3, 'x', 9, 0, 'y', 0, 0, 'z', 0, 0, 3, 3, 1, 1, 8, 5, 2, 2, 2, 8, 0, 0, 1, 2, 7, 3})
	// Stakes summing past 2^64.
	f.Add([]byte{2, 2, 'x', 255, 3, 'y', 255, 3, 0})
	// Duplicate candidate IDs.
	f.Add([]byte{2, 2, 'x', 1, 0, 'x', 1, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &fuzzReader{data}
		n := int(r.byte()%7) - 1 // -1..5
		stake := func() uint64 {
			v := uint64(r.byte())
			return v << ([]uint{0, 8, 32, 56}[r.byte()%4])
		}
		var cands []Candidate
		for range int(r.byte() % 11) {
			cands = append(cands, Candidate{string([]byte{r.byte()}), stake()})
		}
		var voters []Voter
		for i := range int(r.byte() % 25) {
			var targets []string
			for range int(r.byte() % 6) {
				t := r.byte()
				if t%9 == 8 || len(cands) == 0 {
					targets = append(targets, "unknown")
				} else {
					targets = append(targets, cands[int(t)%len(cands)].ID)
				}
			}
			voters = append(voters, Voter{fmt.Sprintf("v%d", i), stake(), targets})
		}

		ws, err := SeqPhragmen(n, cands, voters)

		// Which error is due, from the rules.
		invalid := n <= 0
		ids := map[string]bool{}
		var total uint64
		overflow := false
		for _, c := range cands {
			invalid = invalid || ids[c.ID]
			ids[c.ID] = true
			var carry uint64
			total, carry = bits.Add64(total, c.SelfStake, 0)
			overflow = overflow || carry != 0
		}
		for _, v := range voters {
			var carry uint64
			total, carry = bits.Add64(total, v.Stake, 0)
			overflow = overflow || carry != 0
		}
		invalid = invalid || overflow
		electable := 0
		for _, a := range approvals(cands, voters) {
			if a > 0 {
				electable++
			}
		}
		switch {
		case invalid:
			if !errors.Is(err, ErrInvalidElection) || ws != nil {
				t.Fatalf("invalid input accepted: %v %v", ws, err)
			}
			return
		case electable < n:
			if !errors.Is(err, ErrNotEnoughCandidates) || ws != nil {
				t.Fatalf("%d electable for %d seats: %v %v", electable, n, ws, err)
			}
			return
		case err != nil:
			t.Fatalf("valid input refused: %v", err)
		}
		checkInvariants(t, n, cands, voters, ws)
		if g, r := flatten(ws), flatten(refSeqPhragmen(n, cands, voters)); !slices.Equal(g, r) {
			t.Fatalf("reference disagrees:\ngot %v\nref %v", g, r)
		}
		c2, v2 := slices.Clone(cands), slices.Clone(voters)
		slices.Reverse(c2)
		slices.Reverse(v2)
		again, err := SeqPhragmen(n, c2, v2)
		if err != nil || !slices.Equal(flatten(again), flatten(ws)) {
			t.Fatalf("reversed input: %v %v, want %v", flatten(again), err, flatten(ws))
		}
	})
}
