package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/staking"
	"github.com/phala-go/phala/client"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/proof"
)

// Prefixes of the state keys the totals walk: every account's balance
// (bank.BalanceKey) and every account's total in the staking pool (its
// self stakes, nomination and unbondings; staking.Bonded).
var (
	balancePrefix = bank.BalanceKey(crypto.Address{})[:len("bank/balance/")]
	bondPrefix    = []byte("staking/a/")
	// rewardsReportKey holds the last era's chain.RewardsReport (JSON).
	rewardsReportKey = []byte("rewards/report")
)

// totals is what the committed state after block Height holds, read
// through client queries with every value proven against the header of
// block Height+1.
type totals struct {
	Height   int64
	Balances map[crypto.Address]uint64
	Sum      uint64 // of every balance
	Supply   uint64 // bank's supply counter
	Minted   uint64 // everything the eras minted (rewards report)
	Bonds    uint64 // of every account's total in the staking pool
}

// walkPrefix lists every key under prefix in the state after block h and
// its value, through proven store queries: a query for a key that is
// absent returns a proof of absence that names the key's two neighbours
// and proves them adjacent, so asking for the successor of each key found
// (the key with a zero byte appended) walks the keys in order and misses
// none. verify checks each proof against the header of block h+1.
func walkPrefix(ctx context.Context, cl *client.Client, verify func(*proof.StateProof) error, h int64, prefix []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	key := bytes.Clone(prefix)
	for range 100_000 {
		p, err := cl.StateProof(ctx, key, h)
		if err != nil {
			return nil, err
		}
		if err := verify(p); err != nil {
			return nil, err
		}
		var found []byte
		if p.Value != nil {
			if !bytes.HasPrefix(key, prefix) {
				return out, nil
			}
			if !bytes.Equal(key, prefix) {
				out[string(key)] = p.Value
			}
			found = key
		} else {
			ne := p.Proof.GetNonexist()
			if ne == nil {
				return nil, fmt.Errorf("the node proved %X absent without a non-existence proof", key)
			}
			if ne.Right == nil || !bytes.HasPrefix(ne.Right.Key, prefix) {
				return out, nil // no key after this one under prefix
			}
			out[string(ne.Right.Key)] = ne.Right.Value
			found = ne.Right.Key
		}
		key = append(bytes.Clone(found), 0)
	}
	return nil, fmt.Errorf("more than 100,000 keys under %q", prefix)
}

// readTotals reads the totals of the state after the block before the
// last committed one (so the header that commits it exists).
func readTotals(ctx context.Context, cl *client.Client) (totals, error) {
	last, err := height(ctx, cl)
	if err != nil {
		return totals{}, err
	}
	h := last - 1
	header, err := cl.Header(ctx, h+1)
	if err != nil {
		return totals{}, err
	}
	verify := func(p *proof.StateProof) error { return proof.VerifyState(header, p) }
	tt := totals{Height: h, Balances: map[crypto.Address]uint64{}}
	u64 := func(what string, v []byte) (uint64, error) {
		if len(v) != 8 {
			return 0, fmt.Errorf("%s is %d bytes, want 8", what, len(v))
		}
		return binary.BigEndian.Uint64(v), nil
	}
	bals, err := walkPrefix(ctx, cl, verify, h, balancePrefix)
	if err != nil {
		return tt, fmt.Errorf("walk the balances: %w", err)
	}
	for k, v := range bals {
		a, err := crypto.AddressFromBytes([]byte(k)[len(balancePrefix):])
		if err != nil {
			return tt, fmt.Errorf("balance key %X: %w", k, err)
		}
		b, err := u64("the balance of "+a.String(), v)
		if err != nil {
			return tt, err
		}
		if tt.Sum+b < tt.Sum {
			return tt, fmt.Errorf("the balances overflow 64 bits")
		}
		tt.Balances[a] = b
		tt.Sum += b
	}
	bonds, err := walkPrefix(ctx, cl, verify, h, bondPrefix)
	if err != nil {
		return tt, fmt.Errorf("walk the bonds: %w", err)
	}
	for k, v := range bonds {
		b, err := u64(fmt.Sprintf("bond total %q", k), v)
		if err != nil {
			return tt, err
		}
		tt.Bonds += b
	}
	sp, err := cl.StateProof(ctx, bank.SupplyKey, h)
	if err == nil {
		err = verify(sp)
	}
	if err != nil {
		return tt, fmt.Errorf("the supply: %w", err)
	}
	if tt.Supply, err = u64("the supply", sp.Value); err != nil {
		return tt, err
	}
	rp, err := cl.StateProof(ctx, rewardsReportKey, h)
	if err == nil {
		err = verify(rp)
	}
	if err != nil {
		return tt, fmt.Errorf("the rewards report: %w", err)
	}
	if rp.Value != nil { // absent before the first era ends
		var rep chain.RewardsReport
		if err := json.Unmarshal(rp.Value, &rep); err != nil {
			return tt, fmt.Errorf("the rewards report: %w", err)
		}
		tt.Minted = rep.TotalMinted
	}
	return tt, nil
}

// checkTotals is devnet's checkTotals done from outside, through proven
// client queries against one committed state: every balance (bonds and
// pools are balances of module accounts) sums to the supply, the supply is
// the genesis supply plus everything the eras minted, and the staking pool
// holds exactly every account's bonds and unbondings.
func checkTotals(t *testing.T, ctx context.Context, cl *client.Client) totals {
	t.Helper()
	var tt totals
	var err error
	// A query can land just after its height is pruned or on a node
	// restarting; a few tries, then fail.
	for try := 0; ; try++ {
		if tt, err = readTotals(ctx, cl); err == nil || try == 4 {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("read the totals: %v", err)
	}
	if tt.Sum != tt.Supply {
		t.Fatalf("after block %d the %d balances sum to %d uPHA but the supply is %d (difference %d)", tt.Height, len(tt.Balances), tt.Sum, tt.Supply, int64(tt.Supply-tt.Sum))
	}
	if tt.Supply != bank.TotalSupply+tt.Minted {
		t.Fatalf("after block %d the supply is %d, want the genesis %d plus %d minted", tt.Height, tt.Supply, bank.TotalSupply, tt.Minted)
	}
	if pool := tt.Balances[staking.Pool]; pool != tt.Bonds {
		t.Fatalf("after block %d the staking pool holds %d uPHA but the accounts' bonds and unbondings total %d", tt.Height, pool, tt.Bonds)
	}
	return tt
}
