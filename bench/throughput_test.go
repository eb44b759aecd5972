package bench

import (
	"context"
	"testing"

	"github.com/phala-go/phala/internal/testutil"
)

// TestThroughputBenchmarkRuns runs the chain benchmark at a small scale so
// CI keeps it working; `make bench` runs it at full size. Run itself fails
// if any Phala transfer did not succeed.
func TestThroughputBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two chains")
	}
	res, err := Run(context.Background(), Config{Txs: 4000, Senders: 16, Rounds: 1, BasePort: testutil.FreePorts(t, 20), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Median()
	if r.KVStore.Txs != 4000 || r.Phala.Txs != 4000 || r.Ratio() <= 0 {
		t.Fatalf("round %+v", r)
	}
	t.Logf("kvstore %.0f tx/s, phala %.0f tx/s, ratio %.2f (small scale; see make bench)", r.KVStore.TPS(), r.Phala.TPS(), r.Ratio())
}
