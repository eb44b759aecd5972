package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/phala-go/phala/internal/testutil"
)

// TestSyncBenchmarkRuns records a short 4-validator chain and runs the
// verified sync benchmark on it, through the gRPC API too, so CI keeps it
// working; `make bench` runs it at 10,000 blocks.
func TestSyncBenchmarkRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four validators")
	}
	const blocks = 60
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	chainFile := filepath.Join(dir, "chain")
	res, err := RunSync(ctx, SyncConfig{
		Blocks: blocks, Rounds: 1, Batch: 25, GRPC: true, Dir: dir, ChainFile: chainFile,
		BasePort: testutil.FreePorts(t, 40), Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != blocks || res.Validators != 4 || res.Events == 0 || len(res.Rounds) != 1 {
		t.Fatalf("comparison %+v", res)
	}
	r := res.Median()
	for _, s := range []SyncResult{r.Unverified, r.Verified, r.Runtime, *r.GRPC} {
		if s.Height != blocks || s.Blocks != blocks || s.Events != res.Events || s.BlocksPerSecond() <= 0 {
			t.Fatalf("%s: %+v", s.Name, s)
		}
	}
	if r.Ratio() <= 0 {
		t.Fatalf("ratio %v", r.Ratio())
	}
	t.Logf("unverified %.0f blocks/s, verified %.0f blocks/s, ratio %.2f, pRuntime %.0f blocks/s (small scale; see make bench)",
		r.Unverified.BlocksPerSecond(), r.Verified.BlocksPerSecond(), r.Ratio(), r.Runtime.BlocksPerSecond())

	// The saved chain loads back and is measured the same way.
	rc, err := LoadChain(chainFile)
	if err != nil || len(rc.Blocks) != blocks || rc.Events() != res.Events {
		t.Fatalf("reloaded chain: %v", err)
	}
	if _, err := MeasureSync(ctx, rc, SyncConfig{Rounds: 1, Batch: blocks, Dir: dir}); err != nil {
		t.Fatal(err)
	}
}
