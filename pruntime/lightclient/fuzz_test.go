package lightclient_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cometbft/cometbft/types"
	"google.golang.org/protobuf/proto"

	"github.com/phala-go/phala/proto/chainpb"
	"github.com/phala-go/phala/proto/pruntimepb"
	lc "github.com/phala-go/phala/pruntime/lightclient"
)

// FuzzIngest feeds arbitrary bytes, as a hostile host would send them, as
// the next sync step of two clients: one whose next block keeps the
// validator set, one whose next block changes it. Nothing may panic; a
// refusal must be classified and leave the client unchanged; and since the
// host cannot forge signatures, the only block ever accepted is the genuine
// next one with its genuine events. The same block also goes through
// IngestBatch as the last of three (after the two genuine blocks before
// it): the batch must adopt those two and then do exactly what Ingest did
// with the block, and its batched verification must never accept a block
// Ingest refuses.
func FuzzIngest(f *testing.F) {
	seeds, check := ingestTarget(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(check)
}

// TestIngestMutations runs FuzzIngest's check on seeded random mutations of
// its seeds (bits flipped, bytes overwritten, cut short; mostly inside the
// signed header or the validator set, so that the block still decodes), so
// that plain `go test` compares Ingest with IngestBatch beyond the seeds.
func TestIngestMutations(t *testing.T) {
	seeds, check := ingestTarget(t)
	n := 4000
	if testing.Short() {
		n = 400
	}
	rng := rand.New(rand.NewPCG(1, 2))
	mutate := func(b []byte) []byte {
		b = bytes.Clone(b)
		for range 1 + rng.IntN(3) {
			if len(b) == 0 {
				break
			}
			switch p := rng.IntN(len(b)); rng.IntN(5) {
			case 0, 1, 2:
				b[p] ^= 1 << rng.IntN(8)
			case 3:
				b[p] = byte(rng.IntN(256))
			case 4:
				b = b[:p]
			}
		}
		return b
	}
	for i := range n {
		raw := seeds[rng.IntN(len(seeds))]
		var sb pruntimepb.SyncBlock
		switch k := rng.IntN(10); {
		case k < 6 && proto.Unmarshal(raw, &sb) == nil && len(sb.SignedHeader) > 0:
			sb.SignedHeader = mutate(sb.SignedHeader)
			raw, _ = proto.Marshal(&sb)
		case k < 8 && proto.Unmarshal(raw, &sb) == nil && len(sb.Validators) > 0:
			sb.Validators = mutate(sb.Validators)
			raw, _ = proto.Marshal(&sb)
		default:
			raw = mutate(raw)
		}
		t.Run(fmt.Sprint(i), func(t *testing.T) { check(t, raw) })
	}
}

// ingestTarget is FuzzIngest's seed corpus and check.
func ingestTarget(f testing.TB) ([][]byte, func(*testing.T, []byte)) {
	c := newSimChain(f, "sim-fuzz", 4)
	c.grow(6)
	c.change(types.NewValidator(c.key("val-2").PubKey(), 0), types.NewValidator(c.key("newcomer").PubKey(), 20))
	c.grow(9)
	if c.blocks[8].Validators == nil {
		f.Fatal("block 8 should carry the new validator set")
	}
	type target struct {
		at     int64
		cl     *lc.Client
		sealed []byte
		// earlier is the state two blocks before at.
		earlier []byte
	}
	var targets []*target
	for _, at := range []int64{4, 7} {
		cl := c.synced(at)
		targets = append(targets, &target{at: at, cl: cl, sealed: mustMarshal(f, cl), earlier: mustMarshal(f, c.synced(at-2))})
	}

	encode := func(b lc.Block) []byte {
		sb, err := lc.EncodeBlock(b)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := proto.Marshal(sb)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	var seeds [][]byte
	for _, tg := range targets {
		next := c.blocks[tg.at+1]
		raw := encode(next)
		seeds = append(seeds, raw)
		for _, i := range []int{0, 3, len(raw) / 3, len(raw) / 2, len(raw) - 40, len(raw) - 1} {
			flipped := bytes.Clone(raw)
			flipped[i] ^= 0x10
			seeds = append(seeds, flipped)
		}
		seeds = append(seeds, raw[:len(raw)/2])
		seeds = append(seeds, encode(c.blocks[tg.at+2]))
		seeds = append(seeds, encode(c.blocks[tg.at]))
		noVals := next
		noVals.Validators = nil
		seeds = append(seeds, encode(noVals))
		withVals := next
		withVals.Validators = c.sets[tg.at+1]
		seeds = append(seeds, encode(withVals))
		otherLog := next
		otherLog.EventLog = c.logs[tg.at+1]
		seeds = append(seeds, encode(otherLog))
	}
	seeds = append(seeds, []byte{})

	return seeds, func(t *testing.T, raw []byte) {
		var sb pruntimepb.SyncBlock
		if err := proto.Unmarshal(raw, &sb); err != nil {
			return
		}
		b, err := lc.DecodeBlock(&sb)
		if err != nil {
			if !errors.Is(err, lc.ErrMalformed) {
				t.Fatalf("unclassified decoding error: %v", err)
			}
			return
		}
		for _, tg := range targets {
			evs, err := tg.cl.Ingest(b)
			batchCheck(t, c, tg.at, tg.earlier, b, evs, err)
			if err != nil {
				if evs != nil {
					t.Fatal("events returned with an error")
				}
				if !errors.Is(err, lc.ErrMalformed) && !errors.Is(err, lc.ErrHeight) && !errors.Is(err, lc.ErrValidatorSet) && !errors.Is(err, lc.ErrHeader) && !errors.Is(err, lc.ErrEventLog) {
					t.Fatalf("unclassified refusal: %v", err)
				}
				if now := mustMarshal(t, tg.cl); !bytes.Equal(now, tg.sealed) {
					t.Fatalf("a refused block changed the client: %v", err)
				}
				continue
			}
			h := tg.at + 1
			if !bytes.Equal(b.SignedHeader.Hash(), c.blocks[h].SignedHeader.Hash()) {
				t.Fatalf("client at %d accepted a block that is not block %d", tg.at, h)
			}
			c.checkEvents(t, h-1, evs)
			if tg.cl, err = lc.Restore(c.config(), tg.sealed); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// batchCheck sends blocks at-1, at and b through IngestBatch to a client
// restored from earlier (at at-2), where Ingest(b) at at gave evs and err.
func batchCheck(t *testing.T, c *simChain, at int64, earlier []byte, b lc.Block, evs []*chainpb.WorkerEvent, err error) {
	t.Helper()
	bs := []lc.Block{c.blocks[at-1], c.blocks[at], b}
	cl, rerr := lc.Restore(c.config(), earlier)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if n := cl.BatchFastPath(bs); n == 3 && err != nil {
		t.Fatalf("batched verification accepted a block Ingest refuses (%v)", err)
	} else if n < 2 {
		t.Fatalf("batched verification refused genuine blocks %d and %d", at-1, at)
	}
	bevs, berr := cl.IngestBatch(bs)
	if err != nil {
		if berr == nil || berr.Error() != err.Error() || len(bevs) != 2 || cl.Height() != at {
			t.Fatalf("IngestBatch: %d adopted, %v; Ingest: %v", len(bevs), berr, err)
		}
		return
	}
	if berr != nil || len(bevs) != 3 || cl.Height() != at+1 {
		t.Fatalf("IngestBatch: %d adopted, %v; Ingest accepted", len(bevs), berr)
	}
	if len(bevs[2]) != len(evs) {
		t.Fatalf("IngestBatch returned %d events, Ingest %d", len(bevs[2]), len(evs))
	}
	for i := range evs {
		if !proto.Equal(bevs[2][i], evs[i]) {
			t.Fatalf("event %d: IngestBatch %v, Ingest %v", i, bevs[2][i], evs[i])
		}
	}
}
