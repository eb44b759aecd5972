package bench

import (
	"context"
	"testing"
	"time"

	"github.com/phala-go/phala/internal/testutil"
)

// TestRecoveryBenchmarkRuns moves a token with a short history between the
// two miners of a devnet, so CI keeps the recovery benchmark working;
// `make bench` runs it with 1,000 and 100,000 commands.
func TestRecoveryBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a contract and runs a devnet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := RecoveryConfig{Histories: []int{40}, Distance: 12, Holders: 10, Rounds: 2, BasePort: testutil.FreePorts(t, 20), Dir: t.TempDir(), Log: t.Logf}
	rep, err := RunRecovery(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 || len(rep.Runs[0].Rounds) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Runs[0].Rounds {
		// 8 senders and the 10 holders; the token's info besides.
		if r.Distance != 12 || r.Recovery <= 0 || r.Checkpoint == nil || r.Holders != 18 || r.LoadedPairs != 19 || len(r.Notes) != 0 {
			t.Fatalf("round %d: %+v", i+1, r)
		}
	}
	if r := rep.Runs[0].Rounds; r[0].To != "miner2" || !r[0].Cold || r[1].To != "miner1" || r[1].Cold || r[1].Expected != r[0].Expected+12 {
		t.Fatalf("rounds %+v", r)
	}
}
