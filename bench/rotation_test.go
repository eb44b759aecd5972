package bench

import (
	"context"
	"testing"
	"time"

	"github.com/phala-go/phala/devnet"
	"github.com/phala-go/phala/internal/testutil"
)

// TestRotationBenchmarkRuns rotates the root key of a devnet with 3
// gatekeepers and a handful of stored contract keys, so CI keeps the
// rotation benchmark working; `make bench` runs it with 3, 10 and 30
// gatekeepers and 1,000 keys.
func TestRotationBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet across an era boundary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const keys, probes = 6, 2
	c := RotationConfig{Gatekeepers: []int{3}, Keys: keys, Probes: probes, BlockTime: 200 * time.Millisecond, EraBlocks: 70,
		RotationBlocks: 40, Deployers: 2, BasePort: testutil.FreePorts(t, devnet.PortsNeeded(5)), Dir: t.TempDir(), Log: t.Logf}
	rep, err := RunRotation(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 1 {
		t.Fatalf("report %+v", rep)
	}
	r := rep.Runs[0]
	if !r.Done() || len(r.Notes) != 0 {
		t.Fatalf("run %+v", r)
	}
	// The first era's rotation, started at its last block, ready in the
	// first attempt with every stored key re-encrypted (one state part)
	// and the same three gatekeepers, no sooner than the best case.
	if r.Era != 1 || r.Start != c.EraBlocks || r.Attempt != 1 || r.KeysExpected != keys || r.Parts != 1 || r.Incoming != 3 || !r.ReadyEvent {
		t.Fatalf("rotation %+v", r)
	}
	if r.Blocks() < BestCaseBlocks || r.Seconds <= 0 || r.Interval <= 0 {
		t.Fatalf("rotation took %d blocks, %s (block interval %s)", r.Blocks(), r.Seconds, r.Interval)
	}
	// Each step after the one it needs, all within the rotation.
	if !(r.Start < r.SharesHeight && r.SharesHeight < min(r.KeysHeight, r.StateHeight) && max(r.KeysHeight, r.StateHeight) < r.FirstConfirm && r.FirstConfirm <= r.Ready) {
		t.Fatalf("rotation steps out of order: start %d, shares %d, key %d, state %d, first confirmation %d, ready %d",
			r.Start, r.SharesHeight, r.KeysHeight, r.StateHeight, r.FirstConfirm, r.Ready)
	}
	if len(r.Baseline) != probes {
		t.Fatalf("%d baseline requests", len(r.Baseline))
	}
	for _, k := range append(r.Baseline, r.Paused) {
		if k.Blocks() < 1 || k.Latency <= 0 {
			t.Fatalf("key request %+v", k)
		}
	}
	// The request at the start waits for Ready, so it takes longer than
	// one outside a rotation.
	if norm := r.NormalLatency(); r.Paused.Keyed <= r.Ready || r.Paused.Blocks() <= norm.Blocks() || r.Paused.Latency <= norm.Latency {
		t.Fatalf("paused request %+v (ready in %d), normal %+v", r.Paused, r.Ready, norm)
	}
}
