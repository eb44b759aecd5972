package devnet_test

import (
	"context"
	"testing"
	"time"

	"github.com/phala-go/phala/chain"
	"github.com/phala-go/phala/chain/gatekeeper"
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
