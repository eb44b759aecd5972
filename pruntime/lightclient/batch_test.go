package lightclient_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cometbft/cometbft/types"

	"github.com/phala-go/phala/proto/chainpb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

// withBadSignature is b with commit signature i altered by one bit; b
// itself is left alone.
func withBadSignature(b lc.Block, i int) lc.Block {
	sh := *b.SignedHeader
	commit := *sh.Commit
	commit.Signatures = slices.Clone(commit.Signatures)
	sig := bytes.Clone(commit.Signatures[i].Signature)
	sig[5] ^= 1
	commit.Signatures[i].Signature = sig
	sh.Commit = &commit
	b.SignedHeader = &sh
	return b
}

// blocks is c's blocks from..to as an honest host sends them.
func (c *simChain) blockRange(from, to int64) []lc.Block {
	return slices.Clone(c.blocks[from : to+1])
}

// checkBatch checks that evs are the events IngestBatch returns for blocks
// from, from+1, ...
func (c *simChain) checkBatch(t testing.TB, from int64, evs [][]*chainpb.WorkerEvent) {
	t.Helper()
	for i, e := range evs {
		h := from + int64(i)
		if h == 1 {
			if e == nil || len(e) != 0 {
				t.Fatalf("first block returned events %v", e)
			}
			continue
		}
		c.checkEvents(t, h-1, e)
	}
}

// sizeChangingChain is 40 blocks whose validator set changes at block 20
// (one validator leaves, one joins with more power) and at block 30 (a
// power change).
func sizeChangingChain(t testing.TB, chainID string) *simChain {
	c := newSimChain(t, chainID, 4)
	c.grow(18)
	c.change(types.NewValidator(c.key("val-1").PubKey(), 0), types.NewValidator(c.key("newcomer").PubKey(), 25))
	c.grow(28)
	c.change(types.NewValidator(c.key("val-2").PubKey(), 15))
	c.grow(40)
	if c.blocks[20].Validators == nil || c.blocks[30].Validators == nil {
		t.Fatal("blocks 20 and 30 should carry a new validator set")
	}
	return c
}

// TestIngestBatchBadSignature sends 40 blocks in one batch with one altered
// commit signature: the blocks before it are adopted, the batch stops at
// it with Ingest's error naming it, and the blocks after it are not taken.
func TestIngestBatchBadSignature(t *testing.T) {
	c := sizeChangingChain(t, "sim-batch-sig")
	for _, tc := range []struct {
		bad int64 // the block with the bad signature
		sig int   // which signature
	}{{23, 1}, {20, 0}, {1, 2}, {40, 1}, {2, 0}} {
		t.Run(fmt.Sprintf("block %d signature %d", tc.bad, tc.sig), func(t *testing.T) {
			bs := c.blockRange(1, 40)
			bs[tc.bad-1] = withBadSignature(bs[tc.bad-1], tc.sig)
			_, want := c.synced(tc.bad - 1).Ingest(bs[tc.bad-1])
			if want == nil {
				t.Fatal("Ingest accepted the bad signature")
			}
			cl := c.synced(0)
			if n := cl.BatchFastPath(bs); n != int(tc.bad-1) {
				t.Fatalf("batched verification accepted %d blocks, want %d", n, tc.bad-1)
			}
			evs, err := cl.IngestBatch(bs)
			t.Log(err)
			wantMsg := fmt.Sprintf("block %d", tc.bad)
			if !errors.Is(err, lc.ErrHeader) || err.Error() != want.Error() ||
				!strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), fmt.Sprintf("wrong signature (#%d)", tc.sig)) {
				t.Fatalf("got %v, want %v", err, want)
			}
			if len(evs) != int(tc.bad-1) || cl.Height() != tc.bad-1 {
				t.Fatalf("%d blocks adopted, height %d; want %d", len(evs), cl.Height(), tc.bad-1)
			}
			c.checkBatch(t, 1, evs)
			if !bytes.Equal(mustMarshal(t, cl), mustMarshal(t, c.synced(tc.bad-1))) {
				t.Fatal("the client is not where Ingest leaves it")
			}
			// The genuine rest goes through.
			evs, err = cl.IngestBatch(c.blockRange(tc.bad, 40))
			if err != nil || len(evs) != int(40-tc.bad+1) || cl.Height() != 40 {
				t.Fatalf("the genuine rest: %d adopted, %v", len(evs), err)
			}
			c.checkBatch(t, tc.bad, evs)
		})
	}
}

// TestIngestBatchUncountedSignature: CometBFT's light verification stops
// counting once more than 2/3 of the power has signed, so a bad signature
// after that point is not looked at, by Ingest or by IngestBatch.
func TestIngestBatchUncountedSignature(t *testing.T) {
	c := newSimChain(t, "sim-batch-uncounted", 4)
	c.grow(20)
	bs := c.blockRange(1, 20)
	bs[9] = withBadSignature(bs[9], 3) // 3 of 4 equal powers are enough
	if _, err := c.synced(9).Ingest(bs[9]); err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	cl := c.synced(0)
	if n := cl.BatchFastPath(bs); n != 20 {
		t.Fatalf("batched verification accepted %d blocks", n)
	}
	evs, err := cl.IngestBatch(bs)
	if err != nil || len(evs) != 20 {
		t.Fatalf("%d adopted, %v", len(evs), err)
	}
	c.checkBatch(t, 1, evs)
}

// TestIngestBatchFollowChain follows a chain across validator-set changes
// in batches of several sizes, over the wire, and ends exactly where
// Ingest does; a whole honest batch never needs the per-block fallback.
func TestIngestBatchFollowChain(t *testing.T) {
	c := sizeChangingChain(t, "sim-batch-follow")
	want := mustMarshal(t, c.synced(40))
	var all []lc.Block
	for h := int64(1); h <= 40; h++ {
		all = append(all, wire(t, c.blocks[h]))
	}
	if n := c.synced(0).BatchFastPath(all); n != 40 {
		t.Fatalf("batched verification accepted %d of 40 genuine blocks", n)
	}
	if n := c.synced(19).BatchFastPath(all[19:]); n != 21 {
		t.Fatalf("batched verification from block 20 accepted %d of 21 genuine blocks", n)
	}
	for _, size := range []int{1, 3, 16, 40} {
		t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
			cl := c.synced(0)
			for i := 0; i < len(all); i += size {
				part := all[i:min(i+size, len(all))]
				evs, err := cl.IngestBatch(part)
				if err != nil || len(evs) != len(part) {
					t.Fatalf("blocks %d..: %d adopted, %v", i+1, len(evs), err)
				}
				c.checkBatch(t, int64(i+1), evs)
			}
			if got := mustMarshal(t, cl); !bytes.Equal(got, want) {
				t.Fatal("the client is not where Ingest leaves it")
			}
			if evs, err := cl.IngestBatch(nil); err != nil || len(evs) != 0 {
				t.Fatalf("empty batch: %v %v", evs, err)
			}
		})
	}
}

// TestIngestBatchSingleSigner: commits of one signature are not
// batch-verified by CometBFT; IngestBatch verifies them as it does.
func TestIngestBatchSingleSigner(t *testing.T) {
	c := newSimChain(t, "sim-batch-single", 1)
	c.grow(10)
	evs, err := c.synced(0).IngestBatch(c.blockRange(1, 10))
	if err != nil || len(evs) != 10 {
		t.Fatalf("%d adopted, %v", len(evs), err)
	}
	c.checkBatch(t, 1, evs)
	bs := c.blockRange(1, 10)
	bs[5] = withBadSignature(bs[5], 0)
	cl := c.synced(0)
	evs, err = cl.IngestBatch(bs)
	if !errors.Is(err, lc.ErrHeader) || !strings.Contains(err.Error(), "block 6") || !strings.Contains(err.Error(), "wrong signature") || len(evs) != 5 || cl.Height() != 5 {
		t.Fatalf("%d adopted, %v", len(evs), err)
	}
}
