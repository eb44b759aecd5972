package devnet_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/bank"
	"github.com/phala-go/phala/chain/gatekeeper"
	"github.com/phala-go/phala/crypto"
	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
)

// launched starts a devnet with the default workers, 150 ms blocks, the
// launch tuned by p (zero: the default) and the genesis by tune (nil: as
// is), and waits for the launch. The test's cleanup stops it.
func launched(t *testing.T, ctx context.Context, p gatekeeper.Params, tune func(*chain.Genesis)) *devnet.Network {
	t.Helper()
	net, err := devnet.Start(ctx, devnet.Config{Home: t.TempDir(), BasePort: testutil.FreePorts(t, devnet.PortsNeeded(len(devnet.DefaultWorkers()))),
		BlockTime: 150 * time.Millisecond, Workers: devnet.DefaultWorkers(), Launch: p, TuneGenesis: tune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Stop() })
	if _, err := devnet.WaitLaunched(ctx, net.Client); err != nil {
		t.Fatal(err)
	}
	return net
}

// checkTotals sums every balance in the committed state (bonds and pools
// are balances of module accounts) and checks that the sum is the supply,
// and that the supply is the genesis supply plus everything the eras
// minted. It returns the supply.
func checkTotals(t *testing.T, net *devnet.Network) uint64 {
	t.Helper()
	// One committed snapshot: the sums and the report agree in height.
	var sum, supply uint64
	var rep chain.RewardsReport
	prefix := bank.BalanceKey(crypto.Address{})[:len("bank/balance/")]
	err := net.Node.App().IterateState(func(k, v []byte) bool {
		switch {
		case bytes.HasPrefix(k, prefix):
			sum += binary.BigEndian.Uint64(v)
		case bytes.Equal(k, bank.SupplyKey):
			supply = binary.BigEndian.Uint64(v)
		case string(k) == "rewards/report":
			if err := json.Unmarshal(v, &rep); err != nil {
				t.Errorf("rewards report: %v", err)
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum != supply {
		t.Fatalf("balances sum to %d uPHA but the supply is %d (difference %d)", sum, supply, int64(supply-sum))
	}
	if supply != bank.TotalSupply+rep.TotalMinted {
		t.Fatalf("the supply is %d, want the genesis %d plus %d minted", supply, bank.TotalSupply, rep.TotalMinted)
	}
	return supply
}
